// Reductions over axes: reduce_mean/sum/max, argmax, cumsum.
#include "backend/halide/KernelBuilders.h"

namespace gemma::kernels {

using namespace Halide;

// reduce_mean / reduce_sum / reduce_max over any axes, keeping them as 1 or dropping them.
Kernel reduce(const Op& op, TargetKind) {
  Kernel k;
  k.name = std::string(op.mnemonic());
  ImageParam x = operandParam(op, 0, "x");
  k.inputs = {x};
  int64_t rank = op.operands[0]->type.rank();
  std::vector<bool> reduced(rank, false);
  for (int64_t axis : *op.attr<Ints>("axes"))
    reduced[halideDim(axis, rank)] = true;
  const bool* keepdimsAttr = op.attr<bool>("keepdims");
  bool keepdims = !keepdimsAttr || *keepdimsAttr;
  Region ranges;
  for (int d = 0; d < rank; ++d)
    if (reduced[d])
      ranges.emplace_back(0, x.dim(d).extent());
  RDom r(ranges);
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Expr> at;
  int next = 0, nextReduced = 0;
  Expr count = 1;
  for (int d = 0; d < rank; ++d) {
    if (reduced[d]) {
      at.push_back(r[nextReduced++]);
      count = count * x.dim(d).extent();
      if (keepdims)
        ++next;
    } else {
      at.push_back(v[next++]);
    }
  }
  Expr element = widen(x(at));
  Expr value = op.kind == OpKind::ReduceMax ? maximum(element) : sum(element);
  if (op.kind == OpKind::ReduceMean)
    value = value / cast(value.type(), count);
  k.output = Func("out");
  k.output(v) = cast(halideType(op.result()->type.elementType), value);
  if (!v.empty())
    k.output.parallel(v.back());
  return k;
}

// argmax along one axis: the first maximum's index.
Kernel argMax(const Op& op, TargetKind) {
  Kernel k;
  k.name = "argmax";
  ImageParam x = operandParam(op, 0, "x");
  k.inputs = {x};
  int64_t rank = op.operands[0]->type.rank();
  int axis = halideDim(*op.attr<int64_t>("axis"), rank);
  const bool* keepdimsAttr = op.attr<bool>("keepdims");
  bool keepdims = !keepdimsAttr || *keepdimsAttr;
  RDom r(0, x.dim(axis).extent());
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Expr> at;
  int next = 0;
  for (int d = 0; d < rank; ++d) {
    if (d == axis) {
      at.push_back(r.x);
      if (keepdims)
        ++next;
    } else {
      at.push_back(v[next++]);
    }
  }
  k.output = Func("out");
  k.output(v) = cast<int64_t>(Halide::argmax(widen(x(at)))[0]);
  return k;
}

// cumsum along one axis (inclusive).
Kernel cumulativeSum(const Op& op, TargetKind) {
  Kernel k;
  k.name = "cumsum";
  ImageParam x = operandParam(op, 0, "x");
  k.inputs = {x};
  int64_t rank = op.operands[0]->type.rank();
  int axis = halideDim(*op.attr<int64_t>("axis"), rank);
  std::vector<Var> v = vars(rank);
  // A scan: out[0] = x[0], then out[i] = out[i-1] + x[i] along the axis.
  RDom r(1, x.dim(axis).extent() - 1);
  std::vector<Expr> at = exprs(v), before = exprs(v);
  at[axis] = r.x;
  before[axis] = r.x - 1;
  Type type = halideType(op.result()->type.elementType);
  k.output = Func("out");
  k.output(v) = cast(type, x(exprs(v)));
  k.output(at) = cast(type, widen(k.output(before)) + widen(x(at)));
  return k;
}

} // namespace gemma::kernels
