// The reference interpreter: runs a graph on concrete tensors with plain loops, every op, float
// math in double and results rounded to their element type. It exists for tests (frontends against
// transformers, passes against their input) and for folding small constants in the compiler; it is
// never part of a generated program.
#pragma once

#include "ir/IR.h"

#include <functional>
#include <string>
#include <vector>

namespace gemma {

// A dense row-major tensor. Values of every element type are held as doubles (exact for the
// integers a Gemma graph carries: ids, positions, shapes below 2^53).
struct Tensor {
  ElementType elementType = ElementType::F32;
  std::vector<int64_t> shape;
  std::vector<double> data;

  Tensor() = default;
  Tensor(ElementType elementType, std::vector<int64_t> shape, std::vector<double> data);
  static Tensor zeros(ElementType elementType, std::vector<int64_t> shape);
  int64_t numElements() const { return static_cast<int64_t>(data.size()); }
  std::string shapeString() const;
};

// Rounds a double to what the element type can hold (f32, bf16 and f16 round to nearest even;
// integers truncate toward zero, saturate, and wrap to their width; bool is != 0).
double roundToElementType(double value, ElementType type);

// Supplies the tensor named by a `weight` op; throws UserError if it has none.
using WeightProvider = std::function<Tensor(const std::string& name, const TensorType& type)>;

// Runs `graph` on `inputs` (one per graph input, in order) and returns its outputs. Shapes are
// checked against the declared types, binding symbols from the inputs. Errors are UserErrors.
std::vector<Tensor> interpret(const Graph& graph, const std::vector<Tensor>& inputs,
                              const WeightProvider& weights = nullptr);

// Evaluates one op on concrete operands; `declared` are its result types with symbols resolved
// where possible (dims still unknown are -1).
Tensor evaluateOp(const Op& op, const std::vector<const Tensor*>& operands,
                  const std::vector<int64_t>& declaredShape, const WeightProvider& weights);

} // namespace gemma
