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
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("rope_type \"linear\" is not supported"),
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
  json["attention_bias"] = true;
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("attention_bias"), std::string::npos);
  json = minimalConfig();
  json["head_dim"] = 255;
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("must be even"), std::string::npos);
  json = minimalConfig();
  json["vocab_size"] = 1e30;
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("'vocab_size' must be an integer"),
            std::string::npos);
  json = minimalConfig();
  json["model_type"] = "gemma3";
  EXPECT_NE(userErrorOf([&] { parse(json); }).find("Gemma 2/3"), std::string::npos);
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
