// The roles of a model graph's inputs and outputs (ModelRoles.h).
#include "ir/ModelRoles.h"

namespace gemma {

namespace {

constexpr const char* kInputRoles = "input_roles";
constexpr const char* kOutputRoles = "output_roles";

const Ints* rolesOf(const Graph& graph, const char* name) {
  auto it = graph.attrs.find(name);
  return it == graph.attrs.end() ? nullptr : std::get_if<Ints>(&it->second);
}

} // namespace

void recordRoles(Graph& graph, const std::vector<InputRole>& inputs,
                 const std::vector<OutputRole>& outputs) {
  GEMMA_INTERNAL_ASSERT(inputs.size() == graph.inputs.size() &&
                            outputs.size() == graph.outputs.size(),
                        "one role per graph input and output");
  Ints inputCodes, outputCodes;
  for (InputRole role : inputs)
    inputCodes.push_back(static_cast<int64_t>(role));
  for (OutputRole role : outputs)
    outputCodes.push_back(static_cast<int64_t>(role));
  graph.attrs[kInputRoles] = inputCodes;
  graph.attrs[kOutputRoles] = outputCodes;
}

std::optional<InputRole> inputRole(const Graph& graph, size_t index) {
  const Ints* roles = rolesOf(graph, kInputRoles);
  if (!roles || index >= roles->size())
    return std::nullopt;
  return static_cast<InputRole>((*roles)[index]);
}

std::optional<OutputRole> outputRole(const Graph& graph, size_t index) {
  const Ints* roles = rolesOf(graph, kOutputRoles);
  if (!roles || index >= roles->size())
    return std::nullopt;
  return static_cast<OutputRole>((*roles)[index]);
}

bool isPastCacheInput(const Graph& graph, const Value* value) {
  return value->isGraphInput() &&
         inputRole(graph, static_cast<size_t>(value->resultIndex)) == InputRole::Past;
}

void verifyRoles(const Graph& graph) {
  auto check = [&](const char* name, const char* each, size_t count, int64_t largest,
                   int64_t smallest) {
    auto it = graph.attrs.find(name);
    if (it == graph.attrs.end())
      return;
    const Ints* roles = std::get_if<Ints>(&it->second);
    if (!roles || roles->size() != count)
      throw UserError("graph @" + graph.name + ": attribute " + name + " must list " +
                      std::to_string(count) + " role codes, one per " + each);
    for (int64_t code : *roles)
      if (code < smallest || code > largest)
        throw UserError("graph @" + graph.name + ": attribute " + name + " has role code " +
                        std::to_string(code) + " (known: " + std::to_string(smallest) + " to " +
                        std::to_string(largest) + ")");
  };
  check(kInputRoles, "input", graph.inputs.size(), GEMMA_INPUT_PAST, -1);
  check(kOutputRoles, "output", graph.outputs.size(), GEMMA_OUTPUT_PRESENT, GEMMA_OUTPUT_HEAD);
}

} // namespace gemma
