// Helpers every kernel family uses: operands as ImageParams, broadcasting, f32 math.
#include "backend/halide/KernelBuilders.h"

namespace gemma::kernels {

using namespace Halide;

std::vector<Var> vars(int64_t rank) {
  std::vector<Var> v;
  for (int64_t i = 0; i < rank; ++i)
    v.emplace_back("d" + std::to_string(i));
  return v;
}

std::vector<Expr> exprs(const std::vector<Var>& v) {
  return std::vector<Expr>(v.begin(), v.end());
}

// An ImageParam for operand `i`, with the operand's static dims as constraints.
ImageParam operandParam(const Op& op, size_t i, const std::string& name) {
  const Value& operand = *op.operands[i];
  const TensorType& type = operand.type;
  ImageParam param(halideType(type.elementType), static_cast<int>(type.rank()), name);
  bool permuted = hasPermutedStorage(operand);
  std::vector<int64_t> strides = permuted ? storageStrides(operand) : std::vector<int64_t>{};
  for (int64_t d = 0; d < type.rank(); ++d) {
    const Dim& dim = type.dims[type.rank() - 1 - d];
    param.dim(static_cast<int>(d)).set_min(0);
    // (An empty dim gets no constraint: Halide would then refuse the empty region it reads.)
    if (dim.isStatic() && dim.staticValue() > 0)
      param.dim(static_cast<int>(d)).set_extent(static_cast<int>(dim.staticValue()));
    if (permuted) // a weight read in place through permuted strides: all static
      param.dim(static_cast<int>(d))
          .set_stride(static_cast<int>(strides[static_cast<size_t>(type.rank() - 1 - d)]));
  }
  return param;
}

// Reads operand `param` at the result's coordinates with numpy broadcasting (a dim of extent 1
// is read at 0; the operand may have fewer dims).
Expr broadcastRead(const ImageParam& param, const std::vector<Expr>& at) {
  std::vector<Expr> index;
  for (int d = 0; d < param.dimensions(); ++d)
    index.push_back(select(param.dim(d).extent() == 1, 0, at[d]));
  return param(index);
}

// Tensor axis (possibly negative) -> Halide dim.
int halideDim(int64_t axis, int64_t rank) {
  return static_cast<int>(rank - 1 - (axis < 0 ? axis + rank : axis));
}

// A dim's size where it is static, else a typical hidden size (a schedule's tuning, not bounds).
int64_t staticExtent(const Dim& dim) {
  return dim.isStatic() ? dim.staticValue() : 2048;
}

int clampToInt(int64_t v) {
  return static_cast<int>(std::clamp<int64_t>(v, -(int64_t(1) << 30), int64_t(1) << 30));
}

Expr toF32(Expr e) {
  return e.type() == Float(32) ? e : cast<float>(e);
}

// tanh in f32 as a rational function that vectorizes: Halide's tanh calls libm's tanhf lane by
// lane, which cost more than the gated MLP's decode-time weight reads it follows. Eigen's
// minimax fit (generic_fast_tanh_float): odd degree 13 over even degree 6 on [-7.905, 7.905],
// where f32 tanh is within an ulp of +-1; worst absolute error 3.4e-7 against double tanh.
Expr vectorTanh(Expr x) {
  constexpr float kClamp = 7.90531110763549805f;
  Expr clamped = clamp(x, -kClamp, kClamp), x2 = clamped * clamped;
  Expr p = -2.76076847742355e-16f;
  for (float c : {2.00018790482477e-13f, -8.60467152213735e-11f, 5.12229709037114e-08f,
                  1.48572235717979e-05f, 6.37261928875436e-04f, 4.89352455891786e-03f})
    p = p * x2 + c;
  Expr q = 1.19825839466702e-06f;
  for (float c : {1.18534705686654e-04f, 2.26843463243900e-03f, 4.89352518554385e-03f})
    q = q * x2 + c;
  // Below 4e-4, tanh(x) rounds to x itself.
  return select(abs(clamped) < 0.0004f, clamped, clamped * p / q);
}

// GELU in f32: the tanh approximation, or exact with erf (the gelu op and the gated MLP).
Expr gelu(Expr x, bool tanhApproximation) {
  return tanhApproximation
             ? 0.5f * x * (1.0f + vectorTanh(0.7978845608028654f * (x + 0.044715f * x * x * x)))
             : 0.5f * x * (1.0f + erf(x * 0.7071067811865476f));
}

void scheduleElementwise(Func f, const std::vector<Var>& v, TargetKind target) {
  if (v.empty())
    return; // a scalar
  f.vectorize(v[0], vectorLanes(target), TailStrategy::GuardWithIf);
  if (v.size() > 1)
    f.parallel(v.back());
}

// An operand read for arithmetic: floats in f32, integers in i64, bools as 0/1 in i64.
Expr widen(Expr e) {
  return e.type().is_float() ? toF32(e) : cast<int64_t>(e);
}

} // namespace gemma::kernels
