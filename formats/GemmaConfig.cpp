#include "formats/GemmaConfig.h"

#include "ir/Diagnostics.h"

#include <cmath>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

namespace gemma {

namespace {

using Json = nlohmann::json;

// Bounds that keep every later size computation far from overflow, far above any real Gemma.
constexpr int64_t kMaxDim = int64_t(1) << 24;

class ConfigReader {
public:
  ConfigReader(const Json& json, std::string fileName) : json_(json), file_(std::move(fileName)) {}

  [[noreturn]] void fail(const std::string& message) const {
    throw UserError(Location::named(file_), message);
  }

  bool has(const char* key) const { return json_.contains(key) && !json_.at(key).is_null(); }

  int64_t integer(const char* key, std::optional<int64_t> fallback, int64_t min,
                  int64_t max) const {
    if (!has(key)) {
      if (!fallback)
        fail(std::string("missing field '") + key + "'");
      return *fallback;
    }
    const Json& value = json_.at(key);
    if (!value.is_number_integer())
      fail(std::string("field '") + key + "' must be an integer, got " + value.dump());
    // An unsigned value above INT64_MAX (2^64 - 1) is out of range as written, not its wrap.
    bool tooLarge =
        value.is_number_unsigned() && value.get<uint64_t>() > static_cast<uint64_t>(INT64_MAX);
    int64_t v = tooLarge ? 0 : value.get<int64_t>();
    if (tooLarge || v < min || v > max)
      fail(std::string("field '") + key + "' = " + value.dump() + " is outside [" +
           std::to_string(min) + ", " + std::to_string(max) + "]");
    return v;
  }

  double number(const Json& value, const std::string& key, double min, double max) const {
    if (!value.is_number())
      fail("field '" + key + "' must be a number, got " + value.dump());
    double v = value.get<double>();
    if (!(v >= min && v <= max))
      fail("field '" + key + "' = " + value.dump() + " is outside [" + std::to_string(min) + ", " +
           std::to_string(max) + "]");
    return v;
  }

  double number(const char* key, double fallback, double min, double max) const {
    return has(key) ? number(json_.at(key), key, min, max) : fallback;
  }

  std::string string(const char* key, std::optional<std::string> fallback) const {
    if (!has(key)) {
      if (!fallback)
        fail(std::string("missing field '") + key + "'");
      return *fallback;
    }
    if (!json_.at(key).is_string())
      fail(std::string("field '") + key + "' must be a string, got " + json_.at(key).dump());
    return json_.at(key).get<std::string>();
  }

  bool boolean(const char* key, bool fallback) const {
    if (!has(key))
      return fallback;
    if (!json_.at(key).is_boolean())
      fail(std::string("field '") + key + "' must be true or false, got " + json_.at(key).dump());
    return json_.at(key).get<bool>();
  }

  std::optional<int64_t> tokenId(const char* key, std::optional<int64_t> fallback) const {
    if (json_.contains(key) && json_.at(key).is_null())
      return std::nullopt;
    if (!has(key))
      return fallback;
    return integer(key, std::nullopt, 0, kMaxDim);
  }

  const Json& json() const { return json_; }

private:
  const Json& json_;
  std::string file_;
};

// A token id or a list of them (eos_token_id may be either).
std::vector<int64_t> readTokenIds(const ConfigReader& reader, const char* key) {
  const Json& value = reader.json().at(key);
  if (!value.is_array())
    return {reader.integer(key, std::nullopt, 0, kMaxDim)};
  std::vector<int64_t> ids;
  for (const Json& id : value) {
    if (!id.is_number_integer() ||
        (id.is_number_unsigned() ? id.get<uint64_t>() > static_cast<uint64_t>(kMaxDim)
                                 : id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxDim))
      reader.fail(std::string("field '") + key + "' must be a token id or a list of them");
    ids.push_back(id.get<int64_t>());
  }
  return ids;
}

// transformers 5.24 builds the MLP from ACT2FN[hidden_act]; GemmaConfig.__post_init__ first
// rewrites the legacy "gelu" of the original gemma-2b/7b configs to "gelu_pytorch_tanh".
// `hidden_activation` (read by transformers 4.38-4.47) is no longer consulted.
void readActivation(const ConfigReader& reader, GemmaConfig& config) {
  config.hiddenAct = reader.string("hidden_act", "gelu_pytorch_tanh");
  if (config.hiddenAct == "gelu") {
    config.activation = Activation::GeluTanh;
    config.activationNote = "hidden_act \"gelu\" is read as the tanh approximation, as "
                            "transformers >= 4.48 with GemmaConfig's legacy rewrite does";
  } else if (config.hiddenAct == "gelu_pytorch_tanh" || config.hiddenAct == "gelu_new" ||
             config.hiddenAct == "gelu_python_tanh") {
    config.activation = Activation::GeluTanh;
    config.activationNote = "hidden_act \"" + config.hiddenAct + "\": tanh approximation";
  } else if (config.hiddenAct == "gelu_python") {
    config.activation = Activation::GeluExact;
    config.activationNote = "hidden_act \"gelu_python\": exact erf GELU";
  } else {
    reader.fail("hidden_act \"" + config.hiddenAct +
                "\" is not supported (gelu, gelu_pytorch_tanh, gelu_new, gelu_python_tanh, "
                "gelu_python are)");
  }
  if (reader.has("hidden_activation")) {
    std::string ignored = reader.string("hidden_activation", std::nullopt);
    config.activationNote += "; hidden_activation \"" + ignored +
                             "\" is ignored, as transformers "
                             "5.24 ignores it";
  }
}

} // namespace

namespace {

// Gemma 2/3's activation: the MLP is ACT2FN[hidden_activation] (hidden_act is not read).
void readHiddenActivation(const ConfigReader& reader, GemmaConfig& config) {
  config.hiddenAct = reader.string("hidden_activation", "gelu_pytorch_tanh");
  if (config.hiddenAct == "gelu_pytorch_tanh" || config.hiddenAct == "gelu_new" ||
      config.hiddenAct == "gelu_python_tanh") {
    config.activation = Activation::GeluTanh;
    config.activationNote = "hidden_activation \"" + config.hiddenAct + "\": tanh approximation";
  } else if (config.hiddenAct == "gelu" || config.hiddenAct == "gelu_python") {
    config.activation = Activation::GeluExact;
    config.activationNote = "hidden_activation \"" + config.hiddenAct + "\": exact erf GELU";
  } else {
    reader.fail("hidden_activation \"" + config.hiddenAct +
                "\" is not supported (gelu, gelu_pytorch_tanh, gelu_new, gelu_python_tanh, "
                "gelu_python are)");
  }
  if (reader.has("hidden_act"))
    config.activationNote +=
        "; hidden_act is ignored, as transformers 5.24 ignores it for " + config.modelType;
}

// One RoPE's parameters: rope_type default or linear (with its factor), and rope_theta.
RopeParameters readRope(const ConfigReader& reader, const Json& rope, const std::string& where,
                        double fallbackTheta) {
  if (!rope.is_object())
    reader.fail("field '" + where + "' must be an object");
  RopeParameters parameters;
  parameters.theta = fallbackTheta;
  std::string type = "default";
  for (const char* key : {"type", "rope_type"})
    if (rope.contains(key)) {
      if (!rope.at(key).is_string())
        reader.fail(where + "." + key + " must be a string, got " + rope.at(key).dump());
      type = rope.at(key).get<std::string>();
    }
  if (type == "linear") {
    if (!rope.contains("factor"))
      reader.fail(where + " has rope_type \"linear\" without a factor");
    parameters.linearFactor = reader.number(rope.at("factor"), where + ".factor", 1e-6, 1e6);
  } else if (type != "default") {
    reader.fail(where + ".rope_type \"" + type +
                "\" is not supported (\"default\" and \"linear\" are)");
  }
  if (rope.contains("rope_theta") && !rope.at("rope_theta").is_null())
    parameters.theta = reader.number(rope.at("rope_theta"), where + ".rope_theta", 1.0, 1e12);
  return parameters;
}

// Gemma 1 and 2: one RoPE, in rope_parameters (transformers 5) or as the legacy rope_theta and
// rope_scaling at top level.
void readSingleRope(const ConfigReader& reader, GemmaConfig& config) {
  const Json& json = reader.json();
  double theta = reader.number("rope_theta", 10000.0, 1.0, 1e12);
  RopeParameters rope;
  rope.theta = theta;
  if (reader.has("rope_parameters"))
    rope = readRope(reader, json.at("rope_parameters"), "rope_parameters", theta);
  if (reader.has("rope_scaling")) {
    RopeParameters scaled = readRope(reader, json.at("rope_scaling"), "rope_scaling", rope.theta);
    rope.linearFactor = scaled.linearFactor;
  }
  config.ropeFull = config.ropeSliding = rope;
}

// Gemma 3 (Gemma3TextConfig.convert_rope_params_to_dict): one RoPE per layer type; the legacy
// rope_scaling updates the full-attention one; absent thetas are rope_theta (full, default 1e6)
// and rope_local_base_freq (sliding, default 1e4).
void readLayerTypeRopes(const ConfigReader& reader, GemmaConfig& config) {
  const Json& json = reader.json();
  double fullTheta = reader.number("rope_theta", 1000000.0, 1.0, 1e12);
  double slidingTheta = reader.number("rope_local_base_freq", 10000.0, 1.0, 1e12);
  Json full = Json::object(), sliding = Json::object();
  if (reader.has("rope_parameters")) {
    const Json& rope = json.at("rope_parameters");
    if (!rope.is_object())
      reader.fail("field 'rope_parameters' must be an object");
    bool nested = rope.contains("full_attention") || rope.contains("sliding_attention");
    if (!nested && !rope.empty()) {
      full = sliding = rope; // one RoPE for both layer types (standardize_rope_params, case 1)
    } else {
      if (rope.contains("full_attention") && !rope.at("full_attention").is_null())
        full = rope.at("full_attention");
      if (rope.contains("sliding_attention") && !rope.at("sliding_attention").is_null())
        sliding = rope.at("sliding_attention");
    }
  }
  if (reader.has("rope_scaling")) {
    const Json& scaling = json.at("rope_scaling");
    if (!scaling.is_object() || !full.is_object())
      reader.fail("field 'rope_scaling' must be an object");
    for (const auto& [key, value] : scaling.items())
      full[key] = value;
  }
  config.ropeFull = readRope(reader, full, "rope_parameters.full_attention", fullTheta);
  config.ropeSliding = readRope(reader, sliding, "rope_parameters.sliding_attention", slidingTheta);
}

// layer_types as written, or the family's pattern: Gemma 2 alternates sliding and full (even
// indices slide); Gemma 3 has a full layer every sliding_window_pattern (6).
void readLayerTypes(const ConfigReader& reader, GemmaConfig& config) {
  const Json& json = reader.json();
  if (reader.has("layer_types")) {
    const Json& list = json.at("layer_types");
    if (!list.is_array() || static_cast<int64_t>(list.size()) != config.numLayers)
      reader.fail("field 'layer_types' must list " + std::to_string(config.numLayers) +
                  " layer types, one per layer");
    for (const Json& type : list) {
      if (type == "full_attention")
        config.layerTypes.push_back(LayerType::Full);
      else if (type == "sliding_attention")
        config.layerTypes.push_back(LayerType::Sliding);
      else
        reader.fail("layer_types holds " + type.dump() +
                    " (\"full_attention\" or \"sliding_attention\" expected)");
    }
    return;
  }
  int64_t pattern = config.family == Family::Gemma2
                        ? 2
                        : reader.integer("sliding_window_pattern", 6, 1, config.numLayers + 1);
  for (int64_t i = 0; i < config.numLayers; ++i)
    config.layerTypes.push_back((i + 1) % pattern ? LayerType::Sliding : LayerType::Full);
}

// A softcap: absent means the family's default, null means none.
std::optional<double> readSoftcap(const ConfigReader& reader, const char* key,
                                  std::optional<double> fallback) {
  if (!reader.json().contains(key))
    return fallback;
  if (reader.json().at(key).is_null())
    return std::nullopt;
  return reader.number(key, 0, 1e-6, 1e9);
}

GemmaConfig parseTextConfig(const ConfigReader& reader, GemmaConfig config) {
  const Json& json = reader.json();
  bool gemma1 = config.family == Family::Gemma1;
  // Gemma 1's fields are required, as before; Gemma 2/3's absent ones take their config class's
  // defaults (the 2B Gemma 2 shape for both, as configuration_gemma2/3.py write them).
  auto dim = [&](const char* key, int64_t fallback, int64_t min, int64_t max) {
    return reader.integer(key, gemma1 ? std::nullopt : std::optional<int64_t>(fallback), min, max);
  };
  bool gemma3 = config.family == Family::Gemma3;
  config.vocabSize = dim("vocab_size", gemma3 ? 262208 : 256000, 1, kMaxDim);
  config.hiddenSize = dim("hidden_size", 2304, 1, kMaxDim);
  config.intermediateSize = dim("intermediate_size", 9216, 1, kMaxDim);
  config.numLayers = dim("num_hidden_layers", 26, 1, 1024);
  config.numHeads = dim("num_attention_heads", 8, 1, 4096);
  config.numKVHeads = dim("num_key_value_heads", 4, 1, 4096);
  config.headDim = dim("head_dim", 256, 2, 65536);
  config.maxPositionEmbeddings =
      reader.integer("max_position_embeddings", gemma3 ? 131072 : 8192, 1, kMaxDim);
  config.rmsNormEps = reader.number("rms_norm_eps", 1e-6, 0.0, 1.0);
  if (gemma3)
    readLayerTypeRopes(reader, config);
  else
    readSingleRope(reader, config);
  config.ropeTheta = config.ropeFull.theta;
  if (gemma1)
    readActivation(reader, config);
  else
    readHiddenActivation(reader, config);

  config.padTokenId = reader.tokenId("pad_token_id", 0);
  config.bosTokenId = reader.tokenId("bos_token_id", 2);
  if (reader.has("eos_token_id"))
    config.eosTokenIds = readTokenIds(reader, "eos_token_id");
  config.tieWordEmbeddings = reader.boolean("tie_word_embeddings", true);
  config.tokenClassificationBias = reader.boolean("token_classification_bias", true);
  config.attentionBias = reader.boolean("attention_bias", false);
  if (reader.boolean("use_bidirectional_attention", false))
    reader.fail("use_bidirectional_attention = true is not supported: gemmac compiles causal "
                "language models");
  if (reader.has("id2label")) {
    if (!json.at("id2label").is_object())
      reader.fail("field 'id2label' must be an object");
    config.numLabels = static_cast<int64_t>(json.at("id2label").size());
  }
  if (reader.has("num_labels"))
    config.numLabels = reader.integer("num_labels", std::nullopt, 1, kMaxDim);
  if (reader.has("torch_dtype"))
    config.dtype = reader.string("torch_dtype", std::nullopt);
  if (reader.has("dtype"))
    config.dtype = reader.string("dtype", std::nullopt);

  if (gemma1) {
    config.queryPreAttnScalar = static_cast<double>(config.headDim);
    config.layerTypes.assign(static_cast<size_t>(config.numLayers), LayerType::Full);
  } else {
    config.sandwichNorms = true;
    config.queryKeyNorm = gemma3;
    config.queryPreAttnScalar = reader.number("query_pre_attn_scalar", 256, 1e-6, 1e9);
    config.attnLogitSoftcap = readSoftcap(reader, "attn_logit_softcapping",
                                          gemma3 ? std::nullopt : std::optional<double>(50.0));
    config.finalLogitSoftcap = readSoftcap(reader, "final_logit_softcapping",
                                           gemma3 ? std::nullopt : std::optional<double>(30.0));
    if (!json.contains("sliding_window"))
      config.slidingWindow = 4096;
    else if (!json.at("sliding_window").is_null())
      config.slidingWindow = reader.integer("sliding_window", std::nullopt, 1, kMaxDim);
    readLayerTypes(reader, config);
    // transformers refuses these (validate_architecture).
    if (config.hiddenSize % config.numHeads != 0)
      reader.fail("hidden_size (" + std::to_string(config.hiddenSize) +
                  ") is not a multiple of num_attention_heads (" + std::to_string(config.numHeads) +
                  "), which " + config.modelType + " requires");
  }

  if (config.numHeads % config.numKVHeads != 0)
    reader.fail("num_attention_heads (" + std::to_string(config.numHeads) +
                ") must be a multiple of num_key_value_heads (" +
                std::to_string(config.numKVHeads) + ")");
  if (config.headDim % 2 != 0)
    reader.fail("head_dim (" + std::to_string(config.headDim) + ") must be even for rotary");
  if (config.numHeads * config.headDim > kMaxDim)
    reader.fail("num_attention_heads * head_dim is too large");
  return config;
}

std::vector<std::string> readArchitectures(const ConfigReader& reader) {
  std::vector<std::string> architectures;
  if (!reader.has("architectures"))
    return architectures;
  const Json& list = reader.json().at("architectures");
  if (!list.is_array())
    reader.fail("field 'architectures' must be a list of strings");
  for (const Json& name : list) {
    if (!name.is_string())
      reader.fail("field 'architectures' must be a list of strings");
    architectures.push_back(name.get<std::string>());
  }
  return architectures;
}

} // namespace

GemmaConfig parseGemmaConfig(const std::string& text, const std::string& fileName) {
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded())
    throw UserError(Location::named(fileName), "is not valid JSON");
  if (!json.is_object())
    throw UserError(Location::named(fileName), "must hold a JSON object");
  ConfigReader reader(json, fileName);
  GemmaConfig config;
  config.modelType = reader.string("model_type", std::nullopt);
  config.architectures = readArchitectures(reader);
  if (config.modelType == "gemma") {
    config.family = Family::Gemma1;
  } else if (config.modelType == "gemma2") {
    config.family = Family::Gemma2;
  } else if (config.modelType == "gemma3_text") {
    config.family = Family::Gemma3;
  } else if (config.modelType == "gemma3") {
    // Gemma3ForConditionalGeneration: the language model's config is text_config (a
    // Gemma3TextConfig, its defaults where absent); the vision tower is not compiled.
    config.family = Family::Gemma3;
    config.multimodal = true;
    Json textJson = Json::object();
    if (reader.has("text_config")) {
      textJson = json.at("text_config");
      if (!textJson.is_object())
        reader.fail("field 'text_config' must be an object");
    }
    if (textJson.contains("model_type") && textJson.at("model_type") != "gemma3_text")
      reader.fail("text_config.model_type " + textJson.at("model_type").dump() +
                  " is not gemma3_text");
    ConfigReader textReader(textJson, fileName + " (text_config)");
    GemmaConfig parsed = parseTextConfig(textReader, config);
    parsed.tieWordEmbeddings = reader.boolean("tie_word_embeddings", parsed.tieWordEmbeddings);
    return parsed;
  } else {
    reader.fail("model_type '" + config.modelType +
                "' is not a Gemma model (expected 'gemma', 'gemma2', 'gemma3_text' or 'gemma3')");
  }
  return parseTextConfig(reader, config);
}

double GemmaConfig::attentionScale() const {
  return std::pow(queryPreAttnScalar, -0.5);
}

const RopeParameters& GemmaConfig::rope(int64_t layer) const {
  return layerTypes.at(static_cast<size_t>(layer)) == LayerType::Sliding ? ropeSliding : ropeFull;
}

int64_t GemmaConfig::windowOf(int64_t layer) const {
  if (layerTypes.at(static_cast<size_t>(layer)) != LayerType::Sliding || !slidingWindow)
    return 0;
  return *slidingWindow;
}

GemmaConfig loadGemmaConfig(const std::string& path) {
  return parseGemmaConfig(readFileOrThrow(path), path);
}

std::optional<Head> headFromArchitectures(const GemmaConfig& config) {
  static const std::map<std::string, Head> heads = {
      {"GemmaForCausalLM", Head::CausalLM},
      {"GemmaModel", Head::Model},
      {"GemmaForSequenceClassification", Head::SequenceClassification},
      {"GemmaForTokenClassification", Head::TokenClassification},
      {"Gemma2ForCausalLM", Head::CausalLM},
      {"Gemma2Model", Head::Model},
      {"Gemma2ForSequenceClassification", Head::SequenceClassification},
      {"Gemma2ForTokenClassification", Head::TokenClassification},
      {"Gemma3ForCausalLM", Head::CausalLM},
      {"Gemma3TextModel", Head::Model},
      {"Gemma3TextForSequenceClassification", Head::SequenceClassification},
      // A multimodal checkpoint's language model and its heads.
      {"Gemma3ForConditionalGeneration", Head::CausalLM},
      {"Gemma3Model", Head::Model},
      {"Gemma3ForSequenceClassification", Head::SequenceClassification},
  };
  for (const std::string& name : config.architectures)
    if (auto it = heads.find(name); it != heads.end())
      return it->second;
  return std::nullopt;
}

GenerationConfig loadGenerationConfig(const std::string& folder, const GemmaConfig& config) {
  GenerationConfig generation;
  generation.eosTokenIds = config.eosTokenIds;
  std::string path = folder + "/generation_config.json";
  std::ifstream file(path);
  if (!file)
    return generation;
  std::stringstream text;
  text << file.rdbuf();
  Json json = Json::parse(text.str(), nullptr, false);
  if (json.is_discarded() || !json.is_object())
    throw UserError(Location::named(path), "is not a JSON object");
  ConfigReader reader(json, path);
  generation.maxLength = reader.integer("max_length", 20, 1, kMaxDim);
  if (reader.has("eos_token_id"))
    generation.eosTokenIds = readTokenIds(reader, "eos_token_id");
  return generation;
}

std::optional<Head> parseHeadName(const std::string& name) {
  for (Head head :
       {Head::CausalLM, Head::Model, Head::SequenceClassification, Head::TokenClassification})
    if (headName(head) == name)
      return head;
  return std::nullopt;
}

std::string headName(Head head) {
  switch (head) {
  case Head::CausalLM:
    return "causal-lm";
  case Head::Model:
    return "model";
  case Head::SequenceClassification:
    return "seq-cls";
  case Head::TokenClassification:
    return "token-cls";
  }
  GEMMA_INTERNAL_ASSERT(false, "unknown head");
}

std::string familyName(Family family) {
  switch (family) {
  case Family::Gemma1:
    return "Gemma 1";
  case Family::Gemma2:
    return "Gemma 2";
  case Family::Gemma3:
    return "Gemma 3";
  }
  GEMMA_INTERNAL_ASSERT(false, "unknown family");
}

std::string activationName(Activation activation) {
  return activation == Activation::GeluTanh ? "gelu (tanh approximation)" : "gelu (exact erf)";
}

} // namespace gemma
