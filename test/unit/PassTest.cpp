// The pass manager, and every pass as numeric equivalence: on random graphs, the interpreter gives
// the same outputs before and after each pass alone and after the whole -O pipeline.
#include "passes/Pass.h"

#include "RandomGraph.h"
#include "TestUtil.h"
#include "ir/Printer.h"

#include <sstream>

namespace gemma {
namespace {

using testing::sameTensor;

const SymbolBindings kBindings = {{"batch", 2}, {"seq", 3}};

// Runs `configure`'s passes on random graphs; checks the result verifies and computes the same.
void checkEquivalence(const std::function<void(PassManager&)>& configure, uint64_t seed,
                      int* changedGraphs) {
  std::mt19937_64 rng(seed);
  for (int i = 0; i < 150; ++i) {
    auto before = testing::makeRandomGraph(rng);
    auto after = before->clone();
    PassManager passes;
    configure(passes);
    ASSERT_NO_THROW(passes.run(*after)) << printGraph(*before);
    if (printGraph(*after) != printGraph(*before))
      ++*changedGraphs;
    auto inputs = testing::makeRandomInputs(*before, kBindings, rng);
    auto expected = interpret(*before, inputs);
    auto actual = interpret(*after, inputs);
    ASSERT_EQ(expected.size(), actual.size());
    for (size_t k = 0; k < expected.size(); ++k)
      ASSERT_TRUE(sameTensor(expected[k], actual[k])) << "output " << k << "\nbefore:\n"
                                                      << printGraph(*before) << "after:\n"
                                                      << printGraph(*after);
  }
}

TEST(Passes, EachPassAlonePreservesNumbers) {
  for (const PassInfo& info : allPasses()) {
    // The planning passes need every dim bounded; PlanTest.cpp runs them on random graphs.
    if (info.flag.rfind("plan-", 0) == 0)
      continue;
    SCOPED_TRACE(std::string(info.flag));
    int changed = 0;
    checkEquivalence([&](PassManager& pm) { pm.add(info.flag); }, 7, &changed);
    // The random graphs hold no Gemma blocks and no weights: the fusions, fold-weight-transposes,
    // narrow-weights and quantize-activations are exercised on the imported fixtures
    // (FusionTest.cpp, PlanTest.cpp, WeightsFileTest.cpp, the lit tests, the end-to-end tests);
    // here they must only leave other graphs alone and correct.
    if (info.flag.rfind("fuse-", 0) != 0 && info.flag != "fold-weight-transposes" &&
        info.flag != "narrow-weights" && info.flag != "quantize-activations") {
      EXPECT_GT(changed, 0) << "the random graphs never gave --" << info.flag << " anything to do";
    }
  }
}

TEST(Passes, DefaultPipelinePreservesNumbersAndShrinks) {
  int changed = 0;
  checkEquivalence([](PassManager& pm) { pm.addDefaultPipeline(); }, 99, &changed);
  EXPECT_GT(changed, 50);
  // And the pipeline reaches a fixed point: a second run changes nothing.
  std::mt19937_64 rng(5);
  for (int i = 0; i < 50; ++i) {
    auto graph = testing::makeRandomGraph(rng);
    PassManager first, second;
    first.addDefaultPipeline();
    second.addDefaultPipeline();
    first.run(*graph);
    std::string once = printGraph(*graph);
    second.run(*graph);
    EXPECT_EQ(printGraph(*graph), once);
  }
}

TEST(PassManager, RegistryMatchesTheTable) {
  for (const PassInfo& info : allPasses()) {
    EXPECT_EQ(lookupPass(info.flag), &info);
    EXPECT_EQ(info.create()->name(), info.flag);
    EXPECT_FALSE(info.summary.empty());
  }
  EXPECT_EQ(lookupPass("no-such-pass"), nullptr);
  PassManager pm;
  EXPECT_THROW(pm.add("no-such-pass"), UserError);
}

TEST(PassManager, PrintsAfterEachPassAndTimes) {
  auto graph = parseGraph(R"(graph @g(%x: f32[4]) {
  %0 = constant() {value = [1.0]} : f32[]
  %1 = mul(%x, %0) : f32[4]
  return %1
}
)");
  std::ostringstream log;
  PassManagerOptions options;
  options.printAfterAll = true;
  options.timePasses = true;
  options.log = &log;
  PassManager pm(options);
  pm.add("canonicalize");
  pm.add("dce");
  pm.run(*graph);
  std::string text = log.str();
  size_t afterCanonicalize = text.find("// ----- IR after canonicalize -----");
  size_t afterDce = text.find("// ----- IR after dce -----");
  ASSERT_NE(afterCanonicalize, std::string::npos);
  ASSERT_NE(afterDce, std::string::npos);
  EXPECT_LT(afterCanonicalize, afterDce);
  EXPECT_NE(text.find("Pass execution timing report"), std::string::npos);
  EXPECT_NE(text.find("%)  canonicalize"), std::string::npos) << text;
  EXPECT_EQ(printGraph(*graph), "graph @g(%x: f32[4]) {\n  return %x\n}\n");
}

// A pass that breaks the graph is a compiler bug, reported as an internal error naming the pass.
class BreakingPass : public Pass {
public:
  std::string_view name() const override { return "breaker"; }
  bool run(Graph& graph) override {
    graph.ops.front()->results[0]->type = tensorType(ElementType::F32, {5});
    return true;
  }
};

TEST(PassManager, VerifiesAfterEachPass) {
  auto graph = parseGraph("graph @g(%x: f32[4]) {\n  %0 = exp(%x) : f32[4]\n  return %0\n}\n");
  PassManager pm;
  pm.add(std::make_unique<BreakingPass>());
  try {
    pm.run(*graph);
    FAIL() << "expected an internal error";
  } catch (const InternalError& error) {
    EXPECT_NE(std::string(error.what()).find("after pass 'breaker'"), std::string::npos);
  }
}

} // namespace
} // namespace gemma

namespace gemma {
namespace {

// narrow-weights with a GGUF's block types: a weight gets its blocks back where every reader
// decodes them (a projection through permuted strides, a table's rows, a gated MLP whose three
// weights all are blocks), and stays f32 (the weights file dequantizes it) anywhere else.
TEST(NarrowWeights, KeepsCheckpointBlocksWhereTheKernelsDecodeThem) {
  auto graph =
      parseGraph("graph @g(%x: f32[1,64], %i: i64[3]) {\n"
                 "  %q = weight() {name = \"q\", perm = [1, 0]} : f32[64,8]\n"
                 "  %0 = matmul(%x, %q) : f32[1,8]\n"
                 "  %t = weight() {name = \"t\"} : f32[5,64]\n"
                 "  %1 = gather(%t, %i) {axis = 0} : f32[3,64]\n"
                 "  %s = weight() {name = \"s\"} : f32[8,64]\n"
                 "  %2 = transpose(%s) {perm = [1, 0]} : f32[64,8]\n"
                 "  %3 = matmul(%x, %2) : f32[1,8]\n"
                 "  %g = weight() {name = \"g\", perm = [1, 0]} : f32[64,32]\n"
                 "  %u = weight() {name = \"u\", perm = [1, 0]} : f32[64,32]\n"
                 "  %d = weight() {name = \"d\", perm = [1, 0]} : f32[32,64]\n"
                 "  %4 = gated_mlp(%x, %g, %u, %d) {activation = \"gelu_tanh\"} : f32[1,64]\n"
                 "  return %0, %1, %3, %4\n}\n");
  PassOptions options;
  // d's rows (32 elements) are not whole Q4_K blocks (256): it stays f32, and so do g and u.
  options.checkpointBlockTypes = {{"q", ElementType::Q4_0}, {"t", ElementType::Q8_0},
                                  {"s", ElementType::Q8_0}, {"g", ElementType::Q5_0},
                                  {"u", ElementType::Q5_0}, {"d", ElementType::Q4_K}};
  auto pass = createNarrowWeightsPass();
  pass->setOptions(options);
  EXPECT_TRUE(pass->run(*graph));
  verifyGraph(*graph);
  std::map<std::string, ElementType> types;
  for (const auto& op : graph->ops)
    if (op->kind == OpKind::Weight)
      types[*op->attr<std::string>("name")] = op->result()->type.elementType;
  EXPECT_EQ(types["q"], ElementType::Q4_0);
  EXPECT_EQ(types["t"], ElementType::Q8_0);
  EXPECT_EQ(types["s"], ElementType::F32) << "read by a transpose";
  EXPECT_EQ(types["g"], ElementType::F32) << "its MLP's down weight stays f32";
  EXPECT_EQ(types["u"], ElementType::F32);
  EXPECT_EQ(types["d"], ElementType::F32) << "rows of 32 are not whole Q4_K blocks";

  // --weights-dtype q4_0 (blocks of 32) on the same graph as f32 weights: every matrix whose
  // readers decode blocks gets them, the MLP's three included; q4_k (blocks of 256): none has
  // whole blocks, all stay f32.
  for (auto [type, blocks] : {std::pair{ElementType::Q4_0, true}, {ElementType::Q4_K, false}}) {
    SCOPED_TRACE(std::string(elementTypeName(type)));
    auto f32 =
        parseGraph("graph @g(%x: f32[1,64], %i: i64[3]) {\n"
                   "  %q = weight() {name = \"q\", perm = [1, 0]} : f32[64,8]\n"
                   "  %0 = matmul(%x, %q) : f32[1,8]\n"
                   "  %t = weight() {name = \"t\"} : f32[5,64]\n"
                   "  %1 = gather(%t, %i) {axis = 0} : f32[3,64]\n"
                   "  %g = weight() {name = \"g\", perm = [1, 0]} : f32[64,32]\n"
                   "  %u = weight() {name = \"u\", perm = [1, 0]} : f32[64,32]\n"
                   "  %d = weight() {name = \"d\", perm = [1, 0]} : f32[32,64]\n"
                   "  %4 = gated_mlp(%x, %g, %u, %d) {activation = \"gelu_tanh\"} : f32[1,64]\n"
                   "  return %0, %1, %4\n}\n");
    PassOptions quantize;
    quantize.weightsType = type;
    pass->setOptions(quantize);
    EXPECT_EQ(pass->run(*f32), blocks);
    verifyGraph(*f32);
    for (const auto& op : f32->ops) {
      if (op->kind == OpKind::Weight) {
        EXPECT_EQ(op->result()->type.elementType, blocks ? type : ElementType::F32)
            << *op->attr<std::string>("name");
      }
    }
  }

  // --weights-dtype f32: every weight f32, the blocks dequantized when written.
  options.weightsType = ElementType::F32;
  pass->setOptions(options);
  auto fresh = parseGraph("graph @g(%x: f32[1,64]) {\n"
                          "  %q = weight() {name = \"q\", perm = [1, 0]} : f32[64,8]\n"
                          "  %0 = matmul(%x, %q) : f32[1,8]\n  return %0\n}\n");
  EXPECT_FALSE(pass->run(*fresh));
}

} // namespace
} // namespace gemma
