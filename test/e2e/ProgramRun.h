// Running a compiled program as a child process, as the end-to-end tests do (they link neither
// sentencepiece nor the compiler), and reading what it prints or dumps.
#pragma once

#include <cstdint>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <string>
#include <sys/wait.h>
#include <vector>

namespace gemma {

struct Output {
  int status = -1;
  std::string text;
};

// Runs a shell command; its stdout (and stderr too when `withErrors`).
inline Output run(const std::string& command, bool withErrors = false) {
  Output output;
  FILE* pipe = popen((command + (withErrors ? " 2>&1" : "")).c_str(), "r");
  if (!pipe)
    return output;
  char buffer[4096];
  size_t n;
  while ((n = fread(buffer, 1, sizeof buffer, pipe)) > 0)
    output.text.append(buffer, n);
  int status = pclose(pipe);
  output.status = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return output;
}

inline std::string quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text)
    quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

inline std::string idList(const std::vector<int64_t>& ids) {
  std::string list;
  for (int64_t id : ids)
    list += (list.empty() ? "" : ",") + std::to_string(id);
  return list;
}

inline std::vector<int64_t> parseIds(const std::string& line) {
  std::vector<int64_t> ids;
  std::istringstream stream(line);
  int64_t id;
  while (stream >> id)
    ids.push_back(id);
  return ids;
}

inline std::vector<float> readFloats(const std::string& path) {
  std::ifstream file(path, std::ios::binary | std::ios::ate);
  std::vector<float> values(static_cast<size_t>(file.tellg()) / sizeof(float));
  file.seekg(0);
  file.read(reinterpret_cast<char*>(values.data()),
            static_cast<std::streamsize>(values.size() * sizeof(float)));
  return values;
}

} // namespace gemma
