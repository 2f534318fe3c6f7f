/// \file
/// plan-kv-cache: gives every layer's keys and values a fixed region of the KV-cache area, sized by
/// the compile-time bounds (--max-batch, --max-seq-len), and turns the concatenation that grows
/// the cache into an in-place append:
///
///   %k = concat(%past.0.key, %new, axis = 2)   ->   %k = kv_cache_append(%past.0.key, %new)
///        {cache_offset, cache_bytes, max_batch, max_seq_len}
///
/// for each concat on the sequence axis (2) of a graph input [batch,K,past,H] whose result feeds
/// attention or is a graph output (the `present` cache). Region i holds
/// [max_batch,K,max_seq_len,H] in the cache's element type, at the running offset, 64-byte
/// aligned: the layout attention reads, rows of a sequence contiguous. The graph records the
/// area's size as `kv_cache_bytes` with the bounds it was planned for.
///
/// A sliding layer's cache, read only by causal attention with a window w < max_seq_len (and
/// returned as a present), keeps only its last w rows: its region is [max_batch,K,w,H], a ring
/// buffer (row t at t mod w) {ring_rows = w}, and the attention reading it is marked so too
/// (the kernel reads the past from the ring and the new rows from where they were computed).

#include "ir/Builder.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"
#include "runtime/gemma_model.h"

#include <map>
#include <set>

namespace gemma {

namespace {

using namespace pattern;

constexpr int64_t kAlignment = GEMMA_BUFFER_ALIGNMENT;
// Sizes stay far inside int64 (as plan-memory's bound): 2^50 bytes, a petabyte.
constexpr int64_t kMaxBytes = int64_t(1) << 50;

// The KV-cache area's size so far plus one region, refused past kMaxBytes (crafted IR with a
// negative or huge cache_bytes made it wrap, to 0).
int64_t checkedSum(const Op& op, int64_t offset, int64_t bytes) {
  int64_t sum = 0;
  if (bytes < 0 || __builtin_add_overflow(offset, bytes, &sum) || sum > kMaxBytes)
    throw UserError(op.loc, "cannot plan the KV cache: its regions add up past 2^50 bytes");
  return sum;
}

class PlanKVCache : public Pass {
  // The ring's rows when every reader of a cache (`otherUses` counts the ops reading it) is a
  // causal attention with a key mask and one window w shorter than the context; else 0.
  int64_t ringRowsFor(const std::vector<Op*>& attentions, int otherUses) const {
    if (attentions.empty() || static_cast<int>(attentions.size()) != otherUses)
      return 0;
    int64_t window = 0;
    for (const Op* attention : attentions) {
      const bool* causal = attention->attr<bool>("causal");
      const int64_t* w = attention->attr<int64_t>("window");
      if (!causal || !*causal || attention->operands.size() != 4 || !w || *w <= 0 ||
          (window && *w != window))
        return 0;
      window = *w;
    }
    return window < options_.maxSeqLen ? window : 0;
  }

public:
  std::string_view name() const override { return "plan-kv-cache"; }

  bool run(Graph& graph) override {
    std::set<const Value*> consumed; // values read by attention as k or v, or returned
    std::map<const Value*, std::vector<Op*>> readers; // the attention ops reading a value
    for (const auto& op : graph.ops)
      if (op->kind == OpKind::Attention) {
        consumed.insert({op->operands[1], op->operands[2]});
        for (int i : {1, 2})
          readers[op->operands[i]].push_back(op.get());
      }
    for (const Graph::Output& output : graph.outputs)
      consumed.insert(output.value);
    std::map<const Value*, int> uses = graph.useCounts();
    std::map<const Value*, int> outputUses;
    for (const Graph::Output& output : graph.outputs)
      ++outputUses[output.value];

    int64_t offset = 0;
    bool changed = false;
    for (auto it = graph.ops.begin(); it != graph.ops.end(); ++it) {
      Op& op = **it;
      if (op.kind == OpKind::KVCacheAppend) {
        offset = checkedSum(op, offset, *op.attr<int64_t>("cache_bytes")); // keep its region
        continue;
      }
      const int64_t* axis = op.attr<int64_t>("axis");
      if (op.kind != OpKind::Concat || op.operands.size() != 2 || !axis ||
          (*axis != 2 && *axis != -2) || !op.operands[0]->isGraphInput() ||
          op.operands[0]->type.rank() != 4 || !consumed.count(op.result()))
        continue;
      const TensorType& cache = op.operands[0]->type;
      if (!cache.dims[1].isStatic() || !cache.dims[3].isStatic())
        continue;
      std::vector<Op*>& attentions = readers[op.result()];
      int64_t ringRows = ringRowsFor(attentions, uses[op.result()] - outputUses[op.result()]);
      int64_t rows = ringRows > 0 ? ringRows : options_.maxSeqLen;
      int64_t bytes = 1;
      for (int64_t factor : {options_.maxBatch, cache.dims[1].staticValue(), rows,
                             cache.dims[3].staticValue(), elementSize(cache.elementType)})
        if (factor < 0 || __builtin_mul_overflow(bytes, factor, &bytes) || bytes > kMaxBytes)
          throw UserError(op.loc,
                          "cannot plan the KV cache for " + cache.str() + ": " +
                              "max batch x kv heads x max sequence x head dim is too large");
      bytes = (bytes + kAlignment - 1) / kAlignment * kAlignment;
      Builder b(graph);
      b.setInsertPoint(it);
      b.setLocation(op.loc);
      std::map<std::string, Attribute> attrs = {{"max_batch", options_.maxBatch},
                                                {"max_seq_len", options_.maxSeqLen},
                                                {"cache_offset", offset},
                                                {"cache_bytes", bytes}};
      if (ringRows > 0)
        attrs.emplace("ring_rows", ringRows);
      Value* append = b.tryCreate(OpKind::KVCacheAppend, {op.operands[0], op.operands[1]}, attrs);
      if (!append)
        continue; // not a cache this pass understands: leave the concat
      if (ringRows > 0)
        for (Op* attention : attentions)
          attention->attrs["ring_rows"] = ringRows;
      graph.replaceAllUsesWith(op.result(), append);
      offset = checkedSum(op, offset, bytes);
      changed = true;
    }
    if (changed) {
      removeDeadOps(graph);
      graph.attrs["kv_cache_bytes"] = offset;
      graph.attrs["max_batch"] = options_.maxBatch;
      graph.attrs["max_seq_len"] = options_.maxSeqLen;
    }
    return changed;
  }
};

} // namespace

std::unique_ptr<Pass> createPlanKVCachePass() {
  return std::make_unique<PlanKVCache>();
}

} // namespace gemma
