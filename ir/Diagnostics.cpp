#include "ir/Diagnostics.h"

#include "ir/RegularFile.h"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

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

std::string readFileOrThrow(const std::string& path) {
  // Text read whole (config.json, an index, IR): 1 GiB is far above any such file.
  std::string contents, why;
  if (!readRegularFile(path, uint64_t(1) << 30, contents, why))
    throw UserError(Location::named(path), why);
  return contents;
}

int runReportingErrors(const std::function<int()>& body) {
  try {
    int status = body();
    // What went to standard output must have been written (a full disk, /dev/full): else the
    // caller would take a partial output for the whole.
    std::cout.flush();
    if (!std::cout)
      throw UserError("<stdout>: cannot be written");
    return status;
  } catch (const UserError& error) {
    std::cerr << error.formatted() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "internal error: " << error.what() << "\n";
    return 2;
  }
}

void internalError(const char* file, int line, const std::string& message) {
  throw InternalError(std::string("internal error at ") + file + ":" + std::to_string(line) + ": " +
                      message);
}

} // namespace gemma
