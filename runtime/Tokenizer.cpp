// Gemma's tokenizer through the sentencepiece library (never linked with protobuf: TOOLCHAIN.md,
// gotcha 7). Encoding is sentencepiece's own between the special tokens written in the text, plus
// transformers' <bos>; decoding is transformers' (the tokenizers library's decoder: special
// tokens written out, byte runs fused or replaced by U+FFFD), which sentencepiece's differs from.
#include "ir/RegularFile.h"
#include "runtime/Session.h"

#include <algorithm>
#include <cstdio>
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
  for (int id = 0; id < processor_->GetPieceSize(); ++id)
    if ((processor_->IsControl(id) || processor_->IsUnknown(id)) &&
        !processor_->IdToPiece(id).empty())
      specialPieces_.emplace_back(processor_->IdToPiece(id), id);
  std::stable_sort(specialPieces_.begin(), specialPieces_.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
}

Tokenizer::~Tokenizer() = default;

void Tokenizer::encodeOrdinary(const std::string& text, std::vector<int32_t>& ids) const {
  if (text.empty())
    return;
  std::vector<int> pieces;
  auto status = processor_->Encode(text, &pieces);
  if (!status.ok())
    throw std::runtime_error("tokenizer: " + status.ToString());
  ids.insert(ids.end(), pieces.begin(), pieces.end());
}

std::vector<int32_t> Tokenizer::encode(const std::string& text, bool addBos) const {
  std::vector<int32_t> ids;
  if (addBos && bosId_ >= 0)
    ids.push_back(bosId_);
  // Special tokens are split out first, as transformers' added tokens are (never normalized,
  // not stripped); the longest one wins where several start at the same place.
  size_t start = 0;
  for (size_t at = 0; at < text.size(); ++at) {
    for (const auto& [piece, id] : specialPieces_) {
      if (text.compare(at, piece.size(), piece) != 0)
        continue;
      encodeOrdinary(text.substr(start, at - start), ids);
      ids.push_back(id);
      at += piece.size() - 1;
      start = at + 1;
      break;
    }
  }
  encodeOrdinary(text.substr(start), ids);
  return ids;
}

namespace {

bool validUtf8(const std::string& bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    auto c = static_cast<unsigned char>(bytes[i]);
    size_t length = c < 0x80           ? 1
                    : (c >> 5) == 0x6  ? 2
                    : (c >> 4) == 0xE  ? 3
                    : (c >> 3) == 0x1E ? 4
                                       : 0;
    if (length == 0 || i + length > bytes.size())
      return false;
    uint32_t code = length == 1 ? c : c & (0x7F >> length);
    for (size_t k = 1; k < length; ++k) {
      auto next = static_cast<unsigned char>(bytes[i + k]);
      if ((next & 0xC0) != 0x80)
        return false;
      code = (code << 6) | (next & 0x3F);
    }
    // Overlong forms, surrogates and values past U+10FFFF are not UTF-8 either.
    static const uint32_t smallest[] = {0, 0, 0x80, 0x800, 0x10000};
    if (code < smallest[length] || (code >= 0xD800 && code <= 0xDFFF) || code > 0x10FFFF)
      return false;
    i += length;
  }
  return true;
}

} // namespace

std::string Tokenizer::decode(const int32_t* ids, size_t count) const {
  std::string text, bytes; // bytes: the run of byte pieces not yet written
  size_t byteCount = 0;
  auto flush = [&] {
    if (validUtf8(bytes)) {
      text += bytes;
    } else {
      for (size_t i = 0; i < byteCount; ++i)
        text += "\xEF\xBF\xBD"; // U+FFFD
    }
    bytes.clear();
    byteCount = 0;
  };
  int size = processor_->GetPieceSize();
  for (size_t i = 0; i < count; ++i) {
    int id = ids[i];
    if (id < 0 || id >= size)
      continue; // the model's vocab may be larger than the tokenizer's: nothing to print
    const std::string& piece = processor_->IdToPiece(id);
    unsigned value = 0;
    if (processor_->IsByte(id) && std::sscanf(piece.c_str(), "<0x%2X>", &value) == 1) {
      bytes += static_cast<char>(value);
      ++byteCount;
      continue;
    }
    flush();
    if (processor_->IsControl(id) || processor_->IsUnknown(id)) {
      text += piece;
      continue;
    }
    for (size_t at = 0; at < piece.size(); ++at) {
      if (piece.compare(at, 3, "\xE2\x96\x81") == 0) { // U+2581 "▁", sentencepiece's space
        text += ' ';
        at += 2;
      } else {
        text += piece[at];
      }
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
