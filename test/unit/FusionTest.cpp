// The fusion passes on every imported fixture: each fires once per block it targets, and the
// graph computes the same numbers before and after, for each fusion alone, for -O, and for -O with
// any subset of the fusions disabled.
#include "FixtureUtil.h"
#include "TestUtil.h"
#include "frontend/HFImporter.h"
#include "ir/Printer.h"
#include "passes/Pass.h"

namespace gemma {
namespace {

using testing::sameTensor;

const char* const kFusions[] = {"fuse-rmsnorm", "fuse-rotary", "fuse-attention", "fuse-mlp"};

// The fixture's left-padded batch with an empty cache, and the interpreter's outputs for it.
class FixtureRun {
public:
  explicit FixtureRun(const std::string& name)
      : model_(importHFCheckpoint(testing::hfFixtureDir(name))),
        inputs_(testing::fixtureBatch(testing::loadHFReference(name))) {
    Tensor cache =
        Tensor::zeros(model_.activationType,
                      {inputs_[0].shape[0], model_.config.numKVHeads, 0, model_.config.headDim});
    inputs_.insert(inputs_.end(), 2 * model_.config.numLayers, cache);
  }

  std::vector<Tensor> run(const Graph& graph) const {
    return interpret(graph, inputs_, [&](const std::string& name, const TensorType&) {
      return model_.weights.load(name);
    });
  }
  const ImportedModel& model() const { return model_; }

private:
  ImportedModel model_;
  std::vector<Tensor> inputs_;
};

int countOps(const Graph& graph, OpKind kind) {
  int count = 0;
  for (const auto& op : graph.ops)
    count += op->kind == kind;
  return count;
}

::testing::AssertionResult sameOutputs(const std::vector<Tensor>& a, const std::vector<Tensor>& b) {
  if (a.size() != b.size())
    return ::testing::AssertionFailure() << a.size() << " vs " << b.size() << " outputs";
  for (size_t i = 0; i < a.size(); ++i)
    if (auto same = sameTensor(a[i], b[i]); !same)
      return same << " (output " << i << ")";
  return ::testing::AssertionSuccess();
}

class Fusion : public ::testing::TestWithParam<std::string> {};

TEST_P(Fusion, EachFusionAloneFiresAndKeepsTheNumbers) {
  FixtureRun fixture(GetParam());
  const Graph& imported = *fixture.model().graph;
  std::vector<Tensor> expected = fixture.run(imported);
  const GemmaConfig& c = fixture.model().config;
  int64_t layers = c.numLayers;
  // Two norms a layer (Gemma 1) or four (Gemma 2/3), QK-norm's two (Gemma 3), the final one.
  int64_t norms = (c.sandwichNorms ? 4 : 2) * layers + (c.queryKeyNorm ? 2 * layers : 0) + 1;
  struct Expectation {
    const char* pass;
    OpKind fused;
    int64_t count;
  } expectations[] = {{"fuse-rmsnorm", OpKind::RmsNorm, norms},
                      {"fuse-rotary", OpKind::Rotary, 2 * layers},
                      {"fuse-attention", OpKind::Attention, layers},
                      {"fuse-mlp", OpKind::GatedMlp, layers}};
  for (const Expectation& e : expectations) {
    SCOPED_TRACE(e.pass);
    auto graph = imported.clone();
    PassManager passes;
    passes.add(e.pass);
    passes.run(*graph);
    EXPECT_EQ(countOps(*graph, e.fused), e.count);
    EXPECT_LT(graph->ops.size(), imported.ops.size());
    // The fused ops round as the Hugging Face pattern does: the outputs are bit-identical.
    EXPECT_TRUE(sameOutputs(fixture.run(*graph), expected));
  }
}

TEST_P(Fusion, AnySubsetOfFusionsComputesTheSameNumbers) {
  FixtureRun fixture(GetParam());
  std::vector<Tensor> expected = fixture.run(*fixture.model().graph);
  for (int mask = 0; mask < 16; ++mask) {
    std::vector<std::string> disabled;
    for (int i = 0; i < 4; ++i)
      if (mask & (1 << i))
        disabled.push_back(kFusions[i]);
    SCOPED_TRACE("disabled mask " + std::to_string(mask));
    auto graph = fixture.model().graph->clone();
    PassManager passes;
    passes.addDefaultPipeline(disabled);
    passes.run(*graph);
    EXPECT_EQ(countOps(*graph, OpKind::RmsNorm) > 0, !(mask & 1));
    EXPECT_EQ(countOps(*graph, OpKind::Rotary) > 0, !(mask & 2));
    EXPECT_EQ(countOps(*graph, OpKind::Attention) > 0, !(mask & 4));
    EXPECT_EQ(countOps(*graph, OpKind::GatedMlp) > 0, !(mask & 8));
    EXPECT_TRUE(sameOutputs(fixture.run(*graph), expected));
  }
}

// After -O nothing of the blocks is left as primitive ops: no softmax, rsqrt, gelu, or the
// rotate-half negation in any layer.
TEST_P(Fusion, DefaultPipelineLeavesNoPrimitiveBlocks) {
  FixtureRun fixture(GetParam());
  auto graph = fixture.model().graph->clone();
  PassManager passes;
  passes.addDefaultPipeline();
  passes.run(*graph);
  for (OpKind kind : {OpKind::Softmax, OpKind::Rsqrt, OpKind::Gelu, OpKind::Neg, OpKind::Cos,
                      OpKind::Pow, OpKind::ReduceMean})
    EXPECT_EQ(countOps(*graph, kind), 0) << opInfo(kind).mnemonic << "\n" << printGraph(*graph);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Fusion,
                         ::testing::Values("mqa_f32", "mha_untied_f32", "gqa_exact_sharded_f32",
                                           "mqa_bf16", "seq_cls_f32", "token_cls_f32",
                                           "attention_bias_f32"));
INSTANTIATE_TEST_SUITE_P(Gemma2And3, Fusion,
                         ::testing::Values("gemma2_gqa_f32", "gemma2_mha_f32", "gemma2_seq_cls_f32",
                                           "gemma3_mqa_f32", "gemma3_mqa_bf16",
                                           "gemma3_linear_rope_f32", "gemma3_multimodal_f32"));

} // namespace
} // namespace gemma
