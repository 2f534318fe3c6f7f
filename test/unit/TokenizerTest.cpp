// The look-alike Gemma tokenizer (test/fixtures/tokenizer) through the sentencepiece library the
// runtime links, against the ids transformers' GemmaTokenizer gave: <bos> + pieces, and decoding
// back to the text. Its own executable: sentencepiece cannot share a process with protobuf.
#include <fstream>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
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
