// safetensors checkpoints: one file or a sharded set (model.safetensors.index.json), mmap'd
// read-only by the compiler and validated before any tensor is handed out: header length within the
// file, valid JSON, known dtype, shape x dtype size == byte range, ranges inside the data section
// and not overlapping. Every error names the file and, where there is one, the tensor.
#pragma once

#include "ir/Interpreter.h"
#include "ir/Types.h"

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

namespace gemma {

// One tensor inside a mapped file.
struct TensorView {
  std::string name;
  std::string file;
  ElementType elementType;
  std::vector<int64_t> shape;
  const uint8_t* data; // not aligned: read with memcpy
  size_t bytes;
  std::string shapeString() const;
};

class SafetensorsFile {
public:
  // Maps and validates `path`. Throws UserError naming the file (and tensor).
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  // Validates an in-memory image (the bytes must outlive the result); for tests.
  static std::unique_ptr<SafetensorsFile> parse(const uint8_t* bytes, size_t size,
                                                const std::string& fileName);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  const std::string& path() const { return path_; }
  // The first byte of the file's image: a tensor's data is at base() + its offset in the file.
  const uint8_t* base() const { return base_; }

private:
  SafetensorsFile() = default;
  void parseImage(const uint8_t* bytes, size_t size);

  std::string path_;
  const uint8_t* base_ = nullptr;
  void* mapping_ = nullptr;
  size_t mappingSize_ = 0;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a checkpoint folder: model.safetensors, or the shards that
// model.safetensors.index.json names (each tensor must be in the shard the index says).
class WeightStore {
public:
  static WeightStore openFolder(const std::string& folder);
  // Tensors from elsewhere (an ONNX model's initializers): the store keeps the bytes.
  void addOwned(const std::string& name, const std::string& file, ElementType type,
                std::vector<int64_t> shape, std::vector<uint8_t> bytes);

  const TensorView* find(const std::string& name) const;
  const std::map<std::string, const TensorView*>& tensors() const { return index_; }
  const std::vector<std::string>& files() const { return files_; }
  // A tensor as the interpreter holds it (values widened to double).
  Tensor load(const std::string& name) const;

private:
  std::vector<std::unique_ptr<SafetensorsFile>> shards_;
  std::vector<std::unique_ptr<std::pair<TensorView, std::vector<uint8_t>>>> owned_;
  std::vector<std::string> files_;
  std::map<std::string, const TensorView*> index_;
};

// The header's dtype name of an element type safetensors files hold here (F32, BF16, F16), else
// null.
const char* safetensorsDtypeName(ElementType type);

// Widens a view's elements (f32, bf16, f16) to an interpreter tensor.
Tensor toTensor(const TensorView& view);

} // namespace gemma
