/// \file
/// Constant folding: an op whose operands are all `constant`s and whose result type is static is
/// evaluated at compile time (with the reference interpreter's op semantics, so folding cannot
/// change a number) and replaced by a `constant` holding the result. `shape(x)` of a statically
/// shaped x folds too. Results above kMaxFoldedElements are left alone: the IR holds small
/// literals only, never tensor data.
///   %0 = constant() {value = [2.0]} : f32[]
///   %1 = constant() {value = [3.0]} : f32[]
///   %2 = mul(%0, %1) : f32[]            ->  %2 = constant() {value = [6.0]} : f32[]
/// The replaced op is left dead for dce; the constant keeps its location.

#include "ir/Interpreter.h"
#include "passes/Pass.h"

namespace gemma {

namespace {

constexpr int64_t kMaxFoldedElements = 1024;

class ConstantFolding : public Pass {
public:
  std::string_view name() const override { return "constant-fold"; }

  bool run(Graph& graph) override {
    std::map<const Value*, Tensor> constants;
    bool changed = false;
    for (auto it = graph.ops.begin(); it != graph.ops.end(); ++it) {
      Op& op = **it;
      if (op.kind == OpKind::Weight)
        continue;
      if (op.kind == OpKind::Constant) {
        if (op.result()->type.staticNumElements().value_or(kMaxFoldedElements + 1) <=
            kMaxFoldedElements)
          constants[op.result()] = evaluateOp(op, {}, *staticShape(op.result()->type), nullptr);
        continue;
      }
      // Only ops with a static declared type fold: a range declared i64[?] or i64[n] has users
      // whose types were inferred without knowing its length, and a constant is always static.
      if (!op.result()->type.isStatic())
        continue;
      std::optional<Tensor> folded = fold(op, constants);
      if (!folded || tensorType(folded->elementType, folded->shape) != op.result()->type)
        continue;
      Value* replacement = insertConstant(graph, it, op, *folded);
      constants[replacement] = *folded;
      graph.replaceAllUsesWith(op.result(), replacement);
      changed = true;
    }
    return changed;
  }

private:
  static std::optional<std::vector<int64_t>> staticShape(const TensorType& type) {
    std::vector<int64_t> shape;
    for (const Dim& dim : type.dims) {
      if (!dim.isStatic())
        return std::nullopt;
      shape.push_back(dim.staticValue());
    }
    return shape;
  }

  static std::optional<Tensor> fold(const Op& op, const std::map<const Value*, Tensor>& constants) {
    if (op.result()->type.staticNumElements().value_or(kMaxFoldedElements + 1) > kMaxFoldedElements)
      return std::nullopt;
    if (op.kind == OpKind::Shape) {
      auto shape = staticShape(op.operands[0]->type);
      if (!shape)
        return std::nullopt;
      return Tensor(ElementType::I64, {static_cast<int64_t>(shape->size())},
                    std::vector<double>(shape->begin(), shape->end()));
    }
    std::vector<const Tensor*> operands;
    for (const Value* operand : op.operands) {
      auto found = constants.find(operand);
      if (found == constants.end())
        return std::nullopt;
      operands.push_back(&found->second);
    }
    std::vector<int64_t> declaredShape;
    for (const Dim& dim : op.result()->type.dims)
      declaredShape.push_back(dim.isStatic() ? dim.staticValue() : -1);
    try {
      return evaluateOp(op, operands, declaredShape, nullptr);
    } catch (const UserError&) {
      return std::nullopt; // e.g. an integer division by zero: leave it for run time to report
    }
  }

  static Value* insertConstant(Graph& graph, Graph::OpList::iterator position, const Op& op,
                               const Tensor& value) {
    TensorType type = tensorType(value.elementType, value.shape);
    Attribute values;
    if (isFloat(value.elementType))
      values = Floats(value.data.begin(), value.data.end());
    else
      values = Ints(value.data.begin(), value.data.end());
    auto constant =
        std::make_unique<Op>(OpKind::Constant, std::vector<Value*>{}, std::vector<TensorType>{type},
                             std::map<std::string, Attribute>{{"value", values}}, op.loc);
    return graph.insertBefore(position, std::move(constant))->result();
  }
};

} // namespace

std::unique_ptr<Pass> createConstantFoldingPass() {
  return std::make_unique<ConstantFolding>();
}

} // namespace gemma
