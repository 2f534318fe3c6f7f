// Placement of buffers with known lifetimes in one arena: the core of plan-memory, apart from the
// IR so its properties can be tested on any lifetimes.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace gemma {

// A buffer of `bytes`, live from the step that writes it to the last step that reads it
// (inclusive). Two buffers conflict when their live ranges share a step.
struct BufferRequest {
  int64_t bytes;
  int first;
  int last;
};

struct ArenaPlan {
  std::vector<int64_t> offsets; // one per request, multiples of the alignment
  int64_t peak = 0;             // arena size: the highest offset + size
  int64_t lowerBound = 0;       // the most bytes live at one step: no placement can do better
  std::string strategy;         // which heuristic gave the plan
};

// Places the buffers so that no two conflicting buffers overlap, sizes rounded up to `alignment`.
// Tries three heuristics and keeps the smallest peak: largest first, first fit in order of
// start, and alternating bottom/top within the lower bound (optimal on chains, where each buffer
// meets only its neighbours: the peak is then the largest pair of neighbours, the lower bound).
ArenaPlan planArena(const std::vector<BufferRequest>& buffers, int64_t alignment = 64);

} // namespace gemma
