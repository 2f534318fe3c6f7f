// The planned arena over time as Graphviz DOT (for `neato -n2`, which keeps the positions): time
// (op index) runs left to right, arena offset bottom to top, each activation a bar over its live
// range at its offset, fused ops' results in orange. Reads the plan-memory annotations.
#pragma once

#include "ir/IR.h"

#include <ostream>

namespace gemma {

void printMemoryPlanAsDot(const Graph& plannedGraph, std::ostream& os);

} // namespace gemma
