// The dot-product kernels and their schedules: matmul (the projections and logits) and the gated
// MLP, which carry almost all of a model's FLOPs and weight reads.
#include "backend/halide/KernelBuilders.h"

#include <algorithm>
#include <optional>

namespace gemma::kernels {

using namespace Halide;

namespace {

// One dot product accumulated in vector lanes: partial(lane, v...) sums its terms over `outer`
// (the reduction in steps of a vector), then dot(v) sums the lanes.
struct LaneDot {
  Func dot, partial;
  Var lane;
  RVar outer;
  // A block-quantized weight's bytes, prefetched in decode (prefetchWeightRowsInDecode), whose
  // rows are blocksPerRow steps of `outer`.
  std::optional<ImageParam> streamed;
  int blocksPerRow = 0;
};

// A dot product over RDom r (along a contiguous weight row) split into lanes by rfactor.
LaneDot rfactorLanes(Func dot, const RDom& r, int lanes) {
  RVar outer("k_outer"), inner("k_inner");
  Var lane("lane");
  dot.update().split(r.x, outer, inner, lanes, TailStrategy::GuardWithIf);
  Func partial = dot.update().rfactor(inner, lane);
  return {dot, partial, lane, outer, std::nullopt};
}

// Schedules out(v) = f(dots(v)...), each dot(v) a LaneDot over a contiguous weight row (of
// reductionLength). Tasks of kPanelsPerTask panels
// of kPanel outputs across the cores; in a task, the rows in chunks whose activations stay in L2,
// and for each chunk and panel, the chunk's dot products kRowBlock rows at a time: a kPanel x
// kRowBlock tile of vector accumulators held in registers while the weight and activation rows
// stream through it (the lanes summed at the end). A panel's weight rows are read
// from memory once per chunk, a chunk's activations once per task. A single row (decode, or the
// last row alone) gets a tile of one row. `rows` is how many rows the call computes; reads past
// the last output or row must be clamped by the definition (panels and blocks round up).
// Returns the rows per chunk.
int scheduleLaneDots(Func out, const std::vector<LaneDot>& dots, const std::vector<Var>& v,
                     int64_t outputs, int64_t reductionLength, const Expr& rows) {
  constexpr int kPanel = kDotPanel, kRowBlock = 4, kMinPanelsPerTask = 16, kTasks = 32;
  // Rows in chunks whose activations (kChunkBytes of f32, half of L2) stay in cache while every
  // panel of a task reads them: 64 rows of gemma-2b's 2048 features, 16 of its MLP's 16384.
  // (KernelBench's GatedMlp/512: 0.25 MiB 119, 0.5 MiB 138, 1 MiB 156, 2 MiB 138 GFLOP/s.)
  constexpr int64_t kChunkBytes = 1024 * 1024;
  int kRowChunk = static_cast<int>(std::clamp<int64_t>(
      kChunkBytes / (4 * std::max<int64_t>(reductionLength, 1)) / kRowBlock * kRowBlock, kRowBlock,
      64));
  Var panel("panel"), column("column");
  out.split(v[0], panel, column, kPanel, TailStrategy::GuardWithIf);
  // About kTasks tasks, of at least kMinPanelsPerTask panels: each task a long contiguous stream
  // of weight rows. A task's first panels wait on memory (its prefetches start with it, and the
  // panels before it went to another core): a 256k-entry vocabulary in tasks of 16 panels, 64
  // rows, streamed its 178 MB of Q8_0 at half the bandwidth that tasks of 2048 panels reach.
  int64_t panels = (outputs + kPanel - 1) / kPanel;
  int panelsPerTask = static_cast<int>(
      std::clamp<int64_t>((panels + kTasks - 1) / kTasks, kMinPanelsPerTask, 1 << 20));
  Var task("task"), chunk("row_chunk"), inChunk("row_in_chunk");
  out.split(panel, task, panel, panelsPerTask, TailStrategy::GuardWithIf).parallel(task);
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
  for (const LaneDot& laneDot : dots) {
    Func dot = laneDot.dot, partial = laneDot.partial;
    Var lane = laneDot.lane;
    RVar outer = laneDot.outer;
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
      if (laneDot.streamed)
        update.reorder(lane, outer, v[0]);
      else
        update.reorder(lane, v[0], outer);
      update.vectorize(lane).unroll(v[0]);
      if (laneDot.streamed)
        prefetchWeightRowsInDecode(update, outer, *laneDot.streamed, laneDot.blocksPerRow);
      continue;
    }
    // The row loop outside the k loop: its extent is 1 at run time but not to the compiler,
    // and inside the k loop it would keep the accumulators in memory. A block weight's panel
    // rows are read one after the other (prefetchWeightRowsInDecode says why).
    std::vector<VarOrRVar> single = {lane, v[0], outer, v[1]};
    if (laneDot.streamed)
      single = {lane, outer, v[0], v[1]};
    single.insert(single.end(), v.begin() + 2, v.end());
    Stage oneRow = update.specialize(rows == 1);
    oneRow.reorder(single).vectorize(lane).unroll(v[0]);
    if (laneDot.streamed)
      prefetchWeightRowsInDecode(oneRow, outer, *laneDot.streamed, laneDot.blocksPerRow);
    Var block("row_block"), row("row");
    update.split(v[1], block, row, kRowBlock, TailStrategy::GuardWithIf);
    std::vector<VarOrRVar> tiled = {lane, v[0], row, outer, block};
    tiled.insert(tiled.end(), v.begin() + 2, v.end());
    update.reorder(tiled).vectorize(lane).unroll(v[0]).unroll(row);
  }
  return kRowChunk;
}

void scheduleDotProducts(Func out, const std::vector<std::pair<Func, RDom>>& dots,
                         const std::vector<Var>& v, int64_t outputs, int64_t reductionLength,
                         const Expr& rows, TargetKind target) {
  std::vector<LaneDot> laneDots;
  for (const auto& [dot, r] : dots)
    laneDots.push_back(rfactorLanes(dot, r, vectorLanes(target)));
  scheduleLaneDots(out, laneDots, v, outputs, reductionLength, rows);
}

// A block dot product's two reductions: partial(lane, v...) sums `term` (its lanes' share of
// one block) over the blocks, then dot(v) sums the kBlockGroup lanes.
LaneDot laneSums(const std::string& name, const Expr& term, const Var& lane, const RDom& blocks,
                 const std::vector<Var>& v) {
  Func partial(name + "_lanes"), dot(name);
  std::vector<Var> laneVars = {lane};
  laneVars.insert(laneVars.end(), v.begin(), v.end());
  partial(laneVars) = 0.0f;
  partial(laneVars) += term;
  RDom lanes(0, kBlockGroup, name + "_lane");
  std::vector<Expr> laneAt = {lanes.x};
  laneAt.insert(laneAt.end(), v.begin(), v.end());
  dot(v) = 0.0f;
  dot(v) += partial(laneAt);
  return {dot, partial, lane, RVar(blocks.x), std::nullopt};
}

// dot(v) = sum over k of x(k) * w(v[0], k) for a block-quantized weight w, in vector lanes of
// kBlockGroup: each step of the reduction one block, its groups decoded in registers and their
// products summed as a balanced tree (short dependency chains), then added to the lanes.
LaneDot blockDot(const std::string& name, const BlockWeight& w,
                 const std::function<Expr(Expr)>& xAt, const std::vector<Var>& v) {
  Var lane("lane");
  RDom blocks(0, clampToInt(w.rowElements / w.blockElements), name + "_blocks");
  // Each scaled run's sum of x * quant, times its scale once (plus its offset times the run's
  // sum of x), instead of a scale product per element.
  auto treeSum = [](std::vector<Expr> terms) {
    while (terms.size() > 1) {
      std::vector<Expr> sums;
      for (size_t i = 0; i + 1 < terms.size(); i += 2)
        sums.push_back(terms[i] + terms[i + 1]);
      if (terms.size() % 2)
        sums.push_back(terms.back());
      terms = std::move(sums);
    }
    return terms[0];
  };
  std::vector<Expr> runs;
  int groups = static_cast<int>(w.blockElements / kBlockGroup), perScale = groupsPerScale(w.type);
  for (int first = 0; first < groups; first += perScale) {
    std::vector<Expr> products, xs;
    BlockTerm run;
    for (int g = first; g < first + perScale; ++g) {
      BlockTerm term = w.term(v[0], blocks.x, g, lane);
      Expr x = xAt(blocks.x * clampToInt(w.blockElements) + kBlockGroup * g + lane);
      products.push_back(x * term.quant);
      xs.push_back(x);
      run = term;
    }
    Expr value = run.scale * treeSum(products);
    runs.push_back(run.offset.defined() ? value + run.offset * treeSum(xs) : value);
  }
  LaneDot dot = laneSums(name, treeSum(runs), lane, blocks, v);
  dot.streamed = w.bytes;
  dot.blocksPerRow = clampToInt(w.rowElements / w.blockElements);
  return dot;
}

// The same dot product for many rows (prefill): the weight rows of each panel decoded into f32
// once per chunk of rows (decoded[g](lane, block, n), one Func per group of the block), and the
// chunk's dot products read them from cache as an f32 weight's are read. Decoding in registers
// for every block of rows (blockDot) would decode each weight once per kRowBlock rows; here once
// per chunk.
LaneDot panelDot(const std::string& name, const BlockWeight& w,
                 const std::function<Expr(Expr)>& xAt, const std::vector<Var>& v,
                 std::vector<Func>& decoded) {
  Var lane("lane"), block("block"), n("n");
  RDom blocks(0, clampToInt(w.rowElements / w.blockElements), name + "_blocks");
  int groups = static_cast<int>(w.blockElements / kBlockGroup);
  std::vector<Expr> products;
  for (int g = 0; g < groups; ++g) {
    Func panel(name + "_decoded" + std::to_string(g));
    panel(lane, block, n) = w.element(n, block, g, lane);
    decoded.push_back(panel);
    Expr x = xAt(blocks.x * clampToInt(w.blockElements) + kBlockGroup * g + lane);
    products.push_back(x * panel(lane, blocks.x, v[0]));
  }
  Expr sum = products[0];
  for (size_t i = 1; i < products.size(); ++i)
    sum = sum + products[i];
  return laneSums(name, sum, lane, blocks, v);
}

// A block-quantized weight's dot products both ways: decoded in registers for one row (decode),
// through decoded panels for many (prefill). value(v) picks by `rows`; the caller specializes its
// output on oneRow, and Halide computes in each case only the Funcs that case reads. In the fast
// arithmetic (integer), where the weight's type has an integer dot product, every row count is
// integer instead: one row in one row's dot product, more in integer tiles (from 4 rows faster
// than the f32 panels, at 2 within a tenth of them; one arithmetic whatever the rows); a gated
// MLP's other weights stay exact.
struct BlockDots {
  LaneDot oneRow, manyRows;
  std::optional<IntegerDots> integer;
  std::vector<Func> decoded;
  Expr isOneRow;
  Expr value(const std::vector<Var>& v) const {
    if (!integer)
      return select(isOneRow, oneRow.dot(v), manyRows.dot(v));
    if (v.size() == 1)
      return integer->oneRow(v);
    return select(isOneRow, integer->oneRow(v), integer->manyRows(v));
  }
};

BlockDots blockDots(const std::string& name, const BlockWeight& w,
                    const std::function<Expr(Expr)>& xAt, const std::vector<Var>& v,
                    const Expr& rows, bool integer) {
  BlockDots dots;
  if (integer && hasIntegerDotProduct(w.type)) {
    dots.integer = integerDots(name, w, xAt, v);
  } else {
    dots.oneRow = blockDot(name, w, xAt, v);
    dots.manyRows = panelDot(name + "_panel", w, xAt, v, dots.decoded);
  }
  dots.isOneRow = rows == 1;
  return dots;
}

// Whether quantize-activations marked the op for integer dot products.
bool integerArithmetic(const Op& op) {
  return op.hasAttr("arithmetic");
}

// Schedules out over the dot products (scheduleLaneDots), the decoded panels computed at each
// panel of each chunk, and then out specialized for one row.
void scheduleBlockDots(Func out, const std::vector<const BlockDots*>& dots,
                       const std::vector<Var>& v, int64_t outputs, int64_t reductionLength,
                       const Expr& rows) {
  std::vector<LaneDot> laneDots;
  for (const BlockDots* d : dots)
    if (!d->integer) {
      laneDots.push_back(d->oneRow);
      laneDots.push_back(d->manyRows);
    }
  int rowChunk = scheduleLaneDots(out, laneDots, v, outputs, reductionLength, rows);
  for (const BlockDots* d : dots) {
    for (Func panel : d->decoded)
      panel.compute_at(out, Var("panel")).vectorize(panel.args()[0]);
    if (d->integer)
      d->integer->schedule(out, rowChunk);
  }
  out.specialize(dots.front()->isOneRow);
}

// Reads x [K, rows...] at element k of the row at the result's coordinates v[1...], the row
// clamped (row blocks and chunks round up past the last row).
std::function<Expr(Expr)> rowReader(const ImageParam& x, const std::vector<Var>& v) {
  return [x, v](Expr k) {
    std::vector<Expr> at = {std::move(k)};
    for (size_t d = 1; d < v.size(); ++d)
      at.push_back(d == 1 ? clamp(v[d], 0, x.dim(1).extent() - 1) : Expr(v[d]));
    return Expr(x(at));
  };
}

// matmul with a block-quantized weight (a GGUF projection's [out, in] rows, or the tied
// embedding as the logits): each output a dot product over a row of blocks.
Kernel blockMatmul(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "matmul";
  ImageParam a = operandParam(op, 0, "a");
  BlockWeight w = blockWeightParam(op, 1, "b").forDotPanels();
  k.inputs = {a, w.bytes};
  std::vector<Var> v = vars(op.result()->type.rank()); // v[0] = n, v[1] = m, then batch dims
  // The operand's rows pick the way (a definition cannot read its own output's extent): a
  // prompt's logits, which keep only the last row, go through the panels once per prompt.
  Expr rows = a.dim(1).extent();
  k.usesDotProductInstructions = integerArithmetic(op);
  BlockDots dots = blockDots("dot", w, rowReader(a, v), v, rows, k.usesDotProductInstructions);
  k.output = Func("out");
  Expr value = dots.value(v);
  if (const double* softcap = op.attr<double>("softcap"); softcap && *softcap > 0) {
    float c = static_cast<float>(*softcap);
    value = vectorTanh(value / c) * c;
  }
  k.output(v) = cast(halideType(op.result()->type.elementType), value);
  scheduleBlockDots(k.output, {&dots}, v, w.rows, w.rowElements, rows);
  (void)target;
  return k;
}

// The gated MLP with block-quantized gate, up and down weights: the gated activations of all
// rows first (parallel over their features), then the down projection (over its outputs).
Kernel blockGatedMlp(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "gated_mlp";
  ImageParam x = operandParam(op, 0, "x");
  BlockWeight gate = blockWeightParam(op, 1, "gate").forDotPanels(),
              up = blockWeightParam(op, 2, "up").forDotPanels(),
              down = blockWeightParam(op, 3, "down").forDotPanels();
  k.inputs = {x, gate.bytes, up.bytes, down.bytes};
  std::vector<Var> v = vars(op.result()->type.rank());
  bool tanhApproximation = *op.attr<std::string>("activation") == "gelu_tanh";
  bool hasRows = v.size() > 1;
  Expr rows = hasRows ? x.dim(1).extent() : Expr(1);
  Var i("i");
  std::vector<Var> iRows = {i};
  iRows.insert(iRows.end(), v.begin() + 1, v.end());
  k.usesDotProductInstructions = integerArithmetic(op);
  bool integer = k.usesDotProductInstructions;
  BlockDots gateDots = blockDots("gate_dot", gate, rowReader(x, iRows), iRows, rows, integer);
  BlockDots upDots = blockDots("up_dot", up, rowReader(x, iRows), iRows, rows, integer);
  Func gatedRows("gated_rows");
  gatedRows(iRows) = gelu(gateDots.value(iRows), tanhApproximation) * upDots.value(iRows);
  auto gatedAt = [&](Expr feature) {
    std::vector<Expr> at = {std::move(feature)};
    at.insert(at.end(), v.begin() + 1, v.end());
    return Expr(gatedRows(at));
  };
  BlockDots downDots = blockDots("down_dot", down, gatedAt, v, rows, integer);
  k.output = Func("out");
  k.output(v) = cast(halideType(op.result()->type.elementType), downDots.value(v));
  gatedRows.compute_root();
  scheduleBlockDots(gatedRows, {&gateDots, &upDots}, iRows, gate.rows, gate.rowElements, rows);
  scheduleBlockDots(k.output, {&downDots}, v, down.rows, down.rowElements, rows);
  (void)target;
  return k;
}

} // namespace

void prefetchWeightRowsInDecode(Stage oneRow, const VarOrRVar& blockLoop, const ImageParam& weight,
                                int blocksPerRow) {
  // kDotPanel * blocksPerRow blocks past a panel row's block is the same block of that row in
  // the next panel: the prefetch's rows are not clamped (a prefetch past the end cannot fault).
  oneRow.prefetch(weight, blockLoop, blockLoop, kPrefetchPanels * kDotPanel * blocksPerRow,
                  PrefetchBoundStrategy::NonFaulting);
}

// matmul [..., M, K] x [..., K, N], ONNX's (numpy's) batched product with broadcast batch dims:
// the model's projections (a 2-D right operand) and, with fusions off, attention's QK^T and PV.
// Rows of the result in parallel. (Decode-shaped matvec schedules are the performance issue's.)
Kernel matmul(const Op& op, TargetKind target) {
  if (isBlockQuantized(op.operands[1]->type.elementType))
    return blockMatmul(op, target);
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
  Expr value = dot(v);
  if (const double* softcap = op.attr<double>("softcap"); softcap && *softcap > 0) {
    float c = static_cast<float>(*softcap); // fuse-softcap's: c * tanh(x / c), in registers
    value = vectorTanh(value / c) * c;
  }
  k.output(v) = cast(halideType(result.elementType), value);
  if (op.operands[1]->type.rank() == 2 && hasPermutedStorage(*op.operands[1])) {
    // A projection with torch's [out, in] weight, read in place: each output a dot product over
    // a contiguous weight row.
    scheduleDotProducts(k.output, {{dot, r}}, v, staticExtent(result.dims.back()),
                        staticExtent(op.operands[0]->type.dims.back()),
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

// down(act(x gate) * (x up)) for rows of x [..., D]; gate, up [D, I], down [I, D'].
Kernel gatedMlp(const Op& op, TargetKind target) {
  if (isBlockQuantized(op.operands[1]->type.elementType))
    return blockGatedMlp(op, target);
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
                        staticExtent(op.operands[1]->type.dims.back()),
                        staticExtent(op.operands[0]->type.dims.back()),
                        hasRows ? x.dim(1).extent() : Expr(1), target);
    scheduleDotProducts(k.output, {{down_, ri}}, v, staticExtent(op.result()->type.dims.back()),
                        staticExtent(op.operands[3]->type.dims[0]),
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

} // namespace gemma::kernels
