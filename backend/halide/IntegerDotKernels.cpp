// The fast arithmetic (--arithmetic fast): dot products of block-quantized weights with
// activations quantized to int8, as llama.cpp computes them. Each row of activations is cut into
// blocks of 32 and each block rounded to int8 with its own f32 scale (llama.cpp's
// quantize_row_q8_0: scale max|x| / 127, quants roundf(x / scale)); a weight block's quants
// (unsigned, with the type's offset: Q8_0's quants + 128, Q4_0's as stored) multiply
// the activation quants in AVX512-VNNI's vpdpbusd, a block's 32 products into 8 i32 lanes, and
// each block's integer sum is scaled once by both blocks' scales. Exact arithmetic (the default,
// DotProductKernels.cpp) instead decodes every weight to f32.
#include "backend/halide/KernelBuilders.h"
#include "ir/ElementCodec.h"

namespace gemma::kernels {

using namespace Halide;

namespace {

constexpr int kActivationBlock = 32; // Q8_0's block: the activations' quantization unit

// roundf: to nearest, ties away from zero (Halide's round ties to even). |v| <= 127 here, so
// v - trunc(v) is exact.
Expr roundHalfAway(const Expr& v) {
  Expr whole = trunc(v);
  return select(abs(v - whole) >= 0.5f, whole + select(v < 0.0f, -1.0f, 1.0f), whole);
}

// A matrix of activations (k, rows...) quantized per block of 32 along k: scale(b, rows...) and
// quant(k, rows...) (i8), and laneSum(j, rows...): the sum of quants 4j .. 4j + 3, what an
// unsigned weight quant's offset times the activations adds to one vpdpbusd lane.
struct QuantizedActivations {
  Func scale, quant, laneSum;
};

QuantizedActivations quantizeActivations(const std::string& name,
                                         const std::function<Expr(Expr)>& xAt,
                                         const std::vector<Var>& rowVars) {
  Var k("k"), b("b"), j("j");
  auto at = [&](const Var& first) {
    std::vector<Var> args = {first};
    args.insert(args.end(), rowVars.begin(), rowVars.end());
    return args;
  };
  auto call = [&](const Func& f, Expr first) {
    std::vector<Expr> args = {std::move(first)};
    args.insert(args.end(), rowVars.begin(), rowVars.end());
    return f(args);
  };
  // xAt reads element k of the row at rowVars.
  Func absMax(name + "_abs_max"), inverse(name + "_inverse");
  QuantizedActivations q{Func(name + "_scale"), Func(name + "_quant"), Func(name + "_lane_sum")};
  RDom inBlock(0, kActivationBlock, name + "_in_block");
  absMax(at(b)) = maximum(abs(xAt(b * kActivationBlock + inBlock.x)));
  q.scale(at(b)) = call(absMax, b) / 127.0f;
  inverse(at(b)) = select(call(q.scale, b) == 0.0f, 0.0f, 1.0f / call(q.scale, b));
  q.quant(at(k)) = cast<int8_t>(
      clamp(roundHalfAway(xAt(k) * call(inverse, k / kActivationBlock)), -127.0f, 127.0f));
  q.laneSum(at(j)) = cast<int32_t>(call(q.quant, 4 * j)) + cast<int32_t>(call(q.quant, 4 * j + 1)) +
                     cast<int32_t>(call(q.quant, 4 * j + 2)) +
                     cast<int32_t>(call(q.quant, 4 * j + 3));
  return q;
}

// The quants of block `block` of a weight row, as unsigned bytes whose value minus `offset` is the
// signed quant: element 16 group + inGroup of the block.
struct UnsignedQuant {
  Expr value;
  int offset;
};

UnsignedQuant unsignedQuant(ElementType type, const std::function<Expr(Expr)>& byteAt,
                            const Expr& blockBase, const Expr& group, const Expr& inGroup) {
  auto u8At = [&](Expr offset) { return byteAt(blockBase + offset); };
  switch (type) {
  case ElementType::Q8_0: // i8 quants: flipping the sign bit adds 128
    return {u8At(2 + 16 * group + inGroup) ^ cast<uint8_t>(0x80), 128};
  case ElementType::Q4_0: { // element i < 16: byte i's low nibble, i >= 16: byte i - 16's high
    Expr byte = u8At(2 + inGroup);
    return {select(group == 0, byte & cast<uint8_t>(0x0F), byte >> cast<uint8_t>(4)), 8};
  }
  default:
    break;
  }
  throw InternalError("the fast arithmetic has no integer dot product for " +
                      std::string(elementTypeName(type)));
}

// One output's dot product over a weight row in int8: a block (32 elements) a step, in 8 lanes
// (l4, g) that each sum 4 products (r) in one vpdpbusd, then scaled by both blocks' scales into
// f32 lanes (partial), and the lanes summed (dot). `v` are the result's vars (v[0] the weight
// row).
struct IntegerDot {
  Func dot, partial, integerSum, scale;
  ImageParam weight;
  Var l4, g, blockVar;
  RVar block;  // the reduction over the row's blocks
  RVar inLane; // the 4 products of a lane
};

IntegerDot integerDot(const std::string& name, const BlockWeight& w, const QuantizedActivations& x,
                      const std::vector<Var>& v) {
  IntegerDot d;
  d.weight = w.bytes;
  d.l4 = Var("l4");
  d.g = Var("g");
  d.blockVar = Var("block");
  std::vector<Var> rowVars(v.begin() + 1, v.end());
  auto withRows = [&](std::vector<Expr> first) {
    first.insert(first.end(), rowVars.begin(), rowVars.end());
    return first;
  };
  auto varsWithRows = [&](std::vector<Var> first) {
    first.insert(first.end(), rowVars.begin(), rowVars.end());
    return first;
  };
  RDom r(0, 4, name + "_in_lane");
  RDom blocks(0, clampToInt(w.rowElements / kActivationBlock), name + "_blocks");
  d.inLane = RVar(r.x);
  d.block = RVar(blocks.x);
  // Element k = 32 block + 16 g + 4 l4 + r of the row.
  Expr base = d.blockVar * clampToInt(w.blockBytes);
  Expr inGroup = 4 * d.l4 + r.x;
  UnsignedQuant u = unsignedQuant(w.type, w.rowBytes(v[0]), base, d.g, inGroup);
  Expr k = kActivationBlock * d.blockVar + 16 * d.g + inGroup;
  d.integerSum = Func(name + "_integer_sum");
  std::vector<Var> sumVars = varsWithRows({d.l4, d.g, d.blockVar, v[0]});
  d.integerSum(sumVars) = 0;
  d.integerSum(sumVars) += cast<int32_t>(u.value) * cast<int32_t>(x.quant(withRows({k})));
  // Both blocks' scales, once per block and row.
  std::function<Expr(Expr)> bytes = w.rowBytes(v[0]);
  d.scale = Func(name + "_scale");
  std::vector<Var> scaleVars = varsWithRows({d.blockVar, v[0]});
  d.scale(scaleVars) =
      halfToFloat(cast<uint16_t>(bytes(base)) | (cast<uint16_t>(bytes(base + 1)) << 8)) *
      x.scale(withRows({d.blockVar}));
  // Per lane: the integer sum less the offset's share (lane j sums elements 4j .. 4j + 3).
  Expr lane = 8 * d.blockVar + 4 * d.g + d.l4;
  Expr corrected = d.integerSum(sumVars) - u.offset * x.laneSum(withRows({lane}));
  Expr term = cast<float>(corrected) * d.scale(scaleVars);
  d.partial = Func(name + "_lanes");
  std::vector<Var> laneVars = varsWithRows({d.l4, d.g, v[0]});
  d.partial(laneVars) = 0.0f;
  d.partial(laneVars) += substitute(d.blockVar.name(), blocks.x, term);
  RDom lanes(0, 4, 0, 2, name + "_lane");
  d.dot = Func(name);
  d.dot(v) = 0.0f;
  d.dot(v) += d.partial(withRows({lanes.x, lanes.y, v[0]}));
  return d;
}

// Schedules out(v) over integer dot products as scheduleLaneDots does f32 ones: tasks of panels of
// kPanel weight rows across the cores; in a panel, a kPanel x kRowBlock tile of f32 lane
// accumulators (one row in decode) while the blocks stream through; each block's integer sums
// computed for the whole tile first.
void scheduleIntegerDots(Func out, const std::vector<IntegerDot>& dots, const std::vector<Var>& v,
                         const Expr& rows) {
  constexpr int kPanel = 4, kRowBlock = 4, kPanelsPerTask = 16, kPrefetchPanels = 2;
  Var panel("panel"), column("column"), task("task");
  out.split(v[0], panel, column, kPanel, TailStrategy::GuardWithIf);
  out.split(panel, task, panel, kPanelsPerTask, TailStrategy::GuardWithIf).parallel(task);
  std::vector<VarOrRVar> order = {column};
  Var chunk("row_chunk"), inChunk("row_in_chunk");
  if (v.size() > 1) {
    out.split(v[1], chunk, inChunk, 64, TailStrategy::GuardWithIf);
    order.push_back(inChunk);
  }
  order.push_back(panel);
  if (v.size() > 1)
    order.push_back(chunk);
  order.push_back(task);
  order.insert(order.end(), v.begin() + std::min<size_t>(v.size(), 2), v.end());
  out.reorder(order);
  for (IntegerDot d : dots) { // (Funcs are handles: a copy schedules the same one)
    // The weight rows two panels ahead (rows of 20 blocks are too short a stream for the
    // hardware prefetchers to learn; compileKernelToObject makes these prefetcht0).
    // (In decode: many rows reuse each panel from cache.)
    Stage decode = v.size() > 1 ? Stage(out.specialize(rows == 1)) : Stage(out);
    decode.prefetch(d.weight, panel, panel, kPrefetchPanels);
    d.dot.compute_at(out, panel);
    std::vector<Var> storage = {d.l4, d.g};
    storage.insert(storage.end(), v.begin(), v.end());
    d.partial.compute_at(out, panel).reorder_storage(storage).vectorize(d.l4).vectorize(d.g);
    d.partial.bound_extent(v[0], kPanel);
    for (Func f : {d.dot, d.partial}) {
      f.bound_storage(v[0], kPanel);
      if (v.size() > 1)
        f.bound_storage(v[1], 64);
      for (size_t i = 2; i < v.size(); ++i)
        f.bound_storage(v[i], 1);
    }
    Stage update = d.partial.update();
    Var block("row_block"), row("row");
    auto vectorized = [&](Stage s) { s.vectorize(d.l4).vectorize(d.g); };
    if (v.size() == 1) {
      update.reorder(d.l4, d.g, v[0], d.block);
      vectorized(update);
      update.unroll(v[0]);
    } else {
      std::vector<VarOrRVar> single = {d.l4, d.g, v[0], d.block, v[1]};
      single.insert(single.end(), v.begin() + 2, v.end());
      Stage one = update.specialize(rows == 1);
      one.reorder(single);
      vectorized(one);
      one.unroll(v[0]);
      update.split(v[1], block, row, kRowBlock, TailStrategy::GuardWithIf);
      std::vector<VarOrRVar> tiled = {d.l4, d.g, v[0], row, d.block, block};
      tiled.insert(tiled.end(), v.begin() + 2, v.end());
      update.reorder(tiled);
      vectorized(update);
      update.unroll(v[0]).unroll(row);
    }
    // The tile's integer sums and scales at each block: 32 products per vpdpbusd.
    d.integerSum.compute_at(d.partial, d.block);
    d.integerSum.vectorize(d.l4).vectorize(d.g);
    std::vector<VarOrRVar> sumOrder = {d.inLane, d.l4, d.g, v[0]};
    sumOrder.insert(sumOrder.end(), v.begin() + 1, v.end());
    Stage sum = d.integerSum.update();
    sum.reorder(sumOrder).atomic(true).vectorize(d.inLane).vectorize(d.l4).vectorize(d.g);
    sum.unroll(v[0]);
    d.scale.compute_at(d.partial, d.block);
  }
}

// Reads x [K, rows...] at element k of the row at coordinates rowVars (clamped: row blocks
// round up past the last row).
std::function<Expr(Expr)> activationReader(const ImageParam& x, const std::vector<Var>& rowVars) {
  return [x, rowVars](Expr k) {
    std::vector<Expr> at = {std::move(k)};
    for (size_t d = 0; d < rowVars.size(); ++d)
      at.push_back(d == 0 ? clamp(rowVars[d], 0, x.dim(1).extent() - 1) : Expr(rowVars[d]));
    return Expr(x(at));
  };
}

void scheduleActivations(QuantizedActivations q, const std::vector<Var>& rowVars) {
  for (Func f : {q.scale, q.quant, q.laneSum}) {
    f.compute_root();
    if (!rowVars.empty())
      f.parallel(rowVars.back());
  }
  q.quant.vectorize(q.quant.args()[0], 64, TailStrategy::GuardWithIf);
  q.laneSum.vectorize(q.laneSum.args()[0], 16, TailStrategy::GuardWithIf);
  q.scale.vectorize(q.scale.args()[0], 16, TailStrategy::GuardWithIf);
}

} // namespace

// matmul with a block-quantized weight in the fast arithmetic: the activation rows quantized
// once, then every output an integer dot product over its weight row.
Kernel integerBlockMatmul(const Op& op) {
  Kernel k;
  k.name = "matmul";
  k.usesDotProductInstructions = true;
  ImageParam a = operandParam(op, 0, "a");
  BlockWeight w = blockWeightParam(op, 1, "b");
  k.inputs = {a, w.bytes};
  std::vector<Var> v = vars(op.result()->type.rank()); // v[0] = n, v[1] = m, then batch dims
  std::vector<Var> rowVars(v.begin() + 1, v.end());
  QuantizedActivations x = quantizeActivations("x", activationReader(a, rowVars), rowVars);
  IntegerDot dot = integerDot("dot", w, x, v);
  k.output = Func("out");
  Expr value = dot.dot(v);
  if (const double* softcap = op.attr<double>("softcap"); softcap && *softcap > 0) {
    float c = static_cast<float>(*softcap);
    value = vectorTanh(value / c) * c;
  }
  k.output(v) = cast(halideType(op.result()->type.elementType), value);
  scheduleActivations(x, rowVars);
  scheduleIntegerDots(k.output, {dot}, v, v.size() > 1 ? a.dim(1).extent() : Expr(1));
  return k;
}

// The gated MLP in the fast arithmetic: x quantized once for gate and up, the gated activations
// (f32, all rows first, parallel over their features) quantized for the down projection.
Kernel integerBlockGatedMlp(const Op& op) {
  Kernel k;
  k.name = "gated_mlp";
  k.usesDotProductInstructions = true;
  ImageParam x = operandParam(op, 0, "x");
  BlockWeight gate = blockWeightParam(op, 1, "gate"), up = blockWeightParam(op, 2, "up"),
              down = blockWeightParam(op, 3, "down");
  k.inputs = {x, gate.bytes, up.bytes, down.bytes};
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Var> rowVars(v.begin() + 1, v.end());
  bool tanhApproximation = *op.attr<std::string>("activation") == "gelu_tanh";
  Expr rows = v.size() > 1 ? x.dim(1).extent() : Expr(1);
  Var i("i");
  std::vector<Var> iRows = {i};
  iRows.insert(iRows.end(), rowVars.begin(), rowVars.end());
  QuantizedActivations xq = quantizeActivations("x", activationReader(x, rowVars), rowVars);
  IntegerDot gateDot = integerDot("gate_dot", gate, xq, iRows);
  IntegerDot upDot = integerDot("up_dot", up, xq, iRows);
  Func gatedRows("gated_rows");
  gatedRows(iRows) = gelu(gateDot.dot(iRows), tanhApproximation) * upDot.dot(iRows);
  auto gatedAt = [&](Expr feature) {
    std::vector<Expr> at = {std::move(feature)};
    at.insert(at.end(), rowVars.begin(), rowVars.end());
    return Expr(gatedRows(at));
  };
  QuantizedActivations gq = quantizeActivations("gated", gatedAt, rowVars);
  IntegerDot downDot = integerDot("down_dot", down, gq, v);
  k.output = Func("out");
  k.output(v) = cast(halideType(op.result()->type.elementType), downDot.dot(v));
  scheduleActivations(xq, rowVars);
  gatedRows.compute_root();
  scheduleIntegerDots(gatedRows, {gateDot, upDot}, iRows, rows);
  scheduleActivations(gq, rowVars);
  scheduleIntegerDots(k.output, {downDot}, v, rows);
  return k;
}

} // namespace gemma::kernels
