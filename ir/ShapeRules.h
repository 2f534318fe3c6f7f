// Per-op type and shape rules: from an op's operands and attributes, the result types it must have.
// The verifier checks declared result types against these; shape inference refines `?` dims with
// them. A rule violation is a UserError located at the op.
#pragma once

#include "ir/IR.h"

#include <vector>

namespace gemma {

// Checks operand element types, ranks, attribute kinds and values (unknown attributes are errors),
// and returns the inferred result types. Dims a rule cannot know are copied from the declared
// result type (for example a reshape's target shape) or left unknown.
std::vector<TensorType> inferResultTypes(const Op& op);

// numpy broadcasting of two shapes; throws UserError at `loc` if they cannot broadcast.
std::vector<Dim> broadcastShapes(const std::vector<Dim>& a, const std::vector<Dim>& b,
                                 const Location& loc);

// Resolves a possibly negative axis against a rank; throws UserError at `loc` if out of range.
int64_t normalizeAxis(int64_t axis, int64_t rank, const Location& loc);

// The dim a slice leaves from a static dim, with ONNX clamping.
int64_t slicedLength(int64_t dim, int64_t start, int64_t end, int64_t step);

} // namespace gemma
