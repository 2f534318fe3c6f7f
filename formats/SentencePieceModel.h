// A sentencepiece model (tokenizer.model) built from a vocabulary held elsewhere: a GGUF's
// tokenizer.ggml.* arrays, or a tokenizer.json (GemmaTokenizerFast) with no tokenizer.model beside
// it. The runtime then tokenizes with sentencepiece as it does for every model. The compiler never
// links sentencepiece (TOOLCHAIN.md, gotcha 7), so the ModelProto is written as raw protobuf bytes.
//
// Gemma's tokenizer is BPE: sentencepiece merges the adjacent pair whose concatenation has the
// highest score; transformers merges the pair of lowest rank. Scores that descend with the merge
// rank make the two agree.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gemma {

struct SentencePieceModelSpec {
  // sentencepiece's piece types, numbered as in sentencepiece_model.proto.
  enum class PieceType : int {
    Normal = 1,
    Unknown = 2,
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6
  };
  struct Piece {
    std::string text;
    float score = 0;
    PieceType type = PieceType::Normal;
  };
  std::vector<Piece> pieces;
  bool byteFallback = true;
  bool addDummyPrefix = false; // Gemma's tokenizers add no prefix space
  int64_t unkId = -1, bosId = -1, eosId = -1, padId = -1;
};

// The serialized ModelProto (a BPE model, identity normalization, spaces escaped as U+2581).
std::string serializeSentencePieceModel(const SentencePieceModelSpec& spec);

// A tokenizer.json of a BPE model (vocab, merges, added tokens) as a sentencepiece model: a
// multi-character piece no merge produces is Unused (transformers can never emit it); special
// added tokens are Control, other added tokens UserDefined. Throws UserError naming the file.
SentencePieceModelSpec sentencePieceFromTokenizerJson(const std::string& text,
                                                      const std::string& fileName);

} // namespace gemma
