/// \file
/// quantize-activations (--arithmetic fast): marks the matmuls and gated MLPs whose weights are
/// in blocks the fast arithmetic has integer dot products for (Q8_0, Q4_0, Q5_0, Q4_K, Q6_K) with
/// {arithmetic = "int8"}: their kernels quantize each row of activations (a generated token's, and
/// a prompt's) per block of 32 to int8 as llama.cpp does and multiply it with the weights' quants
/// in integers (AVX512-VNNI), instead of decoding every weight to f32.
/// The results then differ from transformers' by the activations' rounding. A gated MLP is marked
/// where any of its weights qualifies, and its kernel takes the integer dot products for those
/// weights only (a Q5_0 gate and up beside a Q5_K down). Without
/// --arithmetic fast it changes nothing. Runs after narrow-weights, which gives the weights their
/// block types.

#include "passes/Pass.h"

namespace gemma {

namespace {

class QuantizeActivations : public Pass {
public:
  std::string_view name() const override { return "quantize-activations"; }

  bool run(Graph& graph) override {
    if (options_.arithmetic != Arithmetic::Fast)
      return false;
    bool changed = false;
    for (const auto& op : graph.ops) {
      size_t weights = op->kind == OpKind::MatMul ? 1 : op->kind == OpKind::GatedMlp ? 3 : 0;
      if (weights == 0 || op->hasAttr("arithmetic"))
        continue;
      bool integer = false;
      for (size_t i = 1; i <= weights && i < op->operands.size(); ++i)
        integer = integer || (hasIntegerDotProduct(op->operands[i]->type.elementType) &&
                              op->operands[i]->type.rank() == 2);
      if (!integer)
        continue;
      op->attrs["arithmetic"] = std::string("int8");
      changed = true;
    }
    return changed;
  }
};

} // namespace

std::unique_ptr<Pass> createQuantizeActivationsPass() {
  return std::make_unique<QuantizeActivations>();
}

} // namespace gemma
