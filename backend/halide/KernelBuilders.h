// The kernel builders, one family per file, and the helpers they share. Internal to
// backend/halide: Kernels.cpp's buildKernel picks the builder for each op kind.
#pragma once

#include "backend/halide/Kernels.h"

#include <functional>
#include <string>
#include <vector>

namespace gemma::kernels {

// ---- Helpers (KernelHelpers.cpp) ----------------------------------------------------------------

// Halide vars d0..d(rank-1), the innermost first, and the same as Exprs.
std::vector<Halide::Var> vars(int64_t rank);
std::vector<Halide::Expr> exprs(const std::vector<Halide::Var>& v);
// An ImageParam for operand `i`, with the operand's static dims as constraints.
Halide::ImageParam operandParam(const Op& op, size_t i, const std::string& name);
// Reads operand `param` at the result's coordinates with numpy broadcasting (a dim of extent 1
// is read at 0; the operand may have fewer dims).
Halide::Expr broadcastRead(const Halide::ImageParam& param, const std::vector<Halide::Expr>& at);
// Tensor axis (possibly negative) -> Halide dim.
int halideDim(int64_t axis, int64_t rank);
// A dim's size where it is static, else a typical hidden size (a schedule's tuning, not bounds).
int64_t staticExtent(const Dim& dim);
int clampToInt(int64_t v);
Halide::Expr toF32(Halide::Expr e);
// An operand read for arithmetic: floats in f32, integers in i64, bools as 0/1 in i64.
Halide::Expr widen(Halide::Expr e);
// tanh in f32 as a rational function that vectorizes (KernelHelpers.cpp says whose fit).
Halide::Expr vectorTanh(Halide::Expr x);
// GELU in f32: the tanh approximation, or exact with erf (the gelu op and the gated MLP).
Halide::Expr gelu(Halide::Expr x, bool tanhApproximation);
// The innermost dim vectorised to the target's f32 lanes, the outermost parallel.
void scheduleElementwise(Halide::Func f, const std::vector<Halide::Var>& v, TargetKind target);

// ---- Elementwise (ElementwiseKernels.cpp) -------------------------------------------------------

// The value of one result element from the widened operands (widen above).
using ElementwiseFormula = std::function<Halide::Expr(const std::vector<Halide::Expr>& operands)>;
// out = formula(the first `operandsRead` operands read with numpy broadcasting), rounded to the
// result's element type.
Kernel elementwise(const Op& op, TargetKind target, const ElementwiseFormula& formula,
                   size_t operandsRead);
// A widened value as a truth value (!= 0), and a truth value as the 0/1 a bool result holds.
Halide::Expr truth(Halide::Expr e);
Halide::Expr boolean(Halide::Expr condition);

// ---- The other families, one builder per op (or a few alike)
// -------------------------------------

Kernel rmsNorm(const Op& op, TargetKind target);   // NormRotaryKernels.cpp
Kernel rotary(const Op& op, TargetKind target);    //
Kernel matmul(const Op& op, TargetKind target);    // DotProductKernels.cpp
Kernel gatedMlp(const Op& op, TargetKind target);  //
Kernel attention(const Op& op, TargetKind target); // AttentionKernels.cpp
Kernel softmax(const Op& op, TargetKind target);   //
Kernel reduce(const Op& op, TargetKind target);    // ReductionKernels.cpp
Kernel argMax(const Op& op, TargetKind target);    //
Kernel cumulativeSum(const Op& op, TargetKind target);
Kernel gather(const Op& op, TargetKind target); // MovementKernels.cpp
Kernel transpose(const Op& op, TargetKind target);
Kernel concatenate(const Op& op, TargetKind target, int64_t axis);
Kernel slice(const Op& op, TargetKind target);
Kernel range(const Op& op, TargetKind target);
Kernel shape(const Op& op, TargetKind target);
Kernel cacheRows(const Op& op, TargetKind target);

} // namespace gemma::kernels
