// The ONNX frontend: a `.onnx` file (and its external data) becomes IR of primitive ops, node by
// node, with its own shape inference over symbolic dims (ONNX 1.12's knows opsets <= 17 only).
// Opsets 13 to 22 of the default domain (onnx_import::kMinOpset..kMaxOpset); the per-opset
// differences of the ops Gemma exports use (ReduceMean's axes as attribute or input,
// Squeeze/Unsqueeze/Split/Slice inputs, Gelu from 20), and onnxruntime's com.microsoft ops that
// onnxruntime-genai's model builder writes. The code is in frontend/onnx/ (OnnxNode.h says
// which file holds what).
//
// Graph inputs keep their names and types; dims named by the exporter become the IR's symbols by
// role: input_ids [batch,seq], attention_mask [batch,past+seq], position_ids [batch,seq],
// past_key_values.N.key/value [batch,K,past,H]; other dim names stay symbols of their own.
// Float initializers larger than a handful of values become weights (kept by the WeightStore),
// the rest constants. Integer tensors whose values are dims (Shape, Gather, Concat, arithmetic on
// them) are tracked symbolically, so Reshape, Expand, Range and ConstantOfShape get their
// result shapes even when those depend on batch, seq and past.
#pragma once

#include "frontend/ImportedModel.h"
#include "ir/Interpreter.h"

#include <optional>
#include <string>

namespace gemma {

// Reads the model. Errors name the file and, for a node, its name, op type and opset:
//   model.onnx: node 'NAME' (OpType, opset N): not supported
ImportedModel importOnnxModel(const std::string& path, std::optional<Head> head = {});

// A TensorProto file (ONNX's test data: input_0.pb, output_0.pb) as an interpreter tensor.
Tensor readOnnxTensorFile(const std::string& path);

} // namespace gemma
