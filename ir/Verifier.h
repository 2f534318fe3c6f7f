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

// Names that print and parse back: [A-Za-z_][A-Za-z0-9_.]*
bool isValidValueName(const std::string& name);

} // namespace gemma
