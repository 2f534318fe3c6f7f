#include "ir/Verifier.h"

#include "ir/ModelRoles.h"
#include "ir/ShapeRules.h"

#include <cctype>
#include <set>

namespace gemma {

bool isValidValueName(const std::string& name) {
  if (name.empty() || !(std::isalpha(static_cast<unsigned char>(name[0])) || name[0] == '_'))
    return false;
  for (char c : name)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.'))
      return false;
  return true;
}

void verifyType(const TensorType& type, const Location& loc) {
  if (type.rank() > kMaxRank)
    throw UserError(loc, "type " + type.str() + " has rank above " + std::to_string(kMaxRank));
  int64_t count = 1;
  for (const Dim& dim : type.dims) {
    if (!dim.isStatic())
      continue;
    if (dim.staticValue() < 0 || dim.staticValue() > kMaxDimValue)
      throw UserError(loc, "type " + type.str() + " has dim " + dim.str() + " outside [0, 2^40]");
    if (__builtin_mul_overflow(count, dim.staticValue(), &count) || count > (int64_t(1) << 48))
      throw UserError(loc, "type " + type.str() + " has too many elements");
  }
}

void verifyGraph(const Graph& graph) {
  std::set<const Value*> defined;
  std::set<std::string> inputNames;
  for (const auto& input : graph.inputs) {
    Location loc = input->loc;
    if (loc.origin.empty())
      loc.origin = "graph input %" + input->name;
    if (!isValidValueName(input->name))
      throw UserError(loc, "input name is not a valid identifier");
    if (!inputNames.insert(input->name).second)
      throw UserError(loc, "input name is used twice");
    verifyType(input->type, loc);
    defined.insert(input.get());
  }
  verifyRoles(graph);

  for (const auto& opPtr : graph.ops) {
    const Op& op = *opPtr;
    const OpInfo& info = op.info();
    std::string name = "'" + std::string(info.mnemonic) + "'";
    int numOperands = static_cast<int>(op.operands.size());
    if (numOperands < info.minOperands ||
        (info.maxOperands >= 0 && numOperands > info.maxOperands)) {
      std::string expected = info.minOperands == info.maxOperands ? std::to_string(info.minOperands)
                             : info.maxOperands < 0 ? "at least " + std::to_string(info.minOperands)
                                                    : std::to_string(info.minOperands) + " to " +
                                                          std::to_string(info.maxOperands);
      throw UserError(op.loc, name + " takes " + expected + " operand(s), got " +
                                  std::to_string(numOperands));
    }
    if (static_cast<int>(op.results.size()) != info.numResults)
      throw UserError(op.loc, name + " has " + std::to_string(info.numResults) +
                                  " result(s), got " + std::to_string(op.results.size()));
    for (const Value* operand : op.operands)
      if (!operand || !defined.count(operand))
        throw UserError(op.loc, name + " uses a value that is not defined before it");
    for (const auto& result : op.results) {
      if (result->definingOp != &op || defined.count(result.get()))
        throw UserError(op.loc, name + " defines a value that is already defined");
      verifyType(result->type, op.loc);
    }

    std::vector<TensorType> inferred = inferResultTypes(op);
    for (size_t i = 0; i < inferred.size(); ++i) {
      verifyType(inferred[i], op.loc);
      if (!inferred[i].compatibleWith(op.results[i]->type))
        throw UserError(op.loc, name + " result " + std::to_string(i) + " is declared " +
                                    op.results[i]->type.str() + " but its operands give " +
                                    inferred[i].str());
    }
    for (const auto& result : op.results)
      defined.insert(result.get());
  }

  std::set<std::string> outputNames;
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    const Graph::Output& output = graph.outputs[i];
    Location loc = output.loc;
    if (loc.origin.empty())
      loc.origin = "graph output " + (output.name.empty() ? std::to_string(i) : output.name);
    if (!output.value || !defined.count(output.value))
      throw UserError(loc, "returns a value that is not defined in the graph");
    if (!output.name.empty() && !outputNames.insert(output.name).second)
      throw UserError(loc, "output name is used twice");
  }
}

} // namespace gemma
