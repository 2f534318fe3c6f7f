// The fast arithmetic (--arithmetic fast): dot products of block-quantized weights with rows of
// activations quantized to int8, as llama.cpp computes them (DotProductKernels.cpp's block kernels
// use them for every row count: one row's dot product for decode, integer tiles for a prompt). Each
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
// unsigned weight quant's offset times the activations adds to one vpdpbusd lane; runSum(j,
// rows...) the sum of quants 16j .. 16j + 15 (a Q6_K scale's run), blockSum(b, rows...) block b's.
struct QuantizedActivations {
  Func scale, quant, laneSum, runSum, blockSum;
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
  QuantizedActivations q{Func(name + "_scale"), Func(name + "_quant"), Func(name + "_lane_sum"),
                         Func(name + "_run_sum"), Func(name + "_block_sum")};
  RDom inBlock(0, kActivationBlock, name + "_in_block");
  absMax(at(b)) = maximum(abs(xAt(b * kActivationBlock + inBlock.x)));
  q.scale(at(b)) = call(absMax, b) / 127.0f;
  inverse(at(b)) = select(call(q.scale, b) == 0.0f, 0.0f, 1.0f / call(q.scale, b));
  q.quant(at(k)) = cast<int8_t>(
      clamp(roundHalfAway(xAt(k) * call(inverse, k / kActivationBlock)), -127.0f, 127.0f));
  q.laneSum(at(j)) = cast<int32_t>(call(q.quant, 4 * j)) + cast<int32_t>(call(q.quant, 4 * j + 1)) +
                     cast<int32_t>(call(q.quant, 4 * j + 2)) +
                     cast<int32_t>(call(q.quant, 4 * j + 3));
  q.runSum(at(j)) = call(q.laneSum, 4 * j) + call(q.laneSum, 4 * j + 1) +
                    call(q.laneSum, 4 * j + 2) + call(q.laneSum, 4 * j + 3);
  q.blockSum(at(b)) = call(q.runSum, 2 * b) + call(q.runSum, 2 * b + 1);
  return q;
}

// The quants a weight row has for activation block b (its elements 32 b .. 32 b + 31), as
// unsigned bytes whose value minus `offset` is the signed quant: element 16 group + inGroup of
// that run. Q4_K's and Q6_K's blocks hold 8 runs of 32 each.
struct UnsignedQuant {
  Expr value;
  int offset;
};

UnsignedQuant unsignedQuant(const BlockWeight& w, const Expr& row, const Expr& b, const Expr& group,
                            const Expr& inGroup) {
  std::function<Expr(Expr)> byteAt = w.rowBytes(row);
  int runsPerBlock = clampToInt(w.blockElements / kActivationBlock);
  Expr blockBase = (runsPerBlock == 1 ? b : b / runsPerBlock) * clampToInt(w.blockBytes);
  auto u8At = [&](Expr offset) { return byteAt(blockBase + offset); };
  switch (w.type) {
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
  case ElementType::Q4_K: { // sub-block s: the low (s even) or high nibbles of 32-byte run s / 2
    Expr s = b % runsPerBlock;
    Expr byte = u8At(16 + (s / 2) * 32 + 16 * group + inGroup);
    return {select(s % 2 == 0, byte & cast<uint8_t>(0x0F), byte >> cast<uint8_t>(4)), 0};
  }
  case ElementType::Q6_K: { // run s: half s / 4 of the block, quarter s % 4 of that half
    // Low four bits: the low (quarters 0, 1) or high (2, 3) nibbles of the half's ql bytes 32
    // (s % 2) ...; the top two: bits 2 (s % 4) of the half's qh bytes (BlockKernels' Q6_K term).
    Expr s = b % runsPerBlock, quarter = s % 4, l = 16 * group + inGroup;
    Expr ql = u8At((s / 4) * 64 + (s % 2) * 32 + l);
    Expr low = select(quarter < 2, ql & cast<uint8_t>(0x0F), ql >> cast<uint8_t>(4));
    Expr qh = u8At(128 + (s / 4) * 32 + l);
    Expr high = (qh >> cast<uint8_t>(2 * quarter)) & cast<uint8_t>(3);
    return {low | (high << cast<uint8_t>(4)), 32};
  }
  default:
    break;
  }
  throw InternalError("the fast arithmetic has no integer dot product for " +
                      std::string(elementTypeName(w.type)));
}

// What multiplies a weight row's integer sum over the 16 elements 32 b + 16 group ... of its
// activation block b (scale), and, where the type has mins (Q4_K), what multiplies the sum of the
// block's activation quants (min, else undefined): the weight's contribution is
// scale * sum(q x) + min * sum(x). The types but Q6_K scale a whole block alike. The K-quants'
// come from perRun(j, block, row): Q4_K's (scale, min) of its run j of 32, Q6_K's scale of its
// run j of 16 (schedule it vectorized over j: the runs' packed scales are a few vector loads).
struct RunScale {
  Expr scale, min;
  Func perRun; // the K-quants', else undefined
};

RunScale runScale(const std::string& name, const BlockWeight& w, const Expr& row, const Expr& b,
                  const Expr& group) {
  if (w.type != ElementType::Q4_K && w.type != ElementType::Q6_K)
    return {w.term(row, b, 0, 0).scale, Expr(), Func()};
  Var j("j"), block("block"), r("r");
  std::function<Expr(Expr)> byteAt = w.rowBytes(r);
  Expr blockBase = block * clampToInt(w.blockBytes);
  int runsPerBlock = clampToInt(w.blockElements / kActivationBlock);
  RunScale result;
  result.perRun = Func(name + "_run_scale");
  if (w.type == ElementType::Q6_K) { // an i8 scale per 16 elements, at 192; d at 208
    result.perRun(j, block, r) = f16At(byteAt, blockBase + 208) *
                                 cast<float>(reinterpret(Int(8), byteAt(blockBase + 192 + j)));
    result.scale = result.perRun(2 * (b % runsPerBlock) + group, b / runsPerBlock, row);
    return result;
  }
  // Q4_K's run j's six-bit scale and min, packed in the 12 bytes at 4 (llama.cpp's
  // get_scale_min_k4, as BlockKernels' scaleMinK4 reads them for a known j); both branches
  // read inside the block.
  auto q = [&](Expr i) { return cast<int32_t>(byteAt(blockBase + 4 + i)); };
  Expr scale = select(j < 4, q(j) & 63, (q(j + 4) & 0x0F) | ((q(j - 4) >> 6) << 4));
  Expr min = select(j < 4, q(j + 4) & 63, (q(j + 4) >> 4) | ((q(j) >> 6) << 4));
  result.perRun(j, block, r) = Tuple(f16At(byteAt, blockBase) * cast<float>(scale),
                                     -(f16At(byteAt, blockBase + 2) * cast<float>(min)));
  result.scale = result.perRun(b % runsPerBlock, b / runsPerBlock, row)[0];
  result.min = result.perRun(b % runsPerBlock, b / runsPerBlock, row)[1];
  return result;
}

// Q6_K scales each 16 elements: its integer sums are per half block (two scaled runs per
// activation block); the others' per block.
int scaledRunsPerBlock(ElementType type) {
  return type == ElementType::Q6_K ? 2 : 1;
}

// One output's dot product over a weight row in int8: a block (32 elements) a step, in 8 lanes
// (l4, g) that each sum 4 products (r) in one vpdpbusd, then scaled by both blocks' scales into
// f32 lanes (partial), and the lanes summed (dot). `v` are the result's vars (v[0] the weight
// row).
struct IntegerDot {
  Func dot, partial, integerSum, scale;
  Func minScale; // defined where the weight's type has mins (Q4_K)
  Func runScale; // the K-quants' (runScale's perRun)
  ImageParam weight;
  Var l4, g, blockVar;
  // The reduction over the row's activation blocks: `block` the run within a weight block
  // (unrolled: a K-quant's run then is known to the compiler, and so are its nibble, bit shift
  // and scale choices), `weightBlock` over the weight's blocks.
  RVar block, weightBlock;
  RVar inLane; // the 4 products of a lane
  int weightBlocksPerRow = 0;
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
  int runsPerBlock = clampToInt(w.blockElements / kActivationBlock);
  RDom blocks(0, runsPerBlock, 0, clampToInt(w.rowElements / w.blockElements), name + "_blocks");
  d.inLane = RVar(r.x);
  d.block = RVar(blocks.x);
  d.weightBlock = RVar(blocks.y);
  d.weightBlocksPerRow = clampToInt(w.rowElements / w.blockElements);
  // Element k = 32 block + 16 g + 4 l4 + r of the row.
  Expr inGroup = 4 * d.l4 + r.x;
  UnsignedQuant u = unsignedQuant(w, v[0], d.blockVar, d.g, inGroup);
  Expr k = kActivationBlock * d.blockVar + 16 * d.g + inGroup;
  d.integerSum = Func(name + "_integer_sum");
  std::vector<Var> sumVars = varsWithRows({d.l4, d.g, d.blockVar, v[0]});
  d.integerSum(sumVars) = 0;
  d.integerSum(sumVars) += cast<int32_t>(u.value) * cast<int32_t>(x.quant(withRows({k})));
  // Both blocks' scales, once per block and row (the weight's as exact arithmetic reads it; a
  // lane group g's own where the type scales each 16 elements).
  RunScale weightScale = runScale(name, w, v[0], d.blockVar, d.g);
  d.runScale = weightScale.perRun;
  d.scale = Func(name + "_scale");
  // (A scale per lane group only where it differs: one per block is a broadcast, two a shuffle.)
  std::vector<Var> scaleVars = scaledRunsPerBlock(w.type) == 1
                                   ? varsWithRows({d.blockVar, v[0]})
                                   : varsWithRows({d.g, d.blockVar, v[0]});
  d.scale(scaleVars) = weightScale.scale * x.scale(withRows({d.blockVar}));
  // Per lane: the integer sum less the offset's share (lane j sums elements 4j .. 4j + 3), and
  // the weight's min times the lane's activations where it has mins.
  Expr lane = 8 * d.blockVar + 4 * d.g + d.l4;
  Expr corrected = d.integerSum(sumVars) - u.offset * x.laneSum(withRows({lane}));
  Expr term = cast<float>(corrected) * d.scale(scaleVars);
  if (weightScale.min.defined()) {
    d.minScale = Func(name + "_min_scale");
    std::vector<Var> minVars = varsWithRows({d.blockVar, v[0]});
    d.minScale(minVars) = weightScale.min * x.scale(withRows({d.blockVar}));
    term = term + cast<float>(x.laneSum(withRows({lane}))) * d.minScale(minVars);
  }
  d.partial = Func(name + "_lanes");
  std::vector<Var> laneVars = varsWithRows({d.l4, d.g, v[0]});
  d.partial(laneVars) = 0.0f;
  d.partial(laneVars) += substitute(d.blockVar.name(), blocks.x + runsPerBlock * blocks.y, term);
  RDom lanes(0, 4, 0, 2, name + "_lane");
  d.dot = Func(name);
  d.dot(v) = 0.0f;
  d.dot(v) += d.partial(withRows({lanes.x, lanes.y, v[0]}));
  return d;
}

// Many rows (prefill) in tiles: outputs in the vector lanes and rows across registers, the layout
// in which a vpdpbusd lane sums a whole block (8 steps of 4 products) before its one scaling
// (lanes along the row, as one row's dot product has them, scale every 4 products: those tiles
// measured slower than the exact f32 panels, 107 against 145 GFLOP/s). Each step multiplies 4
// bytes of 16 outputs' weights (a zmm of the packed panel) by one row's 4 activation quants
// broadcast to every lane. The weights are packed per panel of kTileOutputs outputs once per
// task: packed(r4, o, kq), element 4 kq + r4 of output o (unsigned, as unsignedQuant gives it),
// the 4 bytes of a lane together and the panel's lanes side by side, and the scales beside them
// (weightScale(o, run, b)); every row of the call then reads the panel from cache.
constexpr int kTileOutputs = 32, kTileRows = 4;

struct IntegerTiles {
  Func tile, accumulator, integerSum, packed, weightScale;
  Func weightMin; // defined where the weight's type has mins (Q4_K)
  Func runScale;  // the K-quants' (runScale's perRun)
  Var r4, kq, run;
  RVar inLane, step, block, runOfBlock;
};

IntegerTiles integerTiles(const std::string& name, const BlockWeight& weight,
                          const QuantizedActivations& x, const std::vector<Var>& v) {
  IntegerTiles t;
  // Panels round up past the last output: those lanes read the last row (never stored).
  BlockWeight w = weight;
  w.clampRows = w.rows % kTileOutputs != 0;
  std::vector<Var> rowVars(v.begin() + 1, v.end());
  auto withRows = [&](std::vector<Expr> first) {
    first.insert(first.end(), rowVars.begin(), rowVars.end());
    return first;
  };
  t.r4 = Var("r4");
  t.kq = Var("kq");
  Var o = v[0], b("b");
  Expr k = 4 * t.kq + t.r4, inBlock = k % kActivationBlock;
  UnsignedQuant u = unsignedQuant(w, o, k / kActivationBlock, inBlock / 16, inBlock % 16);
  t.packed = Func(name + "_packed");
  t.packed(t.r4, o, t.kq) = u.value;
  // Each block's products in `runs` scaled runs (Q6_K's halves, or the whole block), each run's
  // integer sum scaled once: weightScale(o, run, b).
  int runs = scaledRunsPerBlock(w.type), runLength = kActivationBlock / runs;
  t.run = Var("run");
  RunScale weightScale = runScale(name + "_tile", w, o, b, t.run);
  t.runScale = weightScale.perRun;
  t.weightScale = Func(name + "_weight_scale");
  t.weightScale(o, t.run, b) = weightScale.scale;
  // A run's products of an output and a row: steps of 4, each lane's 4 in one vpdpbusd.
  RDom r(0, 4, 0, runLength / 4, name + "_tile_steps");
  t.inLane = RVar(r.x);
  t.step = RVar(r.y);
  t.integerSum = Func(name + "_tile_integer_sum");
  std::vector<Var> sumVars = {o, t.run, b};
  sumVars.insert(sumVars.end(), rowVars.begin(), rowVars.end());
  t.integerSum(sumVars) = 0;
  Expr k4 = (kActivationBlock / 4) * b + (runLength / 4) * t.run + r.y; // the step's 4 elements
  t.integerSum(sumVars) +=
      cast<int32_t>(t.packed(r.x, o, k4)) * cast<int32_t>(x.quant(withRows({4 * k4 + r.x})));
  RDom blocks(0, runs, 0, clampToInt(w.rowElements / kActivationBlock), name + "_tile_blocks");
  t.runOfBlock = RVar(blocks.x);
  t.block = RVar(blocks.y);
  std::vector<Expr> sumAt = {o, blocks.x, blocks.y};
  sumAt.insert(sumAt.end(), rowVars.begin(), rowVars.end());
  Expr blockSum = x.blockSum(withRows({blocks.y}));
  Expr runSum = runs == 1 ? blockSum : x.runSum(withRows({runs * blocks.y + blocks.x}));
  Expr corrected = t.integerSum(sumAt) - u.offset * runSum;
  Expr activationScale = x.scale(withRows({blocks.y}));
  Expr term = t.weightScale(o, blocks.x, blocks.y) * activationScale * cast<float>(corrected);
  if (weightScale.min.defined()) { // (Q4_K: one run per block, so added once per block)
    t.weightMin = Func(name + "_weight_min");
    t.weightMin(o, b) = weightScale.min;
    term = term + t.weightMin(o, blocks.y) * activationScale * cast<float>(blockSum);
  }
  t.accumulator = Func(name + "_tile_accumulator");
  t.accumulator(v) = 0.0f;
  t.accumulator(v) += term;
  t.tile = Func(name + "_tile");
  t.tile(v) = t.accumulator(v);
  return t;
}

void scheduleIntegerTiles(const IntegerTiles& tiles, Func out, const std::vector<Var>& v) {
  IntegerTiles t = tiles;    // (Funcs are handles)
  constexpr int kLanes = 16; // i32 lanes of a zmm
  Var panel("tile_panel"), inPanel("tile_output"), rowTile("row_tile"), inRowTile("tile_row");
  t.tile.compute_at(out, Var("task"));
  t.tile.split(v[0], panel, inPanel, kTileOutputs, TailStrategy::GuardWithIf)
      .split(v[1], rowTile, inRowTile, kTileRows, TailStrategy::GuardWithIf);
  std::vector<VarOrRVar> order = {inPanel, inRowTile, rowTile, panel};
  order.insert(order.end(), v.begin() + 2, v.end());
  t.tile.reorder(order).vectorize(inPanel, kLanes, TailStrategy::GuardWithIf);
  // The panel's weights packed once for all the task's rows.
  t.packed.compute_at(t.tile, panel).vectorize(t.r4);
  t.weightScale.compute_at(t.tile, panel);
  if (t.weightMin.defined())
    t.weightMin.compute_at(t.tile, panel);
  if (t.runScale.defined())
    t.runScale.compute_at(t.tile, panel).vectorize(t.runScale.args()[0], 8);
  // A tile of kTileOutputs x kTileRows f32 accumulators in registers while the blocks stream.
  t.accumulator.compute_at(t.tile, rowTile);
  t.accumulator.bound_extent(v[0], kTileOutputs).bound_extent(v[1], kTileRows);
  for (size_t i = 2; i < v.size(); ++i)
    t.accumulator.bound_extent(v[i], 1);
  Var lane("tile_lane"), vector("tile_vector");
  t.accumulator.vectorize(v[0], kLanes);
  Stage accumulate = t.accumulator.update();
  accumulate.split(v[0], vector, lane, kLanes);
  std::vector<VarOrRVar> accumulateOrder = {lane, vector, v[1], t.runOfBlock, t.block};
  accumulateOrder.insert(accumulateOrder.end(), v.begin() + 2, v.end());
  accumulate.reorder(accumulateOrder)
      .vectorize(lane)
      .unroll(vector)
      .unroll(v[1])
      .unroll(t.runOfBlock);
  // Each block's integer sums for the tile: 8 steps of kTileOutputs / 16 x kTileRows vpdpbusd.
  t.integerSum.compute_at(t.accumulator, t.block);
  t.integerSum.vectorize(v[0], kLanes);
  Stage sum = t.integerSum.update();
  sum.split(v[0], vector, lane, kLanes);
  std::vector<VarOrRVar> sumOrder = {t.inLane, lane, vector, v[1], t.run, t.step};
  sumOrder.insert(sumOrder.end(), v.begin() + 2, v.end());
  sum.reorder(sumOrder)
      .atomic(true)
      .vectorize(t.inLane)
      .vectorize(lane)
      .unroll(vector)
      .unroll(v[1])
      .unroll(t.run);
}

} // namespace

IntegerDots integerDots(const std::string& name, const BlockWeight& w,
                        const std::function<Expr(Expr)>& xAt, const std::vector<Var>& v) {
  std::vector<Var> rowVars(v.begin() + 1, v.end());
  QuantizedActivations x = quantizeActivations(name + "_x", xAt, rowVars);
  IntegerDot d = integerDot(name, w, x, v);
  IntegerTiles tiles = integerTiles(name, w, x, v);
  IntegerDots result;
  result.oneRow = d.dot;
  result.manyRows = tiles.tile;
  result.schedule = [x, d, tiles, v](Func out, int rowChunk) {
    Var panel("panel");
    // The rows quantized once, before the panels (in parallel over the rows). (Per task, the
    // logits' 4096 tasks spent a sixth of their time requantizing the row.)
    QuantizedActivations q = x;
    for (Func f : {q.scale, q.quant, q.laneSum, q.runSum, q.blockSum}) {
      f.compute_root();
      if (v.size() > 1)
        f.parallel(f.args()[1]);
    }
    q.quant.vectorize(q.quant.args()[0], 64, TailStrategy::GuardWithIf);
    q.laneSum.vectorize(q.laneSum.args()[0], 16, TailStrategy::GuardWithIf);
    q.scale.vectorize(q.scale.args()[0], 16, TailStrategy::GuardWithIf);
    q.runSum.vectorize(q.runSum.args()[0], 16, TailStrategy::GuardWithIf);
    q.blockSum.vectorize(q.blockSum.args()[0], 16, TailStrategy::GuardWithIf);
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
    // A panel's kDotPanel weight rows one after the other, each one's lanes in registers while
    // its blocks stream through (the activation row loop outside: its extent is 1). See
    // KernelBuilders.h's prefetchWeightRowsInDecode for why row by row.
    std::vector<VarOrRVar> order = {f.l4, f.g, f.block, f.weightBlock, v[0]};
    order.insert(order.end(), v.begin() + 1, v.end());
    Stage update = f.partial.update();
    update.reorder(order).vectorize(f.l4).vectorize(f.g).unroll(v[0]);
    update.unroll(f.block);
    prefetchWeightRowsInDecode(update, f.weightBlock, f.weight, f.weightBlocksPerRow);
    // Each block's integer sums and scales for the panel: 32 products per vpdpbusd.
    f.integerSum.compute_at(f.partial, f.block);
    f.integerSum.vectorize(f.l4).vectorize(f.g);
    std::vector<VarOrRVar> sumOrder = {f.inLane, f.l4, f.g, v[0]};
    sumOrder.insert(sumOrder.end(), v.begin() + 1, v.end());
    Stage sum = f.integerSum.update();
    sum.reorder(sumOrder).atomic(true).vectorize(f.inLane).vectorize(f.l4).vectorize(f.g);
    sum.unroll(v[0]);
    f.scale.compute_at(f.partial, f.block);
    if (f.minScale.defined())
      f.minScale.compute_at(f.partial, f.block);
    // A panel's runs' scales (and mins) at once, before its blocks stream.
    if (f.runScale.defined())
      f.runScale.compute_at(out, panel).vectorize(f.runScale.args()[0], 8);
    if (v.size() > 1)
      scheduleIntegerTiles(tiles, out, v);
  };
  return result;
}

} // namespace gemma::kernels
