#include "ir/Verifier.h"

#include "ir/ElementCodec.h"
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

bool hasWholeBlockRows(const Op& weight, ElementType type) {
  TensorType stored = storedWeightType(weight);
  return stored.rank() == 2 && stored.isStatic() &&
         stored.dims[1].staticValue() % codec::storageLayout(type).blockElements == 0;
}

bool decodesBlocks(const Op& user, size_t operandIndex, const Op& weight) {
  bool permuted = weight.attr<Ints>("perm") != nullptr;
  const int64_t* axis = user.attr<int64_t>("axis");
  return (user.kind == OpKind::MatMul && operandIndex == 1 && permuted) ||
         (user.kind == OpKind::GatedMlp && operandIndex >= 1 && permuted) ||
         (user.kind == OpKind::Gather && operandIndex == 0 && !permuted && (!axis || *axis == 0));
}

namespace {

void verifyBlockQuantizedUse(const Op& op, size_t operandIndex) {
  const Value* operand = op.operands[operandIndex];
  ElementType type = operand->type.elementType;
  std::string what = "operand " + std::to_string(operandIndex) + " of '" +
                     std::string(op.mnemonic()) + "' is " + operand->type.str();
  const Op* weight = operand->definingOp;
  if (!weight || weight->kind != OpKind::Weight)
    throw UserError(op.loc, what + ": a " + std::string(elementTypeName(type)) +
                                " tensor can only be a weight's");
  if (!decodesBlocks(op, operandIndex, *weight))
    throw UserError(op.loc, what + ": only a matmul's or gated_mlp's transposed weight, or a "
                                   "gather's table along axis 0, reads blocks");
}

void verifyBlockQuantizedWeight(const Op& op) {
  const TensorType& type = op.result()->type;
  if (op.kind != OpKind::Weight)
    throw UserError(op.loc, "'" + std::string(op.mnemonic()) + "' gives " + type.str() +
                                ": a block-quantized type is a weight's only");
  if (!hasWholeBlockRows(op, type.elementType))
    throw UserError(op.loc,
                    "weight stored as " + storedWeightType(op).str() +
                        " must be 2-D with rows of whole blocks of " +
                        std::to_string(codec::storageLayout(type.elementType).blockElements));
}

} // namespace

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
    if (isBlockQuantized(input->type.elementType))
      throw UserError(loc,
                      "is " + input->type.str() + ": a block-quantized type is a weight's only");
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
    for (size_t i = 0; i < op.operands.size(); ++i)
      if (isBlockQuantized(op.operands[i]->type.elementType))
        verifyBlockQuantizedUse(op, i);
    for (const auto& result : op.results) {
      if (result->definingOp != &op || defined.count(result.get()))
        throw UserError(op.loc, name + " defines a value that is already defined");
      verifyType(result->type, op.loc);
      if (isBlockQuantized(result->type.elementType))
        verifyBlockQuantizedWeight(op);
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
    if (isBlockQuantized(output.value->type.elementType))
      throw UserError(loc, "returns " + output.value->type.str() +
                               ": a block-quantized type is a weight's only");
  }
}

} // namespace gemma
