/// \file
/// fuse-rmsnorm: finds RMSNorm over the last axis in the forms the Hugging Face builder and ONNX
/// exporters write, and replaces it with one `rms_norm(x, w) {eps, unit_offset}`:
///
///   var  = reduce_mean(pow(x, 2) | mul(x, x), axes = [-1], keepdims) + eps
///   y    = mul(x, rsqrt(var) | reciprocal(sqrt(var)) | div(1, sqrt(var)))  |  div(x, sqrt(var))
///   out  = mul(y, add(1, w))        -> rms_norm(x, w) {unit_offset = true}
///        | mul(y, w)                -> rms_norm(x, w) {unit_offset = false}  (a folded 1+w too)
///
/// Every mul and add may have its operands either way round. Casts are looked through: a cast of x
/// to f32 before the pattern and of w to f32 are absorbed (the op computes in f32), and so is a
/// cast of the result, which becomes the fused op's result type. Not fused: an intermediate with
/// another user, a mean over another axis or without keepdims, an exponent other than 2, an eps
/// that is not a scalar constant, a divisor that is not 1. The fused op takes the common module
/// path of what it replaced as its location; the replaced ops are removed.

#include "ir/Builder.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

namespace gemma {

namespace {

using namespace pattern;

struct RMSNormMatch {
  Value* x = nullptr;     // the normalised input, before any cast to f32
  Value* scale = nullptr; // w, or 1 + w
  Value* w = nullptr;     // before any cast to f32
  bool unitOffset = false;
  double eps = 0;
  std::vector<const Op*> ops;
};

// Two values are "the same x" if they are, or are casts of one value to one type.
bool sameInput(const Value* a, const Value* b) {
  return a == b || (throughCasts(a) == throughCasts(b) && a->type == b->type);
}

Value* stripCastToF32(Value* v) {
  Op* cast = producer(v, OpKind::Cast);
  if (cast && isFloat(cast->operands[0]->type.elementType))
    return cast->operands[0];
  return v;
}

class RMSNormMatcher {
public:
  explicit RMSNormMatcher(const Uses& uses) : uses_(uses) {}

  std::optional<RMSNormMatch> match(Op& root) {
    if (root.kind != OpKind::Mul)
      return std::nullopt;
    RMSNormMatch m;
    bool found = eitherOrder(root, [&](Value* normed, Value* scale) {
      m = RMSNormMatch{};
      return matchNormalized(normed, m) && matchScale(scale, m);
    });
    if (!found)
      return std::nullopt;
    m.ops.push_back(&root);
    return m;
  }

private:
  // y = x * inverse_sqrt(var), or x / sqrt(var)
  bool matchNormalized(Value* normed, RMSNormMatch& m) {
    if (!uses_.single(normed))
      return false;
    if (Op* mul = producer(normed, OpKind::Mul)) {
      bool ok = eitherOrder(*mul, [&](Value* x, Value* inverse) {
        size_t mark = m.ops.size();
        if (!matchInverseSqrt(inverse, x, m)) {
          m.ops.resize(mark); // undo a half match before trying the other order
          return false;
        }
        m.x = x;
        return true;
      });
      if (ok)
        m.ops.push_back(mul);
      return ok;
    }
    if (Op* div = producer(normed, OpKind::Div)) {
      Op* sqrt = producer(div->operands[1], OpKind::Sqrt);
      if (!sqrt || !uses_.single(div->operands[1]) ||
          !matchVariance(sqrt->operands[0], div->operands[0], m))
        return false;
      m.x = div->operands[0];
      m.ops.insert(m.ops.end(), {div, sqrt});
      return true;
    }
    return false;
  }

  // rsqrt(var) | reciprocal(sqrt(var)) | div(1, sqrt(var))
  bool matchInverseSqrt(Value* inverse, Value* x, RMSNormMatch& m) {
    if (!uses_.single(inverse))
      return false;
    if (Op* rsqrt = producer(inverse, OpKind::Rsqrt)) {
      m.ops.push_back(rsqrt);
      return matchVariance(rsqrt->operands[0], x, m);
    }
    Op* outer = producer(inverse, OpKind::Reciprocal);
    Value* sqrtValue = outer ? outer->operands[0] : nullptr;
    if (Op* div = producer(inverse, OpKind::Div); div && isSplat(div->operands[0], 1.0)) {
      outer = div;
      sqrtValue = div->operands[1];
    }
    Op* sqrt = producer(sqrtValue, OpKind::Sqrt);
    if (!outer || !sqrt || !uses_.single(sqrtValue))
      return false;
    m.ops.insert(m.ops.end(), {outer, sqrt});
    return matchVariance(sqrt->operands[0], x, m);
  }

  // add(reduce_mean(x^2, last axis, keepdims), eps)
  bool matchVariance(Value* variance, Value* x, RMSNormMatch& m) {
    Op* add = producer(variance, OpKind::Add);
    if (!add || !uses_.single(variance))
      return false;
    return eitherOrder(*add, [&](Value* mean, Value* eps) {
      Op* reduce = producer(mean, OpKind::ReduceMean);
      auto epsValue = splat(eps);
      if (!reduce || !uses_.single(mean) || !epsValue || eps->type.staticNumElements() != 1)
        return false;
      const Ints* axes = reduce->attr<Ints>("axes");
      const bool* keepdims = reduce->attr<bool>("keepdims");
      int64_t rank = reduce->operands[0]->type.rank();
      if (!axes || axes->size() != 1 || ((*axes)[0] != -1 && (*axes)[0] != rank - 1) ||
          (keepdims && !*keepdims))
        return false;
      Value* square = reduce->operands[0];
      if (!uses_.single(square))
        return false;
      Op* pow = producer(square, OpKind::Pow);
      Op* mul = producer(square, OpKind::Mul);
      bool squared = (pow && isSplat(pow->operands[1], 2.0) && sameInput(pow->operands[0], x)) ||
                     (mul && sameInput(mul->operands[0], x) && sameInput(mul->operands[1], x));
      if (!squared)
        return false;
      m.eps = *epsValue;
      m.ops.insert(m.ops.end(), {add, reduce, pow ? pow : mul});
      return true;
    });
  }

  // add(1, w) with unit offset, else w itself; a vector as long as x's last dim.
  bool matchScale(Value* scale, RMSNormMatch& m) {
    if (!m.x || scale->type.rank() != 1 || m.x->type.rank() < 1 ||
        !scale->type.dims[0].compatibleWith(m.x->type.dims.back()))
      return false;
    m.scale = scale;
    m.w = scale;
    m.unitOffset = false;
    if (Op* add = producer(scale, OpKind::Add); add && uses_.single(scale)) {
      eitherOrder(*add, [&](Value* one, Value* w) {
        if (!isSplat(one, 1.0) || w->type.rank() != 1)
          return false;
        m.w = w;
        m.unitOffset = true;
        m.ops.push_back(add);
        return true;
      });
    }
    return true;
  }

  const Uses& uses_;
};

class FuseRMSNorm : public Pass {
public:
  std::string_view name() const override { return "fuse-rmsnorm"; }

  bool run(Graph& graph) override {
    Uses uses(graph);
    RMSNormMatcher matcher(uses);
    bool changed = false;
    for (auto it = graph.ops.begin(); it != graph.ops.end(); ++it) {
      Op& root = **it;
      auto m = matcher.match(root);
      if (!m)
        continue;
      // A cast of the result (back to the activation type) becomes the fused op's result type.
      Value* replaced = root.result();
      ElementType resultType = replaced->type.elementType;
      for (const auto& user : graph.ops)
        if (user->kind == OpKind::Cast && user->operands[0] == replaced && uses.single(replaced) &&
            isFloat(user->result()->type.elementType)) {
          replaced = user->result();
          resultType = replaced->type.elementType;
          m->ops.push_back(user.get());
        }
      Builder b(graph);
      b.setInsertPoint(it);
      b.setLocation(fusedLocation(m->ops));
      Value* x = stripCastToF32(m->x);
      Value* w = stripCastToF32(m->w);
      // Null where the matched values do not make a valid rms_norm (say, mismatched dims).
      if (Value* fused = b.tryCreate(OpKind::RmsNorm, {x, w},
                                     {{"eps", m->eps}, {"unit_offset", m->unitOffset}},
                                     TensorType{resultType, x->type.dims})) {
        graph.replaceAllUsesWith(replaced, fused);
        changed = true;
      }
    }
    if (changed)
      removeDeadOps(graph);
    return changed;
  }
};

} // namespace

std::unique_ptr<Pass> createFuseRMSNormPass() {
  return std::make_unique<FuseRMSNorm>();
}

} // namespace gemma
