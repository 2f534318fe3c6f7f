// Random GGUF blocks for the kernel tests (BlockKernelTest, IntegerDotKernelTest).
#pragma once

#include "ir/ElementCodec.h"

#include <cstring>
#include <random>
#include <vector>

namespace gemma::testing {

// Where each block keeps its f16 scales (and mins): ggml-common.h's block layouts.
inline std::vector<int> halfOffsets(ElementType type) {
  switch (type) {
  case ElementType::Q4_1:
  case ElementType::Q5_1:
  case ElementType::Q4_K:
  case ElementType::Q5_K:
    return {0, 2};
  case ElementType::Q6_K:
    return {208};
  default:
    return {0};
  }
}

// Random blocks: random quants, and scales mostly of a typical weight's size with every eighth
// block's an extreme one.
inline std::vector<uint8_t> randomBlocks(ElementType type, int64_t rows, int64_t rowElements,
                                         std::mt19937_64& rng, bool extremes) {
  codec::StorageLayout layout = codec::storageLayout(type);
  int64_t blocks = rows * rowElements / layout.blockElements;
  std::vector<uint8_t> bytes(static_cast<size_t>(blocks * layout.blockBytes));
  for (uint8_t& b : bytes)
    b = static_cast<uint8_t>(rng());
  const double kExtreme[] = {65504.0, 6.103515625e-05, 5.960464477539063e-08, 0.0, -1.5, -65504.0};
  std::uniform_real_distribution<double> typical(-0.02, 0.02);
  for (int64_t b = 0; b < blocks; ++b)
    for (int offset : halfOffsets(type)) {
      double scale = extremes && b % 8 == 7 ? kExtreme[(b / 8) % 6] : typical(rng);
      uint16_t bits = codec::doubleToF16Bits(scale);
      std::memcpy(&bytes[static_cast<size_t>(b * layout.blockBytes + offset)], &bits, 2);
    }
  return bytes;
}

} // namespace gemma::testing
