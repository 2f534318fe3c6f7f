#include "backend/halide/Kernels.h"

#include "ir/Rotary.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gemma {

namespace {

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

} // namespace

bool hasPermutedStorage(const Value& value) {
  return value.definingOp && value.definingOp->kind == OpKind::Weight &&
         value.definingOp->attr<Ints>("perm");
}

std::vector<int64_t> storageStrides(const Value& value) {
  const TensorType& type = value.type;
  size_t rank = static_cast<size_t>(type.rank());
  std::vector<int64_t> strides(rank, 1);
  if (!hasPermutedStorage(value)) {
    for (size_t d = rank; d-- > 1;)
      strides[d - 1] = strides[d] * (type.dims[d].isStatic() ? type.dims[d].staticValue() : 0);
    return strides;
  }
  // Stored dim perm[i] is the value's dim i: row-major strides of the stored shape, permuted.
  const Ints& perm = *value.definingOp->attr<Ints>("perm");
  TensorType stored = storedWeightType(*value.definingOp);
  std::vector<int64_t> storedStrides(rank, 1);
  for (size_t d = rank; d-- > 1;)
    storedStrides[d - 1] = storedStrides[d] * stored.dims[d].staticValue();
  for (size_t i = 0; i < rank; ++i)
    strides[i] = storedStrides[static_cast<size_t>(perm[i])];
  return strides;
}

namespace {

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

// Elementwise ops, comparisons, logic, where, cast and expand, with numpy broadcasting.
Kernel elementwise(const Op& op, TargetKind target) {
  Kernel k;
  k.name = std::string(op.mnemonic());
  size_t operands = op.kind == OpKind::Expand ? 1 : op.operands.size();
  for (size_t i = 0; i < op.operands.size(); ++i)
    k.inputs.push_back(operandParam(op, i, "in" + std::to_string(i)));
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Expr> args;
  for (size_t i = 0; i < operands; ++i)
    args.push_back(widen(broadcastRead(k.inputs[i], exprs(v))));
  Expr a = args[0], b = args.size() > 1 ? args[1] : Expr();
  Type resultType = halideType(op.result()->type.elementType);
  auto truth = [](Expr e) { return e != Internal::make_zero(e.type()); };
  auto boolean = [](Expr e) { return select(e, 1, 0); };
  Expr value;
  switch (op.kind) {
  case OpKind::Add:
    value = a + b;
    break;
  case OpKind::Sub:
    value = a - b;
    break;
  case OpKind::Mul:
    value = a * b;
    break;
  case OpKind::Div:
    // Integer division truncates toward zero (Halide's rounds down).
    value = a.type().is_float() ? a / b : cast<int64_t>(trunc(cast<double>(a) / cast<double>(b)));
    break;
  case OpKind::Pow:
    value = pow(a, b);
    break;
  case OpKind::Max:
    value = max(a, b);
    break;
  case OpKind::Min:
    value = min(a, b);
    break;
  case OpKind::Neg:
    value = -a;
    break;
  case OpKind::Exp:
    value = exp(a);
    break;
  case OpKind::Tanh:
    value = tanh(a);
    break;
  case OpKind::Erf:
    value = erf(a);
    break;
  case OpKind::Cos:
    value = cos(a);
    break;
  case OpKind::Sin:
    value = sin(a);
    break;
  case OpKind::Sqrt:
    value = sqrt(a);
    break;
  case OpKind::Rsqrt:
    value = 1.0f / sqrt(a);
    break;
  case OpKind::Reciprocal:
    value = 1.0f / a;
    break;
  case OpKind::Gelu: {
    const std::string* approximate = op.attr<std::string>("approximate");
    value = gelu(a, approximate && *approximate == "tanh");
    break;
  }
  case OpKind::Cast:
    // Float to integer truncates; anything to bool is != 0.
    value = op.result()->type.elementType == ElementType::Bool
                ? boolean(truth(a))
                : (resultType.is_float() || a.type().is_int() ? a : trunc(a));
    break;
  case OpKind::Equal:
    value = boolean(a == b);
    break;
  case OpKind::Less:
    value = boolean(a < b);
    break;
  case OpKind::LessEqual:
    value = boolean(a <= b);
    break;
  case OpKind::Greater:
    value = boolean(a > b);
    break;
  case OpKind::GreaterEqual:
    value = boolean(a >= b);
    break;
  case OpKind::And:
    value = boolean(truth(a) && truth(b));
    break;
  case OpKind::Or:
    value = boolean(truth(a) || truth(b));
    break;
  case OpKind::Xor:
    value = boolean(truth(a) != truth(b));
    break;
  case OpKind::Not:
    value = boolean(!truth(a));
    break;
  case OpKind::IsNan:
    value = boolean(is_nan(a));
    break;
  case OpKind::Where:
    value = select(truth(a), b, args[2]);
    break;
  case OpKind::Expand:
    value = a;
    break;
  default:
    throw UserError(op.loc, "no kernel for '" + std::string(op.mnemonic()) + "'");
  }
  k.output = Func("out");
  k.output(v) = cast(resultType, value);
  scheduleElementwise(k.output, v, target);
  return k;
}

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

// Schedules out(v) = f(dots(v)...), each dot(v) = sum over its RDom r (of reductionLength) of
// x(r, rows) * w(v0, r) with w contiguous along r (a weight row). Tasks of kPanelsPerTask panels
// of kPanel outputs across the cores; in a task, the rows in chunks whose activations stay in L2,
// and for each chunk and panel, the chunk's dot products kRowBlock rows at a time: a kPanel x
// kRowBlock tile of vector accumulators held in registers while the weight and activation rows
// stream through it (rfactor along r, the lanes summed at the end). A panel's weight rows are read
// from memory once per chunk, a chunk's activations once per task. A single row (decode, or the
// last row alone) gets a tile of one row. `rows` is how many rows the call computes; reads past
// the last output or row must be clamped by the definition (panels and blocks round up).
void scheduleDotProducts(Func out, const std::vector<std::pair<Func, RDom>>& dots,
                         const std::vector<Var>& v, int64_t reductionLength, const Expr& rows,
                         TargetKind target) {
  constexpr int kPanel = 4, kRowBlock = 4, kPanelsPerTask = 16;
  // Rows in chunks whose activations (kChunkBytes of f32, half of L2) stay in cache while every
  // panel of a task reads them: 64 rows of gemma-2b's 2048 features, 16 of its MLP's 16384.
  // (KernelBench's GatedMlp/512: 0.25 MiB 119, 0.5 MiB 138, 1 MiB 156, 2 MiB 138 GFLOP/s.)
  constexpr int64_t kChunkBytes = 1024 * 1024;
  int kRowChunk = static_cast<int>(std::clamp<int64_t>(
      kChunkBytes / (4 * std::max<int64_t>(reductionLength, 1)) / kRowBlock * kRowBlock, kRowBlock,
      64));
  int lanes = vectorLanes(target);
  Var panel("panel"), column("column");
  out.split(v[0], panel, column, kPanel, TailStrategy::GuardWithIf);
  // Tasks of kPanelsPerTask panels: a 256k-entry vocabulary is 64k panels, too fine to hand out
  // one by one.
  Var task("task"), chunk("row_chunk"), inChunk("row_in_chunk");
  out.split(panel, task, panel, kPanelsPerTask, TailStrategy::GuardWithIf).parallel(task);
  std::vector<VarOrRVar> order = {column};
  if (v.size() > 1) {
    out.split(v[1], chunk, inChunk, kRowChunk, TailStrategy::GuardWithIf);
    order.push_back(inChunk);
  }
  order.push_back(panel);
  if (v.size() > 1)
    order.push_back(chunk);
  order.push_back(task);
  // Batch dims outermost: a panel's accumulators then hold one batch index's chunk of rows, a
  // constant bound, and go on the stack instead of a heap allocation per panel.
  order.insert(order.end(), v.begin() + std::min<size_t>(v.size(), 2), v.end());
  out.reorder(order);
  for (const auto& [dotFunc, r] : dots) {
    Func dot = dotFunc;
    RVar outer("k_outer"), inner("k_inner");
    Var lane("lane");
    dot.update().split(r.x, outer, inner, lanes, TailStrategy::GuardWithIf);
    Func partial = dot.update().rfactor(inner, lane);
    dot.compute_at(out, panel);
    std::vector<Var> storage = {lane}; // the lanes innermost: whole-vector loads and stores
    storage.insert(storage.end(), v.begin(), v.end());
    partial.compute_at(out, panel).reorder_storage(storage).vectorize(lane);
    partial.bound_extent(v[0], kPanel);
    for (Func f : {dot, partial}) {
      f.bound_storage(v[0], kPanel);
      if (v.size() > 1)
        f.bound_storage(v[1], kRowChunk);
      for (size_t d = 2; d < v.size(); ++d)
        f.bound_storage(v[d], 1);
    }
    Stage update = partial.update();
    if (v.size() == 1) {
      update.reorder(lane, v[0], outer).vectorize(lane).unroll(v[0]);
      continue;
    }
    // The row loop outside the k loop: its extent is 1 at run time but not to the compiler,
    // and inside the k loop it would keep the accumulators in memory.
    std::vector<VarOrRVar> single = {lane, v[0], outer, v[1]};
    single.insert(single.end(), v.begin() + 2, v.end());
    update.specialize(rows == 1).reorder(single).vectorize(lane).unroll(v[0]);
    Var block("row_block"), row("row");
    update.split(v[1], block, row, kRowBlock, TailStrategy::GuardWithIf);
    std::vector<VarOrRVar> tiled = {lane, v[0], row, outer, block};
    tiled.insert(tiled.end(), v.begin() + 2, v.end());
    update.reorder(tiled).vectorize(lane).unroll(v[0]).unroll(row);
  }
}

// matmul [..., M, K] x [..., K, N], ONNX's (numpy's) batched product with broadcast batch dims:
// the model's projections (a 2-D right operand) and, with fusions off, attention's QK^T and PV.
// Rows of the result in parallel. (Decode-shaped matvec schedules are the performance issue's.)
Kernel matmul(const Op& op, TargetKind target) {
  const TensorType& result = op.result()->type;
  Kernel k;
  k.name = "matmul";
  ImageParam a = operandParam(op, 0, "a"), b = operandParam(op, 1, "b");
  k.inputs = {a, b};
  std::vector<Var> v = vars(result.rank()); // v[0] = n, v[1] = m, then the batch dims
  RDom r(0, a.dim(0).extent());
  // An operand's batch dims align with the result's from the innermost; a dim of 1 broadcasts.
  auto at = [&](const Value* operand, Expr inner, Expr outer) {
    std::vector<Expr> coordinates = {std::move(inner), std::move(outer)};
    size_t rank = operand->type.rank();
    for (size_t d = 2; d < rank; ++d) {
      const Dim& dim = operand->type.dims[rank - 1 - d];
      const Dim& out = result.dims[result.rank() - 1 - d];
      bool broadcast =
          dim.isStatic() && dim.staticValue() == 1 && !(out.isStatic() && out.staticValue() == 1);
      coordinates.push_back(broadcast ? Expr(0) : Expr(v[d]));
    }
    return coordinates;
  };
  // The panels and row blocks below may reach past the last column or row: those read the edge
  // (Halide keeps the clamp out of the steady-state loop) and are never stored.
  Func aEdge = BoundaryConditions::repeat_edge(a), bEdge = BoundaryConditions::repeat_edge(b);
  Func dot("dot");
  dot(v) = 0.0f;
  dot(v) +=
      toF32(aEdge(at(op.operands[0], r.x, v[1]))) * toF32(bEdge(at(op.operands[1], v[0], r.x)));
  k.output = Func("out");
  k.output(v) = cast(halideType(result.elementType), dot(v));
  if (op.operands[1]->type.rank() == 2 && hasPermutedStorage(*op.operands[1])) {
    // A projection with torch's [out, in] weight, read in place: each output a dot product over
    // a contiguous weight row.
    scheduleDotProducts(k.output, {{dot, r}}, v, staticExtent(op.operands[0]->type.dims.back()),
                        k.output.output_buffer().dim(1).extent(), target);
    return k;
  }
  // Columns in panels of kPanelVectors vectors, the panels across the cores; in a panel, rows in
  // blocks of kRowBlock: for each k, one panel row of b (contiguous) is loaded once and
  // accumulated into every row of the block. Decode (one row) streams b panel by panel, prefill
  // reuses each loaded row of b kRowBlock times.
  constexpr int kPanelVectors = 4, kRowBlock = 4;
  int lanes = vectorLanes(target);
  Var panel("panel"), column("column"), rowBlock("row_block"), row("row");
  k.output.split(v[0], panel, column, lanes * kPanelVectors, TailStrategy::GuardWithIf)
      .split(v[1], rowBlock, row, kRowBlock, TailStrategy::GuardWithIf);
  std::vector<VarOrRVar> order = {column, row, rowBlock};
  order.insert(order.end(), v.begin() + 2, v.end());
  order.push_back(panel);
  k.output.reorder(order).vectorize(column, lanes).parallel(panel);
  dot.compute_at(k.output, rowBlock).vectorize(v[0], lanes);
  dot.update().reorder(v[0], v[1], r.x).vectorize(v[0], lanes);
  return k;
}

// gather(data, indices) {axis}: ONNX Gather; an embedding lookup is axis 0 of a [V, D] table.
// Halide dims of the result: data's dims inside the axis, then the indices', then data's outer.
Kernel gather(const Op& op, TargetKind target) {
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
    std::vector<double> inverse = rotaryInverseFrequencies(*op.attr<double>("theta"), headDim);
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

// Attention for one (batch, head, query) row at a time: scores over the cache, softmax, and the
// weighted sum of values; query head n reads kv head n / (N/K).
Kernel attention(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "attention";
  ImageParam q = operandParam(op, 0, "q"), key = operandParam(op, 1, "k"),
             value = operandParam(op, 2, "v");
  k.inputs = {q, key, value};
  Var h("h"), t("t"), s("s"), n("n"), b("b");
  int groups = static_cast<int>(*op.attr<int64_t>("num_heads") / *op.attr<int64_t>("num_kv_heads"));
  Expr headDim = q.dim(0).extent(), total = key.dim(1).extent(), seq = q.dim(1).extent();
  RDom rh(0, headDim);
  Func scores("scores");
  // Scores are computed in whole vectors past the last key (RoundUp below): reads clamp to it.
  Expr tc = clamp(t, 0, total - 1);
  // The dot products in a Func of their own: an inline reduction under the window's select gets
  // its bounds from the select's condition in Halide 14, and writes out of them.
  Func dots("dots");
  dots(t, s, n, b) = 0.0f;
  dots(t, s, n, b) += toF32(q(rh, s, n, b)) * toF32(key(rh, tc, n / groups, b));
  Expr score = dots(t, s, n, b) * static_cast<float>(*op.attr<double>("scale"));
  const double* softcap = op.attr<double>("softcap");
  if (softcap && *softcap > 0)
    score = vectorTanh(score / static_cast<float>(*softcap)) * static_cast<float>(*softcap);
  if (op.operands.size() == 4) {
    ImageParam bias = operandParam(op, 3, "bias");
    k.inputs.push_back(bias);
    score += toF32(broadcastRead(bias, {tc, s, n, b}));
  }
  const int64_t* window = op.attr<int64_t>("window");
  if (window && *window > 0)
    score = select((total - seq + s) - t >= static_cast<int>(*window),
                   std::numeric_limits<float>::lowest(), score);
  scores(t, s, n, b) = score;
  RDom rt(0, total);
  Func rowMax("row_max"), weights("weights"), rowSum("row_sum");
  rowMax(s, n, b) = maximum(scores(rt, s, n, b));
  weights(t, s, n, b) = exp(scores(t, s, n, b) - rowMax(s, n, b));
  rowSum(s, n, b) = sum(weights(rt, s, n, b));
  Func context("context");
  const bool* nanWeightsToZero = op.attr<bool>("nan_weights_to_zero");
  if (nanWeightsToZero && *nanWeightsToZero) {
    // The guard of torch's SDPA export: a row masked everywhere (its largest score -inf) has NaN
    // weights, which become 0. Tested on the bits: Halide's float math assumes no NaNs or infs.
    Expr maskedEverywhere = reinterpret<uint32_t>(rowMax(s, n, b)) == Expr(0xff800000u);
    context(h, s, n, b) =
        select(maskedEverywhere, 0.0f,
               sum(weights(rt, s, n, b) * toF32(value(h, rt, n / groups, b))) / rowSum(s, n, b));
  } else {
    context(h, s, n, b) =
        sum(weights(rt, s, n, b) * toF32(value(h, rt, n / groups, b))) / rowSum(s, n, b);
  }
  k.output = Func("out");
  k.output(h, s, n, b) = cast(halideType(op.result()->type.elementType), context(h, s, n, b));
  int lanes = vectorLanes(target);
  k.output.vectorize(h, lanes, TailStrategy::GuardWithIf).parallel(b).parallel(n);
  // Each row of scores in whole vectors: RoundUp pads the row buffers (the key reads clamp).
  for (Func f : {scores, weights})
    f.compute_at(k.output, s).vectorize(t, lanes, TailStrategy::RoundUp);
  // The query-key dot products along the head dim, which is contiguous in both (vectorized across
  // keys, each lane would gather a key's element a head dim apart): lane partial sums for
  // kKeyTile keys at a time, in registers, summed across the lanes at the end.
  constexpr int kKeyTile = 4;
  RVar outer("h_outer"), inner("h_inner");
  Var lane("lane"), tile("key_tile"), key_("key");
  dots.update().split(rh.x, outer, inner, lanes, TailStrategy::GuardWithIf);
  Func partial = dots.update().rfactor(inner, lane);
  dots.compute_at(k.output, s).bound_extent(t, (total + lanes - 1) / lanes * lanes);
  partial.compute_at(k.output, s).reorder_storage(lane, t, s, n, b).vectorize(lane);
  partial.update()
      .split(t, tile, key_, kKeyTile, TailStrategy::GuardWithIf)
      .reorder(lane, key_, outer, tile)
      .vectorize(lane)
      .unroll(key_);
  for (Func f : {rowMax, rowSum})
    f.compute_at(k.output, s);
  return k;
}

// down(act(x gate) * (x up)) for rows of x [..., D]; gate, up [D, I], down [I, D'].
Kernel gatedMlp(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "gated_mlp";
  ImageParam x = operandParam(op, 0, "x"), gate = operandParam(op, 1, "gate"),
             up = operandParam(op, 2, "up"), down = operandParam(op, 3, "down");
  k.inputs = {x, gate, up, down};
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Var> rows(v.begin() + 1, v.end());
  Var i("i");
  RDom rd(0, x.dim(0).extent());
  std::vector<Expr> xAt = {rd.x};
  xAt.insert(xAt.end(), rows.begin(), rows.end());
  std::vector<Var> iRows = {i};
  iRows.insert(iRows.end(), rows.begin(), rows.end());
  bool tanhApproximation = *op.attr<std::string>("activation") == "gelu_tanh";
  RDom ri(0, gate.dim(0).extent());
  std::vector<Expr> gAt = {ri.x};
  gAt.insert(gAt.end(), rows.begin(), rows.end());
  if (hasPermutedStorage(*op.operands[1]) && hasPermutedStorage(*op.operands[2]) &&
      hasPermutedStorage(*op.operands[3])) {
    // torch's [out, in] weights read in place: both halves as dot products over contiguous
    // weight rows. The gated activations of all rows first (parallel over their features), then
    // the down projection (parallel over its outputs).
    Func xEdge = BoundaryConditions::repeat_edge(x),
         gateEdge = BoundaryConditions::repeat_edge(gate),
         upEdge = BoundaryConditions::repeat_edge(up),
         downEdge = BoundaryConditions::repeat_edge(down);
    Func gateDot("gate_dot"), upDot("up_dot"), gatedRows("gated_rows"), down_("down_dot");
    gateDot(iRows) = 0.0f;
    gateDot(iRows) += toF32(xEdge(xAt)) * toF32(gateEdge(i, rd.x));
    upDot(iRows) = 0.0f;
    upDot(iRows) += toF32(xEdge(xAt)) * toF32(upEdge(i, rd.x));
    gatedRows(iRows) = gelu(gateDot(iRows), tanhApproximation) * upDot(iRows);
    Func gatedEdge = BoundaryConditions::repeat_edge(gatedRows, {{0, gate.dim(0).extent()}});
    down_(v) = 0.0f;
    down_(v) += gatedEdge(gAt) * toF32(downEdge(v[0], ri.x));
    k.output = Func("out");
    k.output(v) = cast(halideType(op.result()->type.elementType), down_(v));
    std::vector<Var> gatedVars = iRows;
    gatedRows.compute_root();
    bool hasRows = v.size() > 1;
    scheduleDotProducts(gatedRows, {{gateDot, rd}, {upDot, rd}}, gatedVars,
                        staticExtent(op.operands[0]->type.dims.back()),
                        hasRows ? x.dim(1).extent() : Expr(1), target);
    scheduleDotProducts(k.output, {{down_, ri}}, v, staticExtent(op.operands[3]->type.dims[0]),
                        hasRows ? k.output.output_buffer().dim(1).extent() : Expr(1), target);
    return k;
  }
  // Weights stored [in, out] (an ONNX MatMul's): vectorised across the features.
  Func gated("gated"), projected("projected");
  projected(iRows) = {sum(toF32(x(xAt)) * toF32(gate(i, rd))),
                      sum(toF32(x(xAt)) * toF32(up(i, rd)))};
  gated(iRows) = gelu(projected(iRows)[0], tanhApproximation) * projected(iRows)[1];
  k.output = Func("out");
  k.output(v) =
      cast(halideType(op.result()->type.elementType), sum(gated(gAt) * toF32(down(v[0], ri))));
  int lanes = vectorLanes(target);
  k.output.vectorize(v[0], lanes, TailStrategy::GuardWithIf);
  if (!rows.empty()) {
    k.output.parallel(v.back());
    gated.compute_at(k.output, rows[0]).vectorize(i, lanes, TailStrategy::GuardWithIf);
    projected.compute_at(k.output, rows[0]).vectorize(i, lanes, TailStrategy::GuardWithIf);
  }
  return k;
}

// softmax over the innermost axis.
Kernel softmax(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "softmax";
  ImageParam x = operandParam(op, 0, "x");
  k.inputs = {x};
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Var> rows(v.begin() + 1, v.end());
  RDom r(0, x.dim(0).extent());
  std::vector<Expr> at = {r.x};
  at.insert(at.end(), rows.begin(), rows.end());
  Func rowMax("row_max"), rowSum("row_sum");
  rowMax(rows) = maximum(toF32(x(at)));
  rowSum(rows) = sum(exp(toF32(x(at)) - rowMax(rows)));
  k.output = Func("out");
  k.output(v) = cast(halideType(op.result()->type.elementType),
                     exp(toF32(x(exprs(v))) - rowMax(rows)) / rowSum(rows));
  scheduleElementwise(k.output, v, target);
  if (!rows.empty()) {
    rowMax.compute_at(k.output, rows[0]);
    rowSum.compute_at(k.output, rows[0]);
  }
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

} // namespace

Halide::Type halideType(ElementType type) {
  using namespace Halide;
  switch (type) {
  case ElementType::F32:
    return Float(32);
  case ElementType::BF16:
    return BFloat(16);
  case ElementType::F16:
    return Float(16);
  case ElementType::I64:
    return Int(64);
  case ElementType::I32:
    return Int(32);
  case ElementType::I8:
    return Int(8);
  case ElementType::Bool:
    return UInt(8);
  }
  return Float(32);
}

std::vector<Halide::Argument> Kernel::arguments() const {
  return std::vector<Halide::Argument>(inputs.begin(), inputs.end());
}

void compileKernelToObject(const Kernel& kernel, const std::string& objectPath,
                           const std::string& functionName, TargetKind target) {
  Halide::Func output = kernel.output; // a handle: compiling does not change the pipeline
  output.compile_to_object(objectPath, kernel.arguments(), functionName,
                           halideTarget(target).with_feature(Halide::Target::NoRuntime));
}

void compileHalideRuntime(const std::string& objectPath, TargetKind target) {
  Halide::compile_standalone_runtime(objectPath, halideTarget(target));
}

bool hasKernel(const Op& op) {
  // Every element type: f32, bf16 and f16 (read into f32, rounded once when written), integers
  // and bool.
  switch (op.kind) {
  case OpKind::Constant:
  case OpKind::Weight:
    return false; // data, not computation
  case OpKind::Reshape:
  case OpKind::Squeeze:
  case OpKind::Unsqueeze:
    return false; // views: the program reads their operand's buffer (plan-memory shares it)
  case OpKind::Softmax: {
    int64_t axis = *op.attr<int64_t>("axis");
    return axis == -1 || axis == op.operands[0]->type.rank() - 1;
  }
  case OpKind::MatMul: // ONNX MatMul of two matrices or stacks of them (no 1-D operand)
    return op.operands[0]->type.rank() >= 2 && op.operands[1]->type.rank() >= 2;
  default:
    return true;
  }
}

Kernel buildKernel(const Op& op, TargetKind target) {
  if (!hasKernel(op))
    throw UserError(op.loc, "no Halide kernel for '" + std::string(op.mnemonic()) +
                                "' with these types yet");
  switch (op.kind) {
  case OpKind::RmsNorm:
    return rmsNorm(op, target);
  case OpKind::MatMul:
    return matmul(op, target);
  case OpKind::Gather:
    return gather(op, target);
  case OpKind::Rotary:
    return rotary(op, target);
  case OpKind::Attention:
    return attention(op, target);
  case OpKind::GatedMlp:
    return gatedMlp(op, target);
  case OpKind::Softmax:
    return softmax(op, target);
  case OpKind::Transpose:
    return transpose(op, target);
  case OpKind::Concat:
    return concatenate(op, target, *op.attr<int64_t>("axis"));
  case OpKind::KVCacheAppend:
    return cacheRows(op, target);
  case OpKind::Slice:
    return slice(op, target);
  case OpKind::ReduceMean:
  case OpKind::ReduceSum:
  case OpKind::ReduceMax:
    return reduce(op, target);
  case OpKind::ArgMax:
    return argMax(op, target);
  case OpKind::CumSum:
    return cumulativeSum(op, target);
  case OpKind::Range:
    return range(op, target);
  case OpKind::Shape:
    return shape(op, target);
  default:
    return elementwise(op, target);
  }
}

} // namespace gemma
