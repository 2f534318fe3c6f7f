// The reference interpreter's op implementations, shared by Interpreter.cpp (which dispatches on
// every op kind) and the files that hold them: InterpreterOps.cpp (primitive ops) and
// InterpreterFusedOps.cpp (fused ops, rounded as their Hugging Face patterns are). Internal to ir/.
#pragma once

#include "ir/Interpreter.h"

#include <cstdint>
#include <string>
#include <vector>

namespace gemma::reference {

[[noreturn]] void fail(const Op& op, const std::string& message);
std::string shapeString(const std::vector<int64_t>& shape);
// The element count of `shape`; a located error past what the interpreter holds.
int64_t countElements(const Op& op, const std::vector<int64_t>& shape);
Tensor makeResult(const Op& op, ElementType type, std::vector<int64_t> shape);
// numpy broadcasting of two shapes.
std::vector<int64_t> broadcast(const Op& op, const std::vector<int64_t>& a,
                               const std::vector<int64_t>& b);
// Element strides of `shape` read as if broadcast to `target` (0 along broadcast dims).
std::vector<int64_t> broadcastStrides(const std::vector<int64_t>& shape,
                                      const std::vector<int64_t>& target);

// Visits every index of `shape` in row-major order, passing the offsets into each operand given
// by its strides.
template <typename Visit>
void forEachIndex(const std::vector<int64_t>& shape,
                  const std::vector<std::vector<int64_t>>& operandStrides, Visit visit) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  if (count == 0)
    return;
  std::vector<int64_t> index(shape.size(), 0);
  std::vector<int64_t> offsets(operandStrides.size(), 0);
  for (int64_t linear = 0; linear < count; ++linear) {
    visit(linear, offsets);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      ++index[d];
      for (size_t k = 0; k < operandStrides.size(); ++k)
        offsets[k] += operandStrides[k][d];
      if (index[d] < shape[d])
        break;
      for (size_t k = 0; k < operandStrides.size(); ++k)
        offsets[k] -= operandStrides[k][d] * shape[d];
      index[d] = 0;
    }
  }
}

template <typename F>
Tensor elementwise(const Op& op, const std::vector<const Tensor*>& operands, ElementType type,
                   F f) {
  std::vector<int64_t> shape = operands[0]->shape;
  for (size_t i = 1; i < operands.size(); ++i)
    shape = broadcast(op, shape, operands[i]->shape);
  Tensor result = makeResult(op, type, shape);
  std::vector<std::vector<int64_t>> strides;
  for (const Tensor* operand : operands)
    strides.push_back(broadcastStrides(operand->shape, shape));
  forEachIndex(shape, strides, [&](int64_t linear, const std::vector<int64_t>& offsets) {
    double args[3] = {0, 0, 0};
    for (size_t k = 0; k < operands.size(); ++k)
      args[k] = operands[k]->data[offsets[k]];
    result.data[linear] = roundToElementType(f(args), type);
  });
  return result;
}

// Primitive ops (InterpreterOps.cpp).
// An axis attribute (negative: from the end) of an op on `input`, checked against its rank.
int64_t axisAttr(const Op& op, const Tensor& input, const char* name = "axis");
Tensor reduce(const Op& op, const Tensor& input);
Tensor matmul(const Op& op, const Tensor& a, const Tensor& b);
Tensor softmax(const Op& op, const Tensor& input);
Tensor cumsum(const Op& op, const Tensor& input);
Tensor argmax(const Op& op, const Tensor& input);
Tensor gather(const Op& op, const Tensor& data, const Tensor& indices);
Tensor transpose(const Op& op, const Tensor& input);
Tensor concat(const Op& op, const std::vector<const Tensor*>& operands, int64_t axis);
Tensor slice(const Op& op, const Tensor& input);
// The shape a reshape or expand produces: from its shape operand, else its declared shape.
std::vector<int64_t> reshapeTarget(const Op& op, const std::vector<const Tensor*>& operands,
                                   const std::vector<int64_t>& declared);
Tensor constantValue(const Op& op, const std::vector<int64_t>& shape);

// Fused ops (InterpreterFusedOps.cpp).
double geluTanh(double x);
double geluExact(double x);
double f32(double v);
Tensor rmsNorm(const Op& op, const Tensor& x, const Tensor& w);
Tensor rotary(const Op& op, const std::vector<const Tensor*>& operands);
Tensor attention(const Op& op, const std::vector<const Tensor*>& operands);
Tensor gatedMlp(const Op& op, const std::vector<const Tensor*>& operands);

} // namespace gemma::reference
