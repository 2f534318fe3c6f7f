// Helpers for the fusion passes' pattern matching over primitive ops: find producers, look through
// casts, read splat constants, try both operand orders of commutative ops, flatten products, check
// that intermediates have no other user, and give a fused op the location of what it replaced.
#pragma once

#include "ir/IR.h"

#include <functional>
#include <optional>
#include <vector>

namespace gemma::pattern {

// v's defining op if it has that kind.
inline Op* producer(const Value* v, OpKind kind) {
  return v && v->definingOp && v->definingOp->kind == kind ? v->definingOp : nullptr;
}

// The value a chain of casts starts from (v itself if it is not a cast).
const Value* throughCasts(const Value* v);

// The single value of a constant whose elements are all equal, as written (looking through
// casts between float types, rounded to the type each cast gives).
std::optional<double> splat(const Value* v);
// A splat within a relative 1e-6 of `expected` (constants written in exporters' decimals).
bool isSplat(const Value* v, double expected);

// Calls match(a, b) with op's two operands in both orders; true if either order matched.
bool eitherOrder(const Op& op, const std::function<bool(Value*, Value*)>& match);

// How many users each value has (ops and graph outputs), computed once per pass run.
class Uses {
public:
  explicit Uses(const Graph& graph) : counts_(graph.useCounts()) {}
  bool single(const Value* v) const { return count(v) == 1; }
  int count(const Value* v) const {
    auto it = counts_.find(v);
    return it != counts_.end() ? it->second : 0;
  }

private:
  std::map<const Value*, int> counts_;
};

// The factors of a product: nested `mul`s whose results have one user (the root need not),
// flattened; the muls are appended to `matched`.
std::vector<Value*> productFactors(Value* root, const Uses& uses, std::vector<const Op*>& matched);

// The location for a fused op: the longest common dotted prefix of the replaced ops' origins
// ("model.layers.0.mlp" for its gate/up/down projections), else the last op's location.
Location fusedLocation(const std::vector<const Op*>& replaced);

// Removes the ops a fusion left without users.
void removeDeadOps(Graph& graph);

} // namespace gemma::pattern
