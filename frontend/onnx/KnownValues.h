// The ONNX importer's symbolic dims tracking: integer tensors whose values are known at compile
// time as dims (affine in the IR's symbols batch, seq, past, ...): a Shape's result, integer
// constants, and arithmetic, comparisons, gathers, slices and concats of them. Reshape, Expand,
// Range and ConstantOfShape take their result shapes from these, even when those depend on the
// request's batch, seq and past.
#pragma once

#include "ir/IR.h"

#include <map>
#include <optional>
#include <vector>

namespace gemma::onnx_import {

class KnownValues {
public:
  // Known vectors are shapes and indices: longer ones are not tracked (a Range of 2^40 values
  // would otherwise be held as 2^40 dims).
  static constexpr int64_t kMaxLength = 4096;

  // The value of `v` element by element, if known.
  std::optional<std::vector<Dim>> dims(const Value* v) const;
  // The same when every element is a constant.
  std::optional<Ints> ints(const Value* v) const;
  void set(const Value* v, std::vector<Dim> values) {
    if (static_cast<int64_t>(values.size()) <= kMaxLength)
      known_[v] = std::move(values);
  }

  // r = a (+ - * /) b, r = (a == b) and r = where(cond, x, y) on known vectors (numpy
  // broadcasting of a length-1 operand), where decidable; r stays unknown otherwise.
  void propagateArithmetic(OpKind kind, const Value* a, const Value* b, const Value* r);
  void propagateEqual(const Value* a, const Value* b, const Value* r);
  void propagateWhere(const Value* cond, const Value* x, const Value* y, const Value* r);

private:
  std::map<const Value*, std::vector<Dim>> known_;
};

// A scalar constant's value.
std::optional<double> constantScalar(const Value* v);

// The product of dims when it is affine (at most one symbolic factor), else unknown.
Dim affineProduct(std::vector<Dim>::const_iterator begin, std::vector<Dim>::const_iterator end);

// The dim a reshape's -1 (the unknown dim of `target`) stands for: the input's elements over the
// other target dims, where the symbolic parts cancel (batch*seq*D over batch*seq). Throws
// UserError when they do not.
Dim remainingDim(const std::vector<Dim>& in, const std::vector<Dim>& target);

} // namespace gemma::onnx_import
