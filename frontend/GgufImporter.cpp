#include "frontend/GgufImporter.h"

#include "formats/Gguf.h"
#include "formats/SentencePieceModel.h"
#include "frontend/HFImporter.h"
#include "ir/Diagnostics.h"
#include "ir/RegularFile.h"

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <sstream>

namespace gemma {

namespace {

using Json = nlohmann::json;

[[noreturn]] void fail(const std::string& file, const std::string& message) {
  throw UserError(Location::named(file), message);
}

struct Architecture {
  const char* name;        // general.architecture
  const char* modelType;   // config.json's model_type
  const char* causalLM;    // its architectures entry
  double defaultRopeTheta; // the config class's default
  int64_t defaultWindow;   // sliding_window's default (0: none)
};

constexpr Architecture kArchitectures[] = {
    {"gemma", "gemma", "GemmaForCausalLM", 10000.0, 0},
    {"gemma2", "gemma2", "Gemma2ForCausalLM", 10000.0, 4096},
    {"gemma3", "gemma3_text", "Gemma3ForCausalLM", 1000000.0, 4096},
};

// The checkpoint name of a llama.cpp tensor name (convert_hf_to_gguf.py's mapping for Gemma run
// backwards), or "" if it is not one of Gemma's. Gemma 1's ffn_norm is the pre-MLP
// post_attention_layernorm; Gemma 2/3's is pre_feedforward_layernorm.
std::string checkpointName(const std::string& name, bool gemma1) {
  static const std::map<std::string, std::string> global = {
      {"token_embd.weight", "model.embed_tokens.weight"},
      {"output_norm.weight", "model.norm.weight"},
      {"output.weight", "lm_head.weight"}};
  if (auto it = global.find(name); it != global.end())
    return it->second;
  static const std::regex block(R"(blk\.(\d{1,6})\.([a-z_]+)\.(weight|bias))");
  std::smatch match;
  if (!std::regex_match(name, match, block))
    return "";
  std::map<std::string, std::string> layer = {
      {"attn_norm", "input_layernorm"},
      {"attn_q", "self_attn.q_proj"},
      {"attn_k", "self_attn.k_proj"},
      {"attn_v", "self_attn.v_proj"},
      {"attn_output", "self_attn.o_proj"},
      {"attn_q_norm", "self_attn.q_norm"},
      {"attn_k_norm", "self_attn.k_norm"},
      {"post_attention_norm", "post_attention_layernorm"},
      {"ffn_norm", gemma1 ? "post_attention_layernorm" : "pre_feedforward_layernorm"},
      {"post_ffw_norm", "post_feedforward_layernorm"},
      {"ffn_gate", "mlp.gate_proj"},
      {"ffn_up", "mlp.up_proj"},
      {"ffn_down", "mlp.down_proj"}};
  auto it = layer.find(match[2].str());
  if (it == layer.end())
    return "";
  return "model.layers." + match[1].str() + "." + it->second + "." + match[3].str();
}

// config.json, as transformers' GGUF loader writes one from the metadata (gguf_config_mapping
// for gemma/gemma2/gemma3; the config classes' defaults for the rest).
Json configFromMetadata(const GgufFile& file, const Architecture& arch) {
  std::string prefix = std::string(arch.name) + ".";
  auto required = [&](const std::string& key) {
    std::optional<int64_t> value = file.integer(prefix + key);
    if (!value)
      fail(file.path(), "has no metadata '" + prefix + key + "'");
    if (*value <= 0 || *value > (int64_t(1) << 31))
      fail(file.path(),
           "metadata '" + prefix + key + "' = " + std::to_string(*value) + " is out of range");
    return *value;
  };
  Json config;
  config["model_type"] = arch.modelType;
  config["architectures"] = Json::array({arch.causalLM});
  config["hidden_size"] = required("embedding_length");
  config["num_hidden_layers"] = required("block_count");
  config["intermediate_size"] = required("feed_forward_length");
  int64_t heads = required("attention.head_count");
  config["num_attention_heads"] = heads;
  config["num_key_value_heads"] = file.integer(prefix + "attention.head_count_kv")
                                      ? required("attention.head_count_kv")
                                      : heads;
  int64_t headDim = file.integer(prefix + "attention.key_length")
                        ? required("attention.key_length")
                        : config["hidden_size"].get<int64_t>() / heads;
  if (auto valueLength = file.integer(prefix + "attention.value_length");
      valueLength && *valueLength != headDim)
    fail(file.path(),
         "metadata '" + prefix + "attention.value_length' = " + std::to_string(*valueLength) +
             " differs from key_length " + std::to_string(headDim) + "; Gemma's are equal");
  config["head_dim"] = headDim;
  if (auto context = file.integer(prefix + "context_length"))
    config["max_position_embeddings"] = required("context_length");
  if (auto eps = file.real(prefix + "attention.layer_norm_rms_epsilon"))
    config["rms_norm_eps"] = *eps;
  config["rope_theta"] = file.real(prefix + "rope.freq_base").value_or(arch.defaultRopeTheta);
  // The tanh GELU: Gemma 1's config reads hidden_act, Gemma 2/3's hidden_activation.
  config[std::string(arch.name) == "gemma" ? "hidden_act" : "hidden_activation"] =
      "gelu_pytorch_tanh";
  if (arch.defaultWindow > 0) {
    config["sliding_window"] = file.integer(prefix + "attention.sliding_window")
                                   ? required("attention.sliding_window")
                                   : arch.defaultWindow;
    // Not in llama.cpp's files: both it and transformers scale by head_dim^-0.5.
    config["query_pre_attn_scalar"] = headDim;
  }
  if (std::string(arch.name) == "gemma2") {
    // llama.cpp writes both caps; a file without them has Gemma 2's (50, 30).
    config["attn_logit_softcapping"] = file.real(prefix + "attn_logit_softcapping").value_or(50.0);
    config["final_logit_softcapping"] =
        file.real(prefix + "final_logit_softcapping").value_or(30.0);
  }
  if (std::string(arch.name) == "gemma3") {
    config["rope_local_base_freq"] = 10000.0;
    config["sliding_window_pattern"] = 6;
    std::optional<std::string> scaling = file.string(prefix + "rope.scaling.type");
    if (scaling && *scaling != "none") {
      if (*scaling != "linear")
        fail(file.path(), "metadata '" + prefix + "rope.scaling.type' = \"" + *scaling +
                              "\"; Gemma 3 scales RoPE linearly");
      std::optional<double> factor = file.real(prefix + "rope.scaling.factor");
      if (!factor)
        fail(file.path(),
             "has rope.scaling.type linear but no '" + prefix + "rope.scaling.factor'");
      config["rope_scaling"] = {{"rope_type", "linear"}, {"factor", *factor}};
    }
  }
  auto tokenId = [&](const char* key, const char* field) {
    if (auto id = file.integer(std::string("tokenizer.ggml.") + key))
      config[field] = *id;
  };
  tokenId("bos_token_id", "bos_token_id");
  tokenId("eos_token_id", "eos_token_id");
  tokenId("padding_token_id", "pad_token_id");
  return config;
}

// The tokenizer.ggml.* vocabulary as sentencepiece's model, as transformers builds its tokenizer
// from a Gemma GGUF (integrations/gguf/gguf_tokenizer_mapping.py, gemma_tokenizer): tokens made
// of spaces only are respelled with U+2581 (their spelling in Gemma's tokenizer.model), merges
// rank by the order of the vocabulary (Gemma's scores in these files do not follow it), control
// tokens are special, user-defined ones are matched whole, the space runs excepted (they are
// reached by merging).
SentencePieceModelSpec tokenizerFromMetadata(const GgufFile& file) {
  const std::string& path = file.path();
  std::optional<std::string> kind = file.string("tokenizer.ggml.model");
  if (!kind)
    fail(path, "has no tokenizer (metadata 'tokenizer.ggml.model')");
  if (*kind != "llama")
    fail(path, "has tokenizer.ggml.model \"" + *kind +
                   "\"; Gemma's is \"llama\" (sentencepiece), the one gemmac reads");
  const auto* tokens = file.array("tokenizer.ggml.tokens", GgufValueType::String);
  if (!tokens || tokens->empty())
    fail(path, "has no tokenizer.ggml.tokens");
  const auto* types = file.array("tokenizer.ggml.token_type", GgufValueType::I32);
  if (types && types->size() != tokens->size())
    fail(path, "tokenizer.ggml.token_type has " + std::to_string(types->size()) + " entries for " +
                   std::to_string(tokens->size()) + " tokens");
  using Type = SentencePieceModelSpec::PieceType;
  SentencePieceModelSpec spec;
  spec.pieces.resize(tokens->size());
  std::map<std::string, size_t> seen;
  bool anyByte = false;
  for (size_t id = 0; id < tokens->size(); ++id) {
    std::string text = (*tokens)[id].string;
    // transformers: `" " in t and not t.strip()`, whitespace only with a space in it, is
    // respelled as that many U+2581 (Gemma's such tokens are runs of spaces).
    bool respelled = text.find(' ') != std::string::npos &&
                     text.find_first_not_of(" \t\n\r\v\f") == std::string::npos;
    if (respelled) {
      std::string runes;
      for (size_t i = 0; i < text.size(); ++i)
        runes += "\xE2\x96\x81";
      text = runes;
    }
    if (text.empty())
      fail(path, "token " + std::to_string(id) + " is empty");
    if (auto [it, added] = seen.emplace(text, id); !added)
      fail(path, "tokens " + std::to_string(it->second) + " and " + std::to_string(id) +
                     " are the same piece");
    int64_t type = types ? (*types)[id].integer : 1;
    auto& piece = spec.pieces[id];
    piece.text = std::move(text);
    piece.score = -static_cast<float>(id);
    switch (type) {
    case 1:
      piece.type = Type::Normal;
      break;
    case 2:
      piece.type = Type::Unknown;
      break;
    case 3:
      piece.type = Type::Control;
      break;
    case 4:
      // Not an added token in transformers once respelled: reached by merging.
      piece.type = respelled ? Type::Normal : Type::UserDefined;
      break;
    case 5:
      piece.type = Type::Unused;
      break;
    case 6:
      piece.type = Type::Byte;
      anyByte = true;
      break;
    default:
      fail(path, "token " + std::to_string(id) + " has token_type " + std::to_string(type) +
                     " (known: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte)");
    }
  }
  auto id = [&](const char* key) -> int64_t {
    std::optional<int64_t> value = file.integer(std::string("tokenizer.ggml.") + key);
    if (!value)
      return -1;
    if (*value < 0 || *value >= static_cast<int64_t>(tokens->size()))
      fail(path, "metadata 'tokenizer.ggml." + std::string(key) + "' = " + std::to_string(*value) +
                     " is not a token id");
    return *value;
  };
  spec.unkId = id("unknown_token_id");
  spec.bosId = id("bos_token_id");
  spec.eosId = id("eos_token_id");
  spec.padId = id("padding_token_id");
  if (spec.unkId < 0)
    fail(path, "has no tokenizer.ggml.unknown_token_id (sentencepiece needs an unknown token)");
  spec.pieces[spec.unkId].type = Type::Unknown;
  spec.byteFallback = anyByte;
  spec.addDummyPrefix = file.boolean("tokenizer.ggml.add_space_prefix").value_or(false);
  return spec;
}

std::vector<uint8_t> floatBytes(const std::vector<float>& values) {
  std::vector<uint8_t> bytes(values.size() * 4);
  std::memcpy(bytes.data(), values.data(), bytes.size());
  return bytes;
}

// What `inspect` prints about the file itself.
std::vector<std::string> describeFile(const GgufFile& file, const SentencePieceModelSpec& spec) {
  std::vector<std::string> lines;
  std::ostringstream header;
  header << "gguf: version " << file.version() << ", " << file.metadata().size()
         << " metadata entries, " << file.tensors().size() << " tensors, alignment "
         << file.alignment();
  if (auto name = file.string("general.name"))
    header << "; general.name \"" << *name << "\"";
  if (auto fileType = file.integer("general.file_type"))
    header << ", file_type " << *fileType;
  lines.push_back(header.str());
  std::string architecture = file.string("general.architecture").value_or("?");
  for (const auto& [key, value] : file.metadata())
    if (key.rfind(architecture + ".", 0) == 0)
      lines.push_back("  " + key + " = " + value.describe());
  std::map<SentencePieceModelSpec::PieceType, int64_t> byType;
  for (const auto& piece : spec.pieces)
    ++byType[piece.type];
  using Type = SentencePieceModelSpec::PieceType;
  std::ostringstream tokenizer;
  tokenizer << "tokenizer: " << file.string("tokenizer.ggml.model").value_or("?") << " (pre "
            << file.string("tokenizer.ggml.pre").value_or("none") << "), " << spec.pieces.size()
            << " tokens: " << byType[Type::Normal] << " normal, " << byType[Type::Control]
            << " control, " << byType[Type::UserDefined] << " user-defined, " << byType[Type::Byte]
            << " byte, " << byType[Type::Unknown] << " unknown; bos " << spec.bosId << ", eos "
            << spec.eosId << ", pad " << spec.padId << ", unk " << spec.unkId << ", add_bos "
            << (file.boolean("tokenizer.ggml.add_bos_token").value_or(true) ? "true" : "false")
            << ", add_space_prefix " << (spec.addDummyPrefix ? "true" : "false");
  lines.push_back(tokenizer.str());
  std::map<std::string, std::pair<int64_t, uint64_t>> census; // type -> tensors, bytes
  for (const GgufTensor& t : file.tensors()) {
    auto& entry = census[ggmlTypeName(t.type)];
    ++entry.first;
    entry.second += t.bytes;
  }
  std::ostringstream types;
  types << "tensors by type:";
  for (const auto& [type, entry] : census)
    types << " " << type << " " << entry.first << " (" << entry.second << " bytes)";
  lines.push_back(types.str());
  return lines;
}

} // namespace

bool isGgufFile(const std::string& path) {
  uint64_t size = 0;
  std::string why;
  int fd = openRegularFile(path, size, why);
  if (fd < 0)
    return false;
  uint8_t magic[4] = {};
  bool gguf = size >= 4 && readFully(fd, magic, 4, 0) == 4 && std::memcmp(magic, "GGUF", 4) == 0;
  ::close(fd);
  return gguf;
}

ImportedModel importGgufModel(const std::string& path, std::optional<Head> head) {
  std::unique_ptr<GgufFile> file = GgufFile::open(path);
  std::optional<std::string> name = file->string("general.architecture");
  if (!name)
    fail(path, "has no metadata 'general.architecture'");
  const Architecture* arch = nullptr;
  for (const Architecture& known : kArchitectures)
    if (*name == known.name)
      arch = &known;
  if (!arch)
    fail(path, "general.architecture is \"" + *name +
                   "\"; gemmac compiles Gemma (gemma, gemma2, gemma3)");
  bool gemma1 = std::string(arch->name) == "gemma";

  ImportedModel model;
  Json config = configFromMetadata(*file, *arch);
  const GgufTensor* embedding = file->tensor("token_embd.weight");
  if (!embedding || embedding->dims.size() != 2)
    fail(path, "has no 2-D tensor 'token_embd.weight'");
  config["vocab_size"] = embedding->dims[1];
  config["tie_word_embeddings"] = file->tensor("output.weight") == nullptr;
  model.config = parseGemmaConfig(config.dump(), path);
  model.head = head.value_or(Head::CausalLM);
  if (model.head != Head::CausalLM && model.head != Head::Model)
    fail(path, "a GGUF holds a causal LM; --head " + headName(model.head) +
                   " needs a score layer it does not have");

  for (const GgufTensor& tensor : file->tensors()) {
    std::string target = checkpointName(tensor.name, gemma1);
    if (target.empty())
      fail(path, "unexpected tensor '" + tensor.name + "' (" + ggmlTypeName(tensor.type) +
                     "): not part of a Gemma model");
    const std::string suffix = "norm.weight";
    bool norm = tensor.name.size() >= suffix.size() &&
                tensor.name.compare(tensor.name.size() - suffix.size(), suffix.size(), suffix) == 0;
    if (std::optional<ElementType> blocks = blockElementType(tensor.type); blocks && !norm) {
      // Kept in its blocks, byte for byte: narrow-weights stores it so where the kernels read
      // it, and the weights file dequantizes it where they do not (or --weights-dtype asks).
      model.weights.addOwned(target, path, *blocks, tensor.rowMajorShape(),
                             std::vector<uint8_t>(tensor.data, tensor.data + tensor.bytes));
      continue;
    }
    std::vector<float> values = dequantizeTensor(tensor, path);
    // llama.cpp stores Gemma's RMSNorm weights as 1 + w (ggml multiplies by the weight);
    // transformers' GGUF loader subtracts the 1 back, in f32, as here.
    if (norm)
      for (float& v : values)
        v = v - 1.0f;
    model.weights.addOwned(target, path, ElementType::F32, tensor.rowMajorShape(),
                           floatBytes(values));
  }
  buildGemmaGraph(model);

  SentencePieceModelSpec tokenizer = tokenizerFromMetadata(*file);
  if (static_cast<int64_t>(tokenizer.pieces.size()) != model.config.vocabSize)
    fail(path, "has " + std::to_string(tokenizer.pieces.size()) + " tokens but token_embd has " +
                   std::to_string(model.config.vocabSize) + " rows");
  model.tokenizerModel = serializeSentencePieceModel(tokenizer);
  model.tokenizerSource = "GGUF";
  model.sourceFacts = describeFile(*file, tokenizer);
  return model;
}

} // namespace gemma
