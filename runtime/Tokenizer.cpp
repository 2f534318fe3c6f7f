// Gemma's tokenizer through the sentencepiece library (never linked with protobuf: TOOLCHAIN.md,
// gotcha 7). Encoding is sentencepiece's own plus transformers' <bos>; decoding writes special
// tokens out as transformers' decode(ids) does, which sentencepiece alone would drop.
#include "ir/RegularFile.h"
#include "runtime/Session.h"

#include <sentencepiece_processor.h>
#include <stdexcept>

namespace gemma::rt {

Tokenizer::Tokenizer(const std::string& path, int32_t bosId)
    : processor_(std::make_unique<sentencepiece::SentencePieceProcessor>()), bosId_(bosId) {
  // Read here, bounded (a sentencepiece model is a few MiB; 256 MiB is far above any), so that a
  // pipe or a device (/dev/zero) is refused instead of read without end.
  std::string bytes, why;
  if (!gemma::readRegularFile(path, uint64_t(256) << 20, bytes, why))
    throw std::runtime_error("tokenizer '" + path + "' " + why);
  auto status = processor_->LoadFromSerializedProto(bytes);
  if (!status.ok())
    throw std::runtime_error("tokenizer '" + path + "': " + status.ToString());
  if (bosId_ < 0)
    bosId_ = processor_->bos_id();
}

Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool addBos) const {
  std::vector<int> pieces;
  auto status = processor_->Encode(text, &pieces);
  if (!status.ok())
    throw std::runtime_error("tokenizer: " + status.ToString());
  std::vector<int32_t> ids;
  if (addBos && bosId_ >= 0)
    ids.push_back(bosId_);
  ids.insert(ids.end(), pieces.begin(), pieces.end());
  return ids;
}

std::string Tokenizer::decode(const int32_t* ids, size_t count) const {
  std::string text;
  std::vector<int> run; // ordinary pieces, decoded together so byte pieces fuse into UTF-8
  auto flush = [&] {
    std::string piece;
    if (!run.empty() && processor_->Decode(run, &piece).ok())
      text += piece;
    run.clear();
  };
  int size = processor_->GetPieceSize();
  for (size_t i = 0; i < count; ++i) {
    int id = ids[i];
    if (id < 0 || id >= size)
      continue; // the model's vocab may be larger than the tokenizer's: nothing to print
    if (processor_->IsControl(id) || processor_->IsUnknown(id)) {
      flush();
      text += processor_->IdToPiece(id);
    } else {
      run.push_back(id);
    }
  }
  flush();
  return text;
}

int32_t Tokenizer::pieceId(const std::string& piece) const {
  int id = processor_->PieceToId(piece);
  return id == processor_->unk_id() && piece != processor_->IdToPiece(id) ? -1 : id;
}

} // namespace gemma::rt
