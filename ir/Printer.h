// The one generic text syntax of the IR:
//
//   graph @name(%input: f32[batch,seq,64], ...) [attributes {name = value, ...}] {
//     %0 = mnemonic(%input, ...) {attr = value, ...} : f32[batch,seq,64] loc("origin")
//     return %0 as "output_name", ...
//   }
//
// Graph inputs print by name, op results are numbered in order. Attributes print sorted by name:
// integers, floats (shortest round-trip form, always with '.', 'e', inf or nan), true/false,
// "strings", [lists]. Locations print only when asked for: loc("origin") where the op has an
// origin, else loc("file":line:col), else loc(unknown).
#pragma once

#include "ir/IR.h"

#include <ostream>
#include <string>

namespace gemma {

struct PrintOptions {
  bool printLocations = false;
};

void printGraph(const Graph& graph, std::ostream& os, const PrintOptions& options = {});
std::string printGraph(const Graph& graph, const PrintOptions& options = {});

std::string formatAttribute(const Attribute& attribute);
std::string formatAttributes(const std::map<std::string, Attribute>& attrs); // {a = 1, b = 2.0}
std::string formatFloat(double value);
std::string quoteString(const std::string& text);

} // namespace gemma
