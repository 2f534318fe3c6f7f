// GGUF (llama.cpp's model format, version 3; GEMMA_SPEC.md section 7), mmap'd read-only and
// validated before anything is handed out: the header, every metadata value (all 13 value types,
// arrays of arrays included) read only within the file, tensor infos (at most 4 dims, a known
// type, whole blocks per row), `general.alignment` (a power of two), each tensor's data aligned,
// inside the data section and not overlapping another. Every error names the file and, where
// there is one, the key or tensor.
#pragma once

#include "ir/Types.h"

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace gemma {

// ggml's tensor types, numbered as the file stores them.
enum class GgmlType : uint32_t {
  F32 = 0,
  F16 = 1,
  Q4_0 = 2,
  Q4_1 = 3,
  Q5_0 = 6,
  Q5_1 = 7,
  Q8_0 = 8,
  Q2_K = 10,
  Q3_K = 11,
  Q4_K = 12,
  Q5_K = 13,
  Q6_K = 14,
  BF16 = 30,
};

// The name llama.cpp gives a type number ("Q4_K", "IQ2_XS", ...), or "type N" for an unknown one.
std::string ggmlTypeName(uint32_t type);
// Elements and bytes per block of a type gemmac decodes; nullopt for any other type.
struct GgmlBlock {
  int64_t elements;
  int64_t bytes;
};
std::optional<GgmlBlock> ggmlBlock(uint32_t type);
// The IR's block-quantized type of a ggml type whose blocks gemmac's kernels read as they are
// (the same bytes), and back; nullopt for a per-element type or one only decoded to floats.
std::optional<ElementType> blockElementType(uint32_t ggmlType);
uint32_t ggmlTypeOf(ElementType blockType);

enum class GgufValueType : uint32_t {
  U8 = 0,
  I8 = 1,
  U16 = 2,
  I16 = 3,
  U32 = 4,
  I32 = 5,
  F32 = 6,
  Bool = 7,
  String = 8,
  Array = 9,
  U64 = 10,
  I64 = 11,
  F64 = 12,
};

struct GgufValue {
  GgufValueType type = GgufValueType::U8;
  // The value of an integer or bool (`integer`, exact for every integer type but a u64 above
  // 2^63, kept in `unsignedInteger`), a float (`real`), a string, or an array's items (all of
  // `itemType`).
  int64_t integer = 0;
  uint64_t unsignedInteger = 0;
  double real = 0;
  std::string string;
  GgufValueType itemType = GgufValueType::U8;
  std::vector<GgufValue> items;

  bool isInteger() const;
  bool isNumber() const {
    return isInteger() || type == GgufValueType::F32 || type == GgufValueType::F64;
  }
  // A short rendering for `inspect`: numbers, strings quoted, arrays as [type x count].
  std::string describe() const;
};

struct GgufTensor {
  std::string name;
  std::vector<int64_t> dims; // as the file has them: innermost (contiguous) first
  uint32_t type;
  uint64_t offset; // within the data section
  uint64_t bytes;
  const uint8_t* data;
  int64_t elements() const;
  // The shape in row-major order (outermost first), as a checkpoint would have it.
  std::vector<int64_t> rowMajorShape() const;
};

class GgufFile {
public:
  // Maps and validates `path`. Throws UserError naming the file (and key or tensor).
  static std::unique_ptr<GgufFile> open(const std::string& path);
  // Validates an in-memory image (the bytes must outlive the result); for tests and fuzzing.
  static std::unique_ptr<GgufFile> parse(const uint8_t* bytes, size_t size,
                                         const std::string& fileName);
  ~GgufFile();
  GgufFile(const GgufFile&) = delete;
  GgufFile& operator=(const GgufFile&) = delete;

  const std::string& path() const { return path_; }
  uint32_t version() const { return version_; }
  uint64_t alignment() const { return alignment_; }
  uint64_t dataOffset() const { return dataOffset_; }
  const std::vector<std::pair<std::string, GgufValue>>& metadata() const { return metadata_; }
  const std::vector<GgufTensor>& tensors() const { return tensors_; }

  const GgufValue* find(const std::string& key) const;
  const GgufTensor* tensor(const std::string& name) const;
  // Typed lookups: nullopt when absent; a UserError naming the key when present with a type that
  // cannot be read as asked (a negative count, a string where a number belongs).
  std::optional<int64_t> integer(const std::string& key) const;
  std::optional<double> real(const std::string& key) const;
  std::optional<bool> boolean(const std::string& key) const;
  std::optional<std::string> string(const std::string& key) const;
  // An array of the given item kind, checked item by item.
  const std::vector<GgufValue>* array(const std::string& key, GgufValueType itemType) const;

private:
  GgufFile() = default;
  void parseImage(const uint8_t* bytes, size_t size);

  std::string path_;
  void* mapping_ = nullptr;
  size_t mappingSize_ = 0;
  uint32_t version_ = 0;
  uint64_t alignment_ = 32;
  uint64_t dataOffset_ = 0;
  std::vector<std::pair<std::string, GgufValue>> metadata_;
  std::map<std::string, size_t> metadataIndex_;
  std::vector<GgufTensor> tensors_;
  std::map<std::string, size_t> tensorIndex_;
};

// Decodes a tensor's elements to f32, in the file's order, as the gguf Python package's
// gguf.quants.dequantize computes them (the same f32 operations in the same order, so the values
// are equal bit for bit). Throws UserError for a type gemmac does not decode.
std::vector<float> dequantizeTensor(const GgufTensor& tensor, const std::string& file);
// The same for `count` elements of `type` at `data` (count a multiple of the block).
void dequantizeBlocks(uint32_t type, const uint8_t* data, int64_t count, float* out);

// Q4_K and Q5_K's sub-block j (of 8): its six-bit scale and min, packed in the block's 12 scale
// bytes at q (llama.cpp's get_scale_min_k4).
void scaleMinK4(int j, const uint8_t* q, int& scale, int& min);

// The types gemmac quantizes f32 weights to (--weights-dtype): Q8_0, Q4_0 and Q4_K.
bool quantizes(uint32_t type);
// Encodes `count` f32 values (whole blocks) as blocks of such a type, byte for byte as llama.cpp's
// reference quantizer (quantize_row_*_ref, what llama-quantize runs without an importance matrix)
// encodes them. False where a value is not finite or a block's f16 scale overflows (the blocks
// would not decode to the values).
bool quantizeBlocks(uint32_t type, const float* values, int64_t count, uint8_t* out);

} // namespace gemma
