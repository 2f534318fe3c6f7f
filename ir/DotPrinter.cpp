#include "ir/DotPrinter.h"

#include <map>
#include <string>

namespace gemma {

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '"' || c == '\\')
      out += '\\';
    out += c;
  }
  return out;
}

} // namespace

void printGraphAsDot(const Graph& graph, std::ostream& os) {
  std::map<const Value*, std::string> node;
  os << "digraph \"" << escape(graph.name) << "\" {\n"
     << "  rankdir=TB;\n  node [fontname=\"Helvetica\", fontsize=10];\n";
  for (const auto& input : graph.inputs) {
    std::string id = "in" + std::to_string(input->resultIndex);
    node[input.get()] = id;
    os << "  " << id << " [shape=oval, style=filled, fillcolor=\"#e8e8e8\", label=\"%"
       << escape(input->name) << "\\n"
       << escape(input->type.str()) << "\"];\n";
  }
  int index = 0;
  for (const auto& op : graph.ops) {
    std::string id = "op" + std::to_string(index++);
    for (const auto& result : op->results)
      node[result.get()] = id;
    std::string label = std::string(op->mnemonic()) + "\\n" + escape(op->result()->type.str());
    if (!op->loc.origin.empty())
      label += "\\n" + escape(op->loc.origin);
    bool fused = opCategory(op->kind) == OpCategory::Fused;
    bool leaf = opCategory(op->kind) == OpCategory::Leaf;
    os << "  " << id << " [shape=box, style=\""
       << (fused  ? "filled,bold"
           : leaf ? "filled"
                  : "solid")
       << "\", fillcolor=\"" << (fused ? "#ffd27f" : "#f4f4f4") << "\", label=\"" << label
       << "\"];\n";
    for (const Value* operand : op->operands)
      if (node.count(operand))
        os << "  " << node[operand] << " -> " << id << ";\n";
  }
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    const Graph::Output& output = graph.outputs[i];
    std::string id = "out" + std::to_string(i);
    os << "  " << id << " [shape=oval, style=filled, fillcolor=\"#cfe8cf\", label=\""
       << escape(output.name.empty() ? "output " + std::to_string(i) : output.name) << "\"];\n";
    if (node.count(output.value))
      os << "  " << node[output.value] << " -> " << id << ";\n";
  }
  os << "}\n";
}

} // namespace gemma
