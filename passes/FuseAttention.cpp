/// \file
/// fuse-attention: finds scaled dot-product attention over the KV cache and replaces it with one
/// `attention(q, k, v[, bias]) {num_heads, num_kv_heads, head_dim, scale}`:
///
///   kr, vr = repeat_kv(k), repeat_kv(v)     repeat_kv(t) = reshape(expand(unsqueeze(t, [2])))
///                                           [batch,K,T,H] -> [batch,N,T,H], or t itself if N = K
///   s      = matmul(q, transpose(kr, [0, 1, 3, 2]))
///   s      = mul(s, scale) | div(s, 1/scale)     (or the scale on q, or sqrt(scale) on q and k^T)
///   s      = mul(tanh(div(s, c)), c)             optional: Gemma 2's logit softcap {softcap = c}
///   p      = softmax(add(s, bias) | s, axis = -1)
///   p      = where(is_nan(p), 0, p)            optional: torch's SDPA export zeroes the NaNs of
///                                              rows masked everywhere {nan_weights_to_zero}
///   out    = matmul(p, vr)
///
/// The causal mask the Hugging Face importer builds from the attention mask (with a window on
/// sliding layers) is not read as a bias: the attention builds it itself {causal = true}, taking
/// the attention mask as its fourth operand, so no [batch,1,seq,total] mask tensor exists:
///
///   bias = where(and(unsqueeze(not(equal(M, 0)), [1, 2]), unsqueeze(C, [0, 1])), 0, lowest)
///   C    = less_equal(K, Q) | and(less_equal(K, Q), less(sub(Q, K), window))
///   K    = unsqueeze(range(0, L, 1), [0]),  Q = unsqueeze(range(sub(L, n), L, 1), [1])
///   L    = gather(shape(M), 1)                     M: the graph input attention_mask
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

#include <cmath>

namespace gemma {

namespace {

using namespace pattern;

struct AttentionMatch {
  Value *q = nullptr, *k = nullptr, *v = nullptr, *bias = nullptr;
  double scale = 1.0;
  double softcap = 0.0;
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
        if (!matchCappedScores(castChain(scaled, m), m))
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
    return matchCappedScores(logits, m);
  }

  // mul(tanh(div(s, c)), c) in either order of the mul, then the scaled scores; or those alone.
  bool matchCappedScores(Value* capped, AttentionMatch& m) {
    Op* mul = producer(capped, OpKind::Mul);
    if (mul && uses_.single(capped)) {
      size_t mark = m.ops.size();
      double scaleBefore = m.scale;
      bool ok = eitherOrder(*mul, [&](Value* squashed, Value* outer) {
        m.ops.resize(mark);
        m.scale = scaleBefore;
        auto cap = scalar(outer);
        Value* tanhResult = castChain(squashed, m);
        Op* tanh = producer(tanhResult, OpKind::Tanh);
        if (!cap || *cap <= 0 || !tanh || !uses_.single(tanhResult))
          return false;
        Value* divided = castChain(tanh->operands[0], m);
        Op* div = producer(divided, OpKind::Div);
        if (!div || !uses_.single(divided) || scalar(div->operands[1]) != cap)
          return false;
        m.ops.insert(m.ops.end(), {tanh, div});
        m.softcap = *cap;
        if (matchScaledScores(castChain(div->operands[0], m), m))
          return true;
        m.softcap = 0;
        return false;
      });
      if (ok) {
        m.ops.push_back(mul);
        return true;
      }
      m.ops.resize(mark);
    }
    return matchScaledScores(capped, m);
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

// The importer's causal (+ window) + padding mask; see the file comment.
struct BuiltMask {
  Value* keyMask = nullptr;
  int64_t window = 0;
};

class MaskMatcher {
public:
  MaskMatcher(const Value* q, const Value* k) : q_(q), k_(k) {}

  std::optional<BuiltMask> match(Value* bias) {
    Op* where = producer(bias, OpKind::Where);
    if (!where || !isScalar(where->operands[1], 0) ||
        !isScalar(where->operands[2], lowestFinite(q_->type.elementType)))
      return std::nullopt;
    Op* both = producer(where->operands[0], OpKind::And);
    if (!both)
      return std::nullopt;
    BuiltMask mask;
    bool ok = eitherOrder(*both, [&](Value* padding, Value* causal) {
      mask = BuiltMask();
      Op* spread = unsqueezed(padding, Ints{1, 2});
      Op* notPad = spread ? producer(spread->operands[0], OpKind::Not) : nullptr;
      Op* isPad = notPad ? producer(notPad->operands[0], OpKind::Equal) : nullptr;
      if (!isPad)
        return false;
      bool found = eitherOrder(*isPad, [&](Value* m, Value* zero) {
        if (!m->isGraphInput() || m->type.elementType != ElementType::I64 || m->type.rank() != 2 ||
            !isScalar(zero, 0))
          return false;
        mask.keyMask = m;
        return true;
      });
      Op* cond = unsqueezed(causal, Ints{0, 1});
      return found && cond && matchCausal(cond->operands[0], mask);
    });
    const TensorType& m = ok ? mask.keyMask->type : k_->type;
    if (!ok || m.dims[0] != k_->type.dims[0] || m.dims[1] != k_->type.dims[2])
      return std::nullopt;
    return mask;
  }

private:
  static bool isScalar(const Value* v, double expected) {
    auto value = v->type.staticNumElements() == 1 ? splat(v) : std::nullopt;
    return value && *value == expected;
  }

  static Op* unsqueezed(const Value* v, const Ints& axes) {
    Op* op = producer(v, OpKind::Unsqueeze);
    return op && *op->attr<Ints>("axes") == axes ? op : nullptr;
  }

  // less_equal(K, Q), or that and less(sub(Q, K), window) in either order.
  bool matchCausal(Value* c, BuiltMask& mask) {
    if (Op* leq = producer(c, OpKind::LessEqual))
      return matchIndices(*leq);
    Op* both = producer(c, OpKind::And);
    return both && eitherOrder(*both, [&](Value* causal, Value* inWindow) {
             Op* leq = producer(causal, OpKind::LessEqual);
             Op* less = producer(inWindow, OpKind::Less);
             Op* distance = less ? producer(less->operands[0], OpKind::Sub) : nullptr;
             auto window = less ? splat(less->operands[1]) : std::nullopt;
             if (!leq || !distance || !window || *window < 1 || *window != std::floor(*window) ||
                 less->operands[1]->type.staticNumElements() != 1 ||
                 distance->operands[0] != leq->operands[1] ||
                 distance->operands[1] != leq->operands[0] || !matchIndices(*leq))
               return false;
             mask.window = static_cast<int64_t>(*window);
             return true;
           });
  }

  // K = unsqueeze(range(0, L, 1), [0]) and Q = unsqueeze(range(sub(L, n), L, 1), [1]) as the
  // less_equal's operands, L = gather(shape(M), 1): key j's index and query i's (total - seq + i).
  bool matchIndices(const Op& leq) {
    Op* keys = unsqueezed(leq.operands[0], Ints{0});
    Op* queries = unsqueezed(leq.operands[1], Ints{1});
    Op* keyRange = keys ? producer(keys->operands[0], OpKind::Range) : nullptr;
    Op* queryRange = queries ? producer(queries->operands[0], OpKind::Range) : nullptr;
    if (!keyRange || !queryRange || !isScalar(keyRange->operands[0], 0) ||
        !isScalar(keyRange->operands[2], 1) || !isScalar(queryRange->operands[2], 1) ||
        keyRange->operands[1] != queryRange->operands[1])
      return false;
    Op* start = producer(queryRange->operands[0], OpKind::Sub);
    Op* length = producer(keyRange->operands[1], OpKind::Gather);
    Op* shape = length ? producer(length->operands[0], OpKind::Shape) : nullptr;
    const std::vector<Dim>& queryDims = queryRange->result()->type.dims;
    return start && start->operands[0] == keyRange->operands[1] && shape &&
           isScalar(length->operands[1], 1) && *length->attr<int64_t>("axis") == 0 &&
           shape->operands[0]->isGraphInput() && queryDims.size() == 1 &&
           queryDims[0] == q_->type.dims[2] &&
           keyRange->result()->type.dims == std::vector<Dim>{k_->type.dims[2]};
  }

  const Value* q_;
  const Value* k_;
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
      std::optional<BuiltMask> builtMask;
      if (m->bias)
        builtMask = MaskMatcher(m->q, m->k).match(m->bias);
      if (builtMask)
        operands.push_back(builtMask->keyMask);
      else if (m->bias)
        operands.push_back(m->bias);
      std::map<std::string, Attribute> attrs = {{"num_heads", q[1].staticValue()},
                                                {"num_kv_heads", k[1].staticValue()},
                                                {"head_dim", q[3].staticValue()},
                                                {"scale", m->scale}};
      if (m->nanWeightsToZero)
        attrs.emplace("nan_weights_to_zero", true);
      if (m->softcap > 0)
        attrs.emplace("softcap", m->softcap);
      if (builtMask) {
        attrs.emplace("causal", true);
        if (builtMask->window > 0)
          attrs.emplace("window", builtMask->window);
      }
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
