// Node operands, attributes and errors for the ONNX importer's handlers (OnnxNode.h).
#include "frontend/onnx/OnnxNode.h"

namespace gemma::onnx_import {

namespace {

// Float initializers up to this many values become constants (eps, 1.0, scales: what the fusion
// patterns match); larger ones weights.
constexpr int64_t kMaxConstantValues = 16;

} // namespace

Value* ImportState::tensorValue(const std::string& name, const TensorData& data) {
  std::vector<Dim> dims;
  for (int64_t d : data.shape)
    dims.push_back(Dim::constant(d));
  TensorType type{data.type, dims};
  if (isFloat(data.type) && data.count() > kMaxConstantValues) {
    std::string weight = name.empty() ? "onnx_tensor_" + std::to_string(anonymous++) : name;
    model.weights.addOwned(weight, path, data.type, data.shape, data.bytes);
    return b.weight(weight, type);
  }
  Value* v;
  if (isFloat(data.type)) {
    std::vector<double> values = data.values();
    v = b.create(OpKind::Constant, {}, {{"value", Floats(values.begin(), values.end())}}, type);
  } else {
    Ints ints = data.ints(); // exactly: INT64_MAX ("to the end") does not survive a double
    v = b.create(OpKind::Constant, {}, {{"value", ints}}, type);
    if (data.shape.size() <= 1) {
      std::vector<Dim> values;
      for (int64_t x : ints)
        values.push_back(Dim::constant(x));
      known.set(v, values);
    }
  }
  return v;
}

void NodeContext::fail(const std::string& what) const {
  std::string domain =
      node.domain().empty() || node.domain() == "ai.onnx" ? "" : node.domain() + ".";
  throw NodeError(Location::named(state_.path), "node '" + node.name() + "' (" + domain +
                                                    node.op_type() + ", opset " +
                                                    std::to_string(opset) + "): " + what);
}

Value* NodeContext::operand(int i) const {
  if (i >= node.input_size() || node.input(i).empty())
    return nullptr;
  auto it = state_.values.find(node.input(i));
  if (it == state_.values.end())
    fail("input '" + node.input(i) + "' is not defined before it is used");
  return it->second;
}

Value* NodeContext::required(int i) const {
  Value* v = operand(i);
  if (!v)
    fail("needs input " + std::to_string(i));
  return v;
}

Ints NodeContext::requireInts(int i, const char* what) const {
  auto ints = known.ints(required(i));
  if (!ints)
    fail(std::string(what) + " must be a constant");
  return *ints;
}

std::vector<Dim> NodeContext::shapeFrom(const Value* shape) const {
  auto dims = known.dims(shape);
  if (!dims)
    fail("its shape operand is not known at compile time (only dims of the inputs, "
         "constants and arithmetic on them are)");
  return *dims;
}

Ints NodeContext::axesFrom(int inputIndex, const char* attrName) const {
  if (Value* axes = operand(inputIndex)) {
    auto ints = known.ints(axes);
    if (!ints)
      fail("its axes must be a constant");
    return *ints;
  }
  return intsAttr(attrName).value_or(Ints{});
}

const onnx::AttributeProto* NodeContext::attribute(const char* name) const {
  for (const onnx::AttributeProto& a : node.attribute())
    if (a.name() == name)
      return &a;
  return nullptr;
}

int64_t NodeContext::intAttr(const char* name, int64_t fallback) const {
  const onnx::AttributeProto* a = attribute(name);
  return a ? a->i() : fallback;
}

std::optional<Ints> NodeContext::intsAttr(const char* name) const {
  const onnx::AttributeProto* a = attribute(name);
  if (!a)
    return std::nullopt;
  return Ints(a->ints().begin(), a->ints().end());
}

std::string NodeContext::stringAttr(const char* name, const std::string& fallback) const {
  const onnx::AttributeProto* a = attribute(name);
  return a ? a->s() : fallback;
}

} // namespace gemma::onnx_import
