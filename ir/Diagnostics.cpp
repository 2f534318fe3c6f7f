#include "ir/Diagnostics.h"

namespace gemma {

std::string formatDiagnostic(const Location& loc, const std::string& severity,
                             const std::string& message) {
  std::string out;
  if (loc.hasFilePosition())
    out += (loc.file.empty() ? "<input>" : loc.file) + ":" + std::to_string(loc.line) + ":" +
           std::to_string(loc.col) + ": ";
  out += severity + ": ";
  if (!loc.origin.empty())
    out += loc.origin + ": ";
  return out + message;
}

void internalError(const char* file, int line, const std::string& message) {
  throw InternalError(std::string("internal error at ") + file + ":" + std::to_string(line) + ": " +
                      message);
}

} // namespace gemma
