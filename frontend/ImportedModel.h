// What a frontend hands the rest of the compiler: the model's graph of primitive ops, its
// configuration and head, and where its weights' bytes are. importModel picks the frontend.
#pragma once

#include "formats/GemmaConfig.h"
#include "formats/Safetensors.h"
#include "ir/IR.h"

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gemma {

struct ImportedModel {
  GemmaConfig config;
  Head head;
  ElementType activationType;
  std::string weightPrefix; // "model.", "" (a bare GemmaModel) or a multimodal language model's
  std::vector<std::string> ignoredTensors; // tensors of other heads, present but unused
  int64_t visionTensors = 0; // a multimodal Gemma 3's vision tower: not compiled (text only)
  WeightStore weights;
  // A sentencepiece model built from the model's own vocabulary (a GGUF's tokenizer.ggml.*, or a
  // tokenizer.json with no tokenizer.model beside it), which compile writes to OUT/tokenizer.model;
  // empty when the folder's tokenizer.model is copied instead (or there is none).
  std::string tokenizerModel;
  std::string tokenizerSource; // where it came from: "tokenizer.json", "GGUF"
  // Facts of the source format that `inspect` prints (a GGUF's metadata, tokenizer, tensor census).
  std::vector<std::string> sourceFacts;
  std::unique_ptr<Graph> graph;
};

// A checkpoint folder (config.json + safetensors: HFImporter.h), a GGUF file (GgufImporter.h) or
// an ONNX model (a .onnx file, or a folder holding model.onnx and no safetensors: OnnxImporter.h).
ImportedModel importModel(const std::string& path, std::optional<Head> head = {});

} // namespace gemma
