#include "formats/SentencePieceModel.h"

#include "ir/Diagnostics.h"

#include <cstring>
#include <map>
#include <nlohmann/json.hpp>

namespace gemma {

namespace {

// Protobuf's wire format, as much of it as a ModelProto needs.
class ProtoWriter {
public:
  void varint(uint64_t value) {
    while (value >= 0x80) {
      bytes_ += static_cast<char>((value & 0x7f) | 0x80);
      value >>= 7;
    }
    bytes_ += static_cast<char>(value);
  }
  void tag(int field, int wireType) { varint(static_cast<uint64_t>(field) << 3 | wireType); }
  void integer(int field, int64_t value) { // int32 fields and enums: negative is 10 bytes
    tag(field, 0);
    varint(static_cast<uint64_t>(value));
  }
  void boolean(int field, bool value) { integer(field, value ? 1 : 0); }
  void real(int field, float value) {
    tag(field, 5);
    char raw[4];
    std::memcpy(raw, &value, 4);
    bytes_.append(raw, 4);
  }
  void bytes(int field, const std::string& value) {
    tag(field, 2);
    varint(value.size());
    bytes_ += value;
  }
  const std::string& str() const { return bytes_; }

private:
  std::string bytes_;
};

[[noreturn]] void fail(const std::string& file, const std::string& message) {
  throw UserError(Location::named(file), message);
}

// The number of UTF-8 code points in `text` (bytes that begin one).
size_t codePoints(const std::string& text) {
  size_t n = 0;
  for (unsigned char c : text)
    n += (c & 0xC0) != 0x80;
  return n;
}

} // namespace

std::string serializeSentencePieceModel(const SentencePieceModelSpec& spec) {
  // Field numbers from sentencepiece_model.proto (TOOLCHAIN.md): ModelProto {pieces = 1,
  // trainer_spec = 2, normalizer_spec = 3}; SentencePiece {piece = 1, score = 2, type = 3}.
  ProtoWriter model;
  for (const auto& piece : spec.pieces) {
    ProtoWriter p;
    p.bytes(1, piece.text);
    p.real(2, piece.score);
    p.integer(3, static_cast<int>(piece.type));
    model.bytes(1, p.str());
  }
  auto pieceAt = [&](int64_t id, const char* fallback) {
    return id >= 0 && id < static_cast<int64_t>(spec.pieces.size()) ? spec.pieces[id].text
                                                                    : std::string(fallback);
  };
  ProtoWriter trainer; // model_type 3 (BPE = 2), vocab_size 4, byte_fallback 35, ids 40-43,
                       // their pieces 45-48
  trainer.integer(3, 2);
  trainer.integer(4, static_cast<int64_t>(spec.pieces.size()));
  trainer.boolean(35, spec.byteFallback);
  trainer.integer(40, spec.unkId);
  trainer.integer(41, spec.bosId);
  trainer.integer(42, spec.eosId);
  trainer.integer(43, spec.padId);
  trainer.bytes(45, pieceAt(spec.unkId, "<unk>"));
  trainer.bytes(46, pieceAt(spec.bosId, "<s>"));
  trainer.bytes(47, pieceAt(spec.eosId, "</s>"));
  trainer.bytes(48, pieceAt(spec.padId, "<pad>"));
  model.bytes(2, trainer.str());
  ProtoWriter normalizer; // name 1, add_dummy_prefix 3, remove_extra_whitespaces 4,
                          // escape_whitespaces 5: no NFKC, spaces kept as they are, escaped
  normalizer.bytes(1, "identity");
  normalizer.boolean(3, spec.addDummyPrefix);
  normalizer.boolean(4, false);
  normalizer.boolean(5, true);
  model.bytes(3, normalizer.str());
  return model.str();
}

namespace {

SentencePieceModelSpec readTokenizerJson(const std::string& text, const std::string& fileName) {
  using Json = nlohmann::json;
  Json root = Json::parse(text, nullptr, false);
  if (root.is_discarded() || !root.is_object())
    fail(fileName, "is not valid JSON");
  const Json* model = root.contains("model") ? &root["model"] : nullptr;
  if (!model || !model->is_object() || model->value("type", std::string()) != "BPE")
    fail(fileName, "has no BPE model (model.type \"BPE\"); gemmac reads Gemma's BPE tokenizer");
  if (!model->contains("vocab") || !(*model)["vocab"].is_object())
    fail(fileName, "model.vocab is not an object of piece -> id");
  const Json& vocab = (*model)["vocab"];
  size_t size = vocab.size();
  if (size == 0 || size > (1u << 24))
    fail(fileName, "model.vocab has " + std::to_string(size) + " pieces");
  SentencePieceModelSpec spec;
  spec.pieces.resize(size);
  std::vector<bool> seen(size, false);
  std::map<std::string, int64_t> ids;
  for (const auto& [piece, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() >= int64_t(size))
      fail(fileName, "model.vocab['" + piece + "'] is not an id in 0.." + std::to_string(size - 1));
    auto index = static_cast<size_t>(id.get<int64_t>());
    if (seen[index])
      fail(fileName, "model.vocab gives id " + std::to_string(index) + " to two pieces");
    if (piece.empty())
      fail(fileName, "model.vocab has an empty piece");
    seen[index] = true;
    spec.pieces[index].text = piece;
    ids[piece] = static_cast<int64_t>(index);
  }

  // Scores: a piece a merge produces ranks by its first merge; others come after every merge.
  const Json merges = model->value("merges", Json::array());
  if (!merges.is_array())
    fail(fileName, "model.merges is not an array");
  std::vector<bool> merged(size, false);
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& merge = merges[rank];
    std::string joined;
    if (merge.is_string()) { // "left right"
      std::string pair = merge.get<std::string>();
      size_t space = pair.find(' ');
      if (space == std::string::npos)
        fail(fileName, "model.merges[" + std::to_string(rank) + "] is not \"left right\"");
      joined = pair.substr(0, space) + pair.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() &&
               merge[1].is_string()) {
      joined = merge[0].get<std::string>() + merge[1].get<std::string>();
    } else {
      fail(fileName, "model.merges[" + std::to_string(rank) + "] is not a pair of pieces");
    }
    auto it = ids.find(joined);
    if (it == ids.end())
      fail(fileName, "model.merges[" + std::to_string(rank) + "] makes '" + joined +
                         "', which is not in model.vocab");
    if (!merged[it->second]) {
      merged[it->second] = true;
      spec.pieces[it->second].score = -static_cast<float>(rank);
    }
  }
  bool byteFallback = model->value("byte_fallback", false);
  spec.byteFallback = byteFallback;
  for (size_t id = 0; id < size; ++id) {
    auto& piece = spec.pieces[id];
    if (merged[id])
      continue;
    piece.score = -static_cast<float>(merges.size() + id);
    bool isByte =
        piece.text.size() == 6 && piece.text.compare(0, 3, "<0x") == 0 && piece.text[5] == '>';
    if (byteFallback && isByte)
      piece.type = SentencePieceModelSpec::PieceType::Byte;
    else if (codePoints(piece.text) > 1)
      piece.type = SentencePieceModelSpec::PieceType::Unused;
  }
  if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
    for (const Json& token : root["added_tokens"]) {
      if (!token.is_object() || !token.contains("id") || !token["id"].is_number_integer() ||
          !token.contains("content") || !token["content"].is_string())
        fail(fileName, "added_tokens has an entry without an integer id and a content string");
      int64_t id = token["id"].get<int64_t>();
      if (id < 0 || id >= int64_t(size) || spec.pieces[id].text != token["content"])
        fail(fileName, "added token '" + token["content"].get<std::string>() + "' (id " +
                           std::to_string(id) + ") is not that id's piece in model.vocab");
      spec.pieces[id].type = token.value("special", false)
                                 ? SentencePieceModelSpec::PieceType::Control
                                 : SentencePieceModelSpec::PieceType::UserDefined;
    }
  }
  auto idOf = [&](const std::string& piece) {
    auto it = ids.find(piece);
    return it == ids.end() ? int64_t(-1) : it->second;
  };
  spec.unkId = idOf(model->value("unk_token", std::string("<unk>")));
  if (spec.unkId < 0)
    fail(fileName, "has no unknown token (model.unk_token) in its vocabulary");
  spec.pieces[spec.unkId].type = SentencePieceModelSpec::PieceType::Unknown;
  spec.bosId = idOf("<bos>");
  spec.eosId = idOf("<eos>");
  spec.padId = idOf("<pad>");
  // A normalizer that prepends U+2581 is sentencepiece's dummy prefix.
  std::string normalizer = root.contains("normalizer") ? root["normalizer"].dump() : "";
  spec.addDummyPrefix = normalizer.find("\"Prepend\"") != std::string::npos;
  return spec;
}

} // namespace

SentencePieceModelSpec sentencePieceFromTokenizerJson(const std::string& text,
                                                      const std::string& fileName) {
  try {
    return readTokenizerJson(text, fileName);
  } catch (const nlohmann::json::exception& error) { // a field of the wrong JSON type
    fail(fileName, std::string("is not a tokenizer.json gemmac reads: ") + error.what());
  }
}

} // namespace gemma
