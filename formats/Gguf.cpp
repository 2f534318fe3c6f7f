#include "formats/Gguf.h"

#include "ir/Diagnostics.h"
#include "ir/ElementCodec.h"
#include "ir/Printer.h"
#include "ir/RegularFile.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <sys/mman.h>
#include <unistd.h>

namespace gemma {

namespace {

// Limits far above any real file, so a corrupt count fails as "too many" and never as an
// allocation of terabytes. The strings and arrays are also checked against the bytes left.
constexpr uint64_t kMaxTensors = 1u << 20;
constexpr uint64_t kMaxMetadata = 1u << 20;
constexpr int kMaxArrayDepth = 8;
constexpr uint32_t kMaxDims = 4; // GGML_MAX_DIMS

[[noreturn]] void fail(const std::string& file, const std::string& message) {
  throw UserError(Location::named(file), message);
}

// A name from a file as an error can show it: control bytes as \xNN, at most 80 characters.
std::string printable(const std::string& name) {
  std::string out;
  for (unsigned char c : name) {
    if (out.size() > 80) {
      out += "...";
      break;
    }
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

const char* valueTypeName(GgufValueType type) {
  static const char* names[] = {"u8",   "i8",     "u16",   "i16", "u32", "i32", "f32",
                                "bool", "string", "array", "u64", "i64", "f64"};
  auto index = static_cast<uint32_t>(type);
  return index < std::size(names) ? names[index] : "?";
}

// Reads the image front to back; every read is checked against the bytes left.
class Cursor {
public:
  Cursor(const uint8_t* bytes, size_t size, const std::string& file)
      : bytes_(bytes), size_(size), file_(file) {}

  size_t position() const { return at_; }
  size_t left() const { return size_ - at_; }

  const uint8_t* take(uint64_t count, const std::string& what) {
    if (count > left())
      fail(file_, "is truncated: " + what + " needs " + std::to_string(count) +
                      " bytes at offset " + std::to_string(at_) + ", " + std::to_string(left()) +
                      " left");
    const uint8_t* p = bytes_ + at_;
    at_ += static_cast<size_t>(count);
    return p;
  }

  template <typename T> T read(const std::string& what) {
    T value;
    std::memcpy(&value, take(sizeof(T), what), sizeof(T)); // little-endian, as x86 is
    return value;
  }

  std::string string(const std::string& what) {
    uint64_t length = read<uint64_t>(what + "'s length");
    if (length > left())
      fail(file_, what + " has length " + std::to_string(length) + " at offset " +
                      std::to_string(at_ - 8) + ", past the end of the file");
    const uint8_t* p = take(length, what);
    return std::string(reinterpret_cast<const char*>(p), static_cast<size_t>(length));
  }

private:
  const uint8_t* bytes_;
  size_t size_;
  const std::string& file_;
  size_t at_ = 0;
};

// The smallest encoding of one value of the type: an array's count can be checked against it.
uint64_t minimumBytes(GgufValueType type) {
  switch (type) {
  case GgufValueType::U8:
  case GgufValueType::I8:
  case GgufValueType::Bool:
    return 1;
  case GgufValueType::U16:
  case GgufValueType::I16:
    return 2;
  case GgufValueType::U32:
  case GgufValueType::I32:
  case GgufValueType::F32:
    return 4;
  case GgufValueType::U64:
  case GgufValueType::I64:
  case GgufValueType::F64:
  case GgufValueType::String: // its length
    return 8;
  case GgufValueType::Array: // item type and count
    return 12;
  }
  return 1;
}

bool knownValueType(uint32_t type) {
  return type <= static_cast<uint32_t>(GgufValueType::F64);
}

GgufValue readValue(Cursor& in, GgufValueType type, const std::string& what, int depth,
                    const std::string& file) {
  GgufValue value;
  value.type = type;
  switch (type) {
  case GgufValueType::U8:
    value.integer = in.read<uint8_t>(what);
    break;
  case GgufValueType::I8:
    value.integer = in.read<int8_t>(what);
    break;
  case GgufValueType::U16:
    value.integer = in.read<uint16_t>(what);
    break;
  case GgufValueType::I16:
    value.integer = in.read<int16_t>(what);
    break;
  case GgufValueType::U32:
    value.integer = in.read<uint32_t>(what);
    break;
  case GgufValueType::I32:
    value.integer = in.read<int32_t>(what);
    break;
  case GgufValueType::U64:
    value.unsignedInteger = in.read<uint64_t>(what);
    value.integer = static_cast<int64_t>(value.unsignedInteger);
    break;
  case GgufValueType::I64:
    value.integer = in.read<int64_t>(what);
    break;
  case GgufValueType::F32:
    value.real = in.read<float>(what);
    break;
  case GgufValueType::F64:
    value.real = in.read<double>(what);
    break;
  case GgufValueType::Bool: {
    uint8_t b = in.read<uint8_t>(what);
    if (b > 1)
      fail(file, what + ": bool value " + std::to_string(b) + " is neither 0 nor 1");
    value.integer = b;
    break;
  }
  case GgufValueType::String:
    value.string = in.string(what);
    break;
  case GgufValueType::Array: {
    if (depth >= kMaxArrayDepth)
      fail(file, what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth));
    uint32_t itemType = in.read<uint32_t>(what + "'s item type");
    if (!knownValueType(itemType))
      fail(file, what + ": unknown array item type " + std::to_string(itemType));
    value.itemType = static_cast<GgufValueType>(itemType);
    uint64_t count = in.read<uint64_t>(what + "'s count");
    if (count > in.left() / minimumBytes(value.itemType))
      fail(file, what + ": array of " + std::to_string(count) + " " +
                     valueTypeName(value.itemType) + " items cannot fit in the " +
                     std::to_string(in.left()) + " bytes left");
    value.items.reserve(static_cast<size_t>(count));
    for (uint64_t i = 0; i < count; ++i)
      value.items.push_back(
          readValue(in, value.itemType, what + "[" + std::to_string(i) + "]", depth + 1, file));
    break;
  }
  }
  return value;
}

} // namespace

// ---- Types ------------------------------------------------------------------------------------

std::string ggmlTypeName(uint32_t type) {
  static const std::map<uint32_t, const char*> names = {
      {0, "F32"},     {1, "F16"},      {2, "Q4_0"},   {3, "Q4_1"},    {6, "Q5_0"},
      {7, "Q5_1"},    {8, "Q8_0"},     {9, "Q8_1"},   {10, "Q2_K"},   {11, "Q3_K"},
      {12, "Q4_K"},   {13, "Q5_K"},    {14, "Q6_K"},  {15, "Q8_K"},   {16, "IQ2_XXS"},
      {17, "IQ2_XS"}, {18, "IQ3_XXS"}, {19, "IQ1_S"}, {20, "IQ4_NL"}, {21, "IQ3_S"},
      {22, "IQ2_S"},  {23, "IQ4_XS"},  {24, "I8"},    {25, "I16"},    {26, "I32"},
      {27, "I64"},    {28, "F64"},     {29, "IQ1_M"}, {30, "BF16"},   {34, "TQ1_0"},
      {35, "TQ2_0"},  {39, "MXFP4"}};
  auto it = names.find(type);
  return it != names.end() ? it->second : "type " + std::to_string(type);
}

namespace {
constexpr std::pair<GgmlType, ElementType> kBlockTypes[] = {
    {GgmlType::Q4_0, ElementType::Q4_0}, {GgmlType::Q4_1, ElementType::Q4_1},
    {GgmlType::Q5_0, ElementType::Q5_0}, {GgmlType::Q5_1, ElementType::Q5_1},
    {GgmlType::Q8_0, ElementType::Q8_0}, {GgmlType::Q4_K, ElementType::Q4_K},
    {GgmlType::Q5_K, ElementType::Q5_K}, {GgmlType::Q6_K, ElementType::Q6_K}};
} // namespace

std::optional<ElementType> blockElementType(uint32_t ggmlType) {
  for (const auto& [ggml, element] : kBlockTypes)
    if (static_cast<uint32_t>(ggml) == ggmlType)
      return element;
  return std::nullopt;
}

uint32_t ggmlTypeOf(ElementType blockType) {
  for (const auto& [ggml, element] : kBlockTypes)
    if (element == blockType)
      return static_cast<uint32_t>(ggml);
  GEMMA_INTERNAL_ASSERT(false, "not a block-quantized type");
}

std::optional<GgmlBlock> ggmlBlock(uint32_t type) {
  switch (static_cast<GgmlType>(type)) {
  case GgmlType::F32:
    return GgmlBlock{1, 4};
  case GgmlType::F16:
  case GgmlType::BF16:
    return GgmlBlock{1, 2};
  case GgmlType::Q4_0:
    return GgmlBlock{32, 18};
  case GgmlType::Q4_1:
    return GgmlBlock{32, 20};
  case GgmlType::Q5_0:
    return GgmlBlock{32, 22};
  case GgmlType::Q5_1:
    return GgmlBlock{32, 24};
  case GgmlType::Q8_0:
    return GgmlBlock{32, 34};
  case GgmlType::Q2_K:
    return GgmlBlock{256, 84};
  case GgmlType::Q3_K:
    return GgmlBlock{256, 110};
  case GgmlType::Q4_K:
    return GgmlBlock{256, 144};
  case GgmlType::Q5_K:
    return GgmlBlock{256, 176};
  case GgmlType::Q6_K:
    return GgmlBlock{256, 210};
  }
  return std::nullopt;
}

// ---- Values -----------------------------------------------------------------------------------

namespace {
bool isIntegerType(GgufValueType type) {
  switch (type) {
  case GgufValueType::U8:
  case GgufValueType::I8:
  case GgufValueType::U16:
  case GgufValueType::I16:
  case GgufValueType::U32:
  case GgufValueType::I32:
  case GgufValueType::U64:
  case GgufValueType::I64:
    return true;
  default:
    return false;
  }
}
} // namespace

bool GgufValue::isInteger() const {
  return isIntegerType(type);
}

std::string GgufValue::describe() const {
  std::ostringstream out;
  if (type == GgufValueType::Array) {
    out << "[" << valueTypeName(itemType) << " x " << items.size() << "]";
  } else if (type == GgufValueType::String) {
    out << '"' << printable(string) << '"';
  } else if (type == GgufValueType::Bool) {
    out << (integer ? "true" : "false");
  } else if (type == GgufValueType::U64) {
    out << unsignedInteger;
  } else if (isInteger()) {
    out << integer;
  } else {
    out << formatFloat(real);
  }
  return out.str();
}

int64_t GgufTensor::elements() const {
  int64_t n = 1;
  for (int64_t d : dims)
    n *= d;
  return n;
}

std::vector<int64_t> GgufTensor::rowMajorShape() const {
  return {dims.rbegin(), dims.rend()};
}

// ---- The file ---------------------------------------------------------------------------------

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
  auto result = std::unique_ptr<GgufFile>(new GgufFile());
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

std::unique_ptr<GgufFile> GgufFile::parse(const uint8_t* bytes, size_t size,
                                          const std::string& fileName) {
  auto result = std::unique_ptr<GgufFile>(new GgufFile());
  result->path_ = fileName;
  result->parseImage(bytes, size);
  return result;
}

GgufFile::~GgufFile() {
  if (mapping_)
    munmap(mapping_, mappingSize_);
}

void GgufFile::parseImage(const uint8_t* bytes, size_t size) {
  const std::string& file = path_;
  Cursor in(bytes, size, file);
  if (size < 4 || std::memcmp(bytes, "GGUF", 4) != 0)
    fail(file, "is not a GGUF file (it does not begin with the magic 'GGUF')");
  in.take(4, "the magic");
  version_ = in.read<uint32_t>("the version");
  if (version_ != 3)
    fail(file, "is GGUF version " + std::to_string(version_) +
                   "; gemmac reads version 3 (convert it with a current llama.cpp)");
  uint64_t tensorCount = in.read<uint64_t>("the tensor count");
  uint64_t metadataCount = in.read<uint64_t>("the metadata count");
  if (tensorCount > kMaxTensors)
    fail(file, "claims " + std::to_string(tensorCount) + " tensors, more than " +
                   std::to_string(kMaxTensors));
  if (metadataCount > kMaxMetadata)
    fail(file, "claims " + std::to_string(metadataCount) + " metadata entries, more than " +
                   std::to_string(kMaxMetadata));

  for (uint64_t i = 0; i < metadataCount; ++i) {
    std::string where = "metadata entry " + std::to_string(i);
    std::string key = in.string(where + "'s key");
    if (key.empty())
      fail(file, where + " has an empty key");
    where = "metadata '" + printable(key) + "'";
    if (metadataIndex_.count(key))
      fail(file, where + " appears twice");
    uint32_t type = in.read<uint32_t>(where + "'s type");
    if (!knownValueType(type))
      fail(file, where + " has unknown value type " + std::to_string(type));
    GgufValue value = readValue(in, static_cast<GgufValueType>(type), where, 0, file);
    metadataIndex_[key] = metadata_.size();
    metadata_.emplace_back(std::move(key), std::move(value));
  }

  if (const GgufValue* alignment = find("general.alignment")) {
    if (alignment->type != GgufValueType::U32)
      fail(file, "metadata 'general.alignment' is a " +
                     std::string(valueTypeName(alignment->type)) + ", not a u32");
    uint64_t a = static_cast<uint64_t>(alignment->integer);
    if (a == 0 || (a & (a - 1)) != 0)
      fail(file, "metadata 'general.alignment' = " + std::to_string(a) + " is not a power of two");
    alignment_ = a;
  }

  for (uint64_t i = 0; i < tensorCount; ++i) {
    GgufTensor t;
    t.name = in.string("tensor info " + std::to_string(i) + "'s name");
    std::string where = "tensor '" + printable(t.name) + "'";
    if (t.name.empty())
      fail(file, "tensor info " + std::to_string(i) + " has an empty name");
    if (tensorIndex_.count(t.name))
      fail(file, where + " appears twice");
    uint32_t dims = in.read<uint32_t>(where + "'s dimension count");
    if (dims == 0 || dims > kMaxDims)
      fail(file, where + " has " + std::to_string(dims) + " dimensions; GGUF allows 1 to " +
                     std::to_string(kMaxDims));
    uint64_t elements = 1;
    for (uint32_t d = 0; d < dims; ++d) {
      uint64_t extent = in.read<uint64_t>(where + "'s dimension " + std::to_string(d));
      if (extent == 0 || extent > (uint64_t(1) << 40) || elements > (uint64_t(1) << 40) / extent)
        fail(file, where + " has dimension " + std::to_string(d) + " = " + std::to_string(extent) +
                       ": not a tensor size gemmac can hold");
      elements *= extent;
      t.dims.push_back(static_cast<int64_t>(extent));
    }
    t.type = in.read<uint32_t>(where + "'s type");
    std::optional<GgmlBlock> block = ggmlBlock(t.type);
    if (!block)
      fail(file, where + " has type " + ggmlTypeName(t.type) +
                     ", which gemmac does not read (it reads F32, F16, BF16, Q4_0, Q4_1, Q5_0, "
                     "Q5_1, Q8_0, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)");
    if (t.dims[0] % block->elements != 0)
      fail(file, where + " is " + ggmlTypeName(t.type) + " with rows of " +
                     std::to_string(t.dims[0]) + " elements, not a whole number of its " +
                     std::to_string(block->elements) + "-element blocks");
    t.bytes =
        elements / static_cast<uint64_t>(block->elements) * static_cast<uint64_t>(block->bytes);
    t.offset = in.read<uint64_t>(where + "'s offset");
    if (t.offset % alignment_ != 0)
      fail(file, where + " has offset " + std::to_string(t.offset) + ", not a multiple of the " +
                     std::to_string(alignment_) + "-byte alignment");
    tensorIndex_[t.name] = tensors_.size();
    tensors_.push_back(std::move(t));
  }

  // The data section begins at the next multiple of the alignment.
  uint64_t headerEnd = in.position();
  uint64_t dataOffset = (headerEnd + alignment_ - 1) / alignment_ * alignment_;
  if (dataOffset > size && !tensors_.empty())
    fail(file, "is truncated: the data section would begin at " + std::to_string(dataOffset) +
                   ", past the end of the file (" + std::to_string(size) + " bytes)");
  dataOffset_ = dataOffset;
  uint64_t dataBytes = size > dataOffset ? size - dataOffset : 0;
  std::vector<const GgufTensor*> byOffset;
  for (GgufTensor& t : tensors_) {
    if (t.offset > dataBytes || t.bytes > dataBytes - t.offset)
      fail(file, "tensor '" + printable(t.name) + "' (" + std::to_string(t.bytes) +
                     " bytes at data offset " + std::to_string(t.offset) +
                     ") runs past the end of the file (the data section has " +
                     std::to_string(dataBytes) + " bytes)");
    t.data = bytes + dataOffset + t.offset;
    byOffset.push_back(&t);
  }
  std::sort(byOffset.begin(), byOffset.end(),
            [](const GgufTensor* a, const GgufTensor* b) { return a->offset < b->offset; });
  for (size_t i = 1; i < byOffset.size(); ++i)
    if (byOffset[i - 1]->offset + byOffset[i - 1]->bytes > byOffset[i]->offset)
      fail(file, "tensors '" + printable(byOffset[i - 1]->name) + "' and '" +
                     printable(byOffset[i]->name) + "' overlap in the data section");
}

const GgufValue* GgufFile::find(const std::string& key) const {
  auto it = metadataIndex_.find(key);
  return it == metadataIndex_.end() ? nullptr : &metadata_[it->second].second;
}

const GgufTensor* GgufFile::tensor(const std::string& name) const {
  auto it = tensorIndex_.find(name);
  return it == tensorIndex_.end() ? nullptr : &tensors_[it->second];
}

std::optional<int64_t> GgufFile::integer(const std::string& key) const {
  const GgufValue* value = find(key);
  if (!value)
    return std::nullopt;
  if (!value->isInteger())
    fail(path_, "metadata '" + key + "' is a " + valueTypeName(value->type) + ", not an integer");
  if (value->type == GgufValueType::U64 && value->unsignedInteger > (uint64_t(1) << 62))
    fail(path_,
         "metadata '" + key + "' = " + std::to_string(value->unsignedInteger) + " is out of range");
  return value->integer;
}

std::optional<double> GgufFile::real(const std::string& key) const {
  const GgufValue* value = find(key);
  if (!value)
    return std::nullopt;
  if (value->type == GgufValueType::F32 || value->type == GgufValueType::F64)
    return value->real;
  if (value->isInteger())
    return static_cast<double>(value->integer);
  fail(path_, "metadata '" + key + "' is a " + valueTypeName(value->type) + ", not a number");
}

std::optional<bool> GgufFile::boolean(const std::string& key) const {
  const GgufValue* value = find(key);
  if (!value)
    return std::nullopt;
  if (value->type != GgufValueType::Bool)
    fail(path_, "metadata '" + key + "' is a " + valueTypeName(value->type) + ", not a bool");
  return value->integer != 0;
}

std::optional<std::string> GgufFile::string(const std::string& key) const {
  const GgufValue* value = find(key);
  if (!value)
    return std::nullopt;
  if (value->type != GgufValueType::String)
    fail(path_, "metadata '" + key + "' is a " + valueTypeName(value->type) + ", not a string");
  return value->string;
}

const std::vector<GgufValue>* GgufFile::array(const std::string& key,
                                              GgufValueType itemType) const {
  const GgufValue* value = find(key);
  if (!value)
    return nullptr;
  // Integers where integers are asked for, any number where floats are.
  bool ok = value->type == GgufValueType::Array &&
            (value->itemType == itemType ||
             (itemType == GgufValueType::I32 && isIntegerType(value->itemType)) ||
             (itemType == GgufValueType::F32 &&
              (value->itemType == GgufValueType::F64 || isIntegerType(value->itemType))));
  if (!ok)
    fail(path_, "metadata '" + key + "' is " + value->describe() + ", not an array of " +
                    valueTypeName(itemType));
  return &value->items;
}

// ---- Dequantization ---------------------------------------------------------------------------
// Each block as gguf-py's quants.py decodes it, in f32 with its order of operations (this file is
// built with -ffp-contract=off: a fused multiply-add would round differently).

namespace {

float half(const uint8_t* p) {
  uint16_t bits;
  std::memcpy(&bits, p, 2);
  return codec::f16BitsToFloat(bits);
}

void decodeQ4_0(const uint8_t* b, float* y) {
  float d = half(b);
  const uint8_t* qs = b + 2;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>((qs[j] & 0x0F) - 8);
    y[j + 16] = d * static_cast<float>((qs[j] >> 4) - 8);
  }
}

void decodeQ4_1(const uint8_t* b, float* y) {
  float d = half(b), m = half(b + 2);
  const uint8_t* qs = b + 4;
  for (int j = 0; j < 16; ++j) {
    y[j] = d * static_cast<float>(qs[j] & 0x0F) + m;
    y[j + 16] = d * static_cast<float>(qs[j] >> 4) + m;
  }
}

// The 5th bit of element j (0..31) is bit j of the little-endian u32 qh.
void decodeQ5(const uint8_t* qhBytes, const uint8_t* qs, int offset, float d, const float* m,
              float* y) {
  uint32_t qh;
  std::memcpy(&qh, qhBytes, 4);
  for (int j = 0; j < 16; ++j) {
    int low = (qs[j] & 0x0F) | (((qh >> j) & 1) << 4);
    int high = (qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4);
    if (m) {
      y[j] = d * static_cast<float>(low) + *m;
      y[j + 16] = d * static_cast<float>(high) + *m;
    } else {
      y[j] = d * static_cast<float>(low - offset);
      y[j + 16] = d * static_cast<float>(high - offset);
    }
  }
}

void decodeQ8_0(const uint8_t* b, float* y) {
  float d = half(b);
  for (int j = 0; j < 32; ++j)
    y[j] = static_cast<float>(static_cast<int8_t>(b[2 + j])) * d;
}

void decodeQ2_K(const uint8_t* b, float* y) {
  const uint8_t* scales = b;
  const uint8_t* qs = b + 16;
  float d = half(b + 80), dmin = half(b + 82);
  // Element e: sub-block s = e / 16 (its scale byte), 2-bit field (e % 128) / 32 of byte
  // qs[(e / 128) * 32 + e % 32].
  for (int e = 0; e < 256; ++e) {
    int s = e / 16;
    float dl = d * static_cast<float>(scales[s] & 0x0F);
    float ml = dmin * static_cast<float>(scales[s] >> 4);
    int q = (qs[(e / 128) * 32 + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    y[e] = dl * static_cast<float>(q) - ml;
  }
}

void decodeQ3_K(const uint8_t* b, float* y) {
  const uint8_t* hmask = b;
  const uint8_t* qs = b + 32;
  const uint8_t* packed = b + 96;
  float d = half(b + 108);
  // 16 six-bit scales: the low 4 bits from bytes 0..7 (low nibbles, then high), the top 2 from
  // bytes 8..11 (2-bit fields, field k of byte 8+i for scale 4k+i).
  float dl[16];
  for (int s = 0; s < 16; ++s) {
    int low = s < 8 ? packed[s] & 0x0F : packed[s - 8] >> 4;
    int high = (packed[8 + s % 4] >> (2 * (s / 4))) & 3;
    dl[s] = d * static_cast<float>(static_cast<int8_t>(low | (high << 4)) - 32);
  }
  for (int e = 0; e < 256; ++e) {
    int l = e % 32;
    int q = (qs[(e / 128) * 32 + l] >> (2 * ((e % 128) / 32))) & 3;
    int hbit = (hmask[l] >> (e / 32)) & 1;
    y[e] = dl[e / 16] * static_cast<float>(q - (hbit ? 0 : 4));
  }
}

void decodeQ4_K(const uint8_t* b, float* y) {
  float d = half(b), dmin = half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qs = b + 16;
  for (int s = 0; s < 8; ++s) { // 32 elements each: low nibbles of a 32-byte run, then high
    int scale, min;
    scaleMinK4(s, scales, scale, min);
    float dl = d * static_cast<float>(scale), ml = dmin * static_cast<float>(min);
    const uint8_t* run = qs + (s / 2) * 32;
    for (int l = 0; l < 32; ++l) {
      int q = s % 2 ? run[l] >> 4 : run[l] & 0x0F;
      y[s * 32 + l] = dl * static_cast<float>(q) - ml;
    }
  }
}

void decodeQ5_K(const uint8_t* b, float* y) {
  float d = half(b), dmin = half(b + 2);
  const uint8_t* scales = b + 4;
  const uint8_t* qh = b + 16;
  const uint8_t* qs = b + 48;
  for (int s = 0; s < 8; ++s) {
    int scale, min;
    scaleMinK4(s, scales, scale, min);
    float dl = d * static_cast<float>(scale), ml = dmin * static_cast<float>(min);
    const uint8_t* run = qs + (s / 2) * 32;
    for (int l = 0; l < 32; ++l) {
      int q = (s % 2 ? run[l] >> 4 : run[l] & 0x0F) | (((qh[l] >> s) & 1) << 4);
      y[s * 32 + l] = dl * static_cast<float>(q) - ml;
    }
  }
}

void decodeQ6_K(const uint8_t* b, float* y) {
  const uint8_t* ql = b;
  const uint8_t* qh = b + 128;
  const auto* scales = reinterpret_cast<const int8_t*>(b + 192);
  float d = half(b + 208);
  for (int e = 0; e < 256; ++e) {
    int h = e / 128, r = e % 128;
    int low = r < 64 ? ql[h * 64 + r] & 0x0F : ql[h * 64 + r - 64] >> 4;
    int high = (qh[h * 32 + r % 32] >> (2 * (r / 32))) & 3;
    int q = static_cast<int8_t>(low | (high << 4)) - 32;
    y[e] = (d * static_cast<float>(scales[e / 16])) * static_cast<float>(q);
  }
}

} // namespace

void scaleMinK4(int j, const uint8_t* q, int& scale, int& min) {
  if (j < 4) {
    scale = q[j] & 63;
    min = q[j + 4] & 63;
  } else {
    scale = (q[j + 4] & 0x0F) | ((q[j - 4] >> 6) << 4);
    min = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
  }
}

void dequantizeBlocks(uint32_t type, const uint8_t* data, int64_t count, float* out) {
  std::optional<GgmlBlock> block = ggmlBlock(type);
  GEMMA_INTERNAL_ASSERT(block && count % block->elements == 0, "whole blocks of a known type");
  int64_t blocks = count / block->elements;
  for (int64_t i = 0; i < blocks; ++i) {
    const uint8_t* b = data + i * block->bytes;
    float* y = out + i * block->elements;
    switch (static_cast<GgmlType>(type)) {
    case GgmlType::F32:
      std::memcpy(y, b, 4);
      break;
    case GgmlType::F16:
      *y = half(b);
      break;
    case GgmlType::BF16: {
      uint16_t bits;
      std::memcpy(&bits, b, 2);
      *y = codec::bf16BitsToFloat(bits);
      break;
    }
    case GgmlType::Q4_0:
      decodeQ4_0(b, y);
      break;
    case GgmlType::Q4_1:
      decodeQ4_1(b, y);
      break;
    case GgmlType::Q5_0:
      decodeQ5(b + 2, b + 6, 16, half(b), nullptr, y);
      break;
    case GgmlType::Q5_1: {
      float m = half(b + 2);
      decodeQ5(b + 4, b + 8, 0, half(b), &m, y);
      break;
    }
    case GgmlType::Q8_0:
      decodeQ8_0(b, y);
      break;
    case GgmlType::Q2_K:
      decodeQ2_K(b, y);
      break;
    case GgmlType::Q3_K:
      decodeQ3_K(b, y);
      break;
    case GgmlType::Q4_K:
      decodeQ4_K(b, y);
      break;
    case GgmlType::Q5_K:
      decodeQ5_K(b, y);
      break;
    case GgmlType::Q6_K:
      decodeQ6_K(b, y);
      break;
    }
  }
}

std::vector<float> dequantizeTensor(const GgufTensor& tensor, const std::string& file) {
  if (!ggmlBlock(tensor.type))
    fail(file, "tensor '" + printable(tensor.name) + "' has type " + ggmlTypeName(tensor.type) +
                   ", which gemmac does not decode");
  std::vector<float> values(static_cast<size_t>(tensor.elements()));
  dequantizeBlocks(tensor.type, tensor.data, tensor.elements(), values.data());
  return values;
}

} // namespace gemma
