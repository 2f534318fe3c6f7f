#include "passes/PatternMatch.h"

#include "ir/Interpreter.h"
#include "passes/Pass.h"

#include <cmath>

namespace gemma::pattern {

const Value* throughCasts(const Value* v) {
  while (Op* cast = producer(v, OpKind::Cast))
    v = cast->operands[0];
  return v;
}

std::optional<double> splat(const Value* v) {
  // Through casts between float types only (an int cast would change the value), rounding to
  // the type of the value asked about.
  if (Op* cast = producer(v, OpKind::Cast)) {
    if (!isFloat(v->type.elementType) || !isFloat(cast->operands[0]->type.elementType))
      return std::nullopt;
    auto inner = splat(cast->operands[0]);
    return inner ? std::optional<double>(roundToElementType(*inner, v->type.elementType))
                 : std::nullopt;
  }
  Op* constant = producer(v, OpKind::Constant);
  if (!constant)
    return std::nullopt;
  std::vector<double> values;
  if (const Ints* ints = constant->attr<Ints>("value"))
    values.assign(ints->begin(), ints->end());
  else if (const Floats* floats = constant->attr<Floats>("value"))
    values = *floats;
  if (values.empty())
    return std::nullopt;
  for (double value : values)
    if (value != values[0])
      return std::nullopt;
  return values[0]; // as written: eps = 1e-06 stays 1e-06 in a fused op's attribute
}

bool isSplat(const Value* v, double expected) {
  auto value = splat(v);
  return value && std::fabs(*value - expected) <= 1e-6 * std::max(1.0, std::fabs(expected));
}

bool eitherOrder(const Op& op, const std::function<bool(Value*, Value*)>& match) {
  GEMMA_INTERNAL_ASSERT(hasTrait(op.kind, OpTrait::Commutative),
                        std::string(op.mnemonic()) + "'s operands cannot be swapped");
  return match(op.operands[0], op.operands[1]) || match(op.operands[1], op.operands[0]);
}

std::vector<Value*> productFactors(Value* root, const Uses& uses, std::vector<const Op*>& matched) {
  std::vector<Value*> factors;
  std::function<void(Value*, bool)> visit = [&](Value* v, bool isRoot) {
    Op* mul = producer(v, OpKind::Mul);
    if (!mul || (!isRoot && !uses.single(v))) {
      factors.push_back(v);
      return;
    }
    matched.push_back(mul);
    visit(mul->operands[0], false);
    visit(mul->operands[1], false);
  };
  visit(root, true);
  return factors;
}

Location fusedLocation(const std::vector<const Op*>& replaced) {
  auto components = [](const std::string& origin) {
    std::vector<std::string> parts;
    size_t begin = 0;
    while (begin <= origin.size()) {
      size_t dot = origin.find('.', begin);
      parts.push_back(origin.substr(begin, dot == std::string::npos ? dot : dot - begin));
      if (dot == std::string::npos)
        break;
      begin = dot + 1;
    }
    return parts;
  };
  std::optional<std::vector<std::string>> common;
  for (const Op* op : replaced) {
    if (op->loc.origin.empty())
      continue;
    std::vector<std::string> parts = components(op->loc.origin);
    if (!common) {
      common = parts;
      continue;
    }
    size_t n = 0;
    while (n < common->size() && n < parts.size() && (*common)[n] == parts[n])
      ++n;
    common->resize(n);
  }
  Location loc = replaced.empty() ? Location{} : replaced.back()->loc;
  if (common && !common->empty()) {
    std::string origin;
    for (const std::string& part : *common)
      origin += (origin.empty() ? "" : ".") + part;
    loc.origin = origin;
  }
  return loc;
}

void removeDeadOps(Graph& graph) {
  createDeadCodeEliminationPass()->run(graph);
}

} // namespace gemma::pattern
