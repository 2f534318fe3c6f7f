/// \file
/// fuse-attention: finds scaled dot-product attention over the KV cache and replaces it with one
/// `attention(q, k, v[, bias]) {num_heads, num_kv_heads, head_dim, scale}`:
///
///   kr, vr = repeat_kv(k), repeat_kv(v)     repeat_kv(t) = reshape(expand(unsqueeze(t, [2])))
///                                           [batch,K,T,H] -> [batch,N,T,H], or t itself if N = K
///   s      = matmul(q, transpose(kr, [0, 1, 3, 2]))
///   s      = mul(s, scale) | div(s, 1/scale)     (or the scale on q, or sqrt(scale) on q and k^T)
///   p      = softmax(add(s, bias) | s, axis = -1)
///   p      = where(is_nan(p), 0, p)            optional: torch's SDPA export zeroes the NaNs of
///                                              rows masked everywhere {nan_weights_to_zero}
///   out    = matmul(p, vr)
///
/// with casts anywhere along the chain looked through (transformers scales and normalises in
/// float32 and casts back). k and v are the full cache (past and new, after rotary); the bias is
/// any additive mask that broadcasts to [batch,N,seq,T] (causal and padding). The heads sharing a
/// kv head follow repeat_kv: query head n reads kv head n / (N/K). Not fused: an intermediate with
/// another user, a softmax over another axis, a transpose that is not the last two axes, a scale
/// that is not a scalar constant.

#include "ir/Builder.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

namespace gemma {

namespace {

using namespace pattern;

struct AttentionMatch {
  Value *q = nullptr, *k = nullptr, *v = nullptr, *bias = nullptr;
  double scale = 1.0;
  bool nanWeightsToZero = false;
  std::vector<const Op*> ops;
};

class AttentionMatcher {
public:
  explicit AttentionMatcher(const Uses& uses) : uses_(uses) {}

  std::optional<AttentionMatch> match(Op& root) {
    if (root.kind != OpKind::MatMul || root.result()->type.rank() != 4)
      return std::nullopt;
    AttentionMatch m;
    m.ops.push_back(&root);
    Value* probabilities = unguarded(castChain(root.operands[0], m), m);
    Op* softmax = producer(probabilities, OpKind::Softmax);
    if (!softmax || !lastAxis(*softmax->attr<int64_t>("axis"), 4) ||
        uses_.count(softmax->result()) != (m.nanWeightsToZero ? 2 : 1))
      return std::nullopt;
    m.ops.push_back(softmax);
    m.v = repeatedKV(root.operands[1], m);
    Value* logits = castChain(softmax->operands[0], m);
    if (!matchMaskedScores(logits, m))
      return std::nullopt;
    return m;
  }

private:
  static bool lastAxis(int64_t axis, int64_t rank) { return axis == -1 || axis == rank - 1; }

  // where(is_nan(p), 0, p) -> p, noting the guard; anything else as it is.
  Value* unguarded(Value* v, AttentionMatch& m) {
    Op* where = producer(v, OpKind::Where);
    if (!where || !uses_.single(v))
      return v;
    Value* p = where->operands[2];
    Op* isNan = producer(where->operands[0], OpKind::IsNan);
    auto zero = splat(where->operands[1]);
    if (!isNan || !uses_.single(where->operands[0]) || isNan->operands[0] != p || !zero ||
        *zero != 0 || where->operands[1]->type.staticNumElements() != 1)
      return v;
    m.ops.insert(m.ops.end(), {where, isNan});
    m.nanWeightsToZero = true;
    return p;
  }

  // Follows single-user casts back; records them.
  Value* castChain(Value* v, AttentionMatch& m) {
    while (Op* cast = producer(v, OpKind::Cast)) {
      if (!uses_.single(v))
        break;
      m.ops.push_back(cast);
      v = cast->operands[0];
    }
    return v;
  }

  // reshape(expand(unsqueeze(t, [2]))) from [batch,K,T,H] through [batch,K,N/K,T,H] to
  // [batch,N,T,H]; else t itself. Exporters compute the expand's and reshape's shape operands at
  // run time: the result types say what they do.
  Value* repeatedKV(Value* v, AttentionMatch& m) {
    Op* reshape = producer(v, OpKind::Reshape);
    if (!reshape || !uses_.single(v))
      return v;
    Op* expand = producer(reshape->operands[0], OpKind::Expand);
    if (!expand || !uses_.single(reshape->operands[0]))
      return v;
    Op* unsqueeze = producer(expand->operands[0], OpKind::Unsqueeze);
    if (!unsqueeze || !uses_.single(expand->operands[0]) ||
        *unsqueeze->attr<Ints>("axes") != Ints{2} || unsqueeze->operands[0]->type.rank() != 4)
      return v;
    const std::vector<Dim>& t = unsqueeze->operands[0]->type.dims;
    const std::vector<Dim>& repeated = expand->result()->type.dims;
    const std::vector<Dim>& merged = v->type.dims;
    if (repeated.size() != 5 || merged.size() != 4 || !t[1].isStatic() || !repeated[2].isStatic() ||
        !merged[1].isStatic() || repeated[0] != t[0] || repeated[1] != t[1] ||
        repeated[3] != t[2] || repeated[4] != t[3] || merged[0] != t[0] || merged[2] != t[2] ||
        merged[3] != t[3] ||
        merged[1].staticValue() != t[1].staticValue() * repeated[2].staticValue())
      return v;
    m.ops.insert(m.ops.end(), {reshape, expand, unsqueeze});
    return unsqueeze->operands[0];
  }

  // add(scaled, bias) in either order, or scaled alone.
  bool matchMaskedScores(Value* logits, AttentionMatch& m) {
    if (Op* add = producer(logits, OpKind::Add); add && uses_.single(logits)) {
      size_t mark = m.ops.size();
      bool ok = eitherOrder(*add, [&](Value* scaled, Value* bias) {
        m.ops.resize(mark);
        if (!matchScaledScores(castChain(scaled, m), m))
          return false;
        m.bias = bias;
        return true;
      });
      if (ok) {
        m.ops.push_back(add);
        return true;
      }
      m.ops.resize(mark);
    }
    return matchScaledScores(logits, m);
  }

  // mul(s, c) | mul(c, s) | div(s, c) | s, then the scores.
  bool matchScaledScores(Value* scaled, AttentionMatch& m) {
    if (uses_.single(scaled)) {
      if (Op* mul = producer(scaled, OpKind::Mul)) {
        size_t mark = m.ops.size();
        double before = m.scale;
        bool ok = eitherOrder(*mul, [&](Value* scores, Value* c) {
          m.ops.resize(mark);
          m.scale = before;
          auto value = scalar(c);
          if (!value)
            return false;
          m.scale *= *value;
          return matchScores(castChain(scores, m), m);
        });
        if (ok)
          m.ops.push_back(mul);
        return ok;
      }
      if (Op* div = producer(scaled, OpKind::Div)) {
        auto value = scalar(div->operands[1]);
        if (!value || *value == 0)
          return false;
        m.scale /= *value;
        m.ops.push_back(div);
        return matchScores(castChain(div->operands[0], m), m);
      }
    }
    return matchScores(scaled, m);
  }

  static std::optional<double> scalar(const Value* v) {
    return v->type.staticNumElements() == 1 ? splat(v) : std::nullopt;
  }

  // A value times a scalar constant: the value and the factor (1 if it is not such a product).
  std::pair<Value*, double> scaledBy(Value* v, AttentionMatch& m) {
    Op* mul = producer(v, OpKind::Mul);
    if (!mul || !uses_.single(v))
      return {v, 1.0};
    std::pair<Value*, double> result = {v, 1.0};
    eitherOrder(*mul, [&](Value* inner, Value* c) {
      auto value = scalar(c);
      if (!value)
        return false;
      result = {inner, *value};
      m.ops.push_back(mul);
      return true;
    });
    return result;
  }

  // matmul(q, transpose(kr, [0, 1, 3, 2])), with optional scalar factors on q and on k^T.
  bool matchScores(Value* scores, AttentionMatch& m) {
    Op* matmul = producer(scores, OpKind::MatMul);
    if (!matmul || !uses_.single(scores) || scores->type.rank() != 4)
      return false;
    auto [q, qScale] = scaledBy(matmul->operands[0], m);
    auto [kt, kScale] = scaledBy(matmul->operands[1], m);
    Op* transpose = producer(kt, OpKind::Transpose);
    if (!transpose || !uses_.single(kt) || *transpose->attr<Ints>("perm") != Ints{0, 1, 3, 2})
      return false;
    m.q = q;
    m.k = repeatedKV(transpose->operands[0], m);
    m.scale *= qScale * kScale;
    m.ops.insert(m.ops.end(), {matmul, transpose});
    return m.q->type.rank() == 4 && m.k->type.rank() == 4;
  }

  const Uses& uses_;
};

class FuseAttention : public Pass {
public:
  std::string_view name() const override { return "fuse-attention"; }

  bool run(Graph& graph) override {
    Uses uses(graph);
    AttentionMatcher matcher(uses);
    bool changed = false;
    for (auto it = graph.ops.begin(); it != graph.ops.end(); ++it) {
      auto m = matcher.match(**it);
      if (!m)
        continue;
      const auto& q = m->q->type.dims;
      const auto& k = m->k->type.dims;
      if (!q[1].isStatic() || !k[1].isStatic() || !q[3].isStatic() || !m->v ||
          m->v->type.rank() != 4)
        continue;
      Builder b(graph);
      b.setInsertPoint(it);
      b.setLocation(fusedLocation(m->ops));
      std::vector<Value*> operands = {m->q, m->k, m->v};
      if (m->bias)
        operands.push_back(m->bias);
      std::map<std::string, Attribute> attrs = {{"num_heads", q[1].staticValue()},
                                                {"num_kv_heads", k[1].staticValue()},
                                                {"head_dim", q[3].staticValue()},
                                                {"scale", m->scale}};
      if (m->nanWeightsToZero)
        attrs.emplace("nan_weights_to_zero", true);
      // Null where the pieces do not make a valid attention (mismatched heads or dims).
      Value* fused = b.tryCreate(OpKind::Attention, operands, attrs);
      if (!fused)
        continue;
      if (fused->type != (*it)->result()->type) {
        graph.ops.erase(std::prev(it)); // the op just built before the root: not a match
        continue;
      }
      graph.replaceAllUsesWith((*it)->result(), fused);
      changed = true;
    }
    if (changed)
      removeDeadOps(graph);
    return changed;
  }
};

} // namespace

std::unique_ptr<Pass> createFuseAttentionPass() {
  return std::make_unique<FuseAttention>();
}

} // namespace gemma
