/// \file
/// Dead-code elimination: removes every op none of whose results is used by another op or a graph
/// output. IR ops have no side effects, so an unused op is dead.
///
/// Algorithm: count uses once, then walk the ops backwards; an op with no used result is erased and
/// its operands lose a use, so whole dead chains go in one sweep.

#include "passes/Pass.h"

namespace gemma {

namespace {

class DeadCodeElimination : public Pass {
public:
  std::string_view name() const override { return "dce"; }

  bool run(Graph& graph) override {
    std::map<const Value*, int> uses = graph.useCounts();
    bool changed = false;
    for (auto it = graph.ops.end(); it != graph.ops.begin();) {
      --it;
      Op& op = **it;
      bool used = false;
      for (const auto& result : op.results)
        used |= uses[result.get()] > 0;
      if (used)
        continue;
      for (const Value* operand : op.operands)
        --uses[operand];
      it = graph.ops.erase(it);
      changed = true;
    }
    return changed;
  }
};

} // namespace

std::unique_ptr<Pass> createDeadCodeEliminationPass() {
  return std::make_unique<DeadCodeElimination>();
}

} // namespace gemma
