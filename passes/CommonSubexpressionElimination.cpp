/// \file
/// Common-subexpression elimination: two ops with the same kind, the same operands (after earlier
/// merges), the same attributes and the same result types compute the same values, since IR ops
/// are pure; the later one's results are replaced by the earlier one's. Equal `constant`s and
/// `weight`s of the same name merge too. The merged op keeps the first op's location; the
/// duplicate is left dead for dce.

#include "passes/Pass.h"

namespace gemma {

namespace {

std::string keyOf(const Op& op, const std::map<const Value*, size_t>& ids) {
  std::string key(op.mnemonic());
  key += "(";
  for (const Value* operand : op.operands)
    key += std::to_string(ids.at(operand)) + ",";
  key += "){";
  for (const auto& [name, value] : op.attrs) {
    // The attribute's kind is part of the key: [] as ints and as floats print alike.
    key += name + "#" + std::to_string(value.index()) + "=" + formatAttribute(value) + ",";
  }
  key += "}:";
  for (const auto& result : op.results)
    key += result->type.str() + ",";
  return key;
}

class CommonSubexpressionElimination : public Pass {
public:
  std::string_view name() const override { return "cse"; }

  bool run(Graph& graph) override {
    // Values are keyed by a dense id in definition order, not by address, for a stable key.
    std::map<const Value*, size_t> ids;
    for (const auto& input : graph.inputs)
      ids.emplace(input.get(), ids.size());
    std::map<std::string, Op*> seen;
    bool changed = false;
    for (auto& opPtr : graph.ops) {
      Op& op = *opPtr;
      auto [it, inserted] = seen.emplace(keyOf(op, ids), &op);
      if (!inserted) {
        for (size_t i = 0; i < op.results.size(); ++i) {
          graph.replaceAllUsesWith(op.result(i), it->second->result(i));
          ids[op.result(i)] = ids.at(it->second->result(i));
        }
        changed = true;
        continue;
      }
      for (const auto& result : op.results)
        ids.emplace(result.get(), ids.size());
    }
    return changed;
  }
};

} // namespace

std::unique_ptr<Pass> createCommonSubexpressionEliminationPass() {
  return std::make_unique<CommonSubexpressionElimination>();
}

} // namespace gemma
