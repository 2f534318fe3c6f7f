#include "ir/Builder.h"

#include "ir/ShapeRules.h"

#include <cmath>

namespace gemma {

Value* Builder::create(OpKind kind, std::vector<Value*> operands,
                       std::map<std::string, Attribute> attrs, std::optional<TensorType> declared) {
  const OpInfo& info = opInfo(kind);
  // Inference reads the declared type for ops that need one; others start from a placeholder.
  std::vector<TensorType> types(info.numResults, declared.value_or(TensorType{}));
  auto op = std::make_unique<Op>(kind, std::move(operands), types, std::move(attrs), loc_);
  std::vector<TensorType> inferred = inferResultTypes(*op);
  for (size_t i = 0; i < inferred.size(); ++i)
    op->results[i]->type = inferred[i];
  return graph_.insertBefore(insertPoint_, std::move(op))->result();
}

Value* Builder::tryCreate(OpKind kind, std::vector<Value*> operands,
                          std::map<std::string, Attribute> attrs,
                          std::optional<TensorType> declared) {
  // The shape rules report a broken rule as a UserError; the op is inserted only once they pass.
  try {
    return create(kind, std::move(operands), std::move(attrs), std::move(declared));
  } catch (const UserError&) {
    return nullptr;
  }
}

Value* Builder::constant(ElementType type, const std::vector<int64_t>& dims, Attribute values) {
  return create(OpKind::Constant, {}, {{"value", std::move(values)}}, tensorType(type, dims));
}

Value* Builder::scalar(ElementType type, double value) {
  if (isFloat(type))
    return constant(type, {}, Floats{value});
  return constant(type, {}, Ints{static_cast<int64_t>(std::llround(value))});
}

Value* Builder::weight(const std::string& name, TensorType type) {
  return create(OpKind::Weight, {}, {{"name", name}}, std::move(type));
}

Value* Builder::cast(Value* x, ElementType to) {
  if (x->type.elementType == to)
    return x; // frontends cast "to the compute type" whatever it is; no op where it already is
  return create(OpKind::Cast, {x}, {}, TensorType{to, x->type.dims});
}

Value* Builder::reshape(Value* x, std::vector<Dim> dims) {
  return create(OpKind::Reshape, {x}, {}, TensorType{x->type.elementType, std::move(dims)});
}

} // namespace gemma
