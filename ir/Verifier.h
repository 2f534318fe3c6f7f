// The verifier: op arity, attribute kinds, element types and per-op shape rules (ShapeRules.h),
// and SSA form (every value defined once, before its uses). Throws a UserError at the first
// violation, located at the offending op.
#pragma once

#include "ir/IR.h"

namespace gemma {

void verifyGraph(const Graph& graph);

// A type is well formed: rank and dims within bounds, static dims non-negative, element count
// representable. Throws UserError at `loc`.
void verifyType(const TensorType& type, const Location& loc);

// Where a block-quantized type (a GGUF's blocks) may be: the result of a 2-D weight whose stored
// rows are whole blocks of it, read only by a kernel that decodes blocks as it reads them - a
// matmul's or gated_mlp's weight through permuted strides (each output a dot product over a stored
// row), or a gather's table along axis 0. narrow-weights gives a weight blocks only where both
// hold.
bool hasWholeBlockRows(const Op& weight, ElementType type);
bool decodesBlocks(const Op& user, size_t operandIndex, const Op& weight);

// Names that print and parse back: [A-Za-z_][A-Za-z0-9_.]*
bool isValidValueName(const std::string& name);

} // namespace gemma
