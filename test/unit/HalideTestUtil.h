// Tensors of the reference interpreter as Halide buffers of their element type, and back: for the
// tests that run kernels (KernelTest, the ONNX node tests); and an object file's disassembly.
#pragma once

#include "ir/Interpreter.h"

#include <Halide.h>
#include <cstdio>
#include <string>

namespace gemma::testing {

// objdump -d of an object file, as text.
inline std::string disassemble(const std::string& path) {
  std::string command = "objdump -d --no-show-raw-insn '" + path + "'";
  FILE* pipe = popen(command.c_str(), "r");
  std::string text;
  char chunk[4096];
  while (pipe && fgets(chunk, sizeof chunk, pipe))
    text += chunk;
  if (pipe)
    pclose(pipe);
  return text;
}

inline Halide::Buffer<> typedBuffer(const Tensor& t) {
  std::vector<int> extents(t.shape.rbegin(), t.shape.rend());
  switch (t.elementType) {
  case ElementType::I64: {
    Halide::Buffer<int64_t> b(extents);
    for (int64_t i = 0; i < t.numElements(); ++i)
      b.data()[i] = static_cast<int64_t>(t.data[i]);
    return b;
  }
  case ElementType::I32: {
    Halide::Buffer<int32_t> b(extents);
    for (int64_t i = 0; i < t.numElements(); ++i)
      b.data()[i] = static_cast<int32_t>(t.data[i]);
    return b;
  }
  case ElementType::BF16: {
    Halide::Buffer<Halide::bfloat16_t> b(extents);
    for (int64_t i = 0; i < t.numElements(); ++i)
      b.data()[i] = Halide::bfloat16_t(static_cast<float>(t.data[i]));
    return b;
  }
  case ElementType::F16: {
    Halide::Buffer<Halide::float16_t> b(extents);
    for (int64_t i = 0; i < t.numElements(); ++i)
      b.data()[i] = Halide::float16_t(static_cast<float>(t.data[i]));
    return b;
  }
  case ElementType::I8: {
    Halide::Buffer<int8_t> b(extents);
    for (int64_t i = 0; i < t.numElements(); ++i)
      b.data()[i] = static_cast<int8_t>(t.data[i]);
    return b;
  }
  case ElementType::Bool: {
    Halide::Buffer<uint8_t> b(extents);
    for (int64_t i = 0; i < t.numElements(); ++i)
      b.data()[i] = static_cast<uint8_t>(t.data[i] != 0);
    return b;
  }
  default: {
    Halide::Buffer<float> b(extents);
    for (int64_t i = 0; i < t.numElements(); ++i)
      b.data()[i] = static_cast<float>(t.data[i]);
    return b;
  }
  }
}

inline double element(const Halide::Buffer<>& b, int64_t i, ElementType type) {
  const void* p = b.data();
  switch (type) {
  case ElementType::I64:
    return static_cast<double>(static_cast<const int64_t*>(p)[i]);
  case ElementType::I32:
    return static_cast<const int32_t*>(p)[i];
  case ElementType::I8:
    return static_cast<const int8_t*>(p)[i];
  case ElementType::Bool:
    return static_cast<const uint8_t*>(p)[i] != 0;
  case ElementType::BF16:
    return static_cast<float>(static_cast<const Halide::bfloat16_t*>(p)[i]);
  case ElementType::F16:
    return static_cast<float>(static_cast<const Halide::float16_t*>(p)[i]);
  default:
    return static_cast<const float*>(p)[i];
  }
}

} // namespace gemma::testing
