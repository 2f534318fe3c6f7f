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

// ---- GGUF blocks (BlockKernels.cpp) -------------------------------------------------------------

// Block-quantized weights are decoded in groups of 16 consecutive elements (every block is whole
// groups: 32 or 256 elements), each group a vector of the lane's values.
constexpr int kBlockGroup = 16;

// Element 16 group + lane (lane in [0, 16)) of the block whose first byte is at `blockBase` of a
// row that byteAt reads (a UInt(8) at a byte offset), as the f32 value gguf-py dequantizes it to.
// `group` is known here, so every choice of nibble, scale and bit is made at compile time.
Halide::Expr blockElement(ElementType type, const std::function<Halide::Expr(Halide::Expr)>& byteAt,
                          Halide::Expr blockBase, int group, Halide::Expr lane);

// The same element as scale * quant (+ offset, where the type has one: Q4_1, Q5_1's mins, the
// K-quants' scaled mins negated), scale and offset shared by groupsPerScale consecutive groups:
// a dot product multiplies by the scale once per scaled run.
struct BlockTerm {
  Halide::Expr scale, quant, offset; // offset undefined where there is none
};
BlockTerm blockTerm(ElementType type, const std::function<Halide::Expr(Halide::Expr)>& byteAt,
                    Halide::Expr blockBase, int group, Halide::Expr lane);
int groupsPerScale(ElementType type);
// The little-endian f16 at byte `offset` of what byteAt reads, as f32 exactly.
Halide::Expr f16At(const std::function<Halide::Expr(Halide::Expr)>& byteAt,
                   const Halide::Expr& offset);

// Outputs in panels of kDotPanel weight rows (the Var "panel" of the output's schedule); in decode
// each panel's weight rows are prefetched kPrefetchPanels panels ahead.
constexpr int kDotPanel = 4, kPrefetchPanels = 1;

// A block-quantized weight operand: a UInt(8) ImageParam [row bytes, rows] of its stored rows
// (a projection's [out, in] rows, or an embedding table's), each a whole number of blocks.
struct BlockWeight {
  ElementType type;
  Halide::ImageParam bytes;
  int64_t rows = 0, rowElements = 0, blockElements = 0, blockBytes = 0;
  // Whether reads clamp the row to the rows: a lookup's rows come from its indices; a dot
  // product's panels need it only where kDotPanel does not divide the rows (forDotPanels).
  bool clampRows = true;
  BlockWeight& forDotPanels() {
    clampRows = rows % kDotPanel != 0;
    return *this;
  }
  // Element 16 group + lane of block `block` of row `row` (clamped to the rows, if clampRows).
  Halide::Expr element(const Halide::Expr& row, const Halide::Expr& block, int group,
                       const Halide::Expr& lane) const;
  BlockTerm term(const Halide::Expr& row, const Halide::Expr& block, int group,
                 const Halide::Expr& lane) const;
  // Element k of row `row`, any k (a lookup, not a dot product's stream).
  Halide::Expr element(const Halide::Expr& row, const Halide::Expr& k) const;
  // A reader of row `row`'s bytes (clamped to the rows, if clampRows).
  std::function<Halide::Expr(Halide::Expr)> rowBytes(const Halide::Expr& row) const;
};
BlockWeight blockWeightParam(const Op& op, size_t i, const std::string& name);

// ---- Dot-product tiling (DotProductKernels.cpp) ------------------------------------------------

// Decode's prefetch of a block-quantized `weight`'s rows, kPrefetchPanels panels ahead: in
// `oneRow` (the dot product's update where it computes one row), at each step of its loop over a
// row's blocks (blockLoop), that step's blocks of the panel ahead. Rows of a few hundred bytes (a
// Q8_0 row of 640 is 680 bytes) are too short a stream for the hardware prefetchers to learn
// before it ends; compileKernelToObject makes the prefetches prefetcht0. Spread over the blocks,
// the prefetches keep memory busy; all of a panel's at once (a loop at the start of each panel, as
// first built) stalled on the line-fill buffers, and the 178 MB Q8_0 logits streamed at 11.5
// instead of 18 GB/s. The panel's rows are read one after the other, not block by block in
// turn: each core's weights then come as one sequential stream, and the real 270M's decode went
// from 49-63 to 72-98 tokens/s on Zen 4 (the 178 MB Q8_0 logits from 11.6 to 6.6-7.1 ms in
// KernelBench); four streams 680 bytes apart defeated its prefetchers. Many rows reuse each panel
// and are not prefetched.
void prefetchWeightRowsInDecode(Halide::Stage oneRow, const Halide::VarOrRVar& blockLoop,
                                const Halide::ImageParam& weight, int blocksPerRow);

// ---- The fast arithmetic (IntegerDotKernels.cpp) ------------------------------------------------

// dot(v) = sum over k of x(k) * w(v[0], k) for rows of activations (xAt reads element k of the
// row at v[1...]) quantized to int8 per block of 32, in integer dot products (VNNI): oneRow for a
// single row (decode), manyRows in register tiles over the rows (prefill). schedule() places
// their Funcs in `out`, which the block kernels' schedule has split into tasks and panels
// (rowChunk: the rows its chunks bound storage to).
struct IntegerDots {
  Halide::Func oneRow, manyRows;
  std::function<void(Halide::Func out, int rowChunk)> schedule;
};
IntegerDots integerDots(const std::string& name, const BlockWeight& w,
                        const std::function<Halide::Expr(Halide::Expr)>& xAt,
                        const std::vector<Halide::Var>& v);

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
