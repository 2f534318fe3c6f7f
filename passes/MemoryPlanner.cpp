#include "passes/MemoryPlanner.h"

#include "ir/Diagnostics.h"

#include <algorithm>
#include <numeric>
#include <optional>

namespace gemma {

namespace {

bool conflict(const BufferRequest& a, const BufferRequest& b) {
  return a.first <= b.last && b.first <= a.last;
}

// Occupied [begin, end) ranges of the placed buffers that conflict with `index`, sorted and
// merged where they touch or overlap.
std::vector<std::pair<int64_t, int64_t>> busyRanges(const std::vector<BufferRequest>& buffers,
                                                    const std::vector<int64_t>& sizes,
                                                    const std::vector<std::optional<int64_t>>& at,
                                                    size_t index) {
  std::vector<std::pair<int64_t, int64_t>> busy;
  for (size_t j = 0; j < buffers.size(); ++j)
    if (j != index && at[j] && conflict(buffers[index], buffers[j]))
      busy.emplace_back(*at[j], *at[j] + sizes[j]);
  std::sort(busy.begin(), busy.end());
  std::vector<std::pair<int64_t, int64_t>> merged;
  for (const auto& range : busy) {
    if (!merged.empty() && range.first <= merged.back().second)
      merged.back().second = std::max(merged.back().second, range.second);
    else
      merged.push_back(range);
  }
  return merged;
}

// The lowest offset where `size` bytes fit between the busy ranges.
int64_t lowestFit(const std::vector<std::pair<int64_t, int64_t>>& busy, int64_t size) {
  int64_t candidate = 0;
  for (const auto& [begin, end] : busy) {
    if (candidate + size <= begin)
      return candidate;
    candidate = std::max(candidate, end);
  }
  return candidate;
}

// The highest offset <= limit - size where `size` bytes fit, if any.
std::optional<int64_t> highestFit(const std::vector<std::pair<int64_t, int64_t>>& busy,
                                  int64_t size, int64_t limit) {
  int64_t top = limit;
  for (auto it = busy.rbegin(); it != busy.rend(); ++it) {
    int64_t candidate = std::min(top, limit) - size;
    if (candidate >= it->second && candidate >= 0)
      return candidate;
    top = std::min(top, it->first);
  }
  return top - size >= 0 ? std::optional<int64_t>(top - size) : std::nullopt;
}

using Placement = std::vector<std::optional<int64_t>>;

Placement placeInOrder(const std::vector<BufferRequest>& buffers, const std::vector<int64_t>& sizes,
                       const std::vector<size_t>& order) {
  Placement at(buffers.size());
  for (size_t index : order)
    at[index] = lowestFit(busyRanges(buffers, sizes, at, index), sizes[index]);
  return at;
}

// In order of start, buffers alternate between the lowest and the highest free place under
// `limit`; fails (empty) if one does not fit.
Placement placeTwoEnded(const std::vector<BufferRequest>& buffers,
                        const std::vector<int64_t>& sizes, const std::vector<size_t>& byStart,
                        int64_t limit) {
  Placement at(buffers.size());
  bool fromTop = false;
  for (size_t index : byStart) {
    auto busy = busyRanges(buffers, sizes, at, index);
    std::optional<int64_t> offset;
    if (fromTop)
      offset = highestFit(busy, sizes[index], limit);
    else if (int64_t low = lowestFit(busy, sizes[index]); low + sizes[index] <= limit)
      offset = low;
    if (!offset)
      return {};
    at[index] = offset;
    fromTop = !fromTop;
  }
  return at;
}

int64_t peakOf(const Placement& at, const std::vector<int64_t>& sizes) {
  int64_t peak = 0;
  for (size_t i = 0; i < at.size(); ++i)
    peak = std::max(peak, *at[i] + sizes[i]);
  return peak;
}

} // namespace

ArenaPlan planArena(const std::vector<BufferRequest>& buffers, int64_t alignment) {
  GEMMA_INTERNAL_ASSERT(alignment > 0, "alignment must be positive");
  std::vector<int64_t> sizes;
  for (const BufferRequest& b : buffers) {
    GEMMA_INTERNAL_ASSERT(b.bytes >= 0 && b.first <= b.last, "malformed buffer request");
    sizes.push_back((b.bytes + alignment - 1) / alignment * alignment);
  }
  ArenaPlan plan;
  // The lower bound: the most bytes live at any one step.
  std::vector<int> steps;
  for (const BufferRequest& b : buffers)
    steps.push_back(b.first);
  for (int step : steps) {
    int64_t live = 0;
    for (size_t i = 0; i < buffers.size(); ++i)
      if (buffers[i].first <= step && step <= buffers[i].last)
        live += sizes[i];
    plan.lowerBound = std::max(plan.lowerBound, live);
  }
  if (buffers.empty())
    return plan;

  std::vector<size_t> bySize(buffers.size()), byStart(buffers.size());
  std::iota(bySize.begin(), bySize.end(), 0);
  std::iota(byStart.begin(), byStart.end(), 0);
  std::stable_sort(bySize.begin(), bySize.end(),
                   [&](size_t a, size_t b) { return sizes[a] > sizes[b]; });
  std::stable_sort(byStart.begin(), byStart.end(),
                   [&](size_t a, size_t b) { return buffers[a].first < buffers[b].first; });

  std::vector<std::pair<std::string, Placement>> candidates = {
      {"largest first", placeInOrder(buffers, sizes, bySize)},
      {"first fit by start", placeInOrder(buffers, sizes, byStart)}};
  if (Placement twoEnded = placeTwoEnded(buffers, sizes, byStart, plan.lowerBound);
      !twoEnded.empty())
    candidates.emplace_back("two-ended", twoEnded);
  const auto& best =
      *std::min_element(candidates.begin(), candidates.end(), [&](const auto& a, const auto& b) {
        return peakOf(a.second, sizes) < peakOf(b.second, sizes);
      });
  plan.strategy = best.first;
  for (const auto& offset : best.second)
    plan.offsets.push_back(*offset);
  plan.peak = peakOf(best.second, sizes);
  return plan;
}

} // namespace gemma
