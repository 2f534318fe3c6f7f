// The ONNX frontend's driver (OnnxImporter.h): the model's inputs, its nodes through the handler
// tables of frontend/onnx/, its outputs, and what model it is.
#include "frontend/OnnxImporter.h"

#include "frontend/onnx/OnnxNode.h"
#include "ir/ModelRoles.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

namespace gemma {

namespace {

using namespace onnx_import;
namespace fs = std::filesystem;

class OnnxImporter {
public:
  OnnxImporter(std::string path, ImportedModel& model)
      : state_(std::move(path), model), graph_(*model.graph) {}

  void run(std::optional<Head> head) {
    proto_ = loadModelProto(state_.path, state_.opset);
    graph_.name = proto_.graph().name().empty() ? "onnx" : proto_.graph().name();
    for (char& c : graph_.name)
      if (!std::isalnum(static_cast<unsigned char>(c)) && c != '_')
        c = '_';
    const onnx::GraphProto& g = proto_.graph();
    std::set<std::string> initialized;
    for (const onnx::TensorProto& t : g.initializer())
      initialized.insert(t.name());
    for (const onnx::ValueInfoProto& input : g.input())
      if (!initialized.count(input.name()))
        addInput(input, g);
    for (const onnx::TensorProto& t : g.initializer()) {
      state_.b.setLocation(Location::named(t.name()));
      state_.values[t.name()] = state_.tensorValue(
          t.name(), decodeTensor(t, state_.path, "initializer '" + t.name() + "'"));
    }
    for (const onnx::NodeProto& node : g.node())
      importNode(node);
    for (const onnx::ValueInfoProto& output : g.output()) {
      auto it = state_.values.find(output.name());
      if (it == state_.values.end())
        failFile("graph output '" + output.name() + "' is not produced by any node");
      graph_.addOutput(it->second, output.name());
    }
    if (graph_.outputs.empty())
      failFile("the graph has no outputs");
    recordOnnxRoles();
    describeModel(head);
  }

private:
  [[noreturn]] void failFile(const std::string& what) const {
    throw UserError(Location::named(state_.path), what);
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
    bool hasPast = std::any_of(g.input().begin(), g.input().end(),
                               [](const auto& i) { return isPastName(i.name()); });
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
    else if (isPastName(name)) {
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
    state_.values[name] = graph_.addInput(name, {*type, dims});
  }

  static std::string symbolName(const std::string& param) {
    std::string symbol;
    for (char c : param)
      symbol += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
    if (symbol.empty() || std::isdigit(static_cast<unsigned char>(symbol[0])))
      symbol = "d_" + symbol;
    return symbol;
  }

  // An export's inputs by the names exporters give them (the same names addInput reads dims
  // by); output 0 is the head's result, the others the present caches.
  void recordOnnxRoles() {
    std::vector<InputRole> inputs;
    for (const auto& input : graph_.inputs) {
      const std::string& name = input->name;
      inputs.push_back(name == "input_ids"        ? InputRole::Ids
                       : name == "attention_mask" ? InputRole::Mask
                       : name == "position_ids"   ? InputRole::Positions
                       : isPastName(name)         ? InputRole::Past
                                                  : InputRole::Unknown);
    }
    std::vector<OutputRole> outputs(graph_.outputs.size(), OutputRole::Present);
    outputs.front() = OutputRole::Head;
    recordRoles(graph_, inputs, outputs);
  }

  static bool isPastName(const std::string& name) {
    return name.rfind("past_key_values.", 0) == 0 || name.rfind("past.", 0) == 0;
  }

  // ---- nodes -------------------------------------------------------------------------------

  // The handler tables, by domain: the default domain (with the one contrib op onnxruntime-genai
  // writes there) and com.microsoft.
  static const OpHandlerTable& handlers(bool microsoft) {
    static const OpHandlerTable defaultDomain = [] {
      OpHandlerTable table;
      addOps(table);
      addShapeOps(table);
      addCompositeOps(table);
      addContribOpsOfTheDefaultDomain(table);
      return table;
    }();
    static const OpHandlerTable microsoftDomain = [] {
      OpHandlerTable table;
      addContribOps(table);
      return table;
    }();
    return microsoft ? microsoftDomain : defaultDomain;
  }

  void importNode(const onnx::NodeProto& node) {
    state_.b.setLocation(Location::named(node.name().empty() ? node.op_type() : node.name()));
    NodeContext n(node, state_);
    const std::string& domain = node.domain();
    if (!domain.empty() && domain != "ai.onnx" && domain != "com.microsoft")
      n.fail("not supported (domain '" + domain + "')");
    const OpHandlerTable& table = handlers(domain == "com.microsoft");
    auto handler = table.find(node.op_type());
    if (handler == table.end())
      n.fail("not supported");
    if (state_.opset < handler->second.sinceOpset)
      n.fail("not supported (" + node.op_type() + " is in the default domain from opset " +
             std::to_string(handler->second.sinceOpset) + ")");
    std::vector<Value*> results;
    try {
      results = handler->second.lower(n);
    } catch (const NodeError&) {
      throw;
    } catch (const UserError& error) { // a type or shape rule of the IR: name the node
      n.fail(error.what());
    }
    if (static_cast<int>(results.size()) < node.output_size())
      for (int i = static_cast<int>(results.size()); i < node.output_size(); ++i)
        if (!node.output(i).empty())
          n.fail("output " + std::to_string(i) + " is not supported");
    for (size_t i = 0; i < results.size() && static_cast<int>(i) < node.output_size(); ++i)
      if (results[i])
        state_.values[node.output(static_cast<int>(i))] = results[i];
  }

  // ---- what the model is -------------------------------------------------------------------

  // The checkpoint's config.json beside the model, if there is one (read once).
  const GemmaConfig* configBeside() {
    if (!configRead_) {
      configRead_ = true;
      fs::path config = fs::path(state_.path).parent_path() / "config.json";
      if (fs::exists(config))
        config_ = loadGemmaConfig(config.string());
    }
    return config_ ? &*config_ : nullptr;
  }

  void describeModel(std::optional<Head> head) {
    if (const GemmaConfig* config = configBeside()) {
      state_.model.config = *config;
    } else { // a bare export: Gemma's ids, the vocabulary from the logits
      state_.model.config = GemmaConfig{};
      state_.model.config.modelType = "gemma";
      const TensorType& out = graph_.outputs.front().value->type;
      if (out.rank() >= 1 && out.dims.back().isStatic())
        state_.model.config.vocabSize = out.dims.back().staticValue();
    }
    state_.model.head =
        head.value_or(graph_.outputs.front().name == "logits" ? Head::CausalLM : Head::Model);
    state_.model.activationType = ElementType::F32;
    for (const Graph::Output& output : graph_.outputs)
      if (isFloat(output.value->type.elementType)) {
        state_.model.activationType = output.value->type.elementType;
        break;
      }
  }

  ImportState state_;
  Graph& graph_;
  onnx::ModelProto proto_;
  std::map<std::string, Dim> symbols_; // the exporter's dim names, as the IR's dims
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
  TensorData data = decodeTensor(proto, path, "tensor");
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

} // namespace gemma
