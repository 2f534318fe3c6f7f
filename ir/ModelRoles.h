// The roles of a model graph's inputs and outputs: which input holds the token ids, the mask,
// the positions or a past cache, and which output is the head's result or a present cache. The
// importers record them as graph attributes `input_roles` and `output_roles` (one code per input
// and per output, the runtime's enum gemma_input_role / gemma_output_role; -1: no role the
// runtime knows), and everything downstream reads them here instead of guessing from names.
#pragma once

#include "ir/IR.h"
#include "runtime/gemma_model.h"

#include <optional>
#include <vector>

namespace gemma {

enum class InputRole : int64_t {
  Ids = GEMMA_INPUT_IDS,
  Mask = GEMMA_INPUT_MASK,
  Positions = GEMMA_INPUT_POSITIONS,
  Past = GEMMA_INPUT_PAST,
  Unknown = -1, // an input the runtime cannot feed (a program refuses it)
};

enum class OutputRole : int64_t {
  Head = GEMMA_OUTPUT_HEAD,
  Present = GEMMA_OUTPUT_PRESENT,
};

// Records the roles, one per graph input and one per output, in order.
void recordRoles(Graph& graph, const std::vector<InputRole>& inputs,
                 const std::vector<OutputRole>& outputs);

// The recorded role of graph input `index` or output `index`; null when the graph records none
// (a graph written by hand). Out-of-range codes are refused by the verifier.
std::optional<InputRole> inputRole(const Graph& graph, size_t index);
std::optional<OutputRole> outputRole(const Graph& graph, size_t index);

// Whether `value` is a graph input recorded as a past cache.
bool isPastCacheInput(const Graph& graph, const Value* value);

// A located error when the graph's role attributes do not fit its inputs and outputs.
void verifyRoles(const Graph& graph);

} // namespace gemma
