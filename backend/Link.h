// The last stage of `gemmac compile`: the model's description for the runtime (a C object), its
// C header, its static library (entry point + kernels + Halide runtime + gemmac's runtime) and
// the executable, linked by the system compiler driver ($CC / $CXX, else cc / c++).
#pragma once

#include "backend/halide/KernelSet.h"
#include "formats/GemmaConfig.h"
#include "ir/IR.h"

#include <optional>
#include <string>
#include <vector>

namespace gemma {

// What the runtime must know that the plan fixed (runtime/gemma_model.h).
struct ProgramFacts {
  std::string name; // OUT/<name>, OUT/lib<name>.a, OUT/<name>.h, OUT/<name>.weights
  std::string modelHash;
  int64_t weightsFileBytes = 0;
  Head head = Head::CausalLM;
  int64_t vocabSize = 0;
  std::optional<int64_t> padId, bosId;
  GenerationConfig generation;
};

// The C symbols a program named `name` defines: its model description <prefix>_model (what C
// programs pass to gemma_open) and its entry point <prefix>_model_forward, <prefix> being `name`
// as a C identifier. Throws UserError for a name whose symbols would clash with the runtime's.
std::string programModelSymbol(const std::string& name);
std::string programEntrySymbol(const std::string& name);

struct LinkedProgram {
  std::string executable, library, header;
};

// Writes OUT/<name>.h and OUT/lib<name>.a and links OUT/<name>, working in `buildDir`.
// `entryObject` defines programEntrySymbol(name). Throws UserError when a tool fails.
LinkedProgram linkProgram(const Graph& graph, const ProgramFacts& facts, const KernelSet& kernels,
                          const std::string& entryObject, const std::string& buildDir,
                          const std::string& outputDir);

} // namespace gemma
