// The fast arithmetic (--arithmetic fast): dot products of block-quantized weights with one row
// of activations quantized to int8, as llama.cpp computes them (DotProductKernels.cpp's block
// kernels use them for one row; many rows keep the exact f32 panels, which measured faster). Each
// row of activations is cut into blocks of 32 and each block rounded to int8 with its own f32 scale
// (llama.cpp's quantize_row_q8_0: scale max|x| / 127, quants roundf(x / scale)); a weight block's
// quants (unsigned, with the type's offset: Q8_0's quants + 128, Q4_0's and Q5_0's as stored)
// multiply the activation quants in AVX512-VNNI's vpdpbusd, a block's 32 products into 8 i32
// lanes, and each block's integer sum is scaled once by both blocks' scales. Exact arithmetic
// (the default, DotProductKernels.cpp) instead decodes every weight to f32.
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
  case ElementType::Q5_0: { // Q4_0's nibbles (at 6) plus bit i of the u32 qh (at 2) as 16
    Expr byte = u8At(6 + inGroup);
    Expr nibble = select(group == 0, byte & cast<uint8_t>(0x0F), byte >> cast<uint8_t>(4));
    // Bit i of qh is bit i % 8 of its byte i / 8 (i = 16 group + inGroup): the test of a byte
    // against a constant mask per lane, a compare into a mask register, where shifting each
    // lane by its own count (no such instruction on bytes) widened every lane to 32 bits and
    // measured slower than exact arithmetic.
    Expr qhByte = u8At(2 + 2 * group + inGroup / 8);
    Expr bit = cast<uint8_t>(1) << cast<uint8_t>(inGroup % 8);
    Expr fifth = select((qhByte & bit) != cast<uint8_t>(0), cast<uint8_t>(16), cast<uint8_t>(0));
    return {nibble | fifth, 16};
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
  int blocksPerRow = 0;
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
  d.blocksPerRow = clampToInt(w.rowElements / kActivationBlock);
  // Element k = 32 block + 16 g + 4 l4 + r of the row.
  Expr base = d.blockVar * clampToInt(w.blockBytes);
  Expr inGroup = 4 * d.l4 + r.x;
  UnsignedQuant u = unsignedQuant(w.type, w.rowBytes(v[0]), base, d.g, inGroup);
  Expr k = kActivationBlock * d.blockVar + 16 * d.g + inGroup;
  d.integerSum = Func(name + "_integer_sum");
  std::vector<Var> sumVars = varsWithRows({d.l4, d.g, d.blockVar, v[0]});
  d.integerSum(sumVars) = 0;
  d.integerSum(sumVars) += cast<int32_t>(u.value) * cast<int32_t>(x.quant(withRows({k})));
  // Both blocks' scales, once per block and row (the weight's as exact arithmetic reads it).
  d.scale = Func(name + "_scale");
  std::vector<Var> scaleVars = varsWithRows({d.blockVar, v[0]});
  d.scale(scaleVars) = w.term(v[0], d.blockVar, 0, 0).scale * x.scale(withRows({d.blockVar}));
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

} // namespace

OneRowIntegerDot oneRowIntegerDot(const std::string& name, const BlockWeight& w,
                                  const std::function<Expr(Expr)>& xAt, const std::vector<Var>& v) {
  std::vector<Var> rowVars(v.begin() + 1, v.end());
  QuantizedActivations x = quantizeActivations(name + "_x", xAt, rowVars);
  IntegerDot d = integerDot(name, w, x, v);
  OneRowIntegerDot result;
  result.dot = d.dot;
  result.schedule = [x, d, v](Func out, int rowChunk) {
    Var panel("panel");
    // The rows quantized once, before the panels. (Per task, the logits' 4096 tasks spent a
    // sixth of their time requantizing the row; many rows, which read the f32 panels instead,
    // pay one pass over their activations.)
    QuantizedActivations q = x;
    for (Func f : {q.scale, q.quant, q.laneSum}) {
      f.compute_root();
      if (v.size() > 1)
        f.parallel(v.back());
    }
    q.quant.vectorize(q.quant.args()[0], 64, TailStrategy::GuardWithIf);
    q.laneSum.vectorize(q.laneSum.args()[0], 16, TailStrategy::GuardWithIf);
    q.scale.vectorize(q.scale.args()[0], 16, TailStrategy::GuardWithIf);
    IntegerDot f = d; // (Funcs are handles: a copy schedules the same one)
    f.dot.compute_at(out, panel);
    std::vector<Var> storage = {f.l4, f.g};
    storage.insert(storage.end(), v.begin(), v.end());
    f.partial.compute_at(out, panel).reorder_storage(storage).vectorize(f.l4).vectorize(f.g);
    f.partial.bound_extent(v[0], kDotPanel);
    for (Func func : {f.dot, f.partial}) {
      func.bound_storage(v[0], kDotPanel);
      if (v.size() > 1)
        func.bound_storage(v[1], rowChunk);
      for (size_t i = 2; i < v.size(); ++i)
        func.bound_storage(v[i], 1);
    }
    // A panel's kDotPanel rows of lanes in registers while the blocks stream through (the row
    // loop outside the block loop: its extent is 1).
    std::vector<VarOrRVar> order = {f.l4, f.g, v[0], f.block};
    order.insert(order.end(), v.begin() + 1, v.end());
    Stage update = f.partial.update();
    update.reorder(order).vectorize(f.l4).vectorize(f.g).unroll(v[0]);
    prefetchWeightRowsInDecode(update, f.block, f.weight, f.blocksPerRow);
    // Each block's integer sums and scales for the panel: 32 products per vpdpbusd.
    f.integerSum.compute_at(f.partial, f.block);
    f.integerSum.vectorize(f.l4).vectorize(f.g);
    std::vector<VarOrRVar> sumOrder = {f.inLane, f.l4, f.g, v[0]};
    sumOrder.insert(sumOrder.end(), v.begin() + 1, v.end());
    Stage sum = f.integerSum.update();
    sum.reorder(sumOrder).atomic(true).vectorize(f.inLane).vectorize(f.l4).vectorize(f.g);
    sum.unroll(v[0]);
    f.scale.compute_at(f.partial, f.block);
  };
  return result;
}

} // namespace gemma::kernels
