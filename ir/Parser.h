// Parses the generic text syntax (Printer.h) into a Graph. Every error is a UserError located at
// file:line:col. The parser checks syntax and SSA names (use before definition, redefinition);
// call verifyGraph() afterwards for the type and shape rules.
#pragma once

#include "ir/IR.h"

#include <memory>
#include <string>
#include <string_view>

namespace gemma {

std::unique_ptr<Graph> parseGraph(std::string_view text, const std::string& fileName = "<input>",
                                  int firstLine = 1);

} // namespace gemma
