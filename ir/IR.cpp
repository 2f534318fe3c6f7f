#include "ir/IR.h"

#include <algorithm>

namespace gemma {

namespace {

// The trait names Ops.def's rows join with `|`.
constexpr uint32_t None = 0;
constexpr uint32_t InPlace = static_cast<uint32_t>(OpTrait::InPlace);
constexpr uint32_t Commutative = static_cast<uint32_t>(OpTrait::Commutative);
constexpr uint32_t NoKernel = static_cast<uint32_t>(OpTrait::NoKernel);

} // namespace

const std::vector<OpInfo>& allOps() {
  static const std::vector<OpInfo> table = {
#define GEMMA_OP(kind, mnemonic, minOperands, maxOperands, results, category, traits)              \
  {OpKind::kind, mnemonic, minOperands, maxOperands, results, OpCategory::category, traits},
#include "ir/Ops.def"
  };
  return table;
}

const OpInfo& opInfo(OpKind kind) {
  const auto& table = allOps();
  auto index = static_cast<size_t>(kind);
  GEMMA_INTERNAL_ASSERT(index < table.size() && table[index].kind == kind, "op table order");
  return table[index];
}

std::optional<OpKind> lookupOp(std::string_view mnemonic) {
  for (const OpInfo& entry : allOps())
    if (entry.mnemonic == mnemonic)
      return entry.kind;
  return std::nullopt;
}

Op::Op(OpKind kind, std::vector<Value*> operands, const std::vector<TensorType>& resultTypes,
       std::map<std::string, Attribute> attrs, Location loc)
    : kind(kind), operands(std::move(operands)), attrs(std::move(attrs)), loc(std::move(loc)) {
  for (size_t i = 0; i < resultTypes.size(); ++i)
    results.push_back(std::make_unique<Value>(resultTypes[i], this, static_cast<int>(i)));
}

Value* Graph::addInput(std::string inputName, TensorType type, Location loc) {
  inputs.push_back(std::make_unique<Value>(std::move(type), nullptr,
                                           static_cast<int>(inputs.size()), std::move(inputName),
                                           std::move(loc)));
  return inputs.back().get();
}

Op* Graph::append(OpKind kind, std::vector<Value*> operands,
                  const std::vector<TensorType>& resultTypes,
                  std::map<std::string, Attribute> attrs, Location loc) {
  ops.push_back(std::make_unique<Op>(kind, std::move(operands), resultTypes, std::move(attrs),
                                     std::move(loc)));
  return ops.back().get();
}

Op* Graph::insertBefore(OpList::iterator position, std::unique_ptr<Op> op) {
  return ops.insert(position, std::move(op))->get();
}

void Graph::replaceAllUsesWith(Value* from, Value* to) {
  for (auto& op : ops)
    std::replace(op->operands.begin(), op->operands.end(), from, to);
  for (Output& output : outputs)
    if (output.value == from)
      output.value = to;
}

std::map<const Value*, int> Graph::useCounts() const {
  std::map<const Value*, int> counts;
  for (const auto& op : ops)
    for (const Value* operand : op->operands)
      ++counts[operand];
  for (const Output& output : outputs)
    ++counts[output.value];
  return counts;
}

std::unique_ptr<Graph> Graph::clone() const {
  auto copy = std::make_unique<Graph>(name);
  copy->attrs = attrs;
  std::map<const Value*, Value*> remap;
  for (const auto& input : inputs)
    remap[input.get()] = copy->addInput(input->name, input->type, input->loc);
  for (const auto& op : ops) {
    std::vector<Value*> operands;
    for (const Value* operand : op->operands) {
      auto it = remap.find(operand);
      GEMMA_INTERNAL_ASSERT(it != remap.end(), "clone of a graph that is not in SSA order");
      operands.push_back(it->second);
    }
    std::vector<TensorType> types;
    for (const auto& result : op->results)
      types.push_back(result->type);
    Op* newOp = copy->append(op->kind, operands, types, op->attrs, op->loc);
    for (size_t i = 0; i < op->results.size(); ++i)
      remap[op->results[i].get()] = newOp->result(i);
  }
  for (const Output& output : outputs)
    copy->addOutput(remap.at(output.value), output.name, output.loc);
  return copy;
}

TensorType storedWeightType(const Op& weight) {
  TensorType stored = weight.result()->type;
  if (const Ints* perm = weight.attr<Ints>("perm"))
    for (size_t i = 0; i < perm->size(); ++i)
      stored.dims[static_cast<size_t>((*perm)[i])] = weight.result()->type.dims[i];
  return stored;
}

} // namespace gemma
