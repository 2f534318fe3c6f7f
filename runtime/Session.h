// The runtime's inside (C++; the API it implements is gemma_api.h): a session holds the mapped
// weights, the KV cache and the arena the compiler planned, and the tokenizer.
#pragma once

#include "runtime/gemma_model.h"

#include <cstdint>
#include <memory>
#include <random>
#include <string>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace gemma::rt {

// The weights file read into memory (huge pages where the kernel gives them), read-only, after
// checking that it is this model's.
class LoadedWeights {
public:
  // Throws std::runtime_error naming the file and what is wrong with it.
  LoadedWeights(const gemma_model_desc& model, const std::string& path);
  ~LoadedWeights();
  LoadedWeights(const LoadedWeights&) = delete;
  LoadedWeights& operator=(const LoadedWeights&) = delete;
  const uint8_t* base() const { return base_; }

private:
  const uint8_t* base_ = nullptr; // 2 MiB aligned, in region_
  size_t size_ = 0;
  void* region_ = nullptr;
  size_t regionBytes_ = 0;
};

class Tokenizer {
public:
  Tokenizer(const std::string& path, int32_t bosId); // throws std::runtime_error
  ~Tokenizer();
  // As transformers' tokenizer: special tokens (control and unknown pieces) written in the text
  // become their ids, the text between them is sentencepiece's.
  std::vector<int32_t> encode(const std::string& text, bool addBos) const;
  // As transformers' decode(ids): control and unknown tokens written as their pieces, "▁" as a
  // space, runs of byte pieces fused into UTF-8 (a run that is not valid UTF-8 becomes one U+FFFD
  // per byte, as the tokenizers library's ByteFallback decoder does), ids the tokenizer does not
  // have skipped.
  std::string decode(const int32_t* ids, size_t count) const;
  int32_t pieceId(const std::string& piece) const; // -1 when absent

private:
  void encodeOrdinary(const std::string& text, std::vector<int32_t>& ids) const;

  std::unique_ptr<sentencepiece::SentencePieceProcessor> processor_;
  int32_t bosId_;
  std::vector<std::pair<std::string, int32_t>> specialPieces_; // longest first
};

// Picks the next token from one row of logits: greedy, or transformers' sampling (temperature,
// then top-k, then top-p, then a draw).
class Sampler {
public:
  explicit Sampler(const gemma_generation_config& config);
  int32_t next(const float* logits, int64_t vocab);

private:
  gemma_generation_config config_;
  std::mt19937_64 random_;
  std::vector<std::pair<double, int32_t>> candidates_; // (scaled logit, id)
};

} // namespace gemma::rt

struct gemma_session {
  const gemma_model_desc* model = nullptr;
  std::string error;
  std::unique_ptr<gemma::rt::LoadedWeights> weights;
  std::unique_ptr<gemma::rt::Tokenizer> tokenizer;
  std::unique_ptr<uint8_t, void (*)(void*)> arena{nullptr, free};
  std::unique_ptr<uint8_t, void (*)(void*)> kvCache{nullptr, free};
  std::vector<float> rows; // the last forward's output, as float32
  gemma_generation_stats stats{};
};
