// f32 to GGUF blocks as llama.cpp's reference quantizer writes them (ggml-quants.c's
// quantize_row_{q8_0,q4_0,q4_K}_ref: what llama-quantize runs for these types without an
// importance matrix), operation for operation in f32 and in the same order, so that the bytes are
// the same. This file is built with -ffp-contract=off: a fused multiply-add would round
// differently and move a value across a rounding boundary.

#include "formats/Gguf.h"
#include "ir/Diagnostics.h"
#include "ir/ElementCodec.h"

#include <algorithm>
#include <cmath>
#include <cstring>

namespace gemma {

namespace {

// GGML_FP32_TO_FP16: round to nearest even (a double holds the float exactly, so one rounding).
uint16_t toHalf(float value) {
  return codec::doubleToF16Bits(static_cast<double>(value));
}
float fromHalf(uint16_t bits) {
  return codec::f16BitsToFloat(bits);
}
void storeHalf(uint8_t* at, uint16_t bits) {
  std::memcpy(at, &bits, 2);
}

// ggml's nearest_int: round to nearest even through the float adder (|value| <= 2^22).
int nearestInt(float value) {
  float biased = value + 12582912.f;
  int32_t bits;
  std::memcpy(&bits, &biased, 4);
  return (bits & 0x007fffff) - 0x00400000;
}

// block_q8_0: f16 d, then 32 int8 (round half away from zero) of x / d, d = max|x| / 127.
bool quantizeQ8_0(const float* x, uint8_t* block) {
  float amax = 0.0f;
  for (int j = 0; j < 32; ++j)
    amax = std::max(amax, std::fabs(x[j]));
  const float d = amax / 127;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint16_t half = toHalf(d);
  storeHalf(block, half);
  for (int j = 0; j < 32; ++j)
    block[2 + j] = static_cast<uint8_t>(static_cast<int8_t>(std::round(x[j] * id)));
  return std::isfinite(fromHalf(half));
}

// block_q4_0: f16 d = (the value of largest magnitude) / -8, then 32 nibbles of x / d + 8 (element
// j in the low nibble of byte j, element j + 16 in its high nibble).
bool quantizeQ4_0(const float* x, uint8_t* block) {
  float amax = 0.0f, max = 0.0f;
  for (int j = 0; j < 32; ++j)
    if (amax < std::fabs(x[j])) {
      amax = std::fabs(x[j]);
      max = x[j];
    }
  const float d = max / -8;
  const float id = d != 0.0f ? 1.0f / d : 0.0f;
  uint16_t half = toHalf(d);
  storeHalf(block, half);
  // (int8_t)(v + 8.5f) truncates; v is within [-8, 8] up to rounding.
  auto nibble = [](float v) {
    return static_cast<uint8_t>(std::min(15, static_cast<int>(static_cast<int8_t>(v + 8.5f))));
  };
  for (int j = 0; j < 16; ++j)
    block[2 + j] = static_cast<uint8_t>(nibble(x[j] * id) | (nibble(x[16 + j] * id) << 4));
  return std::isfinite(fromHalf(half));
}

// make_qkx2_quants(32, 15, ...) with rmin -1, rdelta 0.1, 20 steps, squared error: the scale and
// (negated) min of 4-bit levels L for 32 values, searched around (max - min) / 15.
float fitScaleAndMin(const float* x, const float* weights, uint8_t* levels, float* negatedMin) {
  constexpr int n = 32, nmax = 15, nstep = 20;
  constexpr float rmin = -1.f, rdelta = 0.1f;
  float min = x[0], max = x[0];
  float sumW = weights[0];
  float sumX = sumW * x[0];
  for (int i = 1; i < n; ++i) {
    if (x[i] < min)
      min = x[i];
    if (x[i] > max)
      max = x[i];
    float w = weights[i];
    sumW += w;
    sumX += w * x[i];
  }
  if (min > 0)
    min = 0;
  if (max == min) {
    std::fill(levels, levels + n, uint8_t(0));
    *negatedMin = -min;
    return 0.f;
  }
  float iscale = nmax / (max - min);
  float scale = 1 / iscale;
  float bestError = 0;
  for (int i = 0; i < n; ++i) {
    int l = nearestInt(iscale * (x[i] - min));
    levels[i] = static_cast<uint8_t>(std::max(0, std::min(nmax, l)));
    float diff = scale * levels[i] + min - x[i];
    bestError += weights[i] * (diff * diff);
  }
  uint8_t trial[n];
  for (int is = 0; is <= nstep; ++is) {
    iscale = (rmin + rdelta * static_cast<float>(is) + nmax) / (max - min);
    float sumL = 0, sumL2 = 0, sumXL = 0;
    for (int i = 0; i < n; ++i) {
      int l = std::max(0, std::min(nmax, nearestInt(iscale * (x[i] - min))));
      trial[i] = static_cast<uint8_t>(l);
      float w = weights[i];
      // ggml's w*l*l and w*l*x[i]: left to right, l converted to float.
      float lf = static_cast<float>(l);
      sumL += w * lf;
      sumL2 += w * lf * lf;
      sumXL += w * lf * x[i];
    }
    float D = sumW * sumL2 - sumL * sumL;
    if (D > 0) {
      float thisScale = (sumW * sumXL - sumX * sumL) / D;
      float thisMin = (sumL2 * sumX - sumL * sumXL) / D;
      if (thisMin > 0) {
        thisMin = 0;
        thisScale = sumXL / sumL2;
      }
      float error = 0;
      for (int i = 0; i < n; ++i) {
        float diff = thisScale * trial[i] + thisMin - x[i];
        error += weights[i] * (diff * diff);
      }
      if (error < bestError) {
        std::copy(trial, trial + n, levels);
        bestError = error;
        scale = thisScale;
        min = thisMin;
      }
    }
  }
  *negatedMin = -min;
  return scale;
}

// block_q4_K (256 values): f16 d and dmin, 8 six-bit scales and mins packed in 12 bytes, then
// 128 bytes of nibbles (each 64 values: the first 32 in the low nibbles, the next 32 in the high).
bool quantizeQ4_K(const float* x, uint8_t* block) {
  uint8_t levels[256];
  float weights[32], mins[8], scales[8];
  float maxScale = 0, maxMin = 0;
  for (int j = 0; j < 8; ++j) {
    float sumX2 = 0;
    for (int l = 0; l < 32; ++l)
      sumX2 += x[32 * j + l] * x[32 * j + l];
    float averageX = std::sqrt(sumX2 / 32);
    for (int l = 0; l < 32; ++l)
      weights[l] = averageX + std::fabs(x[32 * j + l]);
    scales[j] = fitScaleAndMin(x + 32 * j, weights, levels + 32 * j, &mins[j]);
    maxScale = std::max(maxScale, scales[j]);
    maxMin = std::max(maxMin, mins[j]);
  }
  float inverseScale = maxScale > 0 ? 63.f / maxScale : 0.f;
  float inverseMin = maxMin > 0 ? 63.f / maxMin : 0.f;
  uint8_t* packed = block + 4;
  std::fill(packed, packed + 12, uint8_t(0));
  for (int j = 0; j < 8; ++j) {
    // ggml stores nearest_int's result in a uint8_t before clamping.
    uint8_t ls = std::min<uint8_t>(63, static_cast<uint8_t>(nearestInt(inverseScale * scales[j])));
    uint8_t lm = std::min<uint8_t>(63, static_cast<uint8_t>(nearestInt(inverseMin * mins[j])));
    if (j < 4) {
      packed[j] = ls;
      packed[j + 4] = lm;
    } else {
      packed[j + 4] = static_cast<uint8_t>((ls & 0xF) | ((lm & 0xF) << 4));
      packed[j - 4] |= static_cast<uint8_t>((ls >> 4) << 6);
      packed[j] |= static_cast<uint8_t>((lm >> 4) << 6);
    }
  }
  uint16_t d = toHalf(maxScale / 63.f), dmin = toHalf(maxMin / 63.f);
  storeHalf(block, d);
  storeHalf(block + 2, dmin);
  for (int j = 0; j < 8; ++j) {
    int sc, m;
    scaleMinK4(j, packed, sc, m);
    const float dl = fromHalf(d) * static_cast<float>(sc);
    if (dl == 0.0f)
      continue; // the levels make_qkx2_quants chose stay
    const float ml = fromHalf(dmin) * static_cast<float>(m);
    for (int i = 0; i < 32; ++i)
      levels[32 * j + i] =
          static_cast<uint8_t>(std::max(0, std::min(15, nearestInt((x[32 * j + i] + ml) / dl))));
  }
  uint8_t* q = block + 16;
  for (int j = 0; j < 256; j += 64, q += 32)
    for (int l = 0; l < 32; ++l)
      q[l] = static_cast<uint8_t>(levels[j + l] | (levels[j + l + 32] << 4));
  return std::isfinite(fromHalf(d)) && std::isfinite(fromHalf(dmin));
}

} // namespace

bool quantizes(uint32_t type) {
  auto ggml = static_cast<GgmlType>(type);
  return ggml == GgmlType::Q8_0 || ggml == GgmlType::Q4_0 || ggml == GgmlType::Q4_K;
}

bool quantizeBlocks(uint32_t type, const float* values, int64_t count, uint8_t* out) {
  std::optional<GgmlBlock> block = ggmlBlock(type);
  GEMMA_INTERNAL_ASSERT(quantizes(type) && block && count % block->elements == 0,
                        "whole blocks of a type gemmac quantizes to");
  for (int64_t i = 0; i < count; ++i)
    if (!std::isfinite(values[i]))
      return false;
  bool finite = true;
  for (int64_t i = 0; i < count / block->elements; ++i) {
    const float* x = values + i * block->elements;
    uint8_t* b = out + i * block->bytes;
    switch (static_cast<GgmlType>(type)) {
    case GgmlType::Q8_0:
      finite = quantizeQ8_0(x, b) && finite;
      break;
    case GgmlType::Q4_0:
      finite = quantizeQ4_0(x, b) && finite;
      break;
    default:
      finite = quantizeQ4_K(x, b) && finite;
      break;
    }
  }
  return finite;
}

} // namespace gemma
