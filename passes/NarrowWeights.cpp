/// \file
/// narrow-weights: stores the model's matrices in a narrower float than its f32 activations
/// (gemmac's --weights-dtype bf16|f16), halving the bytes every decode step reads:
///
///   %w = weight() {name = "q_proj.weight", perm = [1, 0]} : f32[D,N]
///   %y = matmul(%x, %w) : f32[1,seq,N]
///     ->
///   %w = weight() {name = "q_proj.weight", perm = [1, 0]} : bf16[D,N]
///   %y = matmul(%x, %w) : f32[1,seq,N]           (the kernel widens each weight as it reads it)
///
/// A tensor is narrowed when every op reading it (every weight op of that name: a tied embedding
/// is both a lookup and the logits) is a matmul's right operand, a gated_mlp's weight or a
/// gather's table; a gather then yields the narrow rows and a cast widens them back. Norm weights
/// and anything else stay as they are. The weights file converts when it is written (round to
/// nearest even). Runs after fold-weight-transposes, so that the weights are the ops' operands.

#include "ir/Builder.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

#include <map>
#include <set>

namespace gemma {

namespace {

class NarrowWeights : public Pass {
public:
  std::string_view name() const override { return "narrow-weights"; }

  bool run(Graph& graph) override {
    if (!options_.weightsType)
      return false;
    ElementType narrow = *options_.weightsType;
    // Which tensor names only narrow-capable ops read.
    std::map<const Value*, std::vector<std::pair<Op*, size_t>>> users;
    for (const auto& op : graph.ops)
      for (size_t i = 0; i < op->operands.size(); ++i)
        users[op->operands[i]].push_back({op.get(), i});
    std::set<const Value*> outputs;
    for (const Graph::Output& output : graph.outputs)
      outputs.insert(output.value);
    std::map<std::string, bool> narrowable;
    for (const auto& op : graph.ops) {
      if (op->kind != OpKind::Weight)
        continue;
      const std::string& tensor = *op->attr<std::string>("name");
      bool ok = op->result()->type.elementType == ElementType::F32 && !outputs.count(op->result());
      for (const auto& [user, index] : users[op->result()])
        ok = ok && readsWidened(*user, index);
      narrowable.emplace(tensor, true).first->second &= ok;
    }
    bool changed = false;
    for (auto it = graph.ops.begin(); it != graph.ops.end(); ++it) {
      Op& op = **it;
      if (op.kind != OpKind::Weight || !narrowable[*op.attr<std::string>("name")])
        continue;
      op.result()->type.elementType = narrow;
      changed = true;
      for (const auto& [user, index] : users[op.result()]) {
        if (user->kind != OpKind::Gather)
          continue;
        // The looked-up rows are narrow now; widen them where they were f32.
        Value* rows = user->result();
        auto next = std::find_if(graph.ops.begin(), graph.ops.end(),
                                 [&](const auto& o) { return o.get() == user; });
        Builder b(graph);
        b.setInsertPoint(std::next(next));
        b.setLocation(user->loc);
        TensorType wide = rows->type;
        rows->type.elementType = narrow;
        Value* widened = b.create(OpKind::Cast, {rows}, {}, wide);
        graph.replaceAllUsesWith(rows, widened);
        widened->definingOp->operands[0] = rows; // the cast itself still reads the rows
      }
    }
    return changed;
  }

private:
  // Kernels that widen this operand as they read it.
  static bool readsWidened(const Op& user, size_t index) {
    switch (user.kind) {
    case OpKind::MatMul:
      return index == 1 && user.operands[0]->type.elementType == ElementType::F32;
    case OpKind::GatedMlp:
      return index >= 1 && user.operands[0]->type.elementType == ElementType::F32;
    case OpKind::Gather:
      return index == 0;
    default:
      return false;
    }
  }
};

} // namespace

std::unique_ptr<Pass> createNarrowWeightsPass() {
  return std::make_unique<NarrowWeights>();
}

} // namespace gemma
