/// \file
/// fuse-softcap: folds Gemma 2's final logit softcap into the matmul that computes the logits, so
/// capping costs no pass of its own over them:
///
///   out = mul(tanh(div(matmul(a, b), c)), c)     (mul either way round, casts anywhere)
///       -> matmul(a, b) {softcap = c}
///
/// where c is one scalar constant > 0 and every intermediate has this one user. The matmul's
/// result is rounded to its type before the cap and every step after, as the pattern is (IR.h).
/// Runs after fuse-attention, whose scores' softcap is the attention's own.

#include "ir/Builder.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

namespace gemma {

namespace {

using namespace pattern;

class FuseSoftcap : public Pass {
public:
  std::string_view name() const override { return "fuse-softcap"; }

  bool run(Graph& graph) override {
    std::map<const Value*, std::vector<Op*>> users;
    for (const auto& op : graph.ops)
      for (const Value* operand : op->operands)
        users[operand].push_back(op.get());
    Uses uses(graph);
    // The one op reading v, looking through casts; null if v has another user or none.
    auto next = [&](Value*& v) -> Op* {
      while (true) {
        auto it = users.find(v);
        if (!uses.single(v) || it == users.end() || it->second.size() != 1)
          return nullptr;
        Op* user = it->second.front();
        if (user->kind != OpKind::Cast)
          return user;
        v = user->result();
      }
    };
    auto scalarOf = [](const Value* v) {
      return v->type.staticNumElements() == 1 ? splat(v) : std::nullopt;
    };
    bool changed = false;
    for (const auto& op : graph.ops) {
      if (op->kind != OpKind::MatMul || op->hasAttr("softcap"))
        continue;
      Value* v = op->result();
      Op* div = next(v);
      if (!div || div->kind != OpKind::Div || div->operands[0] != v)
        continue;
      auto cap = scalarOf(div->operands[1]);
      if (!cap || *cap <= 0)
        continue;
      v = div->result();
      Op* tanh = next(v);
      if (!tanh || tanh->kind != OpKind::Tanh)
        continue;
      v = tanh->result();
      Op* mul = next(v);
      if (!mul || mul->kind != OpKind::Mul)
        continue;
      Value* other = mul->operands[0] == v ? mul->operands[1] : mul->operands[0];
      if (scalarOf(other) != cap)
        continue;
      // The capped logits, past any casts back to the matmul's type.
      Value* capped = mul->result();
      while (capped->type.elementType != op->result()->type.elementType) {
        auto it = users.find(capped);
        if (it == users.end() || it->second.size() != 1 || it->second.front()->kind != OpKind::Cast)
          break;
        capped = it->second.front()->result();
      }
      if (capped->type != op->result()->type)
        continue;
      op->attrs["softcap"] = *cap;
      graph.replaceAllUsesWith(capped, op->result());
      changed = true;
    }
    if (changed)
      removeDeadOps(graph);
    return changed;
  }
};

} // namespace

std::unique_ptr<Pass> createFuseSoftcapPass() {
  return std::make_unique<FuseSoftcap>();
}

} // namespace gemma
