#include "backend/WeightsFile.h"

#include "formats/Gguf.h"
#include "ir/ElementCodec.h"
#include "ir/Printer.h"
#include "runtime/gemma_model.h"

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <nlohmann/json.hpp>
#include <set>
#include <xxhash.h>

namespace gemma {

namespace {

constexpr const char* kFormat = GEMMA_WEIGHTS_FORMAT;

// The weight ops, one per tensor name, in first-use order within each alignment: 4-byte
// elements first, then 2-byte ones, then blocks (whose tensors are any even number of bytes).
// So every tensor starts aligned to its element in the 8-byte aligned data section, with no gap
// between tensors (as safetensors requires).
std::vector<const Op*> distinctWeights(const Graph& graph) {
  std::vector<const Op*> weights;
  std::set<std::string> seen;
  for (const auto& op : graph.ops)
    if (op->kind == OpKind::Weight && seen.insert(*op->attr<std::string>("name")).second)
      weights.push_back(op.get());
  auto alignment = [](const Op* op) {
    ElementType type = op->result()->type.elementType;
    return isBlockQuantized(type) ? 1 : elementSize(type);
  };
  std::stable_sort(weights.begin(), weights.end(),
                   [&](const Op* a, const Op* b) { return alignment(a) > alignment(b); });
  return weights;
}

// f32 to bf16 or f16, rounding to nearest even (narrow-weights' tensors).
uint16_t narrowed(float value, ElementType type) {
  return type == ElementType::F16 ? codec::doubleToF16Bits(value) : codec::floatToBf16Bits(value);
}

// The data section as it is written, and its xxh3 (the weights file's data_xxh3).
struct DataWriter {
  std::ofstream& file;
  XXH3_state_t* hash;
  void write(const void* bytes, size_t size) {
    XXH3_64bits_update(hash, bytes, size);
    file.write(static_cast<const char*>(bytes), static_cast<std::streamsize>(size));
  }
};

void writeNarrowed(DataWriter& out, const TensorView& view, ElementType type) {
  const float* values = reinterpret_cast<const float*>(view.data);
  int64_t count = static_cast<int64_t>(view.bytes / 4);
  std::vector<uint16_t> chunk(1 << 20);
  for (int64_t start = 0; start < count; start += static_cast<int64_t>(chunk.size())) {
    int64_t n = std::min<int64_t>(static_cast<int64_t>(chunk.size()), count - start);
    for (int64_t i = 0; i < n; ++i) {
      float value;
      std::memcpy(&value, values + start + i, 4); // the mapping need not be 4-byte aligned
      chunk[static_cast<size_t>(i)] = narrowed(value, type);
    }
    out.write(chunk.data(), static_cast<size_t>(n * 2));
  }
}

// A GGUF tensor's blocks as f32 values (gguf-py's, bit for bit), or rounded on to bf16 or f16,
// a row of blocks at a time.
void writeDequantized(DataWriter& out, const TensorView& view, ElementType type) {
  codec::StorageLayout layout = codec::storageLayout(view.elementType);
  int64_t row = view.shape.empty() ? 0 : view.shape.back();
  int64_t rowBytes = codec::storageBytes(view.elementType, row);
  GEMMA_INTERNAL_ASSERT(row % layout.blockElements == 0, "rows of whole blocks");
  if (rowBytes == 0)
    return;
  int64_t rows = static_cast<int64_t>(view.bytes) / rowBytes;
  std::vector<float> values(static_cast<size_t>(row));
  std::vector<uint16_t> narrow(type == ElementType::F32 ? 0 : values.size());
  for (int64_t r = 0; r < rows; ++r) {
    dequantizeBlocks(ggmlTypeOf(view.elementType), view.data + r * rowBytes, row, values.data());
    if (type == ElementType::F32) {
      out.write(values.data(), values.size() * 4);
      continue;
    }
    for (size_t i = 0; i < values.size(); ++i)
      narrow[i] = narrowed(values[i], type);
    out.write(narrow.data(), narrow.size() * 2);
  }
}

// An f32 (or f16, bf16, or another block type's) checkpoint tensor quantized to blocks
// (--weights-dtype q8_0|q4_0|q4_k), a row at a time, as llama.cpp's reference quantizer does.
void writeQuantized(DataWriter& out, const TensorView& view, ElementType type,
                    const std::string& name) {
  int64_t row = view.shape.empty() ? 1 : view.shape.back();
  int64_t sourceRowBytes = codec::storageBytes(view.elementType, row);
  int64_t rowBytes = codec::storageBytes(type, row);
  if (sourceRowBytes == 0)
    return;
  int64_t rows = static_cast<int64_t>(view.bytes) / sourceRowBytes;
  std::vector<float> values(static_cast<size_t>(row));
  std::vector<uint8_t> blocks(static_cast<size_t>(rowBytes));
  for (int64_t r = 0; r < rows; ++r) {
    const uint8_t* source = view.data + r * sourceRowBytes;
    if (isBlockQuantized(view.elementType))
      dequantizeBlocks(ggmlTypeOf(view.elementType), source, row, values.data());
    else
      for (int64_t i = 0; i < row; ++i)
        values[static_cast<size_t>(i)] = static_cast<float>(
            codec::decodeElement(view.elementType, source + i * elementSize(view.elementType)));
    if (!quantizeBlocks(ggmlTypeOf(type), values.data(), row, blocks.data()))
      throw UserError(Location::named(name),
                      "row " + std::to_string(r) + " cannot be stored as " +
                          std::string(elementTypeName(type)) +
                          ": a value is not finite, or a block's scale is beyond f16's range");
    out.write(blocks.data(), blocks.size());
  }
}

std::vector<int64_t> storedShape(const Op& weight) {
  std::vector<int64_t> shape;
  for (const Dim& d : storedWeightType(weight).dims)
    shape.push_back(d.staticValue());
  return shape;
}

} // namespace

std::string modelHash(const Graph& graph) {
  std::string text = printGraph(graph, {true});
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx",
           static_cast<unsigned long long>(XXH3_64bits(text.data(), text.size())));
  return hex;
}

int64_t writeWeightsFile(const Graph& graph, const WeightStore& weights, const std::string& path) {
  nlohmann::json header = nlohmann::json::object();
  // data_xxh3: the data section's checksum, verified by the program when it loads the file
  // (written as a placeholder here, then over it once the data is written).
  const std::string placeholder(16, '0');
  header["__metadata__"] = {
      {"format", kFormat}, {"model_hash", modelHash(graph)}, {"data_xxh3", placeholder}};
  struct Placed {
    std::string name;
    const TensorView* view;
    ElementType stored;
    uint64_t offset, bytes;
  };
  std::vector<Placed> views;
  uint64_t offset = 0;
  for (const Op* op : distinctWeights(graph)) {
    const std::string& name = *op->attr<std::string>("name");
    const TensorView* view = weights.find(name);
    if (!view || !safetensorsDtypeName(view->elementType))
      throw UserError(Location::named(name), "weight is not in the checkpoint as a float tensor");
    // The graph's type: the checkpoint's, or narrower (narrow-weights converts f32 here), or
    // a quantized checkpoint's blocks dequantized (to f32, or on to bf16 or f16), or any float
    // or block tensor quantized to the blocks --weights-dtype names.
    ElementType stored = op->result()->type.elementType;
    bool source = view->elementType == ElementType::F32 || isBlockQuantized(view->elementType);
    bool narrows = source && (stored == ElementType::F32 || stored == ElementType::BF16 ||
                              stored == ElementType::F16);
    bool quantized = isBlockQuantized(stored) && quantizes(ggmlTypeOf(stored)) &&
                     (isFloat(view->elementType) || isBlockQuantized(view->elementType));
    if (stored != view->elementType && !narrows && !quantized)
      throw UserError(Location::named(name), std::string("weight is ") +
                                                 safetensorsDtypeName(view->elementType) +
                                                 " in the checkpoint and cannot be stored as " +
                                                 std::string(elementTypeName(stored)));
    int64_t count = 1;
    for (int64_t d : view->shape)
      count *= d;
    uint64_t bytes = static_cast<uint64_t>(codec::storageBytes(stored, count));
    header[name] = {{"dtype", safetensorsDtypeName(stored)},
                    {"shape", view->shape},
                    {"data_offsets", {offset, offset + bytes}}};
    offset += bytes;
    views.push_back({name, view, stored, offset - bytes, bytes});
  }
  std::string text = header.dump();
  text.append((8 - text.size() % 8) % 8, ' '); // keep the data section 8-byte aligned
  std::ofstream file(path, std::ios::binary | std::ios::trunc);
  uint64_t length = text.size();
  char prefix[8];
  for (int i = 0; i < 8; ++i)
    prefix[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  file.write(prefix, 8);
  file.write(text.data(), static_cast<std::streamsize>(text.size()));
  std::unique_ptr<XXH3_state_t, XXH_errorcode (*)(XXH3_state_t*)> hash(XXH3_createState(),
                                                                       XXH3_freeState);
  XXH3_64bits_reset(hash.get());
  DataWriter data{file, hash.get()};
  for (const auto& [name, view, stored, at, bytes] : views) {
    if (stored == view->elementType)
      data.write(view->data, view->bytes);
    else if (isBlockQuantized(stored))
      writeQuantized(data, *view, stored, name);
    else if (isBlockQuantized(view->elementType))
      writeDequantized(data, *view, stored);
    else
      writeNarrowed(data, *view, stored);
  }
  char checksum[17];
  snprintf(checksum, sizeof checksum, "%016llx",
           static_cast<unsigned long long>(XXH3_64bits_digest(hash.get())));
  std::string field = "\"data_xxh3\":\"" + placeholder + "\"";
  size_t at = text.find(field);
  GEMMA_INTERNAL_ASSERT(at != std::string::npos, "the checksum's placeholder is in the header");
  file.seekp(static_cast<std::streamoff>(8 + at + field.size() - 1 - placeholder.size()));
  file.write(checksum, 16);
  file.close();
  if (!file)
    throw UserError(Location::named(path), "cannot be written");
  return static_cast<int64_t>(8 + text.size() + offset);
}

std::unique_ptr<SafetensorsFile> openWeightsFile(const Graph& graph, const std::string& path) {
  auto file = SafetensorsFile::open(path);
  auto meta = [&](const char* key) {
    auto it = file->metadata().find(key);
    return it == file->metadata().end() ? std::string() : it->second;
  };
  if (meta("format") != kFormat)
    throw UserError(Location::named(path), "is not a gemmac weights file");
  if (meta("model_hash") != modelHash(graph))
    throw UserError(Location::named(path), "was written for another model (hash " +
                                               meta("model_hash") + ", this model is " +
                                               modelHash(graph) + ")");
  for (const auto& op : graph.ops) {
    if (op->kind != OpKind::Weight)
      continue;
    const std::string& name = *op->attr<std::string>("name");
    auto it = file->tensors().find(name);
    const TensorType& type = op->result()->type;
    if (it == file->tensors().end() || it->second.elementType != type.elementType ||
        it->second.shape != storedShape(*op))
      throw UserError(Location::named(path), "lacks tensor '" + name + "' as " + type.str());
  }
  return file;
}

} // namespace gemma
