// The pass interface, the pass table (Passes.def) and the pass manager, which runs passes in
// order, verifies the graph after each, and can print the IR after each and time each.
#pragma once

#include "ir/IR.h"
#include "ir/Printer.h"

#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <vector>

namespace gemma {

// How kernels with block-quantized weights compute: Exact decodes each weight to f32 and sums in
// f32; Fast (--arithmetic fast) quantizes a row of activations to int8 for integer dot products.
enum class Arithmetic { Exact, Fast };

// Compile-time bounds of a run, for the planning passes: the largest batch and the longest
// sequence (past + new tokens) the compiled program will accept.
struct PassOptions {
  int64_t maxBatch = 1;
  int64_t maxSeqLen = 256;
  // narrow-weights: the element type to store matrices in, if not the checkpoint's: bf16 or f16,
  // or f32 (a quantized checkpoint's blocks dequantized into the weights file).
  std::optional<ElementType> weightsType;
  // The checkpoint's block-quantized tensors (a GGUF's), by name: without weightsType,
  // narrow-weights keeps each in its blocks where every kernel reading it decodes them.
  std::map<std::string, ElementType> checkpointBlockTypes;
  // quantize-activations: the arithmetic of block-weight matmuls and gated MLPs.
  Arithmetic arithmetic = Arithmetic::Exact;
};

class Pass {
public:
  virtual ~Pass() = default;
  void setOptions(const PassOptions& options) { options_ = options; }
  // The flag name from Passes.def.
  virtual std::string_view name() const = 0;
  // Transforms the graph in place; returns whether anything changed.
  virtual bool run(Graph& graph) = 0;

protected:
  PassOptions options_;
};

#define GEMMA_PASS(Name, flag, summary) std::unique_ptr<Pass> create##Name##Pass();
#include "passes/Passes.def"

struct PassInfo {
  std::string_view flag;
  std::string_view summary;
  std::unique_ptr<Pass> (*create)();
};

const std::vector<PassInfo>& allPasses();
// Null if no pass has this flag name.
const PassInfo* lookupPass(std::string_view flag);

struct PassManagerOptions {
  bool verifyEach = true;
  bool printAfterAll = false;
  bool timePasses = false;
  PrintOptions printOptions;
  PassOptions passOptions;
  std::ostream* log = nullptr; // where IR dumps and timings go (stderr if null)
};

class PassManager {
public:
  explicit PassManager(PassManagerOptions options = {}) : options_(std::move(options)) {}
  void add(std::unique_ptr<Pass> pass) { passes_.push_back(std::move(pass)); }
  void add(std::string_view flag); // throws UserError for an unknown pass
  // The default optimisation pipeline (-O), in order, leaving out the passes named in `disabled`.
  // Throws UserError for a name that is not a pass.
  void addDefaultPipeline(const std::vector<std::string>& disabled = {});
  // Planning, after -O: the KV cache, then the activation arena (needs every dim bounded).
  void addPlanningPipeline(const std::vector<std::string>& disabled = {});
  // Runs every pass in order. Throws UserError if a pass leaves a graph that does not verify.
  void run(Graph& graph);
  size_t size() const { return passes_.size(); }

private:
  PassManagerOptions options_;
  std::vector<std::unique_ptr<Pass>> passes_;
};

} // namespace gemma
