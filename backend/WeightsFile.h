// The compiled model's weights file: every tensor the program reads, once, in a safetensors-format
// file whose metadata names the model it was written for. A program refuses a weights file that
// is not its own (another model's, or a truncated one).
#pragma once

#include "formats/Safetensors.h"
#include "ir/IR.h"

#include <cstdint>
#include <string>

namespace gemma {

// A fingerprint of the compiled graph (its printed text, plan included), hex.
std::string modelHash(const Graph& graph);

// Writes the tensors named by the graph's `weight` ops, each once and as stored in the checkpoint
// (a weight op with `perm` reads its tensor through permuted strides), in first-use order (4-byte
// elements, then 2-byte ones, then GGUF blocks: each tensor aligned to its element) and their
// stored dtype (narrowed, dequantized, or a GGUF's blocks byte for byte), with metadata
// {"format": "gemmac-weights/1", "model_hash": modelHash(graph)}. Returns the bytes written.
int64_t writeWeightsFile(const Graph& graph, const WeightStore& weights, const std::string& path);

// Opens a weights file for the graph: checks the format, the model hash, and that every weight the
// graph reads is there with its type and shape. Throws UserError naming the file otherwise.
std::unique_ptr<SafetensorsFile> openWeightsFile(const Graph& graph, const std::string& path);

} // namespace gemma
