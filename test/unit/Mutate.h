// The fuzz targets' mutation (header-only: the compiler's and the runtime's test executables
// share it): one to four edits of the seed, each a flipped byte, a deletion, a duplication or a
// truncation within its first `span` bytes (where the parsers' structure is).
#pragma once

#include <algorithm>
#include <random>
#include <string>

namespace gemma::testing {

inline std::string mutateBytes(std::string bytes, std::mt19937_64& rng, size_t span) {
  int edits = 1 + static_cast<int>(rng() % 4);
  for (int e = 0; e < edits && !bytes.empty(); ++e) {
    size_t at = rng() % std::min(bytes.size(), span);
    switch (rng() % 4) {
    case 0:
      bytes[at] = static_cast<char>(rng());
      break;
    case 1:
      bytes.erase(at, 1 + rng() % 8);
      break;
    case 2:
      bytes.insert(at, bytes.substr(at, 1 + rng() % 8));
      break;
    default:
      bytes.resize(at);
    }
  }
  return bytes;
}

} // namespace gemma::testing
