#include "backend/WeightsFile.h"

#include "ir/Printer.h"

#include <cstdio>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
#include <xxhash.h>

namespace gemma {

namespace {

constexpr const char* kFormat = "gemmac-weights/1";

const char* dtypeName(ElementType type) {
  switch (type) {
  case ElementType::F32:
    return "F32";
  case ElementType::BF16:
    return "BF16";
  case ElementType::F16:
    return "F16";
  default:
    return nullptr;
  }
}

// The weight ops, in first-use order, one per key.
std::vector<const Op*> distinctWeights(const Graph& graph) {
  std::vector<const Op*> weights;
  std::set<std::string> seen;
  for (const auto& op : graph.ops)
    if (op->kind == OpKind::Weight && seen.insert(weightKey(*op)).second)
      weights.push_back(op.get());
  return weights;
}

// The stored tensor's bytes transposed by perm (the result's dim i is the stored dim perm[i]).
std::vector<uint8_t> permuted(const TensorView& view, const Ints& perm) {
  size_t rank = view.shape.size(), size = elementSize(view.elementType);
  std::vector<int64_t> strides(rank, 1), shape(rank), stepOf(rank);
  for (size_t d = rank; d-- > 1;)
    strides[d - 1] = strides[d] * view.shape[d];
  for (size_t i = 0; i < rank; ++i) {
    shape[i] = view.shape[static_cast<size_t>(perm[i])];
    stepOf[i] = strides[static_cast<size_t>(perm[i])];
  }
  std::vector<uint8_t> out(view.bytes);
  std::vector<int64_t> index(rank, 0);
  int64_t source = 0;
  for (size_t written = 0; written < view.bytes; written += size) {
    std::memcpy(out.data() + written, view.data + source * static_cast<int64_t>(size), size);
    for (size_t d = rank; d-- > 0;) { // odometer over the result's index, innermost first
      source += stepOf[d];
      if (++index[d] < shape[d])
        break;
      source -= stepOf[d] * shape[d];
      index[d] = 0;
    }
  }
  return out;
}

} // namespace

std::string weightKey(const Op& weightOp) {
  std::string key = *weightOp.attr<std::string>("name");
  if (const Ints* perm = weightOp.attr<Ints>("perm")) {
    key += "@perm(";
    for (size_t i = 0; i < perm->size(); ++i)
      key += (i ? "," : "") + std::to_string((*perm)[i]);
    key += ")";
  }
  return key;
}

std::string modelHash(const Graph& graph) {
  std::string text = printGraph(graph, {true});
  char hex[17];
  snprintf(hex, sizeof hex, "%016llx",
           static_cast<unsigned long long>(XXH3_64bits(text.data(), text.size())));
  return hex;
}

int64_t writeWeightsFile(const Graph& graph, const WeightStore& weights, const std::string& path) {
  nlohmann::json header = nlohmann::json::object();
  header["__metadata__"] = {{"format", kFormat}, {"model_hash", modelHash(graph)}};
  std::vector<std::pair<const TensorView*, const Ints*>> tensors;
  uint64_t offset = 0;
  for (const Op* op : distinctWeights(graph)) {
    const std::string& name = *op->attr<std::string>("name");
    const TensorView* view = weights.find(name);
    if (!view || !dtypeName(view->elementType))
      throw UserError(Location::named(name), "weight is not in the checkpoint as a float tensor");
    const Ints* perm = op->attr<Ints>("perm");
    std::vector<int64_t> shape = view->shape;
    if (perm) {
      if (perm->size() != shape.size())
        throw UserError(op->loc, "weight '" + name + "' is packed with a perm of another rank");
      for (size_t i = 0; i < perm->size(); ++i)
        shape[i] = view->shape[static_cast<size_t>((*perm)[i])];
    }
    header[weightKey(*op)] = {{"dtype", dtypeName(view->elementType)},
                              {"shape", shape},
                              {"data_offsets", {offset, offset + view->bytes}}};
    offset += view->bytes;
    tensors.emplace_back(view, perm);
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
  for (const auto& [view, perm] : tensors) {
    if (perm) {
      std::vector<uint8_t> packed = permuted(*view, *perm);
      file.write(reinterpret_cast<const char*>(packed.data()),
                 static_cast<std::streamsize>(packed.size()));
    } else {
      file.write(reinterpret_cast<const char*>(view->data),
                 static_cast<std::streamsize>(view->bytes));
    }
  }
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
    std::string name = weightKey(*op);
    auto it = file->tensors().find(name);
    const TensorType& type = op->result()->type;
    if (it == file->tensors().end() || it->second.elementType != type.elementType ||
        tensorType(it->second.elementType, it->second.shape) != type)
      throw UserError(Location::named(path), "lacks tensor '" + name + "' as " + type.str());
  }
  return file;
}

} // namespace gemma
