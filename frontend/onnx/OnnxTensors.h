// Reading an ONNX model's bytes: the model file itself (size, protobuf, opset), and its tensors
// (initializers, Constant values, test data), inline or in external data beside the model.
#pragma once

#include "ir/IR.h"

#include <cstdint>
#include <onnx/onnx_pb.h>
#include <optional>
#include <string>
#include <vector>

namespace gemma::onnx_import {

// The default domain's opsets accepted: 22 (what onnxruntime-genai's builder writes) only widened
// types of ops since 21.
constexpr int64_t kMinOpset = 13, kMaxOpset = 22;

// The IR element type of an ONNX TensorProto data type, if the IR has it.
std::optional<ElementType> elementTypeOf(int32_t dataType);
std::string dataTypeName(int32_t dataType);

// A decoded TensorProto: type, shape and little-endian bytes.
struct TensorData {
  ElementType type;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t count() const;
  std::vector<double> values() const; // element type aware
  Ints ints() const;                  // integer and bool types only, exactly
};

// Parses the model at `modelPath` and checks its size and default-domain opset (returned in
// `opset`). Errors name the file.
onnx::ModelProto loadModelProto(const std::string& modelPath, int64_t& opset);

// Decodes `t`: its raw or typed data, or its external data, which must be a regular file inside
// the folder of `modelPath`. `what` names the tensor in errors (which name the model file).
TensorData decodeTensor(const onnx::TensorProto& t, const std::string& modelPath,
                        const std::string& what);

} // namespace gemma::onnx_import
