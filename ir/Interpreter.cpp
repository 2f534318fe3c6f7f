#include "ir/Interpreter.h"

#include "ir/ElementCodec.h"
#include "ir/InterpreterOps.h"
#include "ir/Rotary.h"
#include "ir/ShapeRules.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace gemma {

Tensor::Tensor(ElementType elementType, std::vector<int64_t> shape, std::vector<double> data)
    : elementType(elementType), shape(std::move(shape)), data(std::move(data)) {}

Tensor Tensor::zeros(ElementType elementType, std::vector<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  return Tensor(elementType, std::move(shape), std::vector<double>(count, 0.0));
}

std::string Tensor::shapeString() const {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

double roundToElementType(double value, ElementType type) {
  switch (type) {
  case ElementType::F32:
  case ElementType::BF16:
  case ElementType::F16:
    return codec::roundToFloatType(value, type);
  case ElementType::Bool:
    return value != 0 ? 1.0 : 0.0;
  case ElementType::Q4_0:
  case ElementType::Q4_1:
  case ElementType::Q5_0:
  case ElementType::Q5_1:
  case ElementType::Q8_0:
  case ElementType::Q4_K:
  case ElementType::Q5_K:
  case ElementType::Q6_K:
    // The interpreter holds a block-quantized weight dequantized: its values are f32 values.
    return codec::roundToFloatType(value, ElementType::F32);
  case ElementType::I64:
  case ElementType::I32:
  case ElementType::I8: {
    if (std::isnan(value))
      return 0;
    double truncated = std::trunc(value);
    // Saturate to the int64 range first: converting an out-of-range double is undefined.
    constexpr double limit = 9223372036854774784.0; // largest double below 2^63
    int64_t wide = truncated >= limit    ? std::numeric_limits<int64_t>::max()
                   : truncated <= -limit ? std::numeric_limits<int64_t>::min()
                                         : static_cast<int64_t>(truncated);
    if (type == ElementType::I32)
      return static_cast<int32_t>(static_cast<uint32_t>(wide));
    if (type == ElementType::I8)
      return static_cast<int8_t>(static_cast<uint8_t>(wide));
    return static_cast<double>(wide);
  }
  }
  GEMMA_INTERNAL_ASSERT(false, "unknown element type");
}

using namespace reference;

Tensor evaluateOp(const Op& op, const std::vector<const Tensor*>& operands,
                  const std::vector<int64_t>& declaredShape, const WeightProvider& weights) {
  ElementType type = op.result()->type.elementType;
  auto unary = [&](auto f) {
    return elementwise(op, operands, type, [&](const double* a) { return f(a[0]); });
  };
  auto binary = [&](auto f) {
    return elementwise(op, operands, type, [&](const double* a) { return f(a[0], a[1]); });
  };
  switch (op.kind) {
  case OpKind::Constant:
    return constantValue(op, declaredShape);
  case OpKind::Weight: {
    if (!weights)
      fail(op, "needs weights, but none were given");
    const Ints* perm = op.attr<Ints>("perm");
    if (perm) {
      // Folded transpose: the stored tensor, transposed by perm.
      TensorType stored = storedWeightType(op);
      std::vector<int64_t> storedShape(declaredShape.size());
      for (size_t i = 0; i < perm->size(); ++i)
        storedShape[static_cast<size_t>((*perm)[i])] = declaredShape[i];
      Tensor weight = weights(*op.attr<std::string>("name"), stored);
      if (weight.shape != storedShape)
        fail(op, "weight '" + *op.attr<std::string>("name") + "' has shape " +
                     weight.shapeString() + ", expected " + stored.str());
      return transpose(op, weight);
    }
    Tensor weight = weights(*op.attr<std::string>("name"), op.result()->type);
    if (weight.shape != declaredShape)
      fail(op, "weight '" + *op.attr<std::string>("name") + "' has shape " + weight.shapeString() +
                   ", expected " + shapeString(declaredShape));
    return weight;
  }
  case OpKind::Add:
    return binary([](double a, double b) { return a + b; });
  case OpKind::Sub:
    return binary([](double a, double b) { return a - b; });
  case OpKind::Mul:
    return binary([](double a, double b) { return a * b; });
  case OpKind::Div:
    if (!isFloat(type))
      for (double v : operands[1]->data)
        if (v == 0)
          fail(op, "divides an integer by zero");
    return binary([](double a, double b) { return a / b; });
  case OpKind::Pow:
    return binary([](double a, double b) { return std::pow(a, b); });
  case OpKind::Max:
    return binary([](double a, double b) { return std::isnan(a) || a > b ? a : b; });
  case OpKind::Min:
    return binary([](double a, double b) { return std::isnan(a) || a < b ? a : b; });
  case OpKind::Sqrt:
    return unary([](double a) { return std::sqrt(a); });
  case OpKind::Rsqrt:
    return unary([](double a) { return 1.0 / std::sqrt(a); });
  case OpKind::Reciprocal:
    return unary([](double a) { return 1.0 / a; });
  case OpKind::Neg:
    return unary([](double a) { return -a; });
  case OpKind::Exp:
    return unary([](double a) { return std::exp(a); });
  case OpKind::Tanh:
    return unary([](double a) { return std::tanh(a); });
  case OpKind::Erf:
    return unary([](double a) { return std::erf(a); });
  case OpKind::Cos:
    return unary([](double a) { return std::cos(a); });
  case OpKind::Sin:
    return unary([](double a) { return std::sin(a); });
  case OpKind::Gelu: {
    const std::string* approximate = op.attr<std::string>("approximate");
    if (approximate && *approximate == "tanh")
      return unary(geluTanh);
    return unary(geluExact);
  }
  case OpKind::Cast:
    return unary([](double a) { return a; });
  case OpKind::Equal:
    return binary([](double a, double b) { return double(a == b); });
  case OpKind::Less:
    return binary([](double a, double b) { return double(a < b); });
  case OpKind::LessEqual:
    return binary([](double a, double b) { return double(a <= b); });
  case OpKind::Greater:
    return binary([](double a, double b) { return double(a > b); });
  case OpKind::GreaterEqual:
    return binary([](double a, double b) { return double(a >= b); });
  case OpKind::And:
    return binary([](double a, double b) { return double(a != 0 && b != 0); });
  case OpKind::Or:
    return binary([](double a, double b) { return double(a != 0 || b != 0); });
  case OpKind::Xor:
    return binary([](double a, double b) { return double((a != 0) != (b != 0)); });
  case OpKind::Not:
    return unary([](double a) { return double(a == 0); });
  case OpKind::IsNan:
    return unary([](double a) { return double(std::isnan(a)); });
  case OpKind::Where:
    return elementwise(op, operands, type, [](const double* a) { return a[0] != 0 ? a[1] : a[2]; });
  case OpKind::MatMul: {
    Tensor product = matmul(op, *operands[0], *operands[1]);
    if (const double* softcap = op.attr<double>("softcap"); softcap && *softcap > 0) {
      ElementType type = product.elementType;
      double c = static_cast<double>(static_cast<float>(*softcap));
      auto f32 = [](double x) { return static_cast<double>(static_cast<float>(x)); };
      // As the pattern rounds each step: the div and the mul in f32, cast back to the type.
      for (double& value : product.data) {
        double divided = roundToElementType(f32(value / c), type);
        double squashed = roundToElementType(std::tanh(divided), type);
        value = roundToElementType(f32(squashed * c), type);
      }
    }
    return product;
  }
  case OpKind::ReduceMean:
  case OpKind::ReduceSum:
  case OpKind::ReduceMax:
    return reduce(op, *operands[0]);
  case OpKind::Softmax:
    return softmax(op, *operands[0]);
  case OpKind::CumSum:
    return cumsum(op, *operands[0]);
  case OpKind::ArgMax:
    return argmax(op, *operands[0]);
  case OpKind::Gather:
    return gather(op, *operands[0], *operands[1]);
  case OpKind::Reshape: {
    Tensor result = *operands[0];
    result.shape = reshapeTarget(op, operands, declaredShape);
    return result;
  }
  case OpKind::Transpose:
    return transpose(op, *operands[0]);
  case OpKind::Concat:
    return concat(op, operands, axisAttr(op, *operands[0]));
  case OpKind::Slice:
    return slice(op, *operands[0]);
  case OpKind::Squeeze: {
    Tensor result = *operands[0];
    std::vector<int64_t> shape;
    int64_t rank = static_cast<int64_t>(result.shape.size());
    std::vector<bool> squeezed(rank, false);
    for (int64_t axis : *op.attr<Ints>("axes"))
      squeezed[normalizeAxis(axis, rank, op.loc)] = true;
    for (int64_t i = 0; i < rank; ++i) {
      if (!squeezed[i])
        shape.push_back(result.shape[i]);
      else if (result.shape[i] != 1)
        fail(op, "squeezes dim " + std::to_string(i) + " of " + result.shapeString() +
                     ", which is not 1");
    }
    result.shape = shape;
    return result;
  }
  case OpKind::Unsqueeze: {
    Tensor result = *operands[0];
    const Ints& axes = *op.attr<Ints>("axes");
    int64_t rank = static_cast<int64_t>(result.shape.size() + axes.size());
    std::vector<bool> inserted(rank, false);
    for (int64_t axis : axes)
      inserted[normalizeAxis(axis, rank, op.loc)] = true;
    std::vector<int64_t> shape;
    size_t next = 0;
    for (int64_t i = 0; i < rank; ++i)
      shape.push_back(inserted[i] ? 1 : result.shape[next++]);
    result.shape = shape;
    return result;
  }
  case OpKind::Expand: {
    std::vector<int64_t> target = declaredShape;
    if (operands.size() == 2) {
      target.clear();
      for (double v : operands[1]->data)
        target.push_back(static_cast<int64_t>(v));
    }
    for (int64_t& d : target)
      if (d < 0)
        d = 1; // unknown: taken from the input by broadcasting
    std::vector<int64_t> shape = broadcast(op, operands[0]->shape, target);
    Tensor result = makeResult(op, type, shape);
    forEachIndex(shape, {broadcastStrides(operands[0]->shape, shape)},
                 [&](int64_t linear, const std::vector<int64_t>& offsets) {
                   result.data[linear] = operands[0]->data[offsets[0]];
                 });
    return result;
  }
  case OpKind::Range: {
    double start = operands[0]->data[0], limit = operands[1]->data[0], delta = operands[2]->data[0];
    if (delta == 0 || !std::isfinite(start) || !std::isfinite(limit) || !std::isfinite(delta))
      fail(op, "needs a finite start and limit and a non-zero delta");
    double count = std::max(std::ceil((limit - start) / delta), 0.0);
    if (count > double(int64_t(1) << 31))
      fail(op, "would have more than 2^31 elements");
    Tensor result = makeResult(op, type, {static_cast<int64_t>(count)});
    for (int64_t i = 0; i < result.numElements(); ++i)
      result.data[i] = roundToElementType(start + static_cast<double>(i) * delta, type);
    return result;
  }
  case OpKind::Shape: {
    const auto& shape = operands[0]->shape;
    return Tensor(ElementType::I64, {static_cast<int64_t>(shape.size())},
                  std::vector<double>(shape.begin(), shape.end()));
  }
  case OpKind::RmsNorm:
    return rmsNorm(op, *operands[0], *operands[1]);
  case OpKind::Rotary:
    return rotary(op, operands);
  case OpKind::Attention:
    return attention(op, operands);
  case OpKind::GatedMlp:
    return gatedMlp(op, operands);
  case OpKind::KVCacheAppend: {
    int64_t batch = operands[0]->shape[0];
    int64_t total = operands[0]->shape[2] + operands[1]->shape[2];
    if (batch > *op.attr<int64_t>("max_batch") || total > *op.attr<int64_t>("max_seq_len"))
      fail(op, "holds at most " + std::to_string(*op.attr<int64_t>("max_batch")) + " rows of " +
                   std::to_string(*op.attr<int64_t>("max_seq_len")) + " tokens; asked for " +
                   std::to_string(batch) + " of " + std::to_string(total));
    return concat(op, operands, 2);
  }
  }
  GEMMA_INTERNAL_ASSERT(false, "unhandled op kind");
}

namespace {

// Binds the symbols in `dims` from concrete `shape`, solving one unbound symbol per dim.
bool bindSymbols(const std::vector<Dim>& dims, const std::vector<int64_t>& shape,
                 SymbolBindings& bindings) {
  bool progress = false;
  for (size_t i = 0; i < dims.size() && i < shape.size(); ++i) {
    const Dim& dim = dims[i];
    if (dim.isUnknown() || dim.evaluate(bindings))
      continue;
    const std::pair<std::string, int64_t>* unbound = nullptr;
    int64_t rest = dim.constantPart();
    bool solvable = true;
    for (const auto& term : dim.terms()) {
      auto it = bindings.find(term.first);
      if (it != bindings.end())
        rest += term.second * it->second;
      else if (!unbound)
        unbound = &term;
      else
        solvable = false;
    }
    if (!solvable || !unbound || (shape[i] - rest) % unbound->second != 0)
      continue;
    bindings[unbound->first] = (shape[i] - rest) / unbound->second;
    progress = true;
  }
  return progress;
}

std::string describe(const SymbolBindings& bindings) {
  std::string out;
  for (const auto& [name, value] : bindings)
    out += (out.empty() ? " with " : ", ") + name + "=" + std::to_string(value);
  return out;
}

void checkShape(const TensorType& declared, const std::vector<int64_t>& actual,
                const SymbolBindings& bindings, const Location& loc, const std::string& what) {
  bool matches = declared.rank() == static_cast<int64_t>(actual.size());
  for (size_t i = 0; matches && i < actual.size(); ++i)
    if (auto expected = declared.dims[i].evaluate(bindings))
      matches = *expected == actual[i];
  if (!matches)
    throw UserError(loc, what + " has shape " + shapeString(actual) + " but is declared " +
                             declared.str() + describe(bindings));
}

} // namespace

std::vector<Tensor> interpret(const Graph& graph, const std::vector<Tensor>& inputs,
                              const WeightProvider& weights) {
  if (inputs.size() != graph.inputs.size())
    throw UserError("graph @" + graph.name + " takes " + std::to_string(graph.inputs.size()) +
                    " inputs, got " + std::to_string(inputs.size()));
  SymbolBindings bindings;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& input = *graph.inputs[i];
    int64_t count = 1;
    for (int64_t d : inputs[i].shape)
      if (d < 0 || __builtin_mul_overflow(count, d, &count))
        count = -1;
    if (count != inputs[i].numElements())
      throw UserError(Location::named("input %" + input.name),
                      "tensor of shape " + inputs[i].shapeString() + " holds " +
                          std::to_string(inputs[i].numElements()) + " values");
    if (inputs[i].elementType != input.type.elementType ||
        static_cast<int64_t>(inputs[i].shape.size()) != input.type.rank())
      throw UserError(Location::named("input %" + input.name),
                      "expected " + input.type.str() + ", got " +
                          std::string(elementTypeName(inputs[i].elementType)) +
                          inputs[i].shapeString());
  }
  for (bool progress = true; progress;) {
    progress = false;
    for (size_t i = 0; i < inputs.size(); ++i)
      progress |= bindSymbols(graph.inputs[i]->type.dims, inputs[i].shape, bindings);
  }
  std::map<const Value*, Tensor> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    checkShape(graph.inputs[i]->type, inputs[i].shape, bindings,
               Location::named("input %" + graph.inputs[i]->name), "the input");
    values[graph.inputs[i].get()] = inputs[i];
  }

  for (const auto& op : graph.ops) {
    std::vector<const Tensor*> operands;
    for (const Value* operand : op->operands)
      operands.push_back(&values.at(operand));
    const TensorType& declared = op->result()->type;
    std::vector<int64_t> declaredShape;
    for (const Dim& dim : declared.dims)
      declaredShape.push_back(dim.evaluate(bindings).value_or(-1));
    Tensor result = evaluateOp(*op, operands, declaredShape, weights);
    bindSymbols(declared.dims, result.shape, bindings);
    checkShape(declared, result.shape, bindings, op->loc,
               "the result of '" + std::string(op->mnemonic()) + "'");
    values[op->result()] = std::move(result);
  }

  std::vector<Tensor> outputs;
  for (const Graph::Output& output : graph.outputs)
    outputs.push_back(values.at(output.value));
  return outputs;
}

} // namespace gemma
