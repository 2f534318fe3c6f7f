#include "formats/GemmaConfig.h"

#include "ir/Diagnostics.h"

#include <fstream>
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

GemmaConfig parseGemmaConfig(const std::string& text, const std::string& fileName) {
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded())
    throw UserError(Location::named(fileName), "is not valid JSON");
  if (!json.is_object())
    throw UserError(Location::named(fileName), "must hold a JSON object");
  ConfigReader reader(json, fileName);
  GemmaConfig config;

  config.modelType = reader.string("model_type", std::nullopt);
  if (config.modelType == "gemma2" || config.modelType == "gemma3" ||
      config.modelType == "gemma3_text")
    reader.fail("model_type '" + config.modelType +
                "' (Gemma 2/3) is not supported yet: gemmac compiles Gemma 1 ('gemma')");
  if (config.modelType != "gemma")
    reader.fail("model_type '" + config.modelType + "' is not a Gemma model (expected 'gemma')");
  if (reader.has("architectures")) {
    const Json& list = json.at("architectures");
    if (!list.is_array())
      reader.fail("field 'architectures' must be a list of strings");
    for (const Json& name : list) {
      if (!name.is_string())
        reader.fail("field 'architectures' must be a list of strings");
      config.architectures.push_back(name.get<std::string>());
    }
  }

  config.vocabSize = reader.integer("vocab_size", std::nullopt, 1, kMaxDim);
  config.hiddenSize = reader.integer("hidden_size", std::nullopt, 1, kMaxDim);
  config.intermediateSize = reader.integer("intermediate_size", std::nullopt, 1, kMaxDim);
  config.numLayers = reader.integer("num_hidden_layers", std::nullopt, 1, 1024);
  config.numHeads = reader.integer("num_attention_heads", std::nullopt, 1, 4096);
  config.numKVHeads = reader.integer("num_key_value_heads", std::nullopt, 1, 4096);
  config.headDim = reader.integer("head_dim", std::nullopt, 2, 65536);
  config.maxPositionEmbeddings = reader.integer("max_position_embeddings", 8192, 1, kMaxDim);
  config.rmsNormEps = reader.number("rms_norm_eps", 1e-6, 0.0, 1.0);
  // transformers 5 keeps rope_theta inside rope_parameters; older configs have it at top level.
  if (reader.has("rope_parameters")) {
    const Json& rope = json.at("rope_parameters");
    if (!rope.is_object())
      reader.fail("field 'rope_parameters' must be an object");
    if (rope.contains("rope_type") &&
        !(rope.at("rope_type").is_string() && rope.at("rope_type").get<std::string>() == "default"))
      reader.fail("rope_parameters.rope_type " + rope.at("rope_type").dump() +
                  " is not supported (only \"default\")");
    if (rope.contains("rope_theta"))
      config.ropeTheta =
          reader.number(rope.at("rope_theta"), "rope_parameters.rope_theta", 1.0, 1e12);
  }
  if (reader.has("rope_theta"))
    config.ropeTheta = reader.number("rope_theta", config.ropeTheta, 1.0, 1e12);
  if (reader.has("rope_scaling"))
    reader.fail("rope_scaling is not supported");
  readActivation(reader, config);

  config.padTokenId = reader.tokenId("pad_token_id", 0);
  config.bosTokenId = reader.tokenId("bos_token_id", 2);
  if (reader.has("eos_token_id"))
    config.eosTokenIds = readTokenIds(reader, "eos_token_id");
  config.tieWordEmbeddings = reader.boolean("tie_word_embeddings", true);
  config.tokenClassificationBias = reader.boolean("token_classification_bias", true);
  if (reader.boolean("attention_bias", false))
    reader.fail("attention_bias = true is not supported (no Gemma checkpoint uses it)");
  if (reader.boolean("use_bidirectional_attention", false))
    reader.fail("use_bidirectional_attention = true is not supported: Gemma is causal");
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

GemmaConfig loadGemmaConfig(const std::string& path) {
  return parseGemmaConfig(readFileOrThrow(path), path);
}

std::optional<Head> headFromArchitectures(const GemmaConfig& config) {
  for (const std::string& name : config.architectures) {
    if (name == "GemmaForCausalLM")
      return Head::CausalLM;
    if (name == "GemmaModel")
      return Head::Model;
    if (name == "GemmaForSequenceClassification")
      return Head::SequenceClassification;
    if (name == "GemmaForTokenClassification")
      return Head::TokenClassification;
  }
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

std::string activationName(Activation activation) {
  return activation == Activation::GeluTanh ? "gelu (tanh approximation)" : "gelu (exact erf)";
}

} // namespace gemma
