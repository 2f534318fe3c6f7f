// Random valid graphs for property tests: parser round trips and pass equivalence. Graphs use
// symbolic dims (batch, seq), every op family, attributes of every kind, locations with awkward
// characters, and redundancy (x*1, transpose chains, duplicates) for the passes to remove.
#pragma once

#include "ir/IR.h"
#include "ir/Interpreter.h"

#include <memory>
#include <random>

namespace gemma::testing {

std::unique_ptr<Graph> makeRandomGraph(std::mt19937_64& rng);

// Inputs for `graph` with the given symbol values, uniformly random in [-2, 2] (ints in [0, 4]).
std::vector<Tensor> makeRandomInputs(const Graph& graph, const SymbolBindings& bindings,
                                     std::mt19937_64& rng);

} // namespace gemma::testing
