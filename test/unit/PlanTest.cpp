// The planned graphs of every fixture, executed with every activation stored at its planned
// offset in one byte arena (views and in-place results included): if two buffers that are live
// together overlapped, a value would be overwritten before its last read and the outputs would
// differ from the plain interpreter's. Also the KV-cache region sizes.
#include "FixtureUtil.h"
#include "RandomGraph.h"
#include "TestUtil.h"
#include "frontend/HFImporter.h"
#include "ir/Builder.h"
#include "ir/Printer.h"
#include "passes/Pass.h"

namespace gemma {
namespace {

using testing::decodeTensor;
using testing::encodeTensor;
using testing::sameTensor;

// Runs `graph` keeping each op result that has an arena_offset only in the arena.
std::vector<Tensor> runInArena(const Graph& graph, const std::vector<Tensor>& inputs,
                               const WeightProvider& weights, const SymbolBindings& bindings) {
  std::vector<uint8_t> arena(
      static_cast<size_t>(*std::get_if<int64_t>(&graph.attrs.at("arena_bytes"))));
  std::map<const Value*, Tensor> held; // values outside the arena
  std::map<const Value*, std::pair<int64_t, std::vector<int64_t>>> placed; // offset, shape
  for (size_t i = 0; i < inputs.size(); ++i)
    held[graph.inputs[i].get()] = inputs[i];
  auto read = [&](const Value* v) {
    auto it = placed.find(v);
    if (it == placed.end())
      return held.at(v);
    return decodeTensor(arena.data() + it->second.first, v->type.elementType, it->second.second);
  };
  for (const auto& op : graph.ops) {
    std::vector<Tensor> operands;
    for (const Value* operand : op->operands)
      operands.push_back(read(operand));
    std::vector<const Tensor*> pointers;
    for (const Tensor& t : operands)
      pointers.push_back(&t);
    std::vector<int64_t> declared;
    for (const Dim& dim : op->result()->type.dims)
      declared.push_back(dim.evaluate(bindings).value_or(-1));
    Tensor result = evaluateOp(*op, pointers, declared, weights);
    const int64_t* offset = op->attr<int64_t>("arena_offset");
    if (!offset) {
      held[op->result()] = result;
      continue;
    }
    int64_t bytes = result.numElements() * elementSize(result.elementType);
    EXPECT_LE(bytes, *op->attr<int64_t>("arena_bytes")) << op->mnemonic();
    EXPECT_LE(*offset + bytes, static_cast<int64_t>(arena.size())) << op->mnemonic();
    encodeTensor(result, arena.data() + *offset);
    placed[op->result()] = {*offset, result.shape};
  }
  std::vector<Tensor> outputs;
  for (const Graph::Output& output : graph.outputs)
    outputs.push_back(read(output.value));
  return outputs;
}

class Plan : public ::testing::TestWithParam<std::string> {};

TEST_P(Plan, PlannedArenaComputesTheSameNumbers) {
  ImportedModel model = importHFCheckpoint(testing::hfFixtureDir(GetParam()));
  auto planned = model.graph->clone();
  PassManagerOptions options;
  options.passOptions.maxBatch = 2;
  options.passOptions.maxSeqLen = 32;
  PassManager passes(options);
  passes.addDefaultPipeline();
  passes.addPlanningPipeline();
  passes.run(*planned);

  const GemmaConfig& c = model.config;
  int64_t cacheBytes =
      2 * c.numLayers * 2 * c.numKVHeads * 32 * c.headDim * elementSize(model.activationType);
  EXPECT_EQ(*std::get_if<int64_t>(&planned->attrs.at("kv_cache_bytes")), cacheBytes);
  int64_t peak = *std::get_if<int64_t>(&planned->attrs.at("arena_bytes"));
  int64_t bound = *std::get_if<int64_t>(&planned->attrs.at("arena_lower_bound"));
  EXPECT_GE(peak, bound);
  EXPECT_LE(peak, bound * 3 / 2);
  int appends = 0;
  for (const auto& op : planned->ops)
    appends += op->kind == OpKind::KVCacheAppend;
  EXPECT_EQ(appends, 2 * c.numLayers);
  std::printf("plan %-22s arena %lld bytes (lower bound %lld), kv cache %lld bytes\n",
              GetParam().c_str(), static_cast<long long>(peak), static_cast<long long>(bound),
              static_cast<long long>(cacheBytes));

  std::vector<Tensor> inputs = testing::fixtureBatch(testing::loadHFReference(GetParam()));
  int64_t seq = inputs[0].shape[1];
  inputs.insert(inputs.end(), 2 * c.numLayers,
                Tensor::zeros(model.activationType, {2, c.numKVHeads, 0, c.headDim}));
  auto weights = [&](const std::string& name, const TensorType&) {
    return model.weights.load(name);
  };
  std::vector<Tensor> expected = interpret(*model.graph, inputs, weights);
  std::vector<Tensor> actual =
      runInArena(*planned, inputs, weights, {{"batch", 2}, {"seq", seq}, {"past", 0}});
  ASSERT_EQ(expected.size(), actual.size());
  for (size_t i = 0; i < expected.size(); ++i)
    EXPECT_TRUE(sameTensor(expected[i], actual[i])) << "output " << i;

  // One decode step on the prefill's cache: the arena is reused with other shapes.
  std::vector<Tensor> step = {
      Tensor(ElementType::I64, {2, 1}, {7, 9}),
      Tensor(ElementType::I64, {2, seq + 1}, std::vector<double>(2 * (seq + 1), 1.0)),
      Tensor(ElementType::I64, {2, 1}, {12, 19})};
  step.insert(step.end(), expected.begin() + 1, expected.end());
  std::vector<Tensor> stepExpected = interpret(*model.graph, step, weights);
  std::vector<Tensor> stepActual =
      runInArena(*planned, step, weights, {{"batch", 2}, {"seq", 1}, {"past", seq}});
  for (size_t i = 0; i < stepExpected.size(); ++i)
    EXPECT_TRUE(sameTensor(stepExpected[i], stepActual[i])) << "decode output " << i;
}

TEST(PlanKVCache, ContextLongerThanPlannedIsARunTimeError) {
  ImportedModel model = importHFCheckpoint(testing::hfFixtureDir("mqa_f32"));
  PassManagerOptions options;
  options.passOptions.maxSeqLen = 4;
  PassManager passes(options);
  passes.addDefaultPipeline();
  passes.add("plan-kv-cache");
  passes.run(*model.graph);
  std::vector<Tensor> inputs = {Tensor(ElementType::I64, {1, 5}, {2, 3, 4, 5, 6}),
                                Tensor(ElementType::I64, {1, 5}, std::vector<double>(5, 1.0)),
                                Tensor(ElementType::I64, {1, 5}, {0, 1, 2, 3, 4})};
  inputs.insert(inputs.end(), 4, Tensor::zeros(ElementType::F32, {1, 1, 0, 10}));
  std::string error = testing::userErrorOf([&] {
    interpret(*model.graph, inputs,
              [&](const std::string& name, const TensorType&) { return model.weights.load(name); });
  });
  EXPECT_NE(error.find("holds at most 1 rows of 4 tokens; asked for 1 of 5"), std::string::npos)
      << error;
}

// Random graphs whose dims are all bounded, planned and run in the arena, against the
// interpreter: no two live buffers overlap, also with the views and in-place writes of graphs
// unlike Gemma's.
// Buffers bounded one by one can still add up past int64 (the planner's offsets and peak are sums
// of them): 9,000 results of 2^50 bytes each, all live to the end, would wrap; they are refused.
TEST(PlanMemory, ActivationsAddingUpPastTheBoundAreRefused) {
  Graph graph("huge");
  Value* x =
      graph.addInput("x", tensorType(ElementType::F32, {int64_t(1) << 20, int64_t(1) << 28}));
  Builder b(graph);
  for (int i = 0; i < 9000; ++i)
    graph.addOutput(b.unary(OpKind::Neg, x), "out" + std::to_string(i));
  PassManager passes;
  passes.add("plan-memory");
  EXPECT_NE(testing::userErrorOf([&] {
              passes.run(graph);
            }).find("cannot plan memory: the activations add up past 2^60 bytes"),
            std::string::npos);
}

TEST(PlanMemory, RandomGraphsRunInTheirArena) {
  std::mt19937_64 rng(2026);
  int planned = 0;
  for (int i = 0; i < 300; ++i) {
    auto graph = testing::makeRandomGraph(rng);
    PassManagerOptions options;
    options.passOptions.maxBatch = 3;
    options.passOptions.maxSeqLen = 5;
    PassManager shapes;
    shapes.add("shape-inference");
    shapes.run(*graph);
    auto before = graph->clone();
    PassManager plan(options);
    plan.add("plan-memory");
    try {
      plan.run(*graph);
    } catch (const UserError&) {
      continue; // a dim no bound covers (a range of unknown length): nothing to plan
    }
    ++planned;
    SymbolBindings bindings = {{"batch", 2}, {"seq", 3}};
    auto inputs = testing::makeRandomInputs(*before, bindings, rng);
    auto expected = interpret(*before, inputs);
    auto actual = runInArena(*graph, inputs, nullptr, bindings);
    for (size_t k = 0; k < expected.size(); ++k)
      ASSERT_TRUE(sameTensor(expected[k], actual[k])) << "output " << k << "\n"
                                                      << printGraph(*graph);
  }
  EXPECT_GT(planned, 150);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Plan,
                         ::testing::Values("mqa_f32", "mha_untied_f32", "gqa_exact_sharded_f32",
                                           "mqa_bf16", "seq_cls_f32", "token_cls_f32"));

} // namespace
} // namespace gemma
