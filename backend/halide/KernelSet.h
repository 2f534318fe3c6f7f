// The kernels of a planned graph: ops grouped into distinct kernels (same op, attributes and
// types: every layer's projection of one shape is one kernel), each compiled once to an object,
// plus one standalone Halide runtime object for all of them.
#pragma once

#include "backend/halide/Kernels.h"

#include <functional>
#include <map>
#include <string>
#include <vector>

namespace gemma {

struct KernelGroup {
  std::string symbol;         // the object's exported function: <prefix>_k<index>_<mnemonic>
  std::vector<const Op*> ops; // every op this kernel computes
  std::string objectPath;     // once compiled
};

struct KernelSet {
  std::vector<KernelGroup> groups;
  std::map<const Op*, size_t> groupOf;
  std::vector<const Op*> withoutKernel; // constants, weights, views: nothing to compute
  std::string runtimeObjectPath;
};

// Groups the graph's ops; the kernels' symbols start with `symbolPrefix` (the program's model
// symbol, so two compiled models link into one program). Throws UserError naming the first op no
// kernel handles yet.
KernelSet collectKernels(const Graph& graph, const std::string& symbolPrefix);

// Compiles every group into `directory`, calling progress(done, total) after each.
void compileKernels(KernelSet& set, const std::string& directory, TargetKind target,
                    const std::function<void(size_t, size_t)>& progress = nullptr);

} // namespace gemma
