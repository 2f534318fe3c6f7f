// Data movement and shapes: gather, transpose, concat, slice, range, shape and the KV-cache rows'
// copy.
#include "backend/halide/KernelBuilders.h"

namespace gemma::kernels {

using namespace Halide;

// gather(data, indices) {axis}: ONNX Gather; an embedding lookup is axis 0 of a [V, D] table.
// Halide dims of the result: data's dims inside the axis, then the indices', then data's outer.
// An embedding lookup in a block-quantized table [rows, D]: each looked-up row decoded to f32.
Kernel blockGather(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "gather";
  BlockWeight table = blockWeightParam(op, 0, "data");
  ImageParam indices = operandParam(op, 1, "indices");
  k.inputs = {table.bytes, indices};
  int ri = indices.dimensions();
  std::vector<Var> v = vars(op.result()->type.rank()); // v[0]: the feature, then the indices'
  std::vector<Expr> idAt(v.begin() + 1, v.begin() + 1 + ri);
  Expr id = cast<int>(ri ? indices(idAt) : indices());
  Expr rows = clampToInt(table.rows);
  id = select(id < 0, id + rows, id); // element() clamps it into the table
  k.output = Func("out");
  k.output(v) = table.element(id, v[0]);
  scheduleElementwise(k.output, v, target);
  return k;
}

Kernel gather(const Op& op, TargetKind target) {
  if (isBlockQuantized(op.operands[0]->type.elementType))
    return blockGather(op, target);
  Kernel k;
  k.name = "gather";
  ImageParam data = operandParam(op, 0, "data"), indices = operandParam(op, 1, "indices");
  k.inputs = {data, indices};
  int rd = data.dimensions(), ri = indices.dimensions();
  int ha = halideDim(*op.attr<int64_t>("axis"), rd);
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Expr> idAt(v.begin() + ha, v.begin() + ha + ri);
  Expr id = cast<int>(ri ? indices(idAt) : indices());
  Expr extent = data.dim(ha).extent();
  id = clamp(select(id < 0, id + extent, id), 0, extent - 1);
  std::vector<Expr> at(v.begin(), v.begin() + ha);
  at.push_back(id);
  at.insert(at.end(), v.begin() + ha + ri, v.end());
  k.output = Func("out");
  k.output(v) = data(at);
  scheduleElementwise(k.output, v, target);
  return k;
}

// Permutes dims: result dim i is operand dim perm[i].
Kernel transpose(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "transpose";
  ImageParam x = operandParam(op, 0, "x");
  k.inputs = {x};
  const Ints& perm = *op.attr<Ints>("perm");
  int64_t rank = static_cast<int64_t>(perm.size());
  std::vector<Var> v = vars(rank);
  std::vector<Expr> at(rank);
  for (int64_t i = 0; i < rank; ++i) // result tensor dim i is Halide dim rank-1-i
    at[rank - 1 - perm[i]] = v[rank - 1 - i];
  k.output = Func("out");
  k.output(v) = x(at);
  scheduleElementwise(k.output, v, target);
  return k;
}

// concat along one axis, and kv_cache_append (concat of past and new rows along axis 2: the
// compiled program writes only the new rows into the cache region).
Kernel concatenate(const Op& op, TargetKind target, int64_t axis) {
  Kernel k;
  k.name = std::string(op.mnemonic());
  for (size_t i = 0; i < op.operands.size(); ++i)
    k.inputs.push_back(operandParam(op, i, "in" + std::to_string(i)));
  int64_t rank = op.result()->type.rank();
  int d = static_cast<int>(rank - 1 - (axis < 0 ? axis + rank : axis));
  std::vector<Var> v = vars(rank);
  Expr value = 0.0f;
  Expr start = 0;
  std::vector<Expr> starts;
  for (const ImageParam& p : k.inputs) {
    starts.push_back(start);
    start = start + p.dim(d).extent();
  }
  for (size_t i = k.inputs.size(); i-- > 0;) {
    std::vector<Expr> at = exprs(v);
    at[d] = clamp(v[d] - starts[i], 0, k.inputs[i].dim(d).extent() - 1);
    Expr read = k.inputs[i](at);
    value = i + 1 == k.inputs.size() ? read : select(v[d] < starts[i + 1], read, value);
  }
  k.output = Func("out");
  k.output(v) = value;
  scheduleElementwise(k.output, v, target);
  return k;
}

// ONNX Slice with static starts/ends/steps, clamped against the run-time extents.
Kernel slice(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "slice";
  ImageParam x = operandParam(op, 0, "x");
  k.inputs = {x};
  int64_t rank = op.result()->type.rank();
  std::vector<Var> v = vars(rank);
  std::vector<Expr> at = exprs(v);
  const Ints& starts = *op.attr<Ints>("starts");
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t axis = op.attr<Ints>("axes") ? (*op.attr<Ints>("axes"))[i] : static_cast<int64_t>(i);
    int64_t step = op.attr<Ints>("steps") ? (*op.attr<Ints>("steps"))[i] : 1;
    int d = halideDim(axis, rank);
    Expr extent = x.dim(d).extent();
    Expr start = clampToInt(starts[i]);
    start = select(start < 0, max(start + extent, 0), start);
    start = step > 0 ? min(start, extent) : min(start, extent - 1);
    at[d] = start + v[d] * clampToInt(step);
  }
  k.output = Func("out");
  k.output(v) = x(at);
  scheduleElementwise(k.output, v, target);
  return k;
}

// range(start, limit, delta): start + i * delta, as many as the result holds.
Kernel range(const Op& op, TargetKind) {
  Kernel k;
  k.name = "range";
  for (size_t i = 0; i < 3; ++i)
    k.inputs.push_back(operandParam(op, i, "in" + std::to_string(i)));
  Var i("i");
  k.output = Func("out");
  Expr start = widen(k.inputs[0]()), delta = widen(k.inputs[2]());
  k.output(i) =
      cast(halideType(op.result()->type.elementType), start + cast(start.type(), i) * delta);
  return k;
}

// shape(x): x's extents, outermost first.
Kernel shape(const Op& op, TargetKind) {
  Kernel k;
  k.name = "shape";
  ImageParam x = operandParam(op, 0, "x");
  k.inputs = {x};
  Var i("i");
  int rank = x.dimensions();
  Expr value = cast<int64_t>(x.dim(0).extent());
  for (int t = 1; t < rank; ++t) // tensor dim t is Halide dim rank-1-t
    value = select(i == rank - 1 - t, cast<int64_t>(x.dim(t).extent()), value);
  k.output = Func("out");
  k.output(i) = value;
  return k;
}

// kv_cache_append, lowered in place: a copy of the new rows (operand 1) to where the caller's
// result buffer says they go in the cache region; the past rows are already there.
Kernel cacheRows(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "kv_cache_append";
  ImageParam rows = operandParam(op, 1, "rows");
  k.inputs = {rows};
  std::vector<Var> v = vars(4);
  k.output = Func("out");
  k.output(v) = rows(exprs(v));
  scheduleElementwise(k.output, v, target);
  return k;
}

} // namespace gemma::kernels
