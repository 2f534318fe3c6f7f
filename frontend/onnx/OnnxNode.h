// What the ONNX importer's node handlers work with: the node (operands, attributes, errors that
// name it), the import's shared state (builder, known values, weights), and the table from op
// name to handler, as TVM's ONNX frontend keeps its converters. Each handler file adds the rows
// of its ops: OnnxOps.cpp (ops with an IR op of their own), OnnxShapeOps.cpp (shapes and data
// movement, tracked symbolically), OnnxCompositeOps.cpp (ops written with several IR ops),
// OnnxContribOps.cpp (com.microsoft).
#pragma once

#include "frontend/ImportedModel.h"
#include "frontend/onnx/KnownValues.h"
#include "frontend/onnx/OnnxTensors.h"
#include "ir/Builder.h"

#include <map>
#include <onnx/onnx_pb.h>
#include <string>
#include <vector>

namespace gemma::onnx_import {

// An error already naming its node.
class NodeError : public UserError {
public:
  using UserError::UserError;
};

// The state of one model's import that its nodes share.
struct ImportState {
  ImportState(std::string path, ImportedModel& model)
      : path(std::move(path)), model(model), b(*model.graph) {}

  // A tensor in the graph: a weight when it is a large float tensor, else a constant (whose
  // integer values become known values).
  Value* tensorValue(const std::string& name, const TensorData& data);

  std::string path; // the .onnx file: errors name it, external data lies beside it
  ImportedModel& model;
  Builder b;
  int64_t opset = 0;
  KnownValues known;
  std::map<std::string, Value*> values; // by ONNX value name
  int anonymous = 0;                    // unnamed tensors made weights so far
};

class NodeContext {
public:
  NodeContext(const onnx::NodeProto& node, ImportState& state)
      : node(node), b(state.b), known(state.known), opset(state.opset), state_(state) {}

  const std::string& opType() const { return node.op_type(); }
  // `model.onnx: node 'NAME' (OpType, opset N): what`
  [[noreturn]] void fail(const std::string& what) const;

  // Input i, or null where the node leaves it out; required: a located error then.
  Value* operand(int i) const;
  Value* required(int i) const;
  // Input i's values, which must be known integers.
  Ints requireInts(int i, const char* what) const;
  // A shape operand's dims, which must be known.
  std::vector<Dim> shapeFrom(const Value* shape) const;
  // Axes from input `inputIndex` (a constant) where the node has it, else from attribute
  // `attrName` (empty when neither: the caller's default).
  Ints axesFrom(int inputIndex, const char* attrName) const;

  const onnx::AttributeProto* attribute(const char* name) const;
  int64_t intAttr(const char* name, int64_t fallback) const;
  std::optional<Ints> intsAttr(const char* name) const;
  std::string stringAttr(const char* name, const std::string& fallback) const;

  Value* tensorValue(const std::string& name, const TensorData& data) {
    return state_.tensorValue(name, data);
  }
  TensorData decodeTensor(const onnx::TensorProto& t, const std::string& what) const {
    return onnx_import::decodeTensor(t, state_.path, what);
  }

  const onnx::NodeProto& node;
  Builder& b;
  KnownValues& known;
  const int64_t opset;

private:
  ImportState& state_;
};

// Lowers a node onto IR ops: one value per node output (null: an output it does not produce).
using NodeHandler = std::vector<Value*> (*)(NodeContext&);
struct OpHandler {
  NodeHandler lower;
  int64_t sinceOpset = kMinOpset; // the first default-domain opset that has the op
};
using OpHandlerTable = std::map<std::string, OpHandler>;

// A handler of a one-output op, as a NodeHandler.
template <Value* (*lowerOne)(NodeContext&)> std::vector<Value*> single(NodeContext& n) {
  return {lowerOne(n)};
}

void addOps(OpHandlerTable& table);          // OnnxOps.cpp
void addShapeOps(OpHandlerTable& table);     // OnnxShapeOps.cpp
void addCompositeOps(OpHandlerTable& table); // OnnxCompositeOps.cpp
void addContribOps(OpHandlerTable& table);   // OnnxContribOps.cpp: com.microsoft's ops
// onnxruntime-genai writes SimplifiedLayerNormalization in the default domain.
void addContribOpsOfTheDefaultDomain(OpHandlerTable& table);

} // namespace gemma::onnx_import
