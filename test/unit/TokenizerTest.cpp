// The look-alike Gemma tokenizer (test/fixtures/tokenizer) through the sentencepiece library the
// runtime links, against the ids transformers' GemmaTokenizer gave: <bos> + pieces, and decoding
// back to the text. Its own executable: sentencepiece cannot share a process with protobuf.
#include "Mutate.h"
#include "runtime/Session.h"

#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <random>
#include <sentencepiece_processor.h>

namespace {

TEST(Tokenizer, MatchesTransformersIds) {
  sentencepiece::SentencePieceProcessor processor;
  ASSERT_TRUE(processor.Load(GEMMAC_FIXTURES_DIR "/tokenizer/tokenizer.model").ok());
  std::ifstream file(GEMMAC_FIXTURES_DIR "/tokenizer/reference.json");
  nlohmann::json reference = nlohmann::json::parse(file);
  EXPECT_EQ(processor.GetPieceSize(), reference.at("vocab_size").get<int>());
  EXPECT_EQ(processor.pad_id(), 0);
  EXPECT_EQ(processor.eos_id(), 1);
  EXPECT_EQ(processor.bos_id(), 2);
  EXPECT_EQ(processor.unk_id(), 3);
  int prompts = 0;
  for (const auto& [name, prompt] : reference.at("prompts").items()) {
    SCOPED_TRACE(name);
    std::string text = prompt.at("text").get<std::string>();
    std::vector<int> ids;
    ASSERT_TRUE(processor.Encode(text, &ids).ok());
    ids.insert(ids.begin(), processor.bos_id()); // add_bos_token, as GemmaTokenizer does
    EXPECT_EQ(ids, prompt.at("hf_ids").get<std::vector<int>>());
    std::string decoded;
    ASSERT_TRUE(processor.Decode(ids, &decoded).ok());
    EXPECT_EQ(decoded, prompt.at("decoded").get<std::string>());
    ++prompts;
  }
  EXPECT_GE(prompts, 6);
}

} // namespace

namespace gemma::rt {
namespace {

// The runtime's tokenizer, as compiled programs use it: <bos> added by the runtime, and decoding
// as transformers' decode(ids) prints (special tokens written out, unlike sentencepiece's own).
TEST(RuntimeTokenizer, EncodesAndDecodesAsTransformers) {
  Tokenizer tokenizer(GEMMAC_FIXTURES_DIR "/tokenizer/tokenizer.model", 2);
  std::ifstream file(GEMMAC_FIXTURES_DIR "/tokenizer/reference.json");
  nlohmann::json reference = nlohmann::json::parse(file);
  for (const auto& [name, prompt] : reference.at("prompts").items()) {
    SCOPED_TRACE(name);
    std::vector<int32_t> ids = tokenizer.encode(prompt.at("text").get<std::string>(), true);
    EXPECT_EQ(ids, prompt.at("hf_ids").get<std::vector<int32_t>>());
    EXPECT_EQ(tokenizer.decode(ids.data(), ids.size()),
              prompt.at("decoded_with_special").get<std::string>());
  }
  // Ids the model's vocab has beyond the tokenizer's pieces print nothing; control pieces print.
  std::vector<int32_t> ids = {2, 612, 1, -5};
  EXPECT_EQ(tokenizer.decode(ids.data(), ids.size()), "<bos><eos>");
  EXPECT_EQ(tokenizer.pieceId("<end_of_turn>"), reference["prompts"]["chat"]["hf_ids"][8]);
  EXPECT_EQ(tokenizer.pieceId("no such piece"), -1);
}

// Special tokens written in the text map to their ids as transformers' tokenizer maps them (its
// added tokens are split out before the model runs), and '' is [<bos>].
TEST(RuntimeTokenizer, SpecialTokensInTextAreTheirIds) {
  Tokenizer tokenizer(GEMMAC_FIXTURES_DIR "/tokenizer/tokenizer.model", 2);
  std::ifstream file(GEMMAC_FIXTURES_DIR "/tokenizer/reference.json");
  nlohmann::json reference = nlohmann::json::parse(file);
  ASSERT_GE(reference.at("special_texts").size(), 5u);
  for (const auto& c : reference.at("special_texts")) {
    SCOPED_TRACE(c.at("text").get<std::string>());
    EXPECT_EQ(tokenizer.encode(c.at("text").get<std::string>(), true),
              c.at("hf_ids").get<std::vector<int32_t>>());
  }
}

// Byte pieces: a run that is valid UTF-8 fuses into its characters; one that is not prints one
// U+FFFD per byte, as transformers' decode does (sentencepiece's own decoder keeps the valid part).
TEST(RuntimeTokenizer, InvalidByteRunsDecodeAsTransformers) {
  Tokenizer tokenizer(GEMMAC_FIXTURES_DIR "/tokenizer/tokenizer.model", 2);
  std::ifstream file(GEMMAC_FIXTURES_DIR "/tokenizer/reference.json");
  nlohmann::json reference = nlohmann::json::parse(file);
  ASSERT_GE(reference.at("decode_cases").size(), 5u);
  for (const auto& c : reference.at("decode_cases")) {
    std::vector<int32_t> ids = c.at("ids").get<std::vector<int32_t>>();
    SCOPED_TRACE(c.at("ids").dump());
    EXPECT_EQ(tokenizer.decode(ids.data(), ids.size()), c.at("decoded").get<std::string>());
  }
}

TEST(RuntimeTokenizer, RefusesAMissingOrBrokenModel) {
  EXPECT_THROW(Tokenizer("/nonexistent/tokenizer.model", 2), std::runtime_error);
  EXPECT_THROW(Tokenizer(GEMMAC_FIXTURES_DIR "/tokenizer/corpus.txt", 2), std::runtime_error);
}

// Mutated sentencepiece models (the fixture's, flipped, cut, spliced) load or are refused with an
// error, and what loads still encodes and decodes: the tokenizer loading's fuzz target, run in
// the sanitized build too.
TEST(RuntimeTokenizer, MutatedModelsNeverCrash) {
  std::ifstream file(GEMMAC_FIXTURES_DIR "/tokenizer/tokenizer.model", std::ios::binary);
  std::string seed((std::istreambuf_iterator<char>(file)), std::istreambuf_iterator<char>());
  ASSERT_GT(seed.size(), 1000u);
  std::string path = ::testing::TempDir() + "/fuzz-tokenizer.model";
  std::mt19937_64 rng(2029);
  int loaded = 0, refused = 0;
  for (int round = 0; round < 400; ++round) {
    std::string bytes = gemma::testing::mutateBytes(seed, rng, seed.size());
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    try {
      Tokenizer tokenizer(path, 2);
      std::vector<int32_t> ids = tokenizer.encode("Plants create energy.", true);
      tokenizer.decode(ids.data(), ids.size());
      ++loaded;
    } catch (const std::runtime_error&) {
      ++refused;
    }
  }
  std::printf("mutated tokenizer models: %d loaded, %d refused with an error, none crashed\n",
              loaded, refused);
  EXPECT_GT(refused, 50);
}

} // namespace
} // namespace gemma::rt
