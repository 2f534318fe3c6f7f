// The graph as Graphviz DOT, for looking at: one node an op (mnemonic and result type), inputs and
// outputs as ovals, fused ops filled so a fusion's effect shows at a glance. Render with
// `dot -Tsvg`.
#pragma once

#include "ir/IR.h"

#include <ostream>

namespace gemma {

void printGraphAsDot(const Graph& graph, std::ostream& os);

} // namespace gemma
