// Locations and the two kinds of error: a user's mistake (bad input, reported with where and what)
// and a compiler bug (an internal invariant that failed). Tools print the first and exit 1.
#pragma once

#include <functional>
#include <stdexcept>
#include <string>

namespace gemma {

// Where an op came from. `origin` names the model part it was imported from (an ONNX node name or a
// Hugging Face module path); file/line/col is its place in a text IR file. Either may be empty.
struct Location {
  std::string origin;
  std::string file;
  int line = 0;
  int col = 0;

  static Location inFile(std::string file, int line, int col) {
    return Location{"", std::move(file), line, col};
  }
  static Location named(std::string origin) { return Location{std::move(origin), "", 0, 0}; }
  bool hasFilePosition() const { return line > 0; }
  bool operator==(const Location&) const = default;
};

// "file:line:col: error: origin: message", leaving out what the location does not have.
std::string formatDiagnostic(const Location& loc, const std::string& severity,
                             const std::string& message);

// A user's mistake: malformed input, an unsupported model, a bad flag.
class UserError : public std::runtime_error {
public:
  UserError(Location loc, const std::string& message)
      : std::runtime_error(message), loc_(std::move(loc)) {}
  explicit UserError(const std::string& message) : std::runtime_error(message) {}
  const Location& location() const { return loc_; }
  std::string formatted() const { return formatDiagnostic(loc_, "error", what()); }

private:
  Location loc_;
};

// A broken invariant inside the compiler; never the user's fault.
class InternalError : public std::logic_error {
public:
  using std::logic_error::logic_error;
};

[[noreturn]] void internalError(const char* file, int line, const std::string& message);

// The whole of a file's bytes; a UserError naming the file if it cannot be read.
std::string readFileOrThrow(const std::string& path);

// Runs a tool's body: a UserError is printed as a diagnostic and gives exit code 1, anything else
// is an internal error (exit code 2); otherwise the body's own exit code.
// (Standard output is flushed and checked when the body succeeds: a write error is an error.)
int runReportingErrors(const std::function<int()>& body);

} // namespace gemma

#define GEMMA_INTERNAL_ASSERT(cond, message)                                                       \
  do {                                                                                             \
    if (!(cond))                                                                                   \
      ::gemma::internalError(__FILE__, __LINE__, std::string(#cond ": ") + (message));             \
  } while (0)
