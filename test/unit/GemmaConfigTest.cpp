// config.json as the pinned transformers reads it: where rope_theta lives, how the activation is
// chosen, token ids, labels, and refusals.
#include "formats/GemmaConfig.h"

#include "TestUtil.h"

#include <nlohmann/json.hpp>

namespace gemma {
namespace {

using testing::userErrorOf;

nlohmann::json minimalConfig() {
  return {{"model_type", "gemma"},      {"vocab_size", 256000},    {"hidden_size", 2048},
          {"intermediate_size", 16384}, {"num_hidden_layers", 18}, {"num_attention_heads", 8},
          {"num_key_value_heads", 1},   {"head_dim", 256}};
}

GemmaConfig parse(const nlohmann::json& json) {
  return parseGemmaConfig(json.dump(), "config.json");
}

TEST(GemmaConfig, Gemma2bAsPublished) {
  // The original gemma-2b config.json: hidden_act "gelu", rope_theta at top level, no
  // hidden_activation.
  auto json = minimalConfig();
  json["hidden_act"] = "gelu";
  json["rope_theta"] = 10000.0;
  json["architectures"] = {"GemmaForCausalLM"};
  json["torch_dtype"] = "bfloat16";
  GemmaConfig c = parse(json);
  EXPECT_EQ(c.activation, Activation::GeluTanh);
  EXPECT_NE(c.activationNote.find("legacy"), std::string::npos);
  EXPECT_EQ(c.ropeTheta, 10000.0);
  EXPECT_EQ(c.dtype, "bfloat16");
  EXPECT_EQ(headFromArchitectures(c), Head::CausalLM);
  EXPECT_TRUE(c.tieWordEmbeddings);
  EXPECT_EQ(c.padTokenId, 0);
  EXPECT_EQ(c.eosTokenIds, std::vector<int64_t>{1});
}

TEST(GemmaConfig, RopeThetaInsideRopeParameters) {
  auto json = minimalConfig();
  json["rope_parameters"] = {{"rope_type", "default"}, {"rope_theta", 50000.0}};
  EXPECT_EQ(parse(json).ropeTheta, 50000.0);
  json["rope_parameters"]["rope_type"] = "linear";
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("without a factor"), std::string::npos);
  json["rope_parameters"]["factor"] = 4.0;
  EXPECT_EQ(parse(json).ropeFull.linearFactor, 4.0);
  json["rope_parameters"]["rope_type"] = "yarn";
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("rope_type \"yarn\" is not supported"),
            std::string::npos);
}

// Gemma 3 as configuration_gemma3.py reads it: defaults for absent keys, layer types from the
// sliding-window pattern, a RoPE per layer type (legacy rope_theta / rope_local_base_freq /
// rope_scaling included), the multimodal wrapper's text_config.
TEST(GemmaConfig, Gemma3AsTransformersReadsIt) {
  nlohmann::json json = {{"model_type", "gemma3_text"}, {"num_hidden_layers", 12}};
  GemmaConfig c = parse(json);
  EXPECT_EQ(c.family, Family::Gemma3);
  EXPECT_EQ(c.vocabSize, 262208);
  EXPECT_EQ(c.hiddenSize, 2304);
  EXPECT_EQ(c.maxPositionEmbeddings, 131072);
  EXPECT_EQ(c.queryPreAttnScalar, 256);
  EXPECT_FALSE(c.attnLogitSoftcap);
  EXPECT_FALSE(c.finalLogitSoftcap);
  EXPECT_TRUE(c.queryKeyNorm);
  EXPECT_EQ(c.slidingWindow, 4096);
  ASSERT_EQ(c.layerTypes.size(), 12u);
  for (int64_t i = 0; i < 12; ++i)
    EXPECT_EQ(c.layerTypes[i], (i + 1) % 6 ? LayerType::Sliding : LayerType::Full) << i;
  EXPECT_EQ(c.rope(0).theta, 10000.0);
  EXPECT_EQ(c.rope(5).theta, 1000000.0);
  EXPECT_EQ(c.windowOf(0), 4096);
  EXPECT_EQ(c.windowOf(5), 0);
  // Legacy keys.
  json["rope_theta"] = 500000.0;
  json["rope_local_base_freq"] = 20000.0;
  json["rope_scaling"] = {{"rope_type", "linear"}, {"factor", 8.0}};
  c = parse(json);
  EXPECT_EQ(c.ropeFull.theta, 500000.0);
  EXPECT_EQ(c.ropeFull.linearFactor, 8.0);
  EXPECT_EQ(c.ropeSliding.theta, 20000.0);
  EXPECT_EQ(c.ropeSliding.linearFactor, 1.0);
  // transformers 5's nested form.
  json = {{"model_type", "gemma3_text"},
          {"num_hidden_layers", 2},
          {"layer_types", {"full_attention", "sliding_attention"}},
          {"rope_parameters",
           {{"full_attention", {{"rope_type", "linear"}, {"factor", 8.0}}},
            {"sliding_attention", {{"rope_type", "default"}, {"rope_theta", 10000.0}}}}}};
  c = parse(json);
  EXPECT_EQ(c.layerTypes, (std::vector<LayerType>{LayerType::Full, LayerType::Sliding}));
  EXPECT_EQ(c.ropeFull.theta, 1000000.0);
  EXPECT_EQ(c.ropeFull.linearFactor, 8.0);
  json["layer_types"] = {"full_attention"};
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("must list 2 layer types"), std::string::npos);
  json["layer_types"] = {"full_attention", "chunked_attention"};
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("chunked_attention"), std::string::npos);
  // The multimodal wrapper: the language model's config is text_config.
  nlohmann::json wrapper = {{"model_type", "gemma3"},
                            {"architectures", {"Gemma3ForConditionalGeneration"}},
                            {"text_config", {{"hidden_size", 640}, {"num_hidden_layers", 18}}}};
  c = parse(wrapper);
  EXPECT_TRUE(c.multimodal);
  EXPECT_EQ(c.hiddenSize, 640);
  EXPECT_EQ(headFromArchitectures(c), Head::CausalLM);
  json = {{"model_type", "gemma3_text"}, {"use_bidirectional_attention", true}};
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("use_bidirectional_attention"),
            std::string::npos);
}

// Gemma 2's defaults: both softcaps, even layers sliding, hidden_activation read (not hidden_act).
TEST(GemmaConfig, Gemma2Defaults) {
  nlohmann::json json = {
      {"model_type", "gemma2"}, {"num_hidden_layers", 4}, {"hidden_act", "gelu_python"}};
  GemmaConfig c = parse(json);
  EXPECT_EQ(c.family, Family::Gemma2);
  EXPECT_EQ(c.attnLogitSoftcap, 50.0);
  EXPECT_EQ(c.finalLogitSoftcap, 30.0);
  EXPECT_EQ(c.activation, Activation::GeluTanh);
  EXPECT_FALSE(c.queryKeyNorm);
  EXPECT_TRUE(c.sandwichNorms);
  EXPECT_EQ(c.layerTypes, (std::vector<LayerType>{LayerType::Sliding, LayerType::Full,
                                                  LayerType::Sliding, LayerType::Full}));
  EXPECT_EQ(c.rope(0), c.rope(1));
  json["final_logit_softcapping"] = nullptr;
  EXPECT_FALSE(parse(json).finalLogitSoftcap);
  json["hidden_size"] = 2300; // not a multiple of 8 heads
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("not a multiple of num_attention_heads"),
            std::string::npos);
}

TEST(GemmaConfig, Activations) {
  auto json = minimalConfig();
  EXPECT_EQ(parse(json).activation, Activation::GeluTanh); // transformers' default
  json["hidden_act"] = "gelu_python";
  EXPECT_EQ(parse(json).activation, Activation::GeluExact);
  json["hidden_act"] = "gelu_pytorch_tanh";
  json["hidden_activation"] = "gelu";
  GemmaConfig c = parse(json);
  EXPECT_EQ(c.activation, Activation::GeluTanh);
  EXPECT_NE(c.activationNote.find("hidden_activation \"gelu\" is ignored"), std::string::npos);
  json["hidden_act"] = "silu";
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("hidden_act \"silu\" is not supported"),
            std::string::npos);
}

TEST(GemmaConfig, TokenIdsAndLabels) {
  auto json = minimalConfig();
  json["eos_token_id"] = {1, 107};
  json["pad_token_id"] = nullptr;
  json["id2label"] = {{"0", "neg"}, {"1", "neutral"}, {"2", "pos"}};
  GemmaConfig c = parse(json);
  EXPECT_EQ(c.eosTokenIds, (std::vector<int64_t>{1, 107}));
  EXPECT_EQ(c.padTokenId, std::nullopt);
  EXPECT_EQ(c.numLabels, 3);
}

TEST(GemmaConfig, Refusals) {
  auto json = minimalConfig();
  json["head_dim"] = 255;
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("must be even"), std::string::npos);
  json = minimalConfig();
  json["vocab_size"] = 1e30;
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("'vocab_size' must be an integer"),
            std::string::npos);
  json = minimalConfig();
  json["model_type"] = "gemma3n";
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("is not a Gemma model"), std::string::npos);
  EXPECT_NE(userErrorOf([&] { parseGemmaConfig("", "config.json"); }).find("not valid JSON"),
            std::string::npos);
}

// A value above INT64_MAX is named as written (2^64 - 1 was reported as "= -1", its wrap).
TEST(GemmaConfig, HugeIntegersAreReportedAsWritten) {
  std::string text = minimalConfig().dump();
  text.replace(text.find("\"vocab_size\":256000"), 19, "\"vocab_size\":18446744073709551615");
  EXPECT_NE(userErrorOf([&] {
              parseGemmaConfig(text, "config.json");
            }).find("field 'vocab_size' = 18446744073709551615 is outside"),
            std::string::npos);
  auto json = minimalConfig();
  json["eos_token_id"] = nlohmann::json::array({1, uint64_t(18446744073709551615ull)});
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("must be a token id or a list of them"),
            std::string::npos);
}

TEST(GemmaConfig, HeadNames) {
  for (Head head :
       {Head::CausalLM, Head::Model, Head::SequenceClassification, Head::TokenClassification})
    EXPECT_EQ(parseHeadName(headName(head)), head);
  EXPECT_EQ(parseHeadName("lm"), std::nullopt);
}

} // namespace
} // namespace gemma
