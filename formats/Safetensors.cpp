#include "formats/Safetensors.h"

#include "formats/Gguf.h"
#include "formats/ModelFiles.h"
#include "ir/Diagnostics.h"
#include "ir/ElementCodec.h"
#include "ir/RegularFile.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gemma {

namespace {

using Json = nlohmann::json;
namespace fs = std::filesystem;

// As the safetensors reference implementation: a header above 100 MB is refused.
constexpr uint64_t kMaxHeaderBytes = 100'000'000;

// A name from a file as an error can show it: control bytes (a NUL would end the message) as \xNN.
std::string printable(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (c >= 0x20 && c != 0x7f) {
      out += static_cast<char>(c);
      continue;
    }
    char escaped[5];
    snprintf(escaped, sizeof escaped, "\\x%02x", c);
    out += escaped;
  }
  return out;
}

[[noreturn]] void fail(const std::string& file, const std::string& message) {
  throw UserError(Location::named(file), message);
}

// The dtypes read and written, with their names in a safetensors header. The block-quantized ones
// (GGUF's, by llama.cpp's names) are no safetensors writer's: gemmac's weights file keeps a GGUF's
// blocks as they are, each row of a tensor a whole number of blocks.
constexpr std::pair<ElementType, const char*> kDtypes[] = {
    {ElementType::F32, "F32"},   {ElementType::BF16, "BF16"}, {ElementType::F16, "F16"},
    {ElementType::Q4_0, "Q4_0"}, {ElementType::Q4_1, "Q4_1"}, {ElementType::Q5_0, "Q5_0"},
    {ElementType::Q5_1, "Q5_1"}, {ElementType::Q8_0, "Q8_0"}, {ElementType::Q4_K, "Q4_K"},
    {ElementType::Q5_K, "Q5_K"}, {ElementType::Q6_K, "Q6_K"}};

std::optional<ElementType> parseDtype(const std::string& dtype) {
  for (const auto& [type, name] : kDtypes)
    if (dtype == name)
      return type;
  return std::nullopt;
}

bool isKnownUnsupportedDtype(const std::string& dtype) {
  static const char* known[] = {"F64",     "I64", "I32",     "I16",     "I8",      "U8",
                                "U16",     "U32", "U64",     "BOOL",    "F8_E4M3", "F8_E5M2",
                                "F8_E8M0", "F4",  "F6_E2M3", "F6_E3M2", "C64"};
  return std::find_if(std::begin(known), std::end(known),
                      [&](const char* k) { return dtype == k; }) != std::end(known);
}

} // namespace

std::string TensorView::shapeString() const {
  return Tensor(elementType, shape, {}).shapeString();
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  auto result = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  result->path_ = path;
  uint64_t fileSize = 0;
  std::string why;
  int fd = openRegularFile(path, fileSize, why);
  if (fd < 0)
    fail(path, why);
  auto size = static_cast<size_t>(fileSize);
  if (size > 0) {
    void* mapping = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (mapping == MAP_FAILED) {
      ::close(fd);
      fail(path, std::string("cannot be mapped: ") + std::strerror(errno));
    }
    result->mapping_ = mapping;
    result->mappingSize_ = size;
  }
  ::close(fd);
  result->parseImage(static_cast<const uint8_t*>(result->mapping_), size);
  return result;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::parse(const uint8_t* bytes, size_t size,
                                                        const std::string& fileName) {
  auto result = std::unique_ptr<SafetensorsFile>(new SafetensorsFile());
  result->path_ = fileName;
  result->parseImage(bytes, size);
  return result;
}

SafetensorsFile::~SafetensorsFile() {
  if (mapping_)
    munmap(mapping_, mappingSize_);
}

void SafetensorsFile::parseImage(const uint8_t* bytes, size_t size) {
  base_ = bytes;
  const std::string& file = path_;
  if (size < 8)
    fail(file,
         "is truncated: " + std::to_string(size) + " bytes, less than the 8-byte header length");
  uint64_t headerBytes = 0;
  for (int i = 7; i >= 0; --i)
    headerBytes = (headerBytes << 8) | bytes[i]; // little-endian
  if (headerBytes > size - 8)
    fail(file, "header length " + std::to_string(headerBytes) + " runs past the end of the file (" +
                   std::to_string(size) + " bytes)");
  if (headerBytes > kMaxHeaderBytes)
    fail(file, "header length " + std::to_string(headerBytes) + " exceeds 100 MB");
  const char* headerStart = reinterpret_cast<const char*>(bytes + 8);
  Json header = Json::parse(headerStart, headerStart + headerBytes, nullptr, false);
  if (header.is_discarded())
    fail(file, "header is not valid JSON");
  if (!header.is_object())
    fail(file, "header must be a JSON object");

  const uint8_t* data = bytes + 8 + headerBytes;
  uint64_t dataBytes = size - 8 - headerBytes;
  struct Range {
    uint64_t begin, end;
    std::string name;
  };
  std::vector<Range> ranges;
  for (const auto& [name, entry] : header.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object())
        fail(file, "__metadata__ must be an object of strings");
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string())
          fail(file, "__metadata__ '" + key + "' must be a string");
        metadata_[key] = value.get<std::string>();
      }
      continue;
    }
    std::string where = "tensor '" + name + "': ";
    if (!entry.is_object() || !entry.contains("dtype") || !entry.contains("shape") ||
        !entry.contains("data_offsets"))
      fail(file, where + "needs dtype, shape and data_offsets");
    if (!entry.at("dtype").is_string())
      fail(file, where + "dtype must be a string");
    std::string dtype = entry.at("dtype").get<std::string>();
    auto type = parseDtype(dtype);
    if (!type)
      fail(file, where + (isKnownUnsupportedDtype(dtype) ? "dtype " + dtype +
                                                               " is not supported "
                                                               "(F32, BF16 and F16 are)"
                                                         : "unknown dtype '" + dtype + "'"));
    const Json& shapeJson = entry.at("shape");
    if (!shapeJson.is_array() || shapeJson.size() > static_cast<size_t>(kMaxRank))
      fail(file, where + "shape must be a list of at most 16 dims");
    std::vector<int64_t> shape;
    uint64_t count = 1;
    for (const Json& dim : shapeJson) {
      if (!dim.is_number_unsigned() || dim.get<uint64_t>() > static_cast<uint64_t>(kMaxDimValue))
        fail(file, where + "shape has an invalid dim " + dim.dump());
      shape.push_back(dim.get<int64_t>());
      if (__builtin_mul_overflow(count, dim.get<uint64_t>(), &count))
        fail(file, where + "shape has too many elements");
    }
    const Json& offsets = entry.at("data_offsets");
    if (!offsets.is_array() || offsets.size() != 2 || !offsets[0].is_number_unsigned() ||
        !offsets[1].is_number_unsigned())
      fail(file, where + "data_offsets must be two non-negative integers");
    uint64_t begin = offsets[0].get<uint64_t>(), end = offsets[1].get<uint64_t>();
    if (begin > end || end > dataBytes)
      fail(file, where + "data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                     "] lie outside the data section (" + std::to_string(dataBytes) + " bytes)");
    codec::StorageLayout layout = codec::storageLayout(*type);
    if (layout.blockElements > 1 && (shape.empty() || shape.back() % layout.blockElements != 0))
      fail(file, where + "shape " + shapeJson.dump() + " of " + dtype +
                     " needs rows of whole blocks of " + std::to_string(layout.blockElements));
    uint64_t expected = 0;
    uint64_t blocks = count / static_cast<uint64_t>(layout.blockElements);
    if (__builtin_mul_overflow(blocks, static_cast<uint64_t>(layout.blockBytes), &expected) ||
        expected != end - begin)
      fail(file, where + "shape " + shapeJson.dump() + " of " + dtype + " needs " +
                     std::to_string(blocks) + " x " + std::to_string(layout.blockBytes) +
                     " bytes, but data_offsets give " + std::to_string(end - begin));
    ranges.push_back({begin, end, name});
    tensors_[name] = TensorView{name, file, *type, shape, data + begin, end - begin};
  }
  std::sort(ranges.begin(), ranges.end(),
            [](const Range& a, const Range& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < ranges.size(); ++i)
    if (ranges[i].begin < ranges[i - 1].end)
      fail(file, "tensors '" + ranges[i - 1].name + "' and '" + ranges[i].name +
                     "' overlap in the data section");
  // As the safetensors library validates a file: the tensors fill the data section exactly, from
  // its first byte to its last (bytes in a gap or past the end are data nothing names).
  uint64_t covered = 0;
  for (const Range& range : ranges) {
    if (range.begin != covered)
      fail(file, "the data section has unused bytes [" + std::to_string(covered) + ", " +
                     std::to_string(range.begin) + ") before tensor '" + range.name + "'");
    covered = range.end;
  }
  if (covered != dataBytes)
    fail(file, "the data section has " + std::to_string(dataBytes - covered) +
                   " bytes after the last tensor");
}

WeightStore WeightStore::openFolder(const std::string& folder) {
  WeightStore store;
  fs::path dir(folder);
  fs::path single = dir / "model.safetensors";
  fs::path index = dir / "model.safetensors.index.json";
  if (fs::exists(index)) {
    std::string indexFile = index.string();
    Json json = Json::parse(readFileOrThrow(indexFile), nullptr, false);
    if (json.is_discarded() || !json.is_object())
      fail(indexFile, "is not a valid JSON object");
    if (!json.contains("weight_map") || !json.at("weight_map").is_object())
      fail(indexFile, "needs a 'weight_map' object");
    std::map<std::string, size_t> shardOf;
    for (const auto& [tensor, shard] : json.at("weight_map").items()) {
      if (!shard.is_string())
        fail(indexFile, "weight_map['" + tensor + "'] must be a file name");
      std::string shardName = shard.get<std::string>();
      // Shards are plain file names inside the folder: never a path that leaves it.
      if (shardName.empty() || shardName.find('/') != std::string::npos ||
          shardName.find('\0') != std::string::npos || shardName == "." || shardName == "..")
        fail(indexFile, "weight_map['" + tensor + "'] names '" + printable(shardName) +
                            "', which is not a file in the checkpoint folder");
      resolveModelFile(folder, shardName, indexFile, "weight_map['" + tensor + "']: shard");
      auto found = std::find(store.files_.begin(), store.files_.end(), (dir / shardName).string());
      size_t shardIndex = found - store.files_.begin();
      if (found == store.files_.end()) {
        store.files_.push_back((dir / shardName).string());
        store.shards_.push_back(SafetensorsFile::open((dir / shardName).string()));
      }
      shardOf[tensor] = shardIndex;
    }
    for (const auto& [tensor, shardIndex] : shardOf) {
      const auto& tensors = store.shards_[shardIndex]->tensors();
      auto it = tensors.find(tensor);
      if (it == tensors.end())
        fail(store.files_[shardIndex],
             "tensor '" + tensor + "' is missing, but " + indexFile + " says it is here");
      store.index_[tensor] = &it->second;
    }
    for (const auto& shard : store.shards_)
      for (const auto& [name, view] : shard->tensors())
        if (!shardOf.count(name))
          fail(shard->path(), "tensor '" + name + "' is not listed in " + indexFile);
  } else if (fs::exists(single)) {
    resolveModelFile(folder, single.filename().string(), folder, "the checkpoint");
    store.files_.push_back(single.string());
    store.shards_.push_back(SafetensorsFile::open(single.string()));
    for (const auto& [name, view] : store.shards_.back()->tensors())
      store.index_[name] = &view;
  } else {
    fail(folder, "has neither model.safetensors nor model.safetensors.index.json");
  }
  return store;
}

void WeightStore::addOwned(const std::string& name, const std::string& file, ElementType type,
                           std::vector<int64_t> shape, std::vector<uint8_t> bytes) {
  auto entry = std::make_unique<std::pair<TensorView, std::vector<uint8_t>>>();
  entry->second = std::move(bytes);
  entry->first =
      TensorView{name, file, type, std::move(shape), entry->second.data(), entry->second.size()};
  index_[name] = &entry->first;
  if (std::find(files_.begin(), files_.end(), file) == files_.end())
    files_.push_back(file);
  owned_.push_back(std::move(entry));
}

const TensorView* WeightStore::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : it->second;
}

Tensor WeightStore::load(const std::string& name) const {
  const TensorView* view = find(name);
  if (!view)
    throw UserError("no tensor named '" + name + "' in the checkpoint");
  return toTensor(*view);
}

const char* safetensorsDtypeName(ElementType type) {
  for (const auto& [known, name] : kDtypes)
    if (known == type)
      return name;
  return nullptr;
}

Tensor toTensor(const TensorView& view) {
  if (isBlockQuantized(view.elementType)) {
    // Dequantized as gguf-py does: the f32 values transformers' GGUF loader gives the model.
    Tensor tensor = Tensor::zeros(ElementType::F32, view.shape);
    std::vector<float> values(tensor.data.size());
    dequantizeBlocks(ggmlTypeOf(view.elementType), view.data, static_cast<int64_t>(values.size()),
                     values.data());
    std::copy(values.begin(), values.end(), tensor.data.begin());
    return tensor;
  }
  GEMMA_INTERNAL_ASSERT(isFloat(view.elementType), "safetensors views hold float types only");
  Tensor tensor = Tensor::zeros(view.elementType, view.shape);
  tensor.data = codec::decodeElements(view.elementType, view.data, view.bytes);
  return tensor;
}

} // namespace gemma
