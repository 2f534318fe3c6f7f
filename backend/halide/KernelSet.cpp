#include "backend/halide/KernelSet.h"

#include "ir/Printer.h"

namespace gemma {

namespace {

// What makes two ops the same kernel: op, attributes (but not where their results live) and the
// types of operands and result.
std::string kernelKey(const Op& op) {
  std::map<std::string, Attribute> attrs = op.attrs;
  for (const char* placement : {"arena_offset", "arena_bytes", "cache_offset", "cache_bytes"})
    attrs.erase(placement);
  std::string key = std::string(op.mnemonic()) + formatAttributes(attrs) + "(";
  for (const Value* operand : op.operands) {
    key += operand->type.str();
    if (hasPermutedStorage(*operand)) // compiled for its strides
      key += formatAttributes({{"perm", *operand->definingOp->attr<Ints>("perm")}});
    key += ",";
  }
  return key + ")->" + op.result()->type.str();
}

} // namespace

KernelSet collectKernels(const Graph& graph, const std::string& symbolPrefix) {
  KernelSet set;
  std::map<std::string, size_t> byKey;
  for (const auto& op : graph.ops) {
    if (hasTrait(op->kind, OpTrait::NoKernel)) {
      set.withoutKernel.push_back(op.get());
      continue;
    }
    if (!hasKernel(*op))
      throw UserError(op->loc, "no Halide kernel yet for '" + std::string(op->mnemonic()) +
                                   "' on " + op->result()->type.str());
    auto [it, inserted] = byKey.emplace(kernelKey(*op), set.groups.size());
    if (inserted)
      set.groups.push_back({symbolPrefix + "_k" + std::to_string(set.groups.size()) + "_" +
                                std::string(op->mnemonic()),
                            {},
                            ""});
    set.groups[it->second].ops.push_back(op.get());
    set.groupOf[op.get()] = it->second;
  }
  return set;
}

void compileKernels(KernelSet& set, const std::string& directory, TargetKind target,
                    const std::function<void(size_t, size_t)>& progress) {
  for (size_t i = 0; i < set.groups.size(); ++i) {
    KernelGroup& group = set.groups[i];
    group.objectPath = directory + "/" + group.symbol + ".o";
    Kernel kernel = buildKernel(*group.ops.front(), target);
    compileKernelToObject(kernel, group.objectPath, group.symbol, target);
    if (progress)
      progress(i + 1, set.groups.size());
  }
  set.runtimeObjectPath = directory + "/halide_runtime.o";
  compileHalideRuntime(set.runtimeObjectPath, target);
}

} // namespace gemma
