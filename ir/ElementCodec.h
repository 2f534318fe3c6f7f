// How each element type is stored, and the one place that encodes and decodes its bytes
// (little-endian, as safetensors, ONNX, the weights file and the program's buffers hold them).
// Header-only, with no code outside it, so the runtime uses it as the compiler does.
//
// f32 -> bf16 rounds to nearest even (as Halide's bfloat16_t and torch do; NaN stays a quiet
// NaN); f32 -> f16 is the compiler's _Float16 conversion (IEEE round to nearest even). A double
// narrows to bf16 through f32, to f16 directly.
//
// Storage is per block: a per-element type is a block of one element; a block-quantized type (a
// GGUF one: Q4_K is 256 elements in 144 bytes) has its block in storageLayout, and tensors of it
// are counted in whole blocks (storageBytes), never through a per-element size. Its blocks are
// decoded by formats/Gguf.h (the compiler) and by the kernels, never one element at a time.
#pragma once

#include "ir/Types.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <vector>

namespace gemma::codec {

// ---- Scalar conversions ---------------------------------------------------------------------

inline float bf16BitsToFloat(uint16_t bits) {
  uint32_t wide = static_cast<uint32_t>(bits) << 16;
  float f;
  std::memcpy(&f, &wide, 4);
  return f;
}

inline uint16_t floatToBf16Bits(float f) {
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if ((bits & 0x7fffffffu) > 0x7f800000u) // NaN: keep it one, quiet
    return static_cast<uint16_t>((bits >> 16) | 0x40u);
  return static_cast<uint16_t>((bits + 0x7fffu + ((bits >> 16) & 1u)) >> 16);
}

inline float f16BitsToFloat(uint16_t bits) {
  _Float16 h;
  std::memcpy(&h, &bits, 2);
  return static_cast<float>(h);
}

inline uint16_t doubleToF16Bits(double value) {
  _Float16 h = static_cast<_Float16>(value);
  uint16_t bits;
  std::memcpy(&bits, &h, 2);
  return bits;
}

// ---- Storage --------------------------------------------------------------------------------

struct StorageLayout {
  int64_t blockElements; // elements per block
  int64_t blockBytes;    // bytes per block
};

constexpr StorageLayout storageLayout(ElementType type) {
  switch (type) {
  case ElementType::F32:
  case ElementType::I32:
    return {1, 4};
  case ElementType::BF16:
  case ElementType::F16:
    return {1, 2};
  case ElementType::I64:
    return {1, 8};
  case ElementType::I8:
  case ElementType::Bool:
    return {1, 1};
  // ggml's block_q4_0 ... block_q6_K (ggml-common.h): f16 scales, packed quants.
  case ElementType::Q4_0:
    return {32, 18};
  case ElementType::Q4_1:
    return {32, 20};
  case ElementType::Q5_0:
    return {32, 22};
  case ElementType::Q5_1:
    return {32, 24};
  case ElementType::Q8_0:
    return {32, 34};
  case ElementType::Q4_K:
    return {256, 144};
  case ElementType::Q5_K:
    return {256, 176};
  case ElementType::Q6_K:
    return {256, 210};
  }
  return {1, 0};
}

// The bytes of `count` elements (a whole number of blocks).
constexpr int64_t storageBytes(ElementType type, int64_t count) {
  StorageLayout layout = storageLayout(type);
  return count / layout.blockElements * layout.blockBytes;
}

// ---- Elements (per-element types) -----------------------------------------------------------

// An integer or bool element exactly (INT64_MAX, "to the end", does not survive a double); a
// float element truncated.
inline double decodeElement(ElementType type, const uint8_t* at);

inline int64_t decodeInteger(ElementType type, const uint8_t* at) {
  switch (type) {
  case ElementType::I64: {
    int64_t v;
    std::memcpy(&v, at, 8);
    return v;
  }
  case ElementType::I32: {
    int32_t v;
    std::memcpy(&v, at, 4);
    return v;
  }
  case ElementType::I8:
    return static_cast<int8_t>(*at);
  case ElementType::Bool:
    return *at != 0;
  case ElementType::F32:
  case ElementType::BF16:
  case ElementType::F16:
  case ElementType::Q4_0:
  case ElementType::Q4_1:
  case ElementType::Q5_0:
  case ElementType::Q5_1:
  case ElementType::Q8_0:
  case ElementType::Q4_K:
  case ElementType::Q5_K:
  case ElementType::Q6_K:
    break; // a block-quantized type has no single element to decode
  }
  return static_cast<int64_t>(decodeElement(type, at));
}

// The element at `at` as a double (exact for every integer below 2^53, and for every float).
inline double decodeElement(ElementType type, const uint8_t* at) {
  switch (type) {
  case ElementType::F32: {
    float f;
    std::memcpy(&f, at, 4);
    return f;
  }
  case ElementType::BF16:
    return bf16BitsToFloat(static_cast<uint16_t>(at[0] | (at[1] << 8)));
  case ElementType::F16:
    return f16BitsToFloat(static_cast<uint16_t>(at[0] | (at[1] << 8)));
  case ElementType::I64:
  case ElementType::I32:
  case ElementType::I8:
  case ElementType::Bool:
    return static_cast<double>(decodeInteger(type, at));
  case ElementType::Q4_0:
  case ElementType::Q4_1:
  case ElementType::Q5_0:
  case ElementType::Q5_1:
  case ElementType::Q8_0:
  case ElementType::Q4_K:
  case ElementType::Q5_K:
  case ElementType::Q6_K:
    break; // decoded per block (formats/Gguf.h), never per element
  }
  return 0;
}

// Writes `value` at `at`, rounded to a float type (above) or converted to an integer one.
inline void encodeElement(ElementType type, double value, uint8_t* at) {
  switch (type) {
  case ElementType::F32: {
    float f = static_cast<float>(value);
    std::memcpy(at, &f, 4);
    return;
  }
  case ElementType::BF16: {
    uint16_t bits = floatToBf16Bits(static_cast<float>(value));
    std::memcpy(at, &bits, 2);
    return;
  }
  case ElementType::F16: {
    uint16_t bits = doubleToF16Bits(value);
    std::memcpy(at, &bits, 2);
    return;
  }
  case ElementType::I64: {
    // Saturated: converting a double outside int64's range is undefined (INT64_MAX, Slice's
    // "to the end", is 2^63 as a double).
    constexpr double kLimit = 9223372036854774784.0; // the largest double below 2^63
    int64_t v = value >= kLimit    ? std::numeric_limits<int64_t>::max()
                : value <= -kLimit ? std::numeric_limits<int64_t>::min()
                                   : static_cast<int64_t>(value);
    std::memcpy(at, &v, 8);
    return;
  }
  case ElementType::I32: {
    int32_t v = static_cast<int32_t>(value);
    std::memcpy(at, &v, 4);
    return;
  }
  case ElementType::I8:
    *at = static_cast<uint8_t>(static_cast<int8_t>(value));
    return;
  case ElementType::Bool:
    *at = static_cast<uint8_t>(value != 0);
    return;
  case ElementType::Q4_0:
  case ElementType::Q4_1:
  case ElementType::Q5_0:
  case ElementType::Q5_1:
  case ElementType::Q8_0:
  case ElementType::Q4_K:
  case ElementType::Q5_K:
  case ElementType::Q6_K:
    return; // encoded per block (llama.cpp's quantizer), never per element
  }
}

// Every element of `bytes` (a whole number of elements) as doubles.
inline std::vector<double> decodeElements(ElementType type, const uint8_t* bytes, size_t size) {
  size_t width = static_cast<size_t>(storageLayout(type).blockBytes);
  std::vector<double> values(size / width);
  for (size_t i = 0; i < values.size(); ++i)
    values[i] = decodeElement(type, bytes + i * width);
  return values;
}

// `value` as the float type holds it (f32, bf16, f16): what encoding and decoding it gives.
inline double roundToFloatType(double value, ElementType type) {
  uint8_t bytes[4];
  encodeElement(type, value, bytes);
  return decodeElement(type, bytes);
}

} // namespace gemma::codec
