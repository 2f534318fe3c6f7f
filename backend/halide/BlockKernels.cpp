// GGUF's block-quantized weights read as they are stored: each block decoded in registers into
// the f32 values the gguf Python package's dequantization gives (formats/Gguf.cpp decodes the
// same blocks on the compiler's side), sixteen elements at a time.
#include "backend/halide/KernelBuilders.h"
#include "ir/ElementCodec.h"

namespace gemma::kernels {

using namespace Halide;

namespace {

// Readers of one row's bytes, at offsets from its block's first byte.
struct BlockBytes {
  const std::function<Expr(Expr)>& byteAt;
  Expr base;

  Expr u8(Expr offset) const { return byteAt(base + offset); }
  Expr i8(Expr offset) const { return reinterpret(Int(8), u8(std::move(offset))); }
  Expr f16(int offset) const { return f16At(byteAt, base + offset); }
  Expr u32(int offset) const {
    return cast<uint32_t>(u8(offset)) | (cast<uint32_t>(u8(offset + 1)) << 8) |
           (cast<uint32_t>(u8(offset + 2)) << 16) | (cast<uint32_t>(u8(offset + 3)) << 24);
  }
};

Expr f32(Expr e) {
  return cast<float>(std::move(e));
}

// Element j's low (j < 16) or high nibble of the 16 bytes at `offset` (Q4_0, Q4_1, Q5_0, Q5_1).
Expr nibble(const BlockBytes& b, int offset, int group, const Expr& lane) {
  Expr byte = b.u8(offset + lane);
  return cast<int32_t>(group == 0 ? (byte & 0x0F) : (byte >> 4));
}

// The 5th bit of element 16 group + lane: that bit of the little-endian u32 qh.
Expr fifthBit(const BlockBytes& b, int offset, int group, const Expr& lane) {
  return cast<int32_t>((b.u32(offset) >> cast<uint32_t>(16 * group + lane)) & 1u) << 4;
}

// Q4_K and Q5_K's six-bit scale and min of sub-block s, packed in the 12 bytes at 4
// (llama.cpp's get_scale_min_k4).
std::pair<Expr, Expr> scaleMinK4(const BlockBytes& b, int s) {
  auto q = [&](int i) { return cast<int32_t>(b.u8(4 + i)); };
  if (s < 4)
    return {q(s) & 63, q(s + 4) & 63};
  return {(q(s + 4) & 0x0F) | ((q(s - 4) >> 6) << 4), (q(s + 4) >> 4) | ((q(s) >> 6) << 4)};
}

} // namespace

Expr f16At(const std::function<Expr(Expr)>& byteAt, const Expr& offset) {
  // LLVM's conversion intrinsic, one vcvtph2ps with F16C. (Halide 14 emulates f16 casts on x86
  // in a dozen integer steps per scale, most of a Q8_0 block's cost.)
  Expr bits = cast<uint16_t>(byteAt(offset)) | (cast<uint16_t>(byteAt(offset + 1)) << 8);
  return Internal::Call::make(Float(32), "llvm.convert.from.fp16.f32", {bits},
                              Internal::Call::PureExtern);
}

int groupsPerScale(ElementType type) {
  // Q6_K scales 16 elements, Q4_K and Q5_K 32 (a sub-block), the others a whole block of 32.
  return type == ElementType::Q6_K ? 1 : 2;
}

BlockTerm blockTerm(ElementType type, const std::function<Expr(Expr)>& byteAt, Expr blockBase,
                    int group, Expr lane) {
  BlockBytes b{byteAt, std::move(blockBase)};
  // Each as Gguf.cpp's decoder computes it (the same products in the same order: a - b is
  // a + (-b) exactly).
  switch (type) {
  case ElementType::Q8_0:
    return {b.f16(0), f32(b.i8(2 + kBlockGroup * group + lane)), Expr()};
  case ElementType::Q4_0:
    return {b.f16(0), f32(nibble(b, 2, group, lane) - 8), Expr()};
  case ElementType::Q4_1:
    return {b.f16(0), f32(nibble(b, 4, group, lane)), b.f16(2)};
  case ElementType::Q5_0:
    return {b.f16(0), f32((nibble(b, 6, group, lane) | fifthBit(b, 2, group, lane)) - 16), Expr()};
  case ElementType::Q5_1:
    return {b.f16(0), f32(nibble(b, 8, group, lane) | fifthBit(b, 4, group, lane)), b.f16(2)};
  case ElementType::Q4_K:
  case ElementType::Q5_K: {
    // Sub-block s (32 elements): the low or high nibbles of the 32-byte run s / 2.
    int s = group / 2;
    int qs = type == ElementType::Q4_K ? 16 : 48;
    Expr l = kBlockGroup * (group % 2) + lane;
    Expr byte = b.u8(qs + (s / 2) * 32 + l);
    Expr q = cast<int32_t>(s % 2 ? (byte >> 4) : (byte & 0x0F));
    if (type == ElementType::Q5_K)
      q = q | (cast<int32_t>((b.u8(16 + l) >> s) & 1) << 4);
    auto [scale, min] = scaleMinK4(b, s);
    return {b.f16(0) * f32(scale), f32(q), -(b.f16(2) * f32(min))};
  }
  case ElementType::Q6_K: {
    // Element e = 16 group + lane: half h of 128, and r within it; 16 elements per scale.
    int h = group / 8, r = kBlockGroup * (group % 8);
    Expr low = r < 64 ? (b.u8(h * 64 + r + lane) & 0x0F) : (b.u8(h * 64 + r - 64 + lane) >> 4);
    Expr high = (b.u8(128 + h * 32 + r % 32 + lane) >> (2 * (r / 32))) & 3;
    Expr q = cast<int32_t>(low | (high << 4)) - 32;
    return {b.f16(208) * f32(b.i8(192 + group)), f32(q), Expr()};
  }
  case ElementType::F32:
  case ElementType::BF16:
  case ElementType::F16:
  case ElementType::I64:
  case ElementType::I32:
  case ElementType::I8:
  case ElementType::Bool:
    break;
  }
  throw InternalError("blockTerm: " + std::string(elementTypeName(type)) +
                      " is not block-quantized");
}

Expr blockElement(ElementType type, const std::function<Expr(Expr)>& byteAt, Expr blockBase,
                  int group, Expr lane) {
  BlockTerm term = blockTerm(type, byteAt, std::move(blockBase), group, std::move(lane));
  Expr value = term.scale * term.quant;
  return term.offset.defined() ? value + term.offset : value;
}

BlockWeight blockWeightParam(const Op& op, size_t i, const std::string& name) {
  const Value& operand = *op.operands[i];
  TensorType stored = storedWeightType(*operand.definingOp);
  BlockWeight w;
  w.type = operand.type.elementType;
  w.rows = stored.dims[0].staticValue();
  w.rowElements = stored.dims[1].staticValue();
  codec::StorageLayout layout = codec::storageLayout(w.type);
  w.blockElements = layout.blockElements;
  w.blockBytes = layout.blockBytes;
  w.bytes = ImageParam(UInt(8), 2, name);
  int64_t rowBytes = codec::storageBytes(w.type, w.rowElements);
  w.bytes.dim(0).set_min(0).set_extent(clampToInt(rowBytes)).set_stride(1);
  w.bytes.dim(1).set_min(0).set_extent(clampToInt(w.rows)).set_stride(clampToInt(rowBytes));
  return w;
}

std::function<Expr(Expr)> BlockWeight::rowBytes(const Expr& row) const {
  Expr clamped = clampRows ? clamp(row, 0, clampToInt(rows) - 1) : row;
  ImageParam data = bytes;
  return [data, clamped](Expr offset) { return data(std::move(offset), clamped); };
}

Expr BlockWeight::element(const Expr& row, const Expr& block, int group, const Expr& lane) const {
  return blockElement(type, rowBytes(row), block * clampToInt(blockBytes), group, lane);
}

BlockTerm BlockWeight::term(const Expr& row, const Expr& block, int group, const Expr& lane) const {
  return blockTerm(type, rowBytes(row), block * clampToInt(blockBytes), group, lane);
}

Expr BlockWeight::element(const Expr& row, const Expr& k) const {
  // Element k of a row: its block, and its group of 16 picked among the block's.
  Expr block = k / clampToInt(blockElements), inBlock = k % clampToInt(blockElements);
  Expr group = inBlock / kBlockGroup, lane = inBlock % kBlockGroup;
  int groups = static_cast<int>(blockElements / kBlockGroup);
  Expr value = element(row, block, groups - 1, lane);
  for (int g = groups - 2; g >= 0; --g)
    value = select(group == g, element(row, block, g, lane), value);
  return value;
}

} // namespace gemma::kernels
