// Rotary embedding's inverse frequencies, computed as transformers computes them (in float32):
// inv_freq[i] = 1 / theta^(2i / H) for i < H/2, divided by `linearFactor` for linear scaling. One
// definition for the importer that emits them, the pass that recognises them, and the interpreter
// that evaluates fused `rotary`.
#pragma once

#include <cmath>
#include <cstdint>
#include <vector>

namespace gemma {

inline std::vector<double> rotaryInverseFrequencies(double theta, int64_t headDim,
                                                    double linearFactor = 1.0) {
  auto f32 = [](double v) { return static_cast<double>(static_cast<float>(v)); };
  std::vector<double> frequencies;
  for (int64_t i = 0; i < headDim; i += 2) {
    double exponent = f32(f32(static_cast<double>(i)) / f32(static_cast<double>(headDim)));
    double frequency = f32(1.0 / f32(std::pow(f32(theta), exponent)));
    frequencies.push_back(linearFactor == 1.0 ? frequency : f32(frequency / f32(linearFactor)));
  }
  return frequencies;
}

} // namespace gemma
