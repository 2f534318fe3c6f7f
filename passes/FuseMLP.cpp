/// \file
/// fuse-mlp: finds Gemma's gated MLP and replaces it with one
/// `gated_mlp(x, gate, up, down) {activation}`:
///
///   out = matmul(mul(act(matmul(x, gate)), matmul(x, up)), down)     (mul either way round)
///
/// where act is GELU written as one op, `gelu {approximate = "tanh" | "none"}`, or decomposed:
///   tanh:  0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x^3)))   (x^3 as pow or x*x*x)
///   exact: 0.5 * x * (1 + erf(x / sqrt 2))                             (or x * (1/sqrt 2))
/// with the products in any grouping and order. gate, up and down are the matmuls' right operands
/// ([D,I], [D,I], [I,D]; a transposed weight stays a transpose op). Not fused: a projection or the
/// activation with another user, GELU constants that are not GELU's, x differing between the
/// gate and up projections.

#include "ir/Builder.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

#include <algorithm>
#include <cmath>

namespace gemma {

namespace {

using namespace pattern;

// Removes from `factors` one factor satisfying `pred`; false if none does.
template <typename Pred> bool takeFactor(std::vector<Value*>& factors, Pred pred) {
  auto it = std::find_if(factors.begin(), factors.end(), pred);
  if (it == factors.end())
    return false;
  factors.erase(it);
  return true;
}

class GeluMatcher {
public:
  explicit GeluMatcher(const Uses& uses) : uses_(uses) {}

  // The GELU's input and activation name ("gelu_tanh" or "gelu") if v computes GELU.
  std::optional<std::pair<Value*, std::string>> match(Value* v, std::vector<const Op*>& ops) {
    if (Op* gelu = producer(v, OpKind::Gelu)) {
      const std::string* approximate = gelu->attr<std::string>("approximate");
      ops.push_back(gelu);
      return std::make_pair(gelu->operands[0],
                            approximate && *approximate == "tanh" ? "gelu_tanh" : "gelu");
    }
    // 0.5 * x * (1 + f(x)), as a flattened product of three factors.
    std::vector<Value*> factors = productFactors(v, uses_, ops);
    if (factors.size() != 3 || !takeFactor(factors, [](Value* f) { return isSplat(f, 0.5); }))
      return std::nullopt;
    for (size_t i = 0; i < 2; ++i) {
      Value* x = factors[i];
      Op* add = producer(factors[1 - i], OpKind::Add);
      if (!add || !uses_.single(factors[1 - i]))
        continue;
      std::optional<std::string> activation;
      eitherOrder(*add, [&](Value* one, Value* inner) {
        if (!isSplat(one, 1.0) || !uses_.single(inner))
          return false;
        if (Op* erf = producer(inner, OpKind::Erf);
            erf && isErfArgument(erf->operands[0], x, ops)) {
          ops.push_back(erf);
          activation = "gelu";
        } else if (Op* tanh = producer(inner, OpKind::Tanh);
                   tanh && isTanhArgument(tanh->operands[0], x, ops)) {
          ops.push_back(tanh);
          activation = "gelu_tanh";
        }
        return activation.has_value();
      });
      if (activation) {
        ops.push_back(add);
        return std::make_pair(x, *activation);
      }
    }
    return std::nullopt;
  }

private:
  // x / sqrt(2) or x * (1/sqrt(2))
  bool isErfArgument(Value* v, Value* x, std::vector<const Op*>& ops) {
    if (!uses_.single(v))
      return false;
    if (Op* div = producer(v, OpKind::Div);
        div && div->operands[0] == x && isSplat(div->operands[1], std::sqrt(2.0))) {
      ops.push_back(div);
      return true;
    }
    std::vector<Value*> factors = productFactors(v, uses_, ops);
    return factors.size() == 2 &&
           takeFactor(factors, [](Value* f) { return isSplat(f, 1.0 / std::sqrt(2.0)); }) &&
           factors[0] == x;
  }

  // 0.7978845608 * (x + 0.044715 * x^3)
  bool isTanhArgument(Value* v, Value* x, std::vector<const Op*>& ops) {
    if (!uses_.single(v))
      return false;
    std::vector<Value*> factors = productFactors(v, uses_, ops);
    if (factors.size() != 2 ||
        !takeFactor(factors, [](Value* f) { return isSplat(f, 0.7978845608028654); }))
      return false;
    Op* add = producer(factors[0], OpKind::Add);
    if (!add || !uses_.single(factors[0]))
      return false;
    bool ok = eitherOrder(*add, [&](Value* linear, Value* cubic) {
      if (linear != x || !uses_.single(cubic))
        return false;
      std::vector<Value*> terms = productFactors(cubic, uses_, ops);
      if (!takeFactor(terms, [](Value* f) { return isSplat(f, 0.044715); }))
        return false;
      if (terms.size() == 3)
        return terms[0] == x && terms[1] == x && terms[2] == x;
      Op* pow = terms.size() == 1 ? producer(terms[0], OpKind::Pow) : nullptr;
      if (!pow || pow->operands[0] != x || !isSplat(pow->operands[1], 3.0) ||
          !uses_.single(terms[0]))
        return false;
      ops.push_back(pow);
      return true;
    });
    if (ok)
      ops.push_back(add);
    return ok;
  }

  const Uses& uses_;
};

class FuseMLP : public Pass {
public:
  std::string_view name() const override { return "fuse-mlp"; }

  bool run(Graph& graph) override {
    Uses uses(graph);
    GeluMatcher gelu(uses);
    bool changed = false;
    for (auto it = graph.ops.begin(); it != graph.ops.end(); ++it) {
      Op& root = **it;
      if (root.kind != OpKind::MatMul)
        continue;
      Op* product = producer(root.operands[0], OpKind::Mul);
      if (!product || !uses.single(root.operands[0]))
        continue;
      std::vector<const Op*> ops;
      Value *x = nullptr, *gate = nullptr, *up = nullptr;
      std::string activation;
      eitherOrder(*product, [&](Value* activated, Value* upValue) {
        ops.clear();
        auto act = uses.single(activated) ? gelu.match(activated, ops) : std::nullopt;
        Op* gateMatmul = act ? producer(act->first, OpKind::MatMul) : nullptr;
        Op* upMatmul = producer(upValue, OpKind::MatMul);
        if (!gateMatmul || !upMatmul || !uses.single(upValue) ||
            gateMatmul->operands[0] != upMatmul->operands[0])
          return false;
        // The GELU reads the gate projection: once (one op) or several times (decomposed),
        // but nothing outside the pattern may.
        x = gateMatmul->operands[0];
        gate = gateMatmul->operands[1];
        up = upMatmul->operands[1];
        activation = act->second;
        ops.insert(ops.end(), {gateMatmul, upMatmul, product, &root});
        return true;
      });
      if (!x || !onlyUsedWithin(graph, ops, x))
        continue;
      Builder b(graph);
      b.setInsertPoint(it);
      b.setLocation(fusedLocation(ops));
      // Null for mismatched dims or types: the primitive ops stay.
      if (Value* fused = b.tryCreate(OpKind::GatedMlp, {x, gate, up, root.operands[1]},
                                     {{"activation", activation}})) {
        graph.replaceAllUsesWith(root.result(), fused);
        changed = true;
      }
    }
    if (changed)
      removeDeadOps(graph);
    return changed;
  }

private:
  // The gate projection's result is used only by ops of the match (a decomposed GELU reads it
  // several times).
  static bool onlyUsedWithin(const Graph& graph, const std::vector<const Op*>& ops, Value* x) {
    const Op* gateMatmul = nullptr;
    for (const Op* op : ops)
      if (op->kind == OpKind::MatMul && op->operands[0] == x && !gateMatmul)
        gateMatmul = op;
    if (!gateMatmul)
      return false;
    const Value* gate = gateMatmul->result();
    for (const auto& op : graph.ops)
      for (const Value* operand : op->operands)
        if (operand == gate && std::find(ops.begin(), ops.end(), op.get()) == ops.end())
          return false;
    for (const Graph::Output& output : graph.outputs)
      if (output.value == gate)
        return false;
    return true;
  }
};

} // namespace

std::unique_ptr<Pass> createFuseMLPPass() {
  return std::make_unique<FuseMLP>();
}

} // namespace gemma
