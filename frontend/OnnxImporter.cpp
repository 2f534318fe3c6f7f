#include "frontend/OnnxImporter.h"

#include "ir/Builder.h"
#include "ir/Diagnostics.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <limits>
#include <onnx/onnx_pb.h>
#include <set>
#include <sstream>

namespace gemma {

namespace {

namespace fs = std::filesystem;

// 22 (what onnxruntime-genai's builder writes) only widened types of ops since 21.
constexpr int64_t kMinOpset = 13, kMaxOpset = 22;
// Float initializers up to this many values become constants (eps, 1.0, scales: what the fusion
// patterns match); larger ones weights.
constexpr int64_t kMaxConstantValues = 16;
constexpr int64_t kMaxModelBytes = int64_t(2) << 30; // protobuf's own limit

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

// A tensor's values as doubles (element type aware), from its bytes.
std::vector<double> decodeValues(ElementType type, const std::vector<uint8_t>& bytes) {
  size_t size = static_cast<size_t>(elementSize(type)), count = bytes.size() / size;
  std::vector<double> values(count);
  for (size_t i = 0; i < count; ++i) {
    const uint8_t* at = bytes.data() + i * size;
    switch (type) {
    case ElementType::F32: {
      float f;
      std::memcpy(&f, at, 4);
      values[i] = f;
      break;
    }
    case ElementType::F16: {
      _Float16 h;
      std::memcpy(&h, at, 2);
      values[i] = static_cast<double>(h);
      break;
    }
    case ElementType::BF16: {
      uint32_t bits = static_cast<uint32_t>(at[0] | (at[1] << 8)) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      values[i] = f;
      break;
    }
    case ElementType::I64: {
      int64_t v;
      std::memcpy(&v, at, 8);
      values[i] = static_cast<double>(v);
      break;
    }
    case ElementType::I32: {
      int32_t v;
      std::memcpy(&v, at, 4);
      values[i] = v;
      break;
    }
    case ElementType::I8:
      values[i] = static_cast<int8_t>(*at);
      break;
    case ElementType::Bool:
      values[i] = *at != 0;
      break;
    }
  }
  return values;
}

// A decoded TensorProto: type, shape and little-endian bytes.
struct TensorData {
  ElementType type;
  std::vector<int64_t> shape;
  std::vector<uint8_t> bytes;
  int64_t count() const {
    int64_t n = 1;
    for (int64_t d : shape)
      n *= d;
    return n;
  }
  std::vector<double> values() const { return decodeValues(type, bytes); }
  Ints ints() const { // integer types only
    size_t size = static_cast<size_t>(elementSize(type));
    Ints out(bytes.size() / size);
    for (size_t i = 0; i < out.size(); ++i) {
      const uint8_t* at = bytes.data() + i * size;
      if (type == ElementType::I64) {
        std::memcpy(&out[i], at, 8);
      } else if (type == ElementType::I32) {
        int32_t v;
        std::memcpy(&v, at, 4);
        out[i] = v;
      } else {
        out[i] = type == ElementType::I8 ? static_cast<int8_t>(*at) : (*at != 0);
      }
    }
    return out;
  }
};

// An error already naming its node.
class NodeError : public UserError {
public:
  using UserError::UserError;
};

// The product of dims when it is affine (at most one symbolic factor), else unknown.
Dim affineProduct(std::vector<Dim>::const_iterator begin, std::vector<Dim>::const_iterator end) {
  Dim product = Dim::constant(1);
  for (auto it = begin; it != end; ++it)
    product = product.isStatic() ? it->scaled(product.staticValue())
              : it->isStatic()   ? product.scaled(it->staticValue())
                                 : Dim::unknown();
  return product;
}

class OnnxImporter {
public:
  OnnxImporter(std::string path, ImportedModel& model)
      : path_(std::move(path)), model_(model), graph_(*model.graph), b_(graph_) {}

  void run(std::optional<Head> head) {
    load();
    const onnx::GraphProto& g = proto_.graph();
    std::set<std::string> initialized;
    for (const onnx::TensorProto& t : g.initializer())
      initialized.insert(t.name());
    for (const onnx::ValueInfoProto& input : g.input())
      if (!initialized.count(input.name()))
        addInput(input, g);
    for (const onnx::TensorProto& t : g.initializer()) {
      b_.setLocation(Location::named(t.name()));
      values_[t.name()] = tensorValue(t.name(), decodeTensor(t, "initializer '" + t.name() + "'"));
    }
    for (const onnx::NodeProto& node : g.node())
      importNode(node);
    for (const onnx::ValueInfoProto& output : g.output()) {
      auto it = values_.find(output.name());
      if (it == values_.end())
        throw UserError(Location::named(path_),
                        "graph output '" + output.name() + "' is not produced by any node");
      graph_.addOutput(it->second, output.name());
    }
    if (graph_.outputs.empty())
      throw UserError(Location::named(path_), "the graph has no outputs");
    describeModel(head);
  }

  TensorData decode(const onnx::TensorProto& t, const std::string& what) const {
    return decodeTensor(t, what);
  }

private:
  [[noreturn]] void failFile(const std::string& what) const {
    throw UserError(Location::named(path_), what);
  }
  [[noreturn]] void fail(const onnx::NodeProto& node, const std::string& what) const {
    std::string domain =
        node.domain().empty() || node.domain() == "ai.onnx" ? "" : node.domain() + ".";
    throw NodeError(Location::named(path_), "node '" + node.name() + "' (" + domain +
                                                node.op_type() + ", opset " +
                                                std::to_string(opset_) + "): " + what);
  }

  void load() {
    std::error_code error;
    auto size = fs::file_size(path_, error);
    if (error)
      failFile("cannot be read: " + error.message());
    if (size > static_cast<uintmax_t>(kMaxModelBytes))
      failFile("is larger than protobuf's 2 GB limit (weights belong in external data)");
    std::ifstream file(path_, std::ios::binary);
    std::string bytes(size, '\0');
    if (!file.read(bytes.data(), static_cast<std::streamsize>(size)))
      failFile("cannot be read");
    if (!proto_.ParseFromString(bytes))
      failFile("is not an ONNX model (the protobuf does not parse)");
    if (!proto_.has_graph())
      failFile("has no graph");
    for (const onnx::OperatorSetIdProto& set : proto_.opset_import())
      if (set.domain().empty() || set.domain() == "ai.onnx")
        opset_ = set.version();
    if (opset_ < kMinOpset || opset_ > kMaxOpset)
      failFile("opset " + std::to_string(opset_) + " is not supported (" +
               std::to_string(kMinOpset) + " to " + std::to_string(kMaxOpset) + ")");
    graph_.name = proto_.graph().name().empty() ? "onnx" : proto_.graph().name();
    for (char& c : graph_.name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
        c = '_';
  }

  // ---- tensors ------------------------------------------------------------------------------

  TensorData decodeTensor(const onnx::TensorProto& t, const std::string& what) const {
    auto type = elementTypeOf(t.data_type());
    if (!type)
      failFile(what + ": element type " + dataTypeName(t.data_type()) + " is not supported");
    TensorData data{*type, {}, {}};
    int64_t count = 1;
    for (int64_t d : t.dims()) {
      if (d < 0 || d > kMaxDimValue || (d > 0 && count > kMaxDimValue / d))
        failFile(what + ": dims are negative or too large");
      data.shape.push_back(d);
      count *= d;
    }
    size_t bytes = static_cast<size_t>(count * elementSize(*type));
    if (t.data_location() == onnx::TensorProto::EXTERNAL) {
      data.bytes = readExternal(t, bytes, what);
    } else if (t.has_raw_data()) {
      if (t.raw_data().size() != bytes)
        failFile(what + ": raw_data has " + std::to_string(t.raw_data().size()) +
                 " bytes, its shape needs " + std::to_string(bytes));
      data.bytes.assign(t.raw_data().begin(), t.raw_data().end());
    } else {
      data.bytes.resize(bytes);
      auto expect = [&](int size) {
        if (size != count)
          failFile(what + ": holds " + std::to_string(size) + " values, its shape needs " +
                   std::to_string(count));
      };
      switch (t.data_type()) {
      case onnx::TensorProto::FLOAT:
        expect(t.float_data_size());
        std::memcpy(data.bytes.data(), t.float_data().data(), bytes);
        break;
      case onnx::TensorProto::INT64:
        expect(t.int64_data_size());
        std::memcpy(data.bytes.data(), t.int64_data().data(), bytes);
        break;
      default: // int32_data holds int32, int8, bool, and the bits of f16 and bf16
        expect(t.int32_data_size());
        for (int64_t i = 0; i < count; ++i) {
          int32_t v = t.int32_data(static_cast<int>(i));
          std::memcpy(data.bytes.data() + i * elementSize(*type), &v,
                      static_cast<size_t>(elementSize(*type)));
        }
      }
    }
    return data;
  }

  std::vector<uint8_t> readExternal(const onnx::TensorProto& t, size_t bytes,
                                    const std::string& what) const {
    std::string location;
    int64_t offset = 0, length = -1;
    for (const onnx::StringStringEntryProto& entry : t.external_data()) {
      try {
        if (entry.key() == "location")
          location = entry.value();
        else if (entry.key() == "offset")
          offset = std::stoll(entry.value());
        else if (entry.key() == "length")
          length = std::stoll(entry.value());
      } catch (const std::exception&) {
        failFile(what + ": external data field '" + entry.key() + "' is not a number");
      }
    }
    fs::path relative(location);
    if (location.empty() || relative.is_absolute() ||
        std::find(relative.begin(), relative.end(), "..") != relative.end())
      failFile(what + ": external data location '" + location +
               "' must be a file beside the model");
    fs::path file = fs::path(path_).parent_path() / relative;
    std::error_code error;
    auto size = fs::file_size(file, error);
    if (error)
      failFile(what + ": external data file '" + file.string() + "': " + error.message());
    if (length < 0)
      length = static_cast<int64_t>(bytes);
    if (offset < 0 || static_cast<size_t>(length) != bytes ||
        static_cast<uintmax_t>(offset) + static_cast<uintmax_t>(length) > size)
      failFile(what + ": external data [" + std::to_string(offset) + ", +" +
               std::to_string(length) + ") does not fit '" + file.string() + "' (" +
               std::to_string(size) + " bytes) or the tensor's " + std::to_string(bytes) +
               " bytes");
    std::ifstream in(file, std::ios::binary);
    std::vector<uint8_t> data(bytes);
    in.seekg(offset);
    if (!in.read(reinterpret_cast<char*>(data.data()), static_cast<std::streamsize>(bytes)))
      failFile(what + ": cannot read external data from '" + file.string() + "'");
    return data;
  }

  // A tensor in the graph: a weight when it is a large float tensor, else a constant.
  Value* tensorValue(const std::string& name, const TensorData& data) {
    std::vector<Dim> dims;
    for (int64_t d : data.shape)
      dims.push_back(Dim::constant(d));
    TensorType type{data.type, dims};
    if (isFloat(data.type) && data.count() > kMaxConstantValues) {
      std::string weight = name.empty() ? "onnx_tensor_" + std::to_string(anonymous_++) : name;
      model_.weights.addOwned(weight, path_, data.type, data.shape, data.bytes);
      return b_.weight(weight, type);
    }
    Value* v;
    if (isFloat(data.type)) {
      std::vector<double> values = data.values();
      v = b_.create(OpKind::Constant, {}, {{"value", Floats(values.begin(), values.end())}}, type);
    } else {
      Ints ints = data.ints(); // exactly: INT64_MAX ("to the end") does not survive a double
      v = b_.create(OpKind::Constant, {}, {{"value", ints}}, type);
      if (data.shape.size() <= 1) {
        std::vector<Dim> known;
        for (int64_t x : ints)
          known.push_back(Dim::constant(x));
        known_[v] = known;
      }
    }
    return v;
  }

  // ---- inputs -------------------------------------------------------------------------------

  void addInput(const onnx::ValueInfoProto& input, const onnx::GraphProto& g) {
    if (!input.type().has_tensor_type())
      failFile("graph input '" + input.name() + "' is not a tensor");
    const onnx::TypeProto::Tensor& tensor = input.type().tensor_type();
    auto type = elementTypeOf(tensor.elem_type());
    if (!type)
      failFile("graph input '" + input.name() + "': element type " +
               dataTypeName(tensor.elem_type()) + " is not supported");
    bool hasPast = std::any_of(g.input().begin(), g.input().end(), [](const auto& i) {
      return i.name().rfind("past_key_values.", 0) == 0 || i.name().rfind("past.", 0) == 0;
    });
    const std::string& name = input.name();
    // The roles fix the symbols, whatever the exporter called the dims.
    // The batch is 1: exporters index flattened [batch*seq] masks, a product of symbols that
    // the IR's affine dims cannot hold.
    std::vector<Dim> roles;
    Dim batch = Dim::constant(1);
    if (name == "input_ids" || name == "position_ids")
      roles = {batch, Dim::symbol("seq")};
    else if (name == "attention_mask")
      roles = {batch, hasPast ? Dim::symbol("past") + Dim::symbol("seq") : Dim::symbol("seq")};
    else if (name.rfind("past_key_values.", 0) == 0 || name.rfind("past.", 0) == 0) {
      // onnxruntime-genai's builder names even the cache's head dims: config.json knows them.
      const GemmaConfig* config = configBeside();
      roles = {batch, config ? Dim::constant(config->numKVHeads) : Dim(), Dim::symbol("past"),
               config ? Dim::constant(config->headDim) : Dim()};
    }
    std::vector<Dim> dims;
    int rank = tensor.shape().dim_size();
    for (int d = 0; d < rank; ++d) {
      const auto& dim = tensor.shape().dim(d);
      if (dim.has_dim_value()) {
        if (dim.dim_value() < 0 || dim.dim_value() > kMaxDimValue)
          failFile("graph input '" + name + "' has a dim out of range");
        dims.push_back(Dim::constant(dim.dim_value()));
      } else if (static_cast<size_t>(rank) == roles.size() && !(roles[d] == Dim())) {
        dims.push_back(roles[d]);
        if (dim.has_dim_param())
          symbols_.emplace(dim.dim_param(), roles[d]);
      } else if (dim.has_dim_param()) {
        auto it = symbols_.find(dim.dim_param());
        dims.push_back(it != symbols_.end() ? it->second
                                            : Dim::symbol(symbolName(dim.dim_param())));
      } else {
        failFile("graph input '" + name + "' has a dim with neither a value nor a name");
      }
    }
    values_[name] = graph_.addInput(name, {*type, dims});
  }

  static std::string symbolName(const std::string& param) {
    std::string symbol;
    for (char c : param)
      symbol += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (symbol.empty() || std::isdigit(static_cast<unsigned char>(symbol[0])))
      symbol = "d_" + symbol;
    return symbol;
  }

  // ---- attributes and operands ---------------------------------------------------------------

  const onnx::AttributeProto* attribute(const onnx::NodeProto& node, const char* name) const {
    for (const onnx::AttributeProto& a : node.attribute())
      if (a.name() == name)
        return &a;
    return nullptr;
  }
  int64_t intAttr(const onnx::NodeProto& node, const char* name, int64_t fallback) const {
    const onnx::AttributeProto* a = attribute(node, name);
    return a ? a->i() : fallback;
  }
  std::optional<Ints> intsAttr(const onnx::NodeProto& node, const char* name) const {
    const onnx::AttributeProto* a = attribute(node, name);
    if (!a)
      return std::nullopt;
    return Ints(a->ints().begin(), a->ints().end());
  }
  std::string stringAttr(const onnx::NodeProto& node, const char* name,
                         const std::string& fallback) const {
    const onnx::AttributeProto* a = attribute(node, name);
    return a ? a->s() : fallback;
  }

  Value* operand(const onnx::NodeProto& node, int i) const {
    if (i >= node.input_size() || node.input(i).empty())
      return nullptr;
    auto it = values_.find(node.input(i));
    if (it == values_.end())
      fail(node, "input '" + node.input(i) + "' is not defined before it is used");
    return it->second;
  }
  Value* required(const onnx::NodeProto& node, int i) const {
    Value* v = operand(node, i);
    if (!v)
      fail(node, "needs input " + std::to_string(i));
    return v;
  }
  // An operand's values when they are known at compile time as integers (dims or constants).
  std::optional<std::vector<Dim>> knownDims(const Value* v) const {
    auto it = known_.find(v);
    if (it == known_.end())
      return std::nullopt;
    return it->second;
  }
  std::optional<Ints> constantInts(const Value* v) const {
    auto dims = knownDims(v);
    if (!dims)
      return std::nullopt;
    Ints ints;
    for (const Dim& d : *dims) {
      if (!d.isStatic())
        return std::nullopt;
      ints.push_back(d.staticValue());
    }
    return ints;
  }
  Ints requireInts(const onnx::NodeProto& node, int i, const char* what) const {
    auto ints = constantInts(required(node, i));
    if (!ints)
      fail(node, std::string(what) + " must be a constant");
    return *ints;
  }
  std::optional<double> constantScalar(const Value* v) const {
    const Op* op = v->definingOp;
    if (!op || op->kind != OpKind::Constant || v->type.staticNumElements() != 1)
      return std::nullopt;
    if (const Floats* f = op->attr<Floats>("value"))
      return (*f)[0];
    if (const Ints* i = op->attr<Ints>("value"))
      return static_cast<double>((*i)[0]);
    return std::nullopt;
  }

  std::vector<Dim> shapeFrom(const onnx::NodeProto& node, const Value* shape) const {
    auto dims = knownDims(shape);
    if (!dims)
      fail(node, "its shape operand is not known at compile time (only dims of the inputs, "
                 "constants and arithmetic on them are)");
    return *dims;
  }

  Ints axesFrom(const onnx::NodeProto& node, int inputIndex, const char* attrName) const {
    if (Value* axes = operand(node, inputIndex)) {
      auto ints = constantInts(axes);
      if (!ints)
        fail(node, "its axes must be a constant");
      return *ints;
    }
    return intsAttr(node, attrName).value_or(Ints{});
  }

  // ---- nodes -------------------------------------------------------------------------------

  void importNode(const onnx::NodeProto& node) {
    b_.setLocation(Location::named(node.name().empty() ? node.op_type() : node.name()));
    const std::string& domain = node.domain();
    if (!domain.empty() && domain != "ai.onnx" && domain != "com.microsoft")
      fail(node, "not supported (domain '" + domain + "')");
    std::vector<Value*> results;
    try {
      results = lower(node);
    } catch (const NodeError&) {
      throw;
    } catch (const UserError& error) { // a type or shape rule of the IR: name the node
      fail(node, error.what());
    }
    if (static_cast<int>(results.size()) < node.output_size())
      for (int i = static_cast<int>(results.size()); i < node.output_size(); ++i)
        if (!node.output(i).empty())
          fail(node, "output " + std::to_string(i) + " is not supported");
    for (size_t i = 0; i < results.size() && static_cast<int>(i) < node.output_size(); ++i)
      if (results[i])
        values_[node.output(static_cast<int>(i))] = results[i];
  }

  Value* elementwise(OpKind kind, const onnx::NodeProto& node) {
    Value* a = required(node, 0);
    Value* b = required(node, 1);
    Value* r = b_.binary(kind, a, b);
    propagateArithmetic(kind, a, b, r);
    return r;
  }

  void propagateArithmetic(OpKind kind, Value* a, Value* b, Value* r) {
    auto x = knownDims(a), y = knownDims(b);
    if (!x || !y || r->type.rank() > 1)
      return;
    size_t n = std::max(x->size(), y->size());
    if ((x->size() != n && x->size() != 1) || (y->size() != n && y->size() != 1))
      return;
    std::vector<Dim> out;
    for (size_t i = 0; i < n; ++i) {
      const Dim& p = (*x)[x->size() == 1 ? 0 : i];
      const Dim& q = (*y)[y->size() == 1 ? 0 : i];
      if (kind == OpKind::Add)
        out.push_back(p + q);
      else if (kind == OpKind::Sub)
        out.push_back(p - q);
      else if (kind == OpKind::Mul && q.isStatic())
        out.push_back(p.scaled(q.staticValue()));
      else if (kind == OpKind::Mul && p.isStatic())
        out.push_back(q.scaled(p.staticValue()));
      else if (kind == OpKind::Div && p.isStatic() && q.isStatic() && q.staticValue() != 0)
        out.push_back(Dim::constant(p.staticValue() / q.staticValue()));
      else
        return;
      if (out.back().isUnknown())
        return;
    }
    known_[r] = out;
  }

  // Equal over known dims, where decidable: a dim is never negative.
  void propagateEqual(Value* a, Value* b, Value* r) {
    auto x = knownDims(a), y = knownDims(b);
    if (!x || !y || r->type.rank() > 1)
      return;
    size_t n = std::max(x->size(), y->size());
    std::vector<Dim> out;
    for (size_t i = 0; i < n; ++i) {
      const Dim& p = (*x)[x->size() == 1 ? 0 : i];
      const Dim& q = (*y)[y->size() == 1 ? 0 : i];
      if (p == q)
        out.push_back(Dim::constant(1));
      else if (p.isStatic() && q.isStatic())
        out.push_back(Dim::constant(0));
      else if ((p.isStatic() && p.staticValue() < 0) || (q.isStatic() && q.staticValue() < 0))
        out.push_back(Dim::constant(0));
      else
        return;
    }
    known_[r] = out;
  }

  // onnxruntime's fused norms (onnxruntime-genai's model builder writes them): straight onto
  // rms_norm, the weight as given (no 1 + w: the builder folds it in).
  std::vector<Value*> lowerOnnxRuntimeOp(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    auto norm = [&](Value* x, Value* scale) {
      int64_t axis = intAttr(node, "axis", -1);
      if (axis != -1 && axis != x->type.rank() - 1)
        fail(node, "not supported (a norm over axis " + std::to_string(axis) + ")");
      const onnx::AttributeProto* eps = attribute(node, "epsilon");
      return b_.create(
          OpKind::RmsNorm, {x, scale},
          {{"eps", eps ? static_cast<double>(eps->f()) : 1e-5}, {"unit_offset", false}});
    };
    if (op == "SimplifiedLayerNormalization") {
      if (node.output_size() > 1 && !node.output(1).empty())
        fail(node, "not supported (the inv_std_var output)");
      return {norm(required(node, 0), required(node, 1))};
    }
    if (op == "SkipSimplifiedLayerNormalization") {
      Value* sum = b_.binary(OpKind::Add, required(node, 0), required(node, 1));
      if (Value* bias = operand(node, 3))
        sum = b_.binary(OpKind::Add, sum, bias);
      for (int i = 1; i <= 2; ++i)
        if (node.output_size() > i && !node.output(i).empty())
          fail(node, "not supported (the mean and inv_std_var outputs)");
      return {norm(sum, required(node, 2)), nullptr, nullptr, sum};
    }
    if (op == "RotaryEmbedding")
      return {rotaryEmbedding(node)};
    if (op == "GroupQueryAttention")
      return groupQueryAttention(node);
    fail(node, "not supported");
  }

  // com.microsoft GroupQueryAttention as onnxruntime-genai's builder writes it: q, k, v packed in
  // one [B,S,(N+2K)*H] input (or three), the past cache [B,K,P,H], seqlens_k (keys per row, less
  // one), cos/sin caches for its own half-split rotary. Lowered onto the IR's fused ops: rotary
  // at positions P..P+S-1, the present cache as concat(past, new) (plan-kv-cache makes it the
  // in-place append), and attention with a causal bias that also hides keys past seqlens_k.
  // Outputs: [B,S,N*H], present key and value.
  std::vector<Value*> groupQueryAttention(const onnx::NodeProto& node) {
    int64_t numHeads = intAttr(node, "num_heads", 0), kvHeads = intAttr(node, "kv_num_heads", 0);
    if (numHeads <= 0 || kvHeads <= 0 || numHeads % kvHeads != 0)
      fail(node, "num_heads must be a positive multiple of kv_num_heads");
    if (intAttr(node, "local_window_size", -1) != -1 || intAttr(node, "rotary_interleaved", 0) ||
        intAttr(node, "smooth_softmax", 0) || intAttr(node, "qk_output", 0))
      fail(node, "not supported (local window, interleaved rotary, smooth softmax or qk output)");
    for (int i = 9; i < node.input_size(); ++i)
      if (!node.input(i).empty())
        fail(node, "not supported (position_ids, attention_bias or head_sink inputs)");
    Value* query = required(node, 0);
    Value* pastKey = operand(node, 3);
    Value* pastValue = operand(node, 4);
    Value* seqlens = required(node, 5);
    if (query->type.rank() != 3 || !query->type.dims[2].isStatic())
      fail(node, "needs query [batch, seq, hidden]");
    if (!pastKey || !pastValue || pastKey->type.rank() != 4 || !pastKey->type.dims[3].isStatic())
      fail(node, "needs the past key and value [batch, kv_heads, past, head_dim]");
    const Dim& batch = query->type.dims[0];
    const Dim& seq = query->type.dims[1];
    int64_t headDim = pastKey->type.dims[3].staticValue();
    ElementType type = query->type.elementType;
    // [B,S,heads*H] -> [B,heads,S,H]
    auto headsOf = [&](Value* x, int64_t heads) {
      return b_.transpose(
          b_.create(OpKind::Reshape, {x}, {},
                    TensorType{type, {batch, seq, Dim::constant(heads), Dim::constant(headDim)}}),
          {0, 2, 1, 3});
    };
    Value *q, *k, *v;
    if (operand(node, 1)) {
      q = headsOf(query, numHeads);
      k = headsOf(required(node, 1), kvHeads);
      v = headsOf(required(node, 2), kvHeads);
    } else {
      if (query->type.dims[2].staticValue() != (numHeads + 2 * kvHeads) * headDim)
        fail(node, "the packed query is not (num_heads + 2 kv_num_heads) x head_dim wide");
      auto part = [&](int64_t start, int64_t heads) {
        return headsOf(b_.create(OpKind::Slice, {query},
                                 {{"starts", Ints{start * headDim}},
                                  {"ends", Ints{(start + heads) * headDim}},
                                  {"axes", Ints{2}},
                                  {"steps", Ints{1}}}),
                       heads);
      };
      q = part(0, numHeads);
      k = part(numHeads, kvHeads);
      v = part(numHeads + kvHeads, kvHeads);
    }
    // Positions of the new rows: past .. past+seq-1, as [1,S].
    const Dim& past = pastKey->type.dims[2];
    Value* pastLength = b_.create(
        OpKind::Gather, {b_.create(OpKind::Shape, {pastKey}), b_.scalar(ElementType::I64, 2)},
        {{"axis", int64_t(0)}});
    Value* seqLength = b_.create(
        OpKind::Gather, {b_.create(OpKind::Shape, {query}), b_.scalar(ElementType::I64, 1)},
        {{"axis", int64_t(0)}});
    Value* one = b_.scalar(ElementType::I64, 1);
    Value* rows =
        b_.create(OpKind::Range, {pastLength, b_.binary(OpKind::Add, pastLength, seqLength), one},
                  {}, TensorType{ElementType::I64, {seq}});
    Value* positions = b_.create(OpKind::Unsqueeze, {rows}, {{"axes", Ints{0}}});
    if (intAttr(node, "do_rotary", 0)) {
      Value* cosCache = required(node, 7);
      Value* sinCache = required(node, 8);
      if (cosCache->type.rank() != 2 || cosCache->type.dims[1] != Dim::constant(headDim / 2))
        fail(node, "needs cos and sin caches [positions, head_dim/2]");
      Value* cosTable = rotaryTable(cosCache, positions);
      Value* sinTable = rotaryTable(sinCache, positions);
      q = b_.create(OpKind::Rotary, {q, cosTable, sinTable}, {{"head_dim", headDim}});
      k = b_.create(OpKind::Rotary, {k, cosTable, sinTable}, {{"head_dim", headDim}});
    }
    Value* presentKey = b_.create(OpKind::Concat, {pastKey, k}, {{"axis", int64_t(2)}});
    Value* presentValue = b_.create(OpKind::Concat, {pastValue, v}, {{"axis", int64_t(2)}});
    // Key t is visible to row s when t <= past + s and t <= seqlens_k[b].
    Dim total = past + seq;
    Value* keys = b_.create(
        OpKind::Range,
        {b_.scalar(ElementType::I64, 0), b_.binary(OpKind::Add, pastLength, seqLength), one}, {},
        TensorType{ElementType::I64, {total}});
    Value* causal = b_.binary(OpKind::LessEqual, keys,
                              b_.create(OpKind::Unsqueeze, {rows}, {{"axes", Ints{1}}}));
    Value* lastKey = b_.create(
        OpKind::Reshape,
        {b_.create(OpKind::Cast, {seqlens}, {}, TensorType{ElementType::I64, seqlens->type.dims})},
        {},
        TensorType{ElementType::I64,
                   {batch, Dim::constant(1), Dim::constant(1), Dim::constant(1)}});
    Value* visible = b_.binary(OpKind::And, causal, b_.binary(OpKind::LessEqual, keys, lastKey));
    double lowest = lowestFinite(type);
    Value* bias =
        b_.create(OpKind::Where, {visible, b_.scalar(type, 0.0), b_.scalar(type, lowest)});
    double scale = attribute(node, "scale") ? attribute(node, "scale")->f() : 0.0;
    std::map<std::string, Attribute> attrs = {
        {"num_heads", numHeads},
        {"num_kv_heads", kvHeads},
        {"head_dim", headDim},
        {"scale", scale != 0 ? scale : 1.0 / std::sqrt(static_cast<double>(headDim))}};
    if (const onnx::AttributeProto* softcap = attribute(node, "softcap");
        softcap && softcap->f() > 0)
      attrs.emplace("softcap", static_cast<double>(softcap->f()));
    Value* context = b_.create(OpKind::Attention, {q, presentKey, presentValue, bias}, attrs);
    Value* output = b_.create(OpKind::Reshape, {b_.transpose(context, {0, 2, 1, 3})}, {},
                              TensorType{type, {batch, seq, Dim::constant(numHeads * headDim)}});
    return {output, presentKey, presentValue};
  }

  // A half-split rotary table for the IR's rotary: the cache's rows [positions, H/2] at the
  // positions [B,S], each half repeated: [B,1,S,H].
  Value* rotaryTable(Value* cache, Value* positions) {
    Value* rows = b_.create(OpKind::Gather, {cache, positions}, {{"axis", int64_t(0)}});
    Value* both = b_.create(OpKind::Concat, {rows, rows}, {{"axis", int64_t(-1)}});
    return b_.create(OpKind::Unsqueeze, {both}, {{"axes", Ints{1}}});
  }

  // com.microsoft RotaryEmbedding, half-split (not interleaved) over the whole head: the cos and
  // sin rows of the positions, each half repeated, then the IR's rotary with given tables.
  // x is [B,N,S,H], or [B,S,N*H] with num_heads (viewed as heads and back).
  Value* rotaryEmbedding(const onnx::NodeProto& node) {
    if (intAttr(node, "interleaved", 0))
      fail(node, "not supported (interleaved)");
    const onnx::AttributeProto* scale = attribute(node, "scale");
    if ((scale && scale->f() != 1.0f) || intAttr(node, "is_packed_batching", 0))
      fail(node, "not supported (scale or packed batching)");
    Value* x = required(node, 0);
    Value* positions = required(node, 1);
    Value* cosCache = required(node, 2);
    Value* sinCache = required(node, 3);
    const Dim& half = cosCache->type.dims.back();
    if (cosCache->type.rank() != 2 || !half.isStatic())
      fail(node, "needs cos and sin caches [positions, head_dim/2]");
    int64_t headDim = 2 * half.staticValue();
    int64_t rotaryDim = intAttr(node, "rotary_embedding_dim", 0);
    if (rotaryDim != 0 && rotaryDim != headDim)
      fail(node, "not supported (a rotary dim other than the head's)");
    if (positions->type.rank() != 2)
      fail(node, "not supported (positions other than [batch, seq])");
    Value* heads = x;
    std::vector<Dim> flat = x->type.dims;
    if (x->type.rank() == 3) { // [B,S,N*H] -> [B,N,S,H]
      int64_t numHeads = intAttr(node, "num_heads", 0);
      if (numHeads <= 0)
        fail(node, "needs num_heads for a 3-D input");
      std::vector<Dim> split = {flat[0], flat[1], Dim::constant(numHeads), Dim::constant(headDim)};
      heads =
          b_.transpose(b_.create(OpKind::Reshape, {x}, {}, TensorType{x->type.elementType, split}),
                       {0, 2, 1, 3});
    } else if (x->type.rank() != 4) {
      fail(node, "needs x [batch, heads, seq, head_dim] or [batch, seq, hidden]");
    }
    Value* rotated = b_.create(
        OpKind::Rotary, {heads, rotaryTable(cosCache, positions), rotaryTable(sinCache, positions)},
        {{"head_dim", headDim}});
    if (x->type.rank() == 3)
      rotated = b_.create(OpKind::Reshape, {b_.transpose(rotated, {0, 2, 1, 3})}, {},
                          TensorType{x->type.elementType, flat});
    return rotated;
  }

  std::vector<Value*> lower(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    if (node.domain() == "com.microsoft" || op == "SimplifiedLayerNormalization")
      return lowerOnnxRuntimeOp(node);
    static const std::map<std::string, OpKind> binary = {
        {"Add", OpKind::Add},         {"Sub", OpKind::Sub},
        {"Mul", OpKind::Mul},         {"Div", OpKind::Div},
        {"Pow", OpKind::Pow},         {"Equal", OpKind::Equal},
        {"Less", OpKind::Less},       {"LessOrEqual", OpKind::LessEqual},
        {"Greater", OpKind::Greater}, {"GreaterOrEqual", OpKind::GreaterEqual},
        {"And", OpKind::And},         {"Or", OpKind::Or},
        {"Xor", OpKind::Xor},         {"MatMul", OpKind::MatMul}};
    static const std::map<std::string, OpKind> unary = {
        {"Sqrt", OpKind::Sqrt}, {"Reciprocal", OpKind::Reciprocal},
        {"Neg", OpKind::Neg},   {"Exp", OpKind::Exp},
        {"Tanh", OpKind::Tanh}, {"Erf", OpKind::Erf},
        {"Cos", OpKind::Cos},   {"Sin", OpKind::Sin},
        {"Not", OpKind::Not},   {"IsNaN", OpKind::IsNan}};
    if (op == "Equal") {
      Value* a = required(node, 0);
      Value* c = required(node, 1);
      Value* r = b_.binary(OpKind::Equal, a, c);
      propagateEqual(a, c, r);
      return {r};
    }
    if (op == "Where") {
      Value* cond = required(node, 0);
      Value* x = required(node, 1);
      Value* y = required(node, 2);
      Value* r = b_.create(OpKind::Where, {cond, x, y});
      auto c = knownDims(cond), p = knownDims(x), q = knownDims(y);
      if (c && p && q && r->type.rank() <= 1) {
        size_t n = std::max({c->size(), p->size(), q->size()});
        std::vector<Dim> out;
        for (size_t i = 0; i < n; ++i) {
          const Dim& pick = (*c)[c->size() == 1 ? 0 : i];
          out.push_back(pick.isStatic() && pick.staticValue() ? (*p)[p->size() == 1 ? 0 : i]
                                                              : (*q)[q->size() == 1 ? 0 : i]);
        }
        known_[r] = out;
      }
      return {r};
    }
    if (auto it = binary.find(op); it != binary.end())
      return {elementwise(it->second, node)};
    if (auto it = unary.find(op); it != unary.end())
      return {b_.unary(it->second, required(node, 0))};
    if (op == "Identity") {
      Value* x = required(node, 0);
      return {x};
    }
    if (op == "Max" || op == "Min") { // variadic
      Value* r = required(node, 0);
      for (int i = 1; i < node.input_size(); ++i)
        r = b_.binary(op == "Max" ? OpKind::Max : OpKind::Min, r, required(node, i));
      return {r};
    }
    if (op == "Gelu") {
      if (opset_ < 20)
        fail(node, "not supported (Gelu is in the default domain from opset 20)");
      return {b_.create(OpKind::Gelu, {required(node, 0)},
                        {{"approximate", stringAttr(node, "approximate", "none")}})};
    }
    if (op == "Cast") {
      auto to = elementTypeOf(static_cast<int32_t>(intAttr(node, "to", 0)));
      if (!to)
        fail(node, "not supported (cast to " +
                       dataTypeName(static_cast<int32_t>(intAttr(node, "to", 0))) + ")");
      Value* x = required(node, 0);
      Value* r = b_.create(OpKind::Cast, {x}, {}, TensorType{*to, x->type.dims});
      if (auto known = knownDims(x); known && isInteger(*to))
        known_[r] = *known;
      return {r};
    }
    if (op == "Constant")
      return {constantNode(node)};
    if (op == "Shape") {
      Value* x = required(node, 0);
      Value* r = b_.create(OpKind::Shape, {x});
      int64_t rank = x->type.rank();
      int64_t start = intAttr(node, "start", 0), end = intAttr(node, "end", rank);
      start = std::clamp(start < 0 ? start + rank : start, int64_t(0), rank);
      end = std::clamp(end < 0 ? end + rank : end, int64_t(0), rank);
      known_[r] = x->type.dims;
      if (start != 0 || end != rank) {
        Value* s = b_.create(
            OpKind::Slice, {r},
            {{"starts", Ints{start}}, {"ends", Ints{std::max(start, end)}}, {"axes", Ints{0}}});
        known_[s] = std::vector<Dim>(x->type.dims.begin() + start,
                                     x->type.dims.begin() + std::max(start, end));
        return {s};
      }
      return {r};
    }
    if (op == "MatMul")
      return {elementwise(OpKind::MatMul, node)};
    if (op == "ReduceMean" || op == "ReduceSum" || op == "ReduceMax")
      return {reduce(node)};
    if (op == "Softmax") {
      return {
          b_.create(OpKind::Softmax, {required(node, 0)}, {{"axis", intAttr(node, "axis", -1)}})};
    }
    if (op == "CumSum") {
      if (intAttr(node, "exclusive", 0) || intAttr(node, "reverse", 0))
        fail(node, "not supported (exclusive or reverse)");
      Ints axis = requireInts(node, 1, "axis");
      if (axis.size() != 1)
        fail(node, "axis must be one value");
      return {b_.create(OpKind::CumSum, {required(node, 0)}, {{"axis", axis[0]}})};
    }
    if (op == "ArgMax") {
      if (intAttr(node, "select_last_index", 0))
        fail(node, "not supported (select_last_index)");
      return {b_.create(
          OpKind::ArgMax, {required(node, 0)},
          {{"axis", intAttr(node, "axis", 0)}, {"keepdims", intAttr(node, "keepdims", 1) != 0}})};
    }
    if (op == "Gather")
      return {gather(node)};
    if (op == "Reshape")
      return {reshape(node)};
    if (op == "Transpose") {
      Value* x = required(node, 0);
      Ints perm = intsAttr(node, "perm").value_or(Ints{});
      if (perm.empty())
        for (int64_t d = x->type.rank() - 1; d >= 0; --d)
          perm.push_back(d);
      return {b_.transpose(x, perm)};
    }
    if (op == "Concat")
      return {concat(node)};
    if (op == "Slice")
      return {slice(node)};
    if (op == "Squeeze" || op == "Unsqueeze")
      return {squeeze(node, op == "Unsqueeze")};
    if (op == "Expand") {
      Value* x = required(node, 0);
      Value* shape = required(node, 1);
      std::vector<Dim> target = shapeFrom(node, shape);
      // numpy broadcasting of x's dims with the target's
      std::vector<Dim> dims(std::max<size_t>(target.size(), static_cast<size_t>(x->type.rank())));
      for (size_t i = 0; i < dims.size(); ++i) {
        size_t fromEnd = dims.size() - 1 - i;
        const Dim* t = fromEnd < target.size() ? &target[target.size() - 1 - fromEnd] : nullptr;
        const Dim* s = fromEnd < static_cast<size_t>(x->type.rank())
                           ? &x->type.dims[x->type.dims.size() - 1 - fromEnd]
                           : nullptr;
        dims[i] = !t || (t->isStatic() && t->staticValue() == 1) ? *s : *t;
      }
      return {b_.create(OpKind::Expand, {x, shape}, {}, TensorType{x->type.elementType, dims})};
    }
    if (op == "ConstantOfShape") {
      Value* shape = required(node, 0);
      std::vector<Dim> dims = shapeFrom(node, shape);
      TensorData fill{ElementType::F32, {}, std::vector<uint8_t>(4, 0)};
      if (const onnx::AttributeProto* value = attribute(node, "value"))
        fill = decodeTensor(value->t(), "node '" + node.name() + "' value");
      if (fill.count() != 1)
        fail(node, "value must hold one element");
      double v = fill.values()[0];
      Value* scalar = b_.scalar(fill.type, v);
      Value* r = b_.create(OpKind::Expand, {scalar, shape}, {}, TensorType{fill.type, dims});
      if (isInteger(fill.type) && dims.size() == 1 && dims[0].isStatic())
        known_[r] = std::vector<Dim>(static_cast<size_t>(dims[0].staticValue()),
                                     Dim::constant(static_cast<int64_t>(v)));
      return {r};
    }
    if (op == "Range")
      return {range(node)};
    if (auto lowered = lowerComposite(node))
      return {lowered};
    if (op == "GatherND")
      return {gatherND(node)};
    if (op == "Flatten") {
      Value* x = required(node, 0);
      int64_t rank = x->type.rank(), axis = intAttr(node, "axis", 1);
      if (axis < 0)
        axis += rank;
      if (axis < 0 || axis > rank)
        fail(node, "axis is out of range");
      const std::vector<Dim>& dims = x->type.dims;
      Dim outer = affineProduct(dims.begin(), dims.begin() + axis);
      Dim inner = affineProduct(dims.begin() + axis, dims.end());
      if (outer.isUnknown() || inner.isUnknown())
        fail(node, "flattens a product of symbolic dims");
      return {b_.create(OpKind::Reshape, {x}, {}, TensorType{x->type.elementType, {outer, inner}})};
    }
    if (op == "Split")
      return split(node);
    fail(node, "not supported");
  }

  Value* constantNode(const onnx::NodeProto& node) {
    if (const onnx::AttributeProto* a = attribute(node, "value"))
      return tensorValue(node.output(0), decodeTensor(a->t(), "node '" + node.name() + "'"));
    if (const onnx::AttributeProto* a = attribute(node, "value_float"))
      return b_.scalar(ElementType::F32, a->f());
    if (const onnx::AttributeProto* a = attribute(node, "value_int")) {
      Value* v = b_.scalar(ElementType::I64, static_cast<double>(a->i()));
      known_[v] = {Dim::constant(a->i())};
      return v;
    }
    if (const onnx::AttributeProto* a = attribute(node, "value_floats"))
      return b_.constant(ElementType::F32, {a->floats_size()},
                         Floats(a->floats().begin(), a->floats().end()));
    if (const onnx::AttributeProto* a = attribute(node, "value_ints")) {
      Ints ints(a->ints().begin(), a->ints().end());
      Value* v = b_.constant(ElementType::I64, {static_cast<int64_t>(ints.size())}, ints);
      std::vector<Dim> known;
      for (int64_t x : ints)
        known.push_back(Dim::constant(x));
      known_[v] = known;
      return v;
    }
    fail(node, "not supported (a constant without a numeric value)");
  }

  Value* reduce(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    OpKind kind = op == "ReduceMean"  ? OpKind::ReduceMean
                  : op == "ReduceSum" ? OpKind::ReduceSum
                                      : OpKind::ReduceMax;
    // axes: an attribute before opset 18 (ReduceSum: before 13), an input after.
    bool axesInput = kind == OpKind::ReduceSum ? opset_ >= 13 : opset_ >= 18;
    Value* x = required(node, 0);
    Ints axes = axesInput ? axesFrom(node, 1, "") : intsAttr(node, "axes").value_or(Ints{});
    if (axes.empty()) {
      if (intAttr(node, "noop_with_empty_axes", 0))
        return x;
      for (int64_t d = 0; d < x->type.rank(); ++d)
        axes.push_back(d);
    }
    return b_.create(kind, {x}, {{"axes", axes}, {"keepdims", intAttr(node, "keepdims", 1) != 0}});
  }

  Value* gather(const onnx::NodeProto& node) {
    Value* data = required(node, 0);
    Value* indices = required(node, 1);
    int64_t axis = intAttr(node, "axis", 0);
    Value* r = b_.create(OpKind::Gather, {data, indices}, {{"axis", axis}});
    auto known = knownDims(data);
    auto picks = constantInts(indices);
    if (known && picks && data->type.rank() == 1 && indices->type.rank() <= 1) {
      std::vector<Dim> out;
      for (int64_t i : *picks) {
        int64_t n = static_cast<int64_t>(known->size());
        if (i < -n || i >= n)
          fail(node, "index " + std::to_string(i) + " is out of range");
        out.push_back((*known)[static_cast<size_t>(i < 0 ? i + n : i)]);
      }
      known_[r] = out;
    }
    return r;
  }

  // ONNX ops without an IR op of their own, written with the IR's ops (numbers as ONNX defines
  // them; ONNX's node tests check each). Null when `node` is none of them.
  Value* lowerComposite(const onnx::NodeProto& node) {
    const std::string& op = node.op_type();
    auto scalarLike = [&](Value* like, double value) {
      return b_.scalar(like->type.elementType, value);
    };
    if (op == "Relu") {
      Value* x = required(node, 0);
      return b_.binary(OpKind::Max, x, scalarLike(x, 0));
    }
    if (op == "Abs") {
      Value* x = required(node, 0);
      return b_.binary(OpKind::Max, x, b_.unary(OpKind::Neg, x));
    }
    if (op == "Sigmoid") { // 1 / (1 + exp(-x))
      Value* x = required(node, 0);
      return b_.unary(OpKind::Reciprocal,
                      b_.binary(OpKind::Add, scalarLike(x, 1),
                                b_.unary(OpKind::Exp, b_.unary(OpKind::Neg, x))));
    }
    if (op == "LeakyRelu") {
      Value* x = required(node, 0);
      const onnx::AttributeProto* alpha = attribute(node, "alpha");
      Value* scaled = b_.binary(OpKind::Mul, x, scalarLike(x, alpha ? alpha->f() : 0.01));
      return b_.create(OpKind::Where, {b_.binary(OpKind::Less, x, scalarLike(x, 0)), scaled, x});
    }
    if (op == "Sum" || op == "Mean") {
      Value* r = required(node, 0);
      for (int i = 1; i < node.input_size(); ++i)
        r = b_.binary(OpKind::Add, r, required(node, i));
      if (op == "Mean")
        r = b_.binary(OpKind::Div, r, scalarLike(r, node.input_size()));
      return r;
    }
    if (op == "Clip") {
      Value* r = required(node, 0);
      if (Value* low = operand(node, 1))
        r = b_.binary(OpKind::Max, r, low);
      if (Value* high = operand(node, 2))
        r = b_.binary(OpKind::Min, r, high);
      return r;
    }
    if (op == "Dropout") { // inference: the identity
      if (node.output_size() > 1 && !node.output(1).empty())
        fail(node, "not supported (the mask output)");
      if (operand(node, 2)) {
        auto training = constantInts(required(node, 2));
        if (!training || training->size() != 1 || (*training)[0] != 0)
          fail(node, "not supported (training mode)");
      }
      return required(node, 0);
    }
    if (op == "CastLike") {
      Value* x = required(node, 0);
      return b_.cast(x, required(node, 1)->type.elementType);
    }
    if (op == "ReduceSumSquare" || op == "ReduceL2" || op == "ReduceMin") {
      Value* x = required(node, 0);
      Ints axes = opset_ >= 18 ? axesFrom(node, 1, "") : intsAttr(node, "axes").value_or(Ints{});
      if (axes.empty()) {
        if (intAttr(node, "noop_with_empty_axes", 0))
          fail(node, "not supported (noop_with_empty_axes)");
        for (int64_t d = 0; d < x->type.rank(); ++d)
          axes.push_back(d);
      }
      std::map<std::string, Attribute> attrs = {{"axes", axes},
                                                {"keepdims", intAttr(node, "keepdims", 1) != 0}};
      if (op == "ReduceMin")
        return b_.unary(OpKind::Neg,
                        b_.create(OpKind::ReduceMax, {b_.unary(OpKind::Neg, x)}, attrs));
      Value* squares = b_.create(OpKind::ReduceSum, {b_.binary(OpKind::Mul, x, x)}, attrs);
      return op == "ReduceL2" ? b_.unary(OpKind::Sqrt, squares) : squares;
    }
    if (op == "Gemm") { // alpha * A' B' + beta * C
      Value* a = required(node, 0);
      Value* bm = required(node, 1);
      if (intAttr(node, "transA", 0))
        a = b_.transpose(a, {1, 0});
      if (intAttr(node, "transB", 0))
        bm = b_.transpose(bm, {1, 0});
      Value* r = b_.matmul(a, bm);
      const onnx::AttributeProto* alpha = attribute(node, "alpha");
      const onnx::AttributeProto* beta = attribute(node, "beta");
      if (alpha && alpha->f() != 1.0f)
        r = b_.binary(OpKind::Mul, r, scalarLike(r, alpha->f()));
      if (Value* c = operand(node, 2)) {
        if (beta && beta->f() != 1.0f)
          c = b_.binary(OpKind::Mul, c, scalarLike(c, beta->f()));
        r = b_.binary(OpKind::Add, r, c);
      }
      return r;
    }
    if (op == "Trilu") { // keep x where col - row >= k (upper) or <= k (lower), else 0
      Value* x = required(node, 0);
      int64_t rank = x->type.rank();
      if (rank < 2)
        fail(node, "needs a matrix");
      int64_t k = 0;
      if (operand(node, 1)) {
        Ints ks = requireInts(node, 1, "k");
        if (ks.size() != 1)
          fail(node, "k must be one value");
        k = ks[0];
      }
      Value* rowsShape = b_.create(OpKind::Shape, {x});
      auto indexRange = [&](int64_t dim) {
        const Dim& extent = x->type.dims[static_cast<size_t>(dim)];
        Value* at = b_.constant(ElementType::I64, {}, Ints{dim});
        Value* n = b_.create(OpKind::Gather, {rowsShape, at}, {{"axis", int64_t(0)}});
        return b_.create(OpKind::Range,
                         {b_.scalar(ElementType::I64, 0), n, b_.scalar(ElementType::I64, 1)}, {},
                         TensorType{ElementType::I64, {extent}});
      };
      Value* rows = b_.create(OpKind::Unsqueeze, {indexRange(rank - 2)}, {{"axes", Ints{1}}});
      Value* columns = indexRange(rank - 1);
      Value* offset = b_.binary(OpKind::Sub, columns, rows); // [R, C]
      Value* keep = b_.binary(intAttr(node, "upper", 1) ? OpKind::GreaterEqual : OpKind::LessEqual,
                              offset, b_.scalar(ElementType::I64, static_cast<double>(k)));
      return b_.create(OpKind::Where, {keep, x, scalarLike(x, 0)});
    }
    if (op == "Size") {
      Value* x = required(node, 0);
      auto count = x->type.staticNumElements();
      if (!count)
        fail(node, "its input's size is not static");
      Value* v = b_.scalar(ElementType::I64, static_cast<double>(*count));
      known_[v] = {Dim::constant(*count)};
      return v;
    }
    return nullptr;
  }

  // GatherND (batch_dims 0) as a Gather from the data flattened over its first k dims, at the
  // linear index sum_j idx[..., j] * stride_j (exporters look masks up so: mask[b, kv]).
  Value* gatherND(const onnx::NodeProto& node) {
    if (intAttr(node, "batch_dims", 0) != 0)
      fail(node, "not supported (batch_dims)");
    Value* data = required(node, 0);
    Value* indices = required(node, 1);
    int64_t rank = data->type.rank(), indexRank = indices->type.rank();
    const Dim& depthDim = indices->type.dims.back();
    if (indexRank < 1 || !depthDim.isStatic() || depthDim.staticValue() < 1 ||
        depthDim.staticValue() > rank)
      fail(node, "its indices' last dim must be static, between 1 and the data's rank");
    int64_t depth = depthDim.staticValue();
    // The first `depth` dims flattened: their product must stay affine.
    Dim flat = affineProduct(data->type.dims.begin(), data->type.dims.begin() + depth);
    if (flat.isUnknown())
      fail(node, "indexes a product of symbolic dims");
    std::vector<Dim> flatDims = {flat};
    flatDims.insert(flatDims.end(), data->type.dims.begin() + depth, data->type.dims.end());
    Value* table =
        b_.create(OpKind::Reshape, {data}, {}, TensorType{data->type.elementType, flatDims});
    Value* shape = b_.create(OpKind::Shape, {data});
    Value* linear = nullptr;
    for (int64_t j = 0; j < depth; ++j) {
      Value* column = b_.create(
          OpKind::Slice, {indices},
          {{"starts", Ints{j}}, {"ends", Ints{j + 1}}, {"axes", Ints{-1}}, {"steps", Ints{1}}});
      column = b_.create(OpKind::Squeeze, {column}, {{"axes", Ints{indexRank - 1}}});
      column = b_.cast(column, ElementType::I64);
      // stride_j = product of dims j+1..depth-1, read from the data's shape at run time
      Value* stride = b_.scalar(ElementType::I64, 1);
      for (int64_t d = j + 1; d < depth; ++d) {
        Value* at = b_.constant(ElementType::I64, {}, Ints{d});
        stride = b_.binary(OpKind::Mul, stride,
                           b_.create(OpKind::Gather, {shape, at}, {{"axis", int64_t(0)}}));
      }
      Value* term = b_.binary(OpKind::Mul, column, stride);
      linear = linear ? b_.binary(OpKind::Add, linear, term) : term;
    }
    return b_.create(OpKind::Gather, {table, linear}, {{"axis", int64_t(0)}});
  }

  Value* reshape(const onnx::NodeProto& node) {
    Value* x = required(node, 0);
    Value* shape = required(node, 1);
    std::vector<Dim> target = shapeFrom(node, shape);
    // allowzero makes a 0 a dim of 0 rather than a copy of the input's: the same when none is 0.
    if (intAttr(node, "allowzero", 0) &&
        std::any_of(target.begin(), target.end(),
                    [](const Dim& d) { return d.isStatic() && d.staticValue() == 0; }))
      fail(node, "not supported (allowzero with a 0 in the shape)");
    // 0 copies the input's dim, -1 is what is left.
    int inferred = -1;
    for (size_t i = 0; i < target.size(); ++i) {
      if (target[i].isStatic() && target[i].staticValue() == 0 &&
          i < static_cast<size_t>(x->type.rank()))
        target[i] = x->type.dims[i];
      else if (target[i].isStatic() && target[i].staticValue() == -1)
        inferred = static_cast<int>(i);
    }
    if (inferred >= 0) {
      target[static_cast<size_t>(inferred)] = Dim::unknown();
      target[static_cast<size_t>(inferred)] = remainingDim(node, x->type.dims, target);
    }
    // The target is known here: the reshape needs no shape operand.
    Value* r = b_.create(OpKind::Reshape, {x}, {}, TensorType{x->type.elementType, target});
    if (auto known = knownDims(x); known && r->type.rank() <= 1)
      known_[r] = *known;
    return r;
  }

  // The dim a -1 stands for: the input's elements over the other target dims, where the symbolic
  // parts cancel (batch*seq*D over batch*seq).
  Dim remainingDim(const onnx::NodeProto& node, const std::vector<Dim>& in,
                   const std::vector<Dim>& target) const {
    std::multiset<std::string> symbols;
    int64_t staticIn = 1, staticOut = 1;
    for (const Dim& d : in) {
      if (d.isStatic())
        staticIn *= d.staticValue();
      else if (d.terms().size() == 1 && d.constantPart() == 0 && d.terms()[0].second == 1)
        symbols.insert(d.terms()[0].first);
      else
        symbols.insert(d.str());
    }
    for (const Dim& d : target) {
      if (d.isUnknown())
        continue;
      std::string key = d.isStatic() ? ""
                        : d.terms().size() == 1 && d.constantPart() == 0 && d.terms()[0].second == 1
                            ? d.terms()[0].first
                            : d.str();
      if (d.isStatic())
        staticOut *= d.staticValue();
      else if (auto it = symbols.find(key); it != symbols.end())
        symbols.erase(it);
      else
        fail(node, "cannot infer the -1 of its target shape");
    }
    if (staticOut == 0 || staticIn % staticOut != 0)
      fail(node, "its target shape does not divide the input's elements");
    Dim result = Dim::constant(staticIn / staticOut);
    if (symbols.size() > 1 || (symbols.size() == 1 && staticIn / staticOut != 1))
      fail(node, "cannot infer the -1 of its target shape");
    if (symbols.size() == 1)
      result = Dim::symbol(*symbols.begin());
    return result;
  }

  Value* concat(const onnx::NodeProto& node) {
    std::vector<Value*> parts;
    for (int i = 0; i < node.input_size(); ++i)
      parts.push_back(required(node, i));
    int64_t axis = intAttr(node, "axis", 0);
    Value* r = b_.create(OpKind::Concat, parts, {{"axis", axis}});
    std::vector<Dim> known;
    bool all = r->type.rank() == 1;
    for (Value* p : parts) {
      auto k = knownDims(p);
      if (!k) {
        all = false;
        break;
      }
      known.insert(known.end(), k->begin(), k->end());
    }
    if (all)
      known_[r] = known;
    return r;
  }

  // A slice's starts or ends as integers. Exporters write bounds such as `key.shape[-2]`: a
  // symbolic bound that lies a constant distance below its axis' dim becomes that distance counted
  // from the end (the dim itself: to the end).
  Ints sliceBounds(const onnx::NodeProto& node, int i, const char* what, const Value* x,
                   const Ints& axes) const {
    auto dims = knownDims(required(node, i));
    if (!dims)
      fail(node, std::string(what) + " must be known at compile time");
    Ints bounds;
    for (size_t k = 0; k < dims->size(); ++k) {
      const Dim& bound = (*dims)[k];
      if (bound.isStatic()) {
        bounds.push_back(bound.staticValue());
        continue;
      }
      int64_t rank = x->type.rank();
      int64_t axis = k < axes.size() ? (axes[k] < 0 ? axes[k] + rank : axes[k]) : -1;
      Dim below = axis >= 0 && axis < rank ? x->type.dims[static_cast<size_t>(axis)] - bound
                                           : Dim::unknown();
      if (below.isUnknown() || !below.isStatic() || below.staticValue() < 0)
        fail(node, std::string(what) + " must be constants or an input's dim less a constant");
      bounds.push_back(below.staticValue() == 0 ? std::numeric_limits<int64_t>::max()
                                                : -below.staticValue());
    }
    return bounds;
  }

  Value* slice(const onnx::NodeProto& node) {
    Value* x = required(node, 0);
    Ints axes, steps;
    size_t count = knownDims(required(node, 1)).value_or(std::vector<Dim>{}).size();
    if (operand(node, 3))
      axes = requireInts(node, 3, "axes");
    else
      for (size_t i = 0; i < count; ++i)
        axes.push_back(static_cast<int64_t>(i));
    if (operand(node, 4))
      steps = requireInts(node, 4, "steps");
    else
      steps.assign(count, 1);
    Ints starts = sliceBounds(node, 1, "starts", x, axes);
    Ints ends = sliceBounds(node, 2, "ends", x, axes);
    if (axes.size() != starts.size() || ends.size() != starts.size() ||
        steps.size() != starts.size())
      fail(node, "starts, ends, axes and steps differ in length");
    // Ends past a dim (INT64_MAX for "to the end") clamp to it where the dim is known.
    for (size_t i = 0; i < ends.size(); ++i) {
      int64_t rank = x->type.rank();
      int64_t axis = axes[i] < 0 ? axes[i] + rank : axes[i];
      if (axis < 0 || axis >= rank)
        fail(node, "axis " + std::to_string(axes[i]) + " is out of range");
      const Dim& dim = x->type.dims[static_cast<size_t>(axis)];
      if (dim.isStatic()) {
        int64_t n = dim.staticValue();
        ends[i] = std::clamp<int64_t>(ends[i], steps[i] < 0 ? -n - 1 : -n, n);
        starts[i] = std::clamp<int64_t>(starts[i], -n, steps[i] < 0 ? n - 1 : n);
      } else {
        ends[i] = std::min<int64_t>(ends[i], kMaxDimValue);
      }
    }
    Value* r = b_.create(OpKind::Slice, {x},
                         {{"starts", starts}, {"ends", ends}, {"axes", axes}, {"steps", steps}});
    if (auto known = knownDims(x); known && x->type.rank() == 1 && steps[0] == 1) {
      int64_t n = static_cast<int64_t>(known->size());
      int64_t s = std::clamp<int64_t>(starts[0] < 0 ? starts[0] + n : starts[0], 0, n);
      int64_t e = std::clamp<int64_t>(ends[0] < 0 ? ends[0] + n : ends[0], 0, n);
      known_[r] = std::vector<Dim>(known->begin() + s, known->begin() + std::max(s, e));
    }
    return r;
  }

  Value* squeeze(const onnx::NodeProto& node, bool unsqueeze) {
    Value* x = required(node, 0);
    Ints axes = axesFrom(node, 1, "axes");
    if (!unsqueeze && axes.empty())
      for (int64_t d = 0; d < x->type.rank(); ++d)
        if (x->type.dims[static_cast<size_t>(d)].isStatic() &&
            x->type.dims[static_cast<size_t>(d)].staticValue() == 1)
          axes.push_back(d);
    Value* r = b_.create(unsqueeze ? OpKind::Unsqueeze : OpKind::Squeeze, {x}, {{"axes", axes}});
    if (auto known = knownDims(x); known && r->type.rank() <= 1)
      known_[r] = *known;
    return r;
  }

  Value* range(const onnx::NodeProto& node) {
    Value* start = required(node, 0);
    Value* limit = required(node, 1);
    Value* delta = required(node, 2);
    auto s = knownDims(start), l = knownDims(limit);
    auto d = constantScalar(delta);
    Dim length = Dim::unknown();
    if (s && l && d && s->size() == 1 && l->size() == 1) {
      Dim span = (*l)[0] - (*s)[0];
      if (span.isStatic())
        length = Dim::constant(std::max<int64_t>(
            0, static_cast<int64_t>(std::ceil(static_cast<double>(span.staticValue()) / *d))));
      else if (*d == 1)
        length = span;
    } else if (auto a = constantScalar(start); a && d && constantScalar(limit)) {
      double z = *constantScalar(limit);
      length = Dim::constant(std::max<int64_t>(0, static_cast<int64_t>(std::ceil((z - *a) / *d))));
    }
    if (length.isUnknown())
      fail(node, "its length is not known at compile time");
    Value* r = b_.create(OpKind::Range, {start, limit, delta}, {},
                         TensorType{start->type.elementType, {length}});
    if (s && d && *d == 1 && length.isStatic() && isInteger(start->type.elementType)) {
      std::vector<Dim> values;
      for (int64_t i = 0; i < length.staticValue(); ++i)
        values.push_back((*s)[0] + Dim::constant(i));
      known_[r] = values;
    }
    return r;
  }

  std::vector<Value*> split(const onnx::NodeProto& node) {
    Value* x = required(node, 0);
    int64_t rank = x->type.rank();
    int64_t axis = intAttr(node, "axis", 0);
    if (axis < 0)
      axis += rank;
    if (axis < 0 || axis >= rank)
      fail(node, "axis is out of range");
    const Dim& dim = x->type.dims[static_cast<size_t>(axis)];
    Ints sizes;
    if (operand(node, 1))
      sizes = requireInts(node, 1, "split");
    else if (auto attr = intsAttr(node, "split"))
      sizes = *attr;
    if (sizes.empty()) {
      if (!dim.isStatic())
        fail(node, "splits a dim that is not static into equal parts");
      int64_t parts =
          opset_ >= 18 ? intAttr(node, "num_outputs", node.output_size()) : node.output_size();
      int64_t n = dim.staticValue(), each = (n + parts - 1) / parts;
      for (int64_t start = 0; start < n; start += each)
        sizes.push_back(std::min(each, n - start));
    }
    std::vector<Value*> results;
    int64_t start = 0;
    for (int64_t size : sizes) {
      results.push_back(b_.create(OpKind::Slice, {x},
                                  {{"starts", Ints{start}},
                                   {"ends", Ints{start + size}},
                                   {"axes", Ints{axis}},
                                   {"steps", Ints{1}}}));
      start += size;
    }
    return results;
  }

  // ---- what the model is -------------------------------------------------------------------

  // The checkpoint's config.json beside the model, if there is one (read once).
  const GemmaConfig* configBeside() {
    if (!configRead_) {
      configRead_ = true;
      fs::path config = fs::path(path_).parent_path() / "config.json";
      if (fs::exists(config))
        config_ = loadGemmaConfig(config.string());
    }
    return config_ ? &*config_ : nullptr;
  }

  void describeModel(std::optional<Head> head) {
    if (const GemmaConfig* config = configBeside()) {
      model_.config = *config;
    } else { // a bare export: Gemma's ids, the vocabulary from the logits
      model_.config = GemmaConfig{};
      model_.config.modelType = "gemma";
      const TensorType& out = graph_.outputs.front().value->type;
      if (out.rank() >= 1 && out.dims.back().isStatic())
        model_.config.vocabSize = out.dims.back().staticValue();
    }
    model_.head =
        head.value_or(graph_.outputs.front().name == "logits" ? Head::CausalLM : Head::Model);
    model_.activationType = ElementType::F32;
    for (const Graph::Output& output : graph_.outputs)
      if (isFloat(output.value->type.elementType)) {
        model_.activationType = output.value->type.elementType;
        break;
      }
  }

  std::string path_;
  ImportedModel& model_;
  Graph& graph_;
  Builder b_;
  onnx::ModelProto proto_;
  int64_t opset_ = 0;
  int anonymous_ = 0;
  std::map<std::string, Value*> values_;
  std::map<const Value*, std::vector<Dim>> known_;
  std::map<std::string, Dim> symbols_;
  bool configRead_ = false;
  std::optional<GemmaConfig> config_;
};

} // namespace

Tensor readOnnxTensorFile(const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  onnx::TensorProto proto;
  if (!file || !proto.ParseFromString(bytes.str()))
    throw UserError(Location::named(path), "is not a TensorProto");
  ImportedModel scratch;
  scratch.graph = std::make_unique<Graph>("tensor");
  OnnxImporter reader(path, scratch);
  TensorData data = reader.decode(proto, "tensor");
  Tensor t = Tensor::zeros(data.type, data.shape);
  t.data = data.values();
  return t;
}

ImportedModel importOnnxModel(const std::string& path, std::optional<Head> head) {
  ImportedModel model;
  model.graph = std::make_unique<Graph>("onnx");
  OnnxImporter(path, model).run(head);
  return model;
}

ImportedModel importModel(const std::string& path, std::optional<Head> head) {
  fs::path p(path);
  if (fs::is_regular_file(p))
    return importOnnxModel(path, head);
  if (fs::is_directory(p) && fs::exists(p / "model.onnx") && !fs::exists(p / "model.safetensors") &&
      !fs::exists(p / "model.safetensors.index.json"))
    return importOnnxModel((p / "model.onnx").string(), head);
  return importHFCheckpoint(path, head);
}

} // namespace gemma
