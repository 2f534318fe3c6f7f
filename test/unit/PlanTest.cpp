// The planned graphs of every fixture, executed with every activation stored at its planned
// offset in one byte arena (views and in-place results included): if two buffers that are live
// together overlapped, a value would be overwritten before its last read and the outputs would
// differ from the plain interpreter's. Also the KV-cache region sizes.
#include "RandomGraph.h"
#include "TestUtil.h"
#include "frontend/HFImporter.h"
#include "ir/Printer.h"
#include "passes/Pass.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

namespace gemma {
namespace {

using testing::sameTensor;

void encode(const Tensor& t, uint8_t* out) {
  for (size_t i = 0; i < t.data.size(); ++i) {
    double v = t.data[i];
    switch (t.elementType) {
    case ElementType::F32: {
      float f = static_cast<float>(v);
      std::memcpy(out + 4 * i, &f, 4);
      break;
    }
    case ElementType::BF16: {
      float f = static_cast<float>(v);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      uint16_t half = static_cast<uint16_t>(bits >> 16); // already a bf16 value: exact
      std::memcpy(out + 2 * i, &half, 2);
      break;
    }
    case ElementType::F16: {
      _Float16 h = static_cast<_Float16>(v);
      std::memcpy(out + 2 * i, &h, 2);
      break;
    }
    case ElementType::I64: {
      int64_t x = static_cast<int64_t>(v);
      std::memcpy(out + 8 * i, &x, 8);
      break;
    }
    case ElementType::I32: {
      int32_t x = static_cast<int32_t>(v);
      std::memcpy(out + 4 * i, &x, 4);
      break;
    }
    case ElementType::I8:
    case ElementType::Bool:
      out[i] = static_cast<uint8_t>(static_cast<int8_t>(v));
      break;
    }
  }
}

Tensor decode(const uint8_t* in, ElementType type, const std::vector<int64_t>& shape) {
  Tensor t = Tensor::zeros(type, shape);
  for (size_t i = 0; i < t.data.size(); ++i) {
    switch (type) {
    case ElementType::F32: {
      float f;
      std::memcpy(&f, in + 4 * i, 4);
      t.data[i] = f;
      break;
    }
    case ElementType::BF16: {
      uint16_t half;
      std::memcpy(&half, in + 2 * i, 2);
      uint32_t bits = static_cast<uint32_t>(half) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      t.data[i] = f;
      break;
    }
    case ElementType::F16: {
      _Float16 h;
      std::memcpy(&h, in + 2 * i, 2);
      t.data[i] = static_cast<double>(h);
      break;
    }
    case ElementType::I64: {
      int64_t x;
      std::memcpy(&x, in + 8 * i, 8);
      t.data[i] = static_cast<double>(x);
      break;
    }
    case ElementType::I32: {
      int32_t x;
      std::memcpy(&x, in + 4 * i, 4);
      t.data[i] = x;
      break;
    }
    case ElementType::I8:
      t.data[i] = static_cast<int8_t>(in[i]);
      break;
    case ElementType::Bool:
      t.data[i] = in[i] != 0;
      break;
    }
  }
  return t;
}

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
    return decode(arena.data() + it->second.first, v->type.elementType, it->second.second);
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
    encode(result, arena.data() + *offset);
    placed[op->result()] = {*offset, result.shape};
  }
  std::vector<Tensor> outputs;
  for (const Graph::Output& output : graph.outputs)
    outputs.push_back(read(output.value));
  return outputs;
}

std::string fixtureDir(const std::string& name) {
  return std::string(GEMMAC_FIXTURES_DIR) + "/hf/" + name;
}

class Plan : public ::testing::TestWithParam<std::string> {};

TEST_P(Plan, PlannedArenaComputesTheSameNumbers) {
  ImportedModel model = importHFCheckpoint(fixtureDir(GetParam()));
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

  std::ifstream file(fixtureDir(GetParam()) + "/reference.json");
  nlohmann::json ref = nlohmann::json::parse(file);
  std::vector<Tensor> inputs;
  for (const char* key : {"input_ids", "attention_mask", "position_ids"}) {
    auto rows = ref.at(key).get<std::vector<std::vector<double>>>();
    std::vector<double> data;
    for (const auto& row : rows)
      data.insert(data.end(), row.begin(), row.end());
    inputs.emplace_back(ElementType::I64,
                        std::vector<int64_t>{2, static_cast<int64_t>(rows[0].size())}, data);
  }
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
  ImportedModel model = importHFCheckpoint(fixtureDir("mqa_f32"));
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
