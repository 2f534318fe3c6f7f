// rms_norm and rotary: the per-row normalisation and the rotary position embedding.
#include "backend/halide/KernelBuilders.h"
#include "ir/Rotary.h"

namespace gemma::kernels {

using namespace Halide;

// rms_norm over the innermost dim: in f32, x * rsqrt(mean(x^2) + eps) * (1 + w | w).
Kernel rmsNorm(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "rms_norm";
  ImageParam x = operandParam(op, 0, "x"), w = operandParam(op, 1, "w");
  k.inputs = {x, w};
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Var> rows(v.begin() + 1, v.end());
  Expr width = x.dim(0).extent();
  RDom r(0, width);
  Func sumSquares("sum_squares");
  std::vector<Expr> at = {r.x};
  at.insert(at.end(), rows.begin(), rows.end());
  Expr xr = toF32(x(at));
  sumSquares(rows) = sum(xr * xr);
  float eps = static_cast<float>(*op.attr<double>("eps"));
  Func inverse("inverse");
  inverse(rows) = 1.0f / sqrt(sumSquares(rows) / cast<float>(width) + eps);
  Expr scale = *op.attr<bool>("unit_offset") ? 1.0f + toF32(w(v[0])) : toF32(w(v[0]));
  k.output = Func("out");
  k.output(v) =
      cast(halideType(op.result()->type.elementType), (toF32(x(exprs(v))) * inverse(rows)) * scale);
  k.output.vectorize(v[0], vectorLanes(target), TailStrategy::GuardWithIf);
  if (!rows.empty())
    k.output.parallel(v.back());
  inverse.compute_at(k.output, rows.empty() ? Var::outermost() : rows[0]);
  return k;
}

// x * cos + rotate_half(x) * sin over x [batch,heads,seq,H] (Halide: h_i, s, head, b), the tables
// from positions (inverse frequencies baked in at compile time) or given.
Kernel rotary(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "rotary";
  ImageParam x = operandParam(op, 0, "x");
  k.inputs = {x};
  std::vector<Var> v = vars(4); // i, s, head, b
  int64_t headDim = *op.attr<int64_t>("head_dim"), half = headDim / 2;
  Expr cosine, sine;
  if (op.operands.size() == 2) {
    ImageParam positions = operandParam(op, 1, "positions");
    k.inputs.push_back(positions);
    std::vector<double> inverse =
        rotaryInverseFrequencies(*op.attr<double>("theta"), headDim,
                                 op.attr<double>("factor") ? *op.attr<double>("factor") : 1.0);
    Buffer<float> table(static_cast<int>(half), "inv_freq");
    for (int64_t i = 0; i < half; ++i)
      table(static_cast<int>(i)) = static_cast<float>(inverse[i]);
    Expr frequency = cast<float>(positions(v[1], v[3])) * table(v[0] % static_cast<int>(half));
    cosine = cos(frequency);
    sine = sin(frequency);
  } else {
    ImageParam c = operandParam(op, 1, "cos"), s = operandParam(op, 2, "sin");
    k.inputs.push_back(c);
    k.inputs.push_back(s);
    cosine = toF32(broadcastRead(c, exprs(v)));
    sine = toF32(broadcastRead(s, exprs(v)));
  }
  Expr h = static_cast<int>(half);
  Expr rotated = select(v[0] < h, -toF32(x(min(v[0] + h, x.dim(0).extent() - 1), v[1], v[2], v[3])),
                        toF32(x(max(v[0] - h, 0), v[1], v[2], v[3])));
  k.output = Func("out");
  k.output(v) =
      cast(halideType(op.result()->type.elementType), toF32(x(exprs(v))) * cosine + rotated * sine);
  scheduleElementwise(k.output, v, target);
  return k;
}

} // namespace gemma::kernels
