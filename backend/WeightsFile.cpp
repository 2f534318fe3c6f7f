#include "backend/WeightsFile.h"

#include "ir/Printer.h"

#include <algorithm>
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

// The weight ops, in first-use order, one per tensor name.
std::vector<const Op*> distinctWeights(const Graph& graph) {
  std::vector<const Op*> weights;
  std::set<std::string> seen;
  for (const auto& op : graph.ops)
    if (op->kind == OpKind::Weight && seen.insert(*op->attr<std::string>("name")).second)
      weights.push_back(op.get());
  return weights;
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
  header["__metadata__"] = {{"format", kFormat}, {"model_hash", modelHash(graph)}};
  std::vector<const TensorView*> views;
  uint64_t offset = 0;
  for (const Op* op : distinctWeights(graph)) {
    const std::string& name = *op->attr<std::string>("name");
    const TensorView* view = weights.find(name);
    if (!view || !dtypeName(view->elementType))
      throw UserError(Location::named(name), "weight is not in the checkpoint as a float tensor");
    header[name] = {{"dtype", dtypeName(view->elementType)},
                    {"shape", view->shape},
                    {"data_offsets", {offset, offset + view->bytes}}};
    offset += view->bytes;
    views.push_back(view);
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
  for (const TensorView* view : views)
    file.write(reinterpret_cast<const char*>(view->data),
               static_cast<std::streamsize>(view->bytes));
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
