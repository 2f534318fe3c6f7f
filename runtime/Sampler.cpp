// The next token, as transformers' generate() picks it: argmax when greedy; otherwise the logits
// divided by the temperature, cut to the top k (ties at the k-th kept), cut to the smallest set
// whose probability reaches top_p (the most likely always kept), and one draw from what is left.
#include "runtime/Session.h"

#include <algorithm>
#include <cmath>

namespace gemma::rt {

Sampler::Sampler(const gemma_generation_config& config) : config_(config), random_(config.seed) {}

int32_t Sampler::next(const float* logits, int64_t vocab) {
  if (!config_.do_sample || config_.temperature <= 0) {
    int64_t best = 0; // the first of equal maxima, as torch.argmax
    for (int64_t i = 1; i < vocab; ++i)
      if (logits[i] > logits[best])
        best = i;
    return static_cast<int32_t>(best);
  }
  // Scaled relative to the largest logit, in double: (l - max) / T is 0 for the best and falls
  // to -inf for the rest as T shrinks, so a tiny temperature approaches greedy instead of
  // overflowing to inf - inf = NaN weights.
  float largest = *std::max_element(logits, logits + vocab);
  candidates_.clear();
  for (int64_t i = 0; i < vocab; ++i)
    candidates_.emplace_back((double(logits[i]) - largest) / config_.temperature,
                             static_cast<int32_t>(i));
  std::sort(candidates_.begin(), candidates_.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  if (config_.top_k > 0 && config_.top_k < vocab) {
    double threshold = candidates_[static_cast<size_t>(config_.top_k) - 1].first;
    size_t keep = static_cast<size_t>(config_.top_k);
    while (keep < candidates_.size() && candidates_[keep].first >= threshold)
      ++keep;
    candidates_.resize(keep);
  }
  double top = candidates_.front().first, total = 0;
  std::vector<double> weights;
  for (const auto& candidate : candidates_)
    total += weights.emplace_back(std::exp(candidate.first - top));
  if (config_.top_p < 1) {
    double before = 0; // probability of the more likely candidates
    size_t keep = 0;
    while (keep < weights.size() && (keep == 0 || before < config_.top_p)) {
      before += weights[keep] / total;
      ++keep;
    }
    weights.resize(keep);
    total = 0;
    for (double w : weights)
      total += w;
  }
  double draw = std::uniform_real_distribution<double>(0, total)(random_);
  for (size_t i = 0; i < weights.size(); ++i) {
    draw -= weights[i];
    if (draw < 0)
      return candidates_[i].second;
  }
  return candidates_[weights.size() - 1].second;
}

} // namespace gemma::rt
