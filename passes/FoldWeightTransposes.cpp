/// \file
/// fold-weight-transposes: a transposed weight becomes the weight read through permuted strides,
/// so that no program transposes (copies) a weight at run time:
///
///   %w = weight() {name = "q_proj.weight"} : f32[N,K]
///   %t = transpose(%w) {perm = [1, 0]} : f32[K,N]   ->   %t = weight() {name = "q_proj.weight",
///                                                            perm = [1, 0]} : f32[K,N]
///
/// A weight op with `perm` is the named tensor transposed by perm. The weights file keeps the
/// tensor as the checkpoint stores it, once, and the kernels read it in place with the permuted
/// strides (torch's [out, in] projections become contiguous dot products, and a tied embedding
/// serves both the lookup and the logits). Runs before plan-memory, which then gives the
/// transposes no arena space.

#include "ir/Builder.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

namespace gemma {

namespace {

class FoldWeightTransposes : public Pass {
public:
  std::string_view name() const override { return "fold-weight-transposes"; }

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

std::unique_ptr<Pass> createFoldWeightTransposesPass() {
  return std::make_unique<FoldWeightTransposes>();
}

} // namespace gemma
