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

// The architecture, from model_type: gemma (1), gemma2, gemma3_text (or the text model inside a
// multimodal gemma3 checkpoint).
enum class Family { Gemma1, Gemma2, Gemma3 };

// What `layer_types` says of a layer: attention over the whole context, or over the last
// `sliding_window` positions (a query at p sees keys at p - window < k <= p).
enum class LayerType { Full, Sliding };

// One RoPE: inv_freq = 1 / theta^(2i/H), divided by `linearFactor` for rope_type "linear".
struct RopeParameters {
  double theta = 10000.0;
  double linearFactor = 1.0;
  bool operator==(const RopeParameters& other) const {
    return theta == other.theta && linearFactor == other.linearFactor;
  }
};

struct GemmaConfig {
  std::string modelType; // as written: gemma, gemma2, gemma3_text, or gemma3 (multimodal)
  Family family = Family::Gemma1;
  bool multimodal = false; // a gemma3 checkpoint: its text_config is read, the vision tower not
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
  double ropeTheta = 10000.0; // the full-attention layers' theta (every layer's before Gemma 3)
  RopeParameters ropeFull, ropeSliding; // Gemma 1 and 2: one RoPE, both the same
  // Gemma 2/3: scores scaled by query_pre_attn_scalar^-0.5; Gemma 1: head_dim^-0.5.
  double queryPreAttnScalar = 0;
  std::optional<double> attnLogitSoftcap;  // c * tanh(s / c) on the scores, before the mask
  std::optional<double> finalLogitSoftcap; // the same on the logits
  std::optional<int64_t> slidingWindow;    // the window of the sliding layers
  std::vector<LayerType> layerTypes;       // one per layer
  bool attentionBias = false;              // biases on q/k/v/o
  bool queryKeyNorm = false;               // Gemma 3: RMSNorm over head_dim on q and k
  bool sandwichNorms = false; // Gemma 2/3: norms after attention and the MLP too (four a layer)
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

  double attentionScale() const;
  const RopeParameters& rope(int64_t layer) const;
  // The window of layer `layer`'s attention, 0 for full attention.
  int64_t windowOf(int64_t layer) const;
};

// Parses and validates config.json text. `fileName` names the file in errors. Throws UserError for
// malformed JSON, missing or mistyped fields, values out of range, and models that are not Gemma.
// Gemma 2/3 fields absent from the file take configuration_gemma2/3.py's defaults.
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
std::string familyName(Family family);

} // namespace gemma
