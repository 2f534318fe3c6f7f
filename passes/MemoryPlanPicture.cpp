#include "passes/MemoryPlanPicture.h"

#include <algorithm>
#include <map>

namespace gemma {

void printMemoryPlanAsDot(const Graph& graph, std::ostream& os) {
  const int64_t* arenaAttr = std::get_if<int64_t>(&graph.attrs.at("arena_bytes"));
  double arena = arenaAttr && *arenaAttr > 0 ? static_cast<double>(*arenaAttr) : 1.0;
  std::vector<const Op*> ops;
  for (const auto& op : graph.ops)
    ops.push_back(op.get());
  std::map<const Value*, int> lastRead;
  for (int i = 0; i < static_cast<int>(ops.size()); ++i)
    for (const Value* operand : ops[i]->operands)
      lastRead[operand] = i;
  for (const Graph::Output& output : graph.outputs)
    lastRead[output.value] = static_cast<int>(ops.size());

  const double stepWidth = 6.0, height = 600.0, left = 60.0, bottom = 40.0; // points
  os << "digraph memory_plan {\n  node [shape=box, style=filled, fixedsize=true, label=\"\", "
        "penwidth=0.3];\n";
  auto position = [](double x, double y) {
    return "pos=\"" + std::to_string(x) + "," + std::to_string(y) + "!\"";
  };
  for (int i = 0; i < static_cast<int>(ops.size()); ++i) {
    const Op& op = *ops[i];
    const int64_t* offset = op.attr<int64_t>("arena_offset");
    const int64_t* bytes = op.attr<int64_t>("arena_bytes");
    if (!offset || !bytes)
      continue;
    int last = std::max(i, lastRead.count(op.result()) ? lastRead[op.result()] : i);
    double w = std::max(stepWidth * (last - i + 1), 1.0);
    double h = std::max(height * static_cast<double>(*bytes) / arena, 0.5);
    double x = left + stepWidth * i + w / 2;
    double y = bottom + height * static_cast<double>(*offset) / arena + h / 2;
    bool fused = opCategory(op.kind) == OpCategory::Fused;
    const char* color = fused ? "#ffb347" : op.kind == OpKind::MatMul ? "#7fb3ff" : "#c8c8c8";
    os << "  b" << i << " [" << position(x, y) << ", width=" << w / 72 << ", height=" << h / 72
       << ", fillcolor=\"" << color << "\", tooltip=\"%" << i << " " << op.mnemonic() << " "
       << op.result()->type.str() << " @" << *offset << " +" << *bytes << "\"];\n";
  }
  double right = left + stepWidth * static_cast<double>(ops.size());
  os << "  frame [" << position((left + right) / 2, bottom + height / 2)
     << ", width=" << (right - left) / 72 << ", height=" << height / 72
     << ", style=solid, fillcolor=none, color=\"#888888\"];\n";
  os << "  title [shape=plaintext, style=\"\", fixedsize=false, "
     << position((left + right) / 2, bottom + height + 20) << ", label=\"@" << graph.name
     << ": arena " << static_cast<int64_t>(arena)
     << " bytes (top), op index left to right; orange: fused ops, blue: matmul\"];\n";
  os << "  origin [shape=plaintext, style=\"\", fixedsize=false, " << position(left, bottom - 15)
     << ", label=\"0\"];\n}\n";
}

} // namespace gemma
