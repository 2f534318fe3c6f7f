/// \file
/// pack-weights: stores each weight in the layout its kernel reads, so that no program transposes
/// a weight at run time:
///
///   %w = weight() {name = "q_proj.weight"} : f32[N,K]
///   %t = transpose(%w) {perm = [1, 0]} : f32[K,N]   ->   %t = weight() {name = "q_proj.weight",
///                                                            perm = [1, 0]} : f32[K,N]
///
/// A weight op with `perm` reads the named tensor transposed by perm; the compiler writes that
/// layout into the weights file (backend/WeightsFile.h). A weight read in both layouts (tied
/// embeddings: rows gathered, transposed for the logits) is stored in both. Runs before
/// plan-memory, which then gives the transposes no arena space.

#include "ir/Builder.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

namespace gemma {

namespace {

class PackWeights : public Pass {
public:
  std::string_view name() const override { return "pack-weights"; }

  bool run(Graph& graph) override {
    bool changed = false;
    for (auto it = graph.ops.begin(); it != graph.ops.end(); ++it) {
      Op& op = **it;
      if (op.kind != OpKind::Transpose || !op.operands[0]->definingOp ||
          op.operands[0]->definingOp->kind != OpKind::Weight ||
          op.operands[0]->definingOp->attr<Ints>("perm"))
        continue;
      const Op& weight = *op.operands[0]->definingOp;
      Builder b(graph);
      b.setInsertPoint(it);
      b.setLocation(op.loc);
      Value* packed =
          b.create(OpKind::Weight, {},
                   {{"name", *weight.attr<std::string>("name")}, {"perm", *op.attr<Ints>("perm")}},
                   op.result()->type);
      graph.replaceAllUsesWith(op.result(), packed);
      changed = true;
    }
    if (changed)
      pattern::removeDeadOps(graph);
    return changed;
  }
};

} // namespace

std::unique_ptr<Pass> createPackWeightsPass() {
  return std::make_unique<PackWeights>();
}

} // namespace gemma
