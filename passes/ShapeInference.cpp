/// \file
/// Shape inference over symbolic dims: each unknown dim ('?') of an op's declared result type is
/// replaced by what the op's shape rule (ir/ShapeRules.cpp) derives from its operands, in one
/// forward sweep so refinements flow down the graph. Declared dims that are already known stay:
/// the verifier guarantees they agree with the rule. Examples:
///   concat(f32[b,past,8], f32[b,seq,8]) {axis = 1} : f32[b,?,8]  ->  f32[b,past+seq,8]
///   matmul(f32[seq,16], f32[16,32]) : f32[?,?]                    ->  f32[seq,32]

#include "ir/ShapeRules.h"
#include "passes/Pass.h"

namespace gemma {

namespace {

class ShapeInference : public Pass {
public:
  std::string_view name() const override { return "shape-inference"; }

  bool run(Graph& graph) override {
    bool changed = false;
    for (auto& op : graph.ops) {
      std::vector<TensorType> inferred = inferResultTypes(*op);
      for (size_t i = 0; i < inferred.size(); ++i) {
        TensorType& declared = op->results[i]->type;
        if (declared.rank() != inferred[i].rank())
          continue; // the verifier reports this
        for (size_t d = 0; d < declared.dims.size(); ++d)
          if (declared.dims[d].isUnknown() && !inferred[i].dims[d].isUnknown()) {
            declared.dims[d] = inferred[i].dims[d];
            changed = true;
          }
      }
    }
    return changed;
  }
};

} // namespace

std::unique_ptr<Pass> createShapeInferencePass() {
  return std::make_unique<ShapeInference>();
}

} // namespace gemma
