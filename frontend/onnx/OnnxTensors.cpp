// Reading an ONNX model's bytes (OnnxTensors.h).
#include "frontend/onnx/OnnxTensors.h"

#include "formats/ModelFiles.h"
#include "ir/ElementCodec.h"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace gemma::onnx_import {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kMaxModelBytes = int64_t(2) << 30; // protobuf's own limit

[[noreturn]] void failFile(const std::string& path, const std::string& what) {
  throw UserError(Location::named(path), what);
}

// A tensor's external data: `bytes` bytes of a file inside the model's folder.
std::vector<uint8_t> readExternal(const onnx::TensorProto& t, size_t bytes, const std::string& path,
                                  const std::string& what) {
  std::string location;
  int64_t offset = 0, length = -1;
  // Numbers whole or not at all ("12abc" is not 12), as onnx reads them.
  auto number = [&](const onnx::StringStringEntryProto& entry) {
    int64_t value = 0;
    const std::string& text = entry.value();
    auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (text.empty() || error != std::errc() || end != text.data() + text.size())
      failFile(path, what + ": external data field '" + entry.key() + "' is not a number");
    return value;
  };
  for (const onnx::StringStringEntryProto& entry : t.external_data()) {
    if (entry.key() == "location")
      location = entry.value();
    else if (entry.key() == "offset")
      offset = number(entry);
    else if (entry.key() == "length")
      length = number(entry);
  }
  fs::path relative(location);
  if (location.empty() || relative.is_absolute() ||
      std::find(relative.begin(), relative.end(), "..") != relative.end())
    failFile(path,
             what + ": external data location '" + location + "' must be a file beside the model");
  fs::path file = fs::path(path).parent_path() / relative;
  // Its symlinks too must stay in the folder (onnx refuses symlinked external data).
  resolveModelFile(fs::path(path).parent_path().string(), relative.string(), path,
                   what + ": external data");
  std::error_code error;
  auto size = fs::file_size(file, error);
  if (error)
    failFile(path, what + ": external data file '" + file.string() + "': " + error.message());
  if (length < 0)
    length = static_cast<int64_t>(bytes);
  if (offset < 0 || static_cast<size_t>(length) != bytes ||
      static_cast<uintmax_t>(offset) + static_cast<uintmax_t>(length) > size)
    failFile(path, what + ": external data [" + std::to_string(offset) + ", +" +
                       std::to_string(length) + ") does not fit '" + file.string() + "' (" +
                       std::to_string(size) + " bytes) or the tensor's " + std::to_string(bytes) +
                       " bytes");
  std::ifstream in(file, std::ios::binary);
  std::vector<uint8_t> data(bytes);
  in.seekg(offset);
  if (!in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(bytes)))
    failFile(path, what + ": cannot read external data from '" + file.string() + "'");
  return data;
}

} // namespace

std::optional<ElementType> elementTypeOf(int32_t dataType) {
  switch (dataType) {
  case onnx::TensorProto::FLOAT:
    return ElementType::F32;
  case onnx::TensorProto::FLOAT16:
    return ElementType::F16;
  case onnx::TensorProto::BFLOAT16:
    return ElementType::BF16;
  case onnx::TensorProto::INT64:
    return ElementType::I64;
  case onnx::TensorProto::INT32:
    return ElementType::I32;
  case onnx::TensorProto::INT8:
    return ElementType::I8;
  case onnx::TensorProto::BOOL:
    return ElementType::Bool;
  default:
    return std::nullopt;
  }
}

std::string dataTypeName(int32_t dataType) {
  return onnx::TensorProto::DataType_IsValid(dataType)
             ? onnx::TensorProto::DataType_Name(static_cast<onnx::TensorProto::DataType>(dataType))
             : "type " + std::to_string(dataType);
}

int64_t TensorData::count() const {
  int64_t n = 1;
  for (int64_t d : shape)
    n *= d;
  return n;
}

std::vector<double> TensorData::values() const {
  return codec::decodeElements(type, bytes.data(), bytes.size());
}

Ints TensorData::ints() const {
  size_t size = static_cast<size_t>(elementSize(type));
  Ints out(bytes.size() / size);
  for (size_t i = 0; i < out.size(); ++i)
    out[i] = codec::decodeInteger(type, bytes.data() + i * size);
  return out;
}

onnx::ModelProto loadModelProto(const std::string& path, int64_t& opset) {
  std::error_code error;
  auto size = fs::file_size(path, error);
  if (error)
    failFile(path, "cannot be read: " + error.message());
  if (size > static_cast<uintmax_t>(kMaxModelBytes))
    failFile(path, "is larger than protobuf's 2 GB limit (weights belong in external data)");
  std::ifstream file(path, std::ios::binary);
  std::string bytes(size, '\0');
  if (!file.read(bytes.data(), static_cast<std::streamsize>(size)))
    failFile(path, "cannot be read");
  onnx::ModelProto proto;
  if (!proto.ParseFromString(bytes))
    failFile(path, "is not an ONNX model (the protobuf does not parse)");
  if (!proto.has_graph())
    failFile(path, "has no graph");
  opset = 0;
  for (const onnx::OperatorSetIdProto& set : proto.opset_import())
    if (set.domain().empty() || set.domain() == "ai.onnx")
      opset = set.version();
  if (opset < kMinOpset || opset > kMaxOpset)
    failFile(path, "opset " + std::to_string(opset) + " is not supported (" +
                       std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) + ")");
  return proto;
}

TensorData decodeTensor(const onnx::TensorProto& t, const std::string& path,
                        const std::string& what) {
  auto type = elementTypeOf(t.data_type());
  if (!type)
    failFile(path, what + ": element type " + dataTypeName(t.data_type()) + " is not supported");
  TensorData data{*type, {}, {}};
  int64_t count = 1;
  for (int64_t d : t.dims()) {
    if (d < 0 || d > kMaxDimValue || (d > 0 && count > kMaxDimValue / d))
      failFile(path, what + ": dims are negative or too large");
    data.shape.push_back(d);
    count *= d;
  }
  size_t bytes = static_cast<size_t>(count * elementSize(*type));
  if (t.data_location() == onnx::TensorProto::EXTERNAL) {
    data.bytes = readExternal(t, bytes, path, what);
  } else if (t.has_raw_data()) {
    if (t.raw_data().size() != bytes)
      failFile(path, what + ": raw_data has " + std::to_string(t.raw_data().size()) +
                         " bytes, its shape needs " + std::to_string(bytes));
    data.bytes.assign(t.raw_data().begin(), t.raw_data().end());
  } else {
    // The values present must be what the shape declares, checked before anything is allocated
    // (a [2^28, 4] tensor with no data reached 4 GB before its error).
    int present = t.data_type() == onnx::TensorProto::FLOAT   ? t.float_data_size()
                  : t.data_type() == onnx::TensorProto::INT64 ? t.int64_data_size()
                                                              : t.int32_data_size();
    if (present != count)
      failFile(path, what + ": holds " + std::to_string(present) + " values, its shape needs " +
                         std::to_string(count));
    data.bytes.resize(bytes);
    switch (t.data_type()) {
    case onnx::TensorProto::FLOAT:
      std::memcpy(data.bytes.data(), t.float_data().data(), bytes);
      break;
    case onnx::TensorProto::INT64:
      std::memcpy(data.bytes.data(), t.int64_data().data(), bytes);
      break;
    default: // int32_data holds int32, int8, bool, and the bits of f16 and bf16
      for (int64_t i = 0; i < count; ++i) {
        int32_t v = t.int32_data(static_cast<int>(i));
        std::memcpy(data.bytes.data() + i * elementSize(*type), &v,
                    static_cast<size_t>(elementSize(*type)));
      }
    }
  }
  return data;
}

} // namespace gemma::onnx_import
