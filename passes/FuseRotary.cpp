/// \file
/// fuse-rotary: finds half-split rotary embedding on q or k [batch,heads,seq,H] and replaces it
/// with one `rotary` op:
///
///   rotate_half(x) = concat(neg(slice(x, H/2:H)), slice(x, 0:H/2), axis = -1)
///   out            = add(mul(x, cos), mul(rotate_half(x), sin))      (operands either way round)
///
/// When the tables come from positions the way GemmaRotaryEmbedding computes them,
///   f = mul(unsqueeze(cast(positions), [2]), inv_freq)   inv_freq = 1/theta^(2i/H), a constant
///                                                        (over a factor: linear RoPE scaling)
///   cos = unsqueeze(cast(cos(concat(f, f))), [1])       (sin alike, casts optional)
/// the result is `rotary(x, positions) {theta, head_dim[, factor]}` and the tables' subgraph goes
/// away once nothing else uses it; any other tables give `rotary(x, cos, sin) {head_dim}`. Not
/// fused: an interleaved rotation, slices that are not the two halves, an intermediate with another
/// user.

#include "ir/Builder.h"
#include "ir/Rotary.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

#include <cmath>

namespace gemma {

namespace {

using namespace pattern;

// slice(x, begin:end) on the last axis.
bool isHalf(const Value* v, const Value* x, int64_t begin, int64_t end) {
  Op* slice = producer(v, OpKind::Slice);
  if (!slice || slice->operands[0] != x)
    return false;
  const Ints* starts = slice->attr<Ints>("starts");
  const Ints* ends = slice->attr<Ints>("ends");
  const Ints* axes = slice->attr<Ints>("axes");
  const Ints* steps = slice->attr<Ints>("steps");
  int64_t rank = x->type.rank();
  return starts && ends && starts->size() == 1 && (*starts)[0] == begin &&
         ((*ends)[0] == end || (end == x->type.dims.back().staticValue() && (*ends)[0] > end)) &&
         axes && axes->size() == 1 && ((*axes)[0] == -1 || (*axes)[0] == rank - 1) &&
         (!steps || (*steps)[0] == 1);
}

class FuseRotary : public Pass {
public:
  std::string_view name() const override { return "fuse-rotary"; }

  bool run(Graph& graph) override {
    Uses uses(graph);
    bool changed = false;
    for (auto it = graph.ops.begin(); it != graph.ops.end(); ++it) {
      Op& root = **it;
      if (root.kind != OpKind::Add)
        continue;
      std::vector<const Op*> ops;
      Value *x = nullptr, *cosTable = nullptr, *sinTable = nullptr;
      bool found = eitherOrder(root, [&](Value* direct, Value* rotated) {
        Op* directMul = producer(direct, OpKind::Mul);
        Op* rotatedMul = producer(rotated, OpKind::Mul);
        if (!directMul || !rotatedMul || !uses.single(direct) || !uses.single(rotated))
          return false;
        return eitherOrder(*directMul, [&](Value* candidate, Value* cosValue) {
          return eitherOrder(*rotatedMul, [&](Value* rotateHalf, Value* sinValue) {
            ops.clear();
            if (!matchRotateHalf(rotateHalf, candidate, uses, ops))
              return false;
            x = candidate;
            cosTable = cosValue;
            sinTable = sinValue;
            ops.insert(ops.end(), {&root, directMul, rotatedMul});
            return true;
          });
        });
      });
      if (!found)
        continue;
      Builder b(graph);
      b.setInsertPoint(it);
      b.setLocation(fusedLocation(ops));
      int64_t headDim = x->type.dims.back().staticValue();
      Value* fused = nullptr;
      // Positions that do not line up with x give null: the tables then, or no match.
      if (auto fromPositions = matchPositionTables(cosTable, sinTable, headDim)) {
        std::map<std::string, Attribute> attrs = {{"theta", fromPositions->theta},
                                                  {"head_dim", headDim}};
        if (fromPositions->factor != 1.0)
          attrs.emplace("factor", fromPositions->factor);
        fused = b.tryCreate(OpKind::Rotary, {x, fromPositions->positions}, attrs);
      }
      if (!fused)
        fused = b.tryCreate(OpKind::Rotary, {x, cosTable, sinTable}, {{"head_dim", headDim}});
      if (!fused)
        continue;
      graph.replaceAllUsesWith(root.result(), fused);
      changed = true;
    }
    if (changed)
      removeDeadOps(graph);
    return changed;
  }

private:
  // concat(neg(slice(x, H/2:H)), slice(x, 0:H/2)) on the last axis, x [batch,heads,seq,H].
  static bool matchRotateHalf(Value* v, Value* x, const Uses& uses, std::vector<const Op*>& ops) {
    Op* concat = producer(v, OpKind::Concat);
    if (!concat || concat->operands.size() != 2 || !uses.single(v) || x->type.rank() != 4 ||
        !x->type.dims.back().isStatic())
      return false;
    int64_t rank = x->type.rank(), headDim = x->type.dims.back().staticValue();
    const int64_t* axis = concat->attr<int64_t>("axis");
    if (!axis || (*axis != -1 && *axis != rank - 1) || headDim % 2 != 0)
      return false;
    Op* neg = producer(concat->operands[0], OpKind::Neg);
    if (!neg || !uses.single(concat->operands[0]) || !uses.single(neg->operands[0]) ||
        !uses.single(concat->operands[1]))
      return false;
    if (!isHalf(neg->operands[0], x, headDim / 2, headDim) ||
        !isHalf(concat->operands[1], x, 0, headDim / 2))
      return false;
    ops.insert(ops.end(),
               {concat, neg, neg->operands[0]->definingOp, concat->operands[1]->definingOp});
    return true;
  }

  struct Tables {
    Value* positions;
    double theta, factor;
  };

  // cos/sin tables computed from positions as GemmaRotaryEmbedding does (with linear scaling's
  // factor, if any); gives (positions, theta, factor).
  static std::optional<Tables> matchPositionTables(Value* cosTable, Value* sinTable,
                                                   int64_t headDim) {
    auto table = [](Value* t, OpKind kind) -> Value* {
      Op* unsqueeze = producer(t, OpKind::Unsqueeze);
      const Ints* axes = unsqueeze ? unsqueeze->attr<Ints>("axes") : nullptr;
      if (!axes || *axes != Ints{1})
        return nullptr;
      Op* trig = producer(throughCasts(unsqueeze->operands[0]), kind);
      return trig ? trig->operands[0] : nullptr;
    };
    Value* emb = table(cosTable, OpKind::Cos);
    if (!emb || table(sinTable, OpKind::Sin) != emb)
      return std::nullopt;
    Op* concat = producer(emb, OpKind::Concat);
    if (!concat || concat->operands.size() != 2 || concat->operands[0] != concat->operands[1])
      return std::nullopt;
    Op* mul = producer(concat->operands[0], OpKind::Mul);
    if (!mul)
      return std::nullopt;
    std::optional<Tables> result;
    eitherOrder(*mul, [&](Value* positions, Value* inverse) {
      Op* unsqueeze = producer(positions, OpKind::Unsqueeze);
      Op* constant = producer(inverse, OpKind::Constant);
      const Floats* values = constant ? constant->attr<Floats>("value") : nullptr;
      if (!unsqueeze || !values || static_cast<int64_t>(values->size()) != headDim / 2 ||
          headDim < 4 || unsqueeze->attr<Ints>("axes") == nullptr ||
          *unsqueeze->attr<Ints>("axes") != Ints{2})
        return false;
      Value* ids = const_cast<Value*>(throughCasts(unsqueeze->operands[0]));
      if (!isInteger(ids->type.elementType) || ids->type.rank() != 2)
        return false;
      // inv_freq[0] = 1 / factor (linear scaling; 1 without), inv_freq[1] = theta^(-2/H) /
      // factor: recover both, and accept them only if they reproduce every frequency exactly
      // (trying the nearest integers, as configs write them).
      double factor = 1.0 / (*values)[0];
      for (double f : {std::round(factor), factor}) {
        double theta = std::pow((*values)[1] * f, -static_cast<double>(headDim) / 2.0);
        for (double candidate : {std::round(theta), theta}) {
          if (f > 0 && rotaryInverseFrequencies(candidate, headDim, f) == *values) {
            result = Tables{ids, candidate, f};
            return true;
          }
        }
      }
      return false;
    });
    return result;
  }
};

} // namespace

std::unique_ptr<Pass> createFuseRotaryPass() {
  return std::make_unique<FuseRotary>();
}

} // namespace gemma
