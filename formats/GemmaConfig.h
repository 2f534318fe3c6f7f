// config.json of a Hugging Face Gemma checkpoint, read as the pinned transformers (5.24, see
// scripts/requirements.txt) reads it. See GEMMA_SPEC.md section 1.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace gemma {

enum class Activation {
  GeluTanh,  // 0.5x(1 + tanh(0.79788456(x + 0.044715x^3)))
  GeluExact, // 0.5x(1 + erf(x / sqrt 2))
};

enum class Head { CausalLM, Model, SequenceClassification, TokenClassification };

struct GemmaConfig {
  std::string modelType;
  std::vector<std::string> architectures;
  int64_t vocabSize = 0;
  int64_t hiddenSize = 0;       // D
  int64_t intermediateSize = 0; // MLP width
  int64_t numLayers = 0;
  int64_t numHeads = 0;   // N
  int64_t numKVHeads = 0; // K
  int64_t headDim = 0;    // H
  int64_t maxPositionEmbeddings = 8192;
  double rmsNormEps = 1e-6;
  double ropeTheta = 10000.0;
  Activation activation = Activation::GeluTanh;
  std::string hiddenAct;      // the config's hidden_act, before interpretation
  std::string activationNote; // how the activation was read, for `gemmac inspect`
  std::optional<int64_t> padTokenId = 0;
  std::vector<int64_t> eosTokenIds = {1};
  std::optional<int64_t> bosTokenId = 2;
  bool tieWordEmbeddings = true;
  bool tokenClassificationBias = true;
  int64_t numLabels = 2;
  std::string dtype; // torch_dtype / dtype as written ("float32", "bfloat16", ...), may be empty
};

// Parses and validates config.json text. `fileName` names the file in errors. Throws UserError for
// malformed JSON, missing or mistyped fields, values out of range, and models that are not Gemma 1
// (Gemma 2 and 3 are refused by name).
GemmaConfig parseGemmaConfig(const std::string& text, const std::string& fileName);
GemmaConfig loadGemmaConfig(const std::string& path);

// generation_config.json beside config.json, as generate() reads it: transformers' defaults
// (max_length 20, config.json's eos ids) where the file or a field is absent.
struct GenerationConfig {
  int64_t maxLength = 20;
  std::vector<int64_t> eosTokenIds;
};
GenerationConfig loadGenerationConfig(const std::string& folder, const GemmaConfig& config);

// The head named by `architectures` (the first Gemma one), or nullopt if it names none.
std::optional<Head> headFromArchitectures(const GemmaConfig& config);
std::optional<Head> parseHeadName(const std::string& name); // causal-lm, model, seq-cls, token-cls
std::string headName(Head head);
std::string activationName(Activation activation);

} // namespace gemma
