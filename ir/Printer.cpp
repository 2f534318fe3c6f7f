#include "ir/Printer.h"

#include <charconv>
#include <cmath>
#include <map>
#include <sstream>

namespace gemma {

std::string formatFloat(double value) {
  if (std::isnan(value))
    return "nan";
  if (std::isinf(value))
    return value < 0 ? "-inf" : "inf";
  char buffer[64];
  auto [end, ec] = std::to_chars(buffer, buffer + sizeof buffer, value);
  GEMMA_INTERNAL_ASSERT(ec == std::errc(), "to_chars failed");
  std::string text(buffer, end);
  if (text.find_first_of(".e") == std::string::npos)
    text += ".0";
  return text;
}

std::string quoteString(const std::string& text) {
  static const char* hex = "0123456789abcdef";
  std::string out = "\"";
  for (unsigned char c : text) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += static_cast<char>(c);
    } else if (c < 0x20 || c >= 0x7f) {
      out += "\\x";
      out += hex[c >> 4];
      out += hex[c & 15];
    } else {
      out += static_cast<char>(c);
    }
  }
  return out + "\"";
}

namespace {

template <typename List, typename Format>
std::string formatList(const List& values, Format format) {
  std::string out = "[";
  for (size_t i = 0; i < values.size(); ++i)
    out += (i ? ", " : "") + format(values[i]);
  return out + "]";
}

std::string formatInteger(int64_t value) {
  return std::to_string(value);
}

} // namespace

std::string formatAttributes(const std::map<std::string, Attribute>& attrs) {
  std::string out = "{";
  for (const auto& [name, value] : attrs)
    out += (out.size() > 1 ? ", " : "") + name + " = " + formatAttribute(value);
  return out + "}";
}

std::string formatAttribute(const Attribute& attribute) {
  if (const auto* v = std::get_if<int64_t>(&attribute))
    return formatInteger(*v);
  if (const auto* v = std::get_if<double>(&attribute))
    return formatFloat(*v);
  if (const auto* v = std::get_if<bool>(&attribute))
    return *v ? "true" : "false";
  if (const auto* v = std::get_if<std::string>(&attribute))
    return quoteString(*v);
  if (const auto* v = std::get_if<Ints>(&attribute))
    return formatList(*v, formatInteger);
  return formatList(std::get<Floats>(attribute), formatFloat);
}

namespace {

std::string formatLocation(const Location& loc) {
  if (!loc.origin.empty())
    return " loc(" + quoteString(loc.origin) + ")";
  if (loc.hasFilePosition())
    return " loc(" + quoteString(loc.file) + ":" + std::to_string(loc.line) + ":" +
           std::to_string(loc.col) + ")";
  return " loc(unknown)";
}

} // namespace

void printGraph(const Graph& graph, std::ostream& os, const PrintOptions& options) {
  std::map<const Value*, std::string> names;
  auto nameOf = [&](const Value* value) {
    auto it = names.find(value);
    return it == names.end() ? std::string("%<undefined>") : it->second;
  };

  os << "graph @" << graph.name << "(";
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    const Value* input = graph.inputs[i].get();
    names[input] = "%" + input->name;
    os << (i ? ", " : "") << names[input] << ": " << input->type.str();
  }
  os << ")";
  if (!graph.attrs.empty())
    os << " attributes " << formatAttributes(graph.attrs);
  os << " {\n";

  int next = 0;
  for (const auto& op : graph.ops) {
    os << "  ";
    for (size_t i = 0; i < op->results.size(); ++i) {
      names[op->result(i)] = "%" + std::to_string(next++);
      os << (i ? ", " : "") << names[op->result(i)];
    }
    os << " = " << op->mnemonic() << "(";
    for (size_t i = 0; i < op->operands.size(); ++i)
      os << (i ? ", " : "") << nameOf(op->operands[i]);
    os << ")";
    if (!op->attrs.empty())
      os << " " << formatAttributes(op->attrs);
    os << " : ";
    for (size_t i = 0; i < op->results.size(); ++i)
      os << (i ? ", " : "") << op->result(i)->type.str();
    if (options.printLocations)
      os << formatLocation(op->loc);
    os << "\n";
  }

  os << "  return";
  for (size_t i = 0; i < graph.outputs.size(); ++i) {
    os << (i ? ", " : " ") << nameOf(graph.outputs[i].value);
    if (!graph.outputs[i].name.empty())
      os << " as " << quoteString(graph.outputs[i].name);
  }
  os << "\n}\n";
}

std::string printGraph(const Graph& graph, const PrintOptions& options) {
  std::ostringstream os;
  printGraph(graph, os, options);
  return os.str();
}

} // namespace gemma
