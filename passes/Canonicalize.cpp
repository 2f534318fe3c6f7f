/// \file
/// Canonicalisation: local rewrites to one canonical form, repeated until nothing changes.
/// Each applies only when the result type equals the type of the value that replaces it, so no
/// rewrite can change a shape through broadcasting.
///   mul(x, 1) / mul(1, x), add(x, 0) / add(0, x), sub(x, 0), div(x, 1), pow(x, 1)  ->  x
///   neg(neg(x))                                   ->  x
///   cast(x) to x's own type, reshape(x) or expand(x) to x's own type (no '?' dims)  ->  x
///   reshape(reshape(x))                           ->  reshape(x)
///   transpose(transpose(x, p), q)                 ->  transpose(x, p o q), or x if identity
///   squeeze(unsqueeze(x, a), a)                   ->  x
///   concat(x) of one operand                      ->  x
/// (1 and 0 are splat constants.) Replaced ops are left dead for dce.

#include "ir/Interpreter.h"
#include "ir/ShapeRules.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

#include <algorithm>

namespace gemma {

namespace {

bool isSplat(const Value* value, double expected) {
  auto splat = pattern::splat(value);
  return splat && *splat == expected;
}

Op* definingOp(const Value* value, OpKind kind) {
  return value->definingOp && value->definingOp->kind == kind ? value->definingOp : nullptr;
}

// Equal types without unknown dims give equal shapes at run time (symbols evaluate alike).
bool sameKnownType(const Value* a, const Value* b) {
  if (a->type != b->type)
    return false;
  for (const Dim& dim : a->type.dims)
    if (dim.isUnknown())
      return false;
  return true;
}

// The axes of a squeeze or unsqueeze, made non-negative against `rank` and sorted.
std::vector<int64_t> normalizedAxes(const Op& op, int64_t rank) {
  std::vector<int64_t> axes;
  for (int64_t axis : *op.attr<Ints>("axes"))
    axes.push_back(normalizeAxis(axis, rank, op.loc));
  std::sort(axes.begin(), axes.end());
  return axes;
}

class Canonicalize : public Pass {
public:
  std::string_view name() const override { return "canonicalize"; }

  bool run(Graph& graph) override {
    bool changed = false;
    // Each sweep rewrites what it can; rewrites only shrink the graph, so this terminates. The
    // bound guards against a rewrite that would undo another.
    for (int sweep = 0; sweep < 32; ++sweep) {
      bool sweepChanged = false;
      for (auto& op : graph.ops)
        sweepChanged |= rewrite(graph, *op);
      changed |= sweepChanged;
      if (!sweepChanged)
        break;
    }
    return changed;
  }

private:
  // Replaces op's result by `value` if the types agree exactly.
  static bool forward(Graph& graph, Op& op, Value* value) {
    if (value == op.result() || value->type != op.result()->type)
      return false;
    auto uses = graph.useCounts();
    if (uses[op.result()] == 0)
      return false; // already dead
    graph.replaceAllUsesWith(op.result(), value);
    return true;
  }

  static bool rewrite(Graph& graph, Op& op) {
    Value* x = op.operands.empty() ? nullptr : op.operands[0];
    switch (op.kind) {
    case OpKind::Mul:
      return (isSplat(op.operands[1], 1) && forward(graph, op, x)) ||
             (isSplat(x, 1) && forward(graph, op, op.operands[1]));
    case OpKind::Add:
      return (isSplat(op.operands[1], 0) && forward(graph, op, x)) ||
             (isSplat(x, 0) && forward(graph, op, op.operands[1]));
    case OpKind::Sub:
      return isSplat(op.operands[1], 0) && forward(graph, op, x);
    case OpKind::Div:
    case OpKind::Pow:
      return isSplat(op.operands[1], 1) && forward(graph, op, x);
    case OpKind::Neg:
      if (Op* inner = definingOp(x, OpKind::Neg))
        return forward(graph, op, inner->operands[0]);
      return false;
    case OpKind::Cast:
      return forward(graph, op, x);
    case OpKind::Reshape:
      if (sameKnownType(x, op.result()))
        return forward(graph, op, x);
      if (Op* inner = definingOp(x, OpKind::Reshape)) {
        op.operands[0] = inner->operands[0];
        return true;
      }
      return false;
    case OpKind::Expand:
      return sameKnownType(x, op.result()) && forward(graph, op, x);
    case OpKind::Transpose:
      return rewriteTranspose(graph, op);
    case OpKind::Concat: // exporters write one-operand concats (a cache's first update)
      return op.operands.size() == 1 && forward(graph, op, x);
    case OpKind::Squeeze:
      if (Op* inner = definingOp(x, OpKind::Unsqueeze))
        if (normalizedAxes(*inner, x->type.rank()) == normalizedAxes(op, x->type.rank()))
          return forward(graph, op, inner->operands[0]);
      return false;
    default:
      return false;
    }
  }

  static bool rewriteTranspose(Graph& graph, Op& op) {
    const Ints& perm = *op.attr<Ints>("perm");
    bool identity = true;
    for (size_t i = 0; i < perm.size(); ++i)
      identity &= perm[i] == static_cast<int64_t>(i);
    if (identity)
      return forward(graph, op, op.operands[0]);
    Op* inner = definingOp(op.operands[0], OpKind::Transpose);
    if (!inner)
      return false;
    // result[i] = x'[perm[i]] = x[innerPerm[perm[i]]]
    const Ints& innerPerm = *inner->attr<Ints>("perm");
    Ints composed;
    for (int64_t p : perm)
      composed.push_back(innerPerm[p]);
    op.operands[0] = inner->operands[0];
    op.attrs["perm"] = composed;
    return true;
  }
};

} // namespace

std::unique_ptr<Pass> createCanonicalizePass() {
  return std::make_unique<Canonicalize>();
}

} // namespace gemma
