/// \file
/// plan-memory: places every activation in one arena, by liveness, before code generation.
///
/// Algorithm:
///  1. Activations are the results of ops other than `weight`, `constant` (read-only data) and
///     `kv_cache_append` (in the KV-cache area, plan-kv-cache).
///  2. Each gets an upper bound on its bytes: symbolic dims are maximised over batch in
///     [1, --max-batch], seq in [1, --max-seq-len], past in [0, --max-seq-len - seq] (dims are
///     affine, so a vertex of that region attains the maximum). Any other symbol or a '?' dim
///     cannot be bounded: a located error.
///  3. Views share their operand's buffer (reshape, squeeze, unsqueeze), and an op with the
///     InPlace trait (Ops.def: most elementwise ops) writes over an operand of its shape and
///     element size that nothing reads later.
///  4. A buffer lives from its first write to its last read (graph outputs: to the end); the
///     buffers are placed with planArena (MemoryPlanner.h), GEMMA_BUFFER_ALIGNMENT (64) bytes
///     aligned (runtime/gemma_model.h).
///  5. Each op records `arena_offset` and `arena_bytes`; the graph records `arena_bytes` (the
///     peak), `arena_lower_bound` (most bytes live at once), `weights_bytes`, and the bounds.

#include "ir/ElementCodec.h"
#include "passes/MemoryPlanner.h"
#include "passes/Pass.h"
#include "runtime/gemma_model.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>

namespace gemma {

namespace {

// The largest value `dim` takes for any batch, seq and past within the bounds.
std::optional<int64_t> dimUpperBound(const Dim& dim, const PassOptions& options) {
  if (dim.isUnknown())
    return std::nullopt;
  for (const auto& [name, coefficient] : dim.terms())
    if (name != "batch" && name != "seq" && name != "past")
      return std::nullopt;
  int64_t S = options.maxSeqLen;
  std::optional<int64_t> best;
  for (int64_t batch : {int64_t(1), options.maxBatch})
    for (auto [past, seq] : {std::pair<int64_t, int64_t>{0, 1}, {0, S}, {S - 1, 1}}) {
      auto value = dim.evaluate({{"batch", batch}, {"seq", seq}, {"past", past}});
      if (value)
        best = std::max(best.value_or(0), *value);
    }
  return best;
}

int64_t bytesUpperBound(const Op& op, const TensorType& type, const PassOptions& options) {
  int64_t bytes = elementSize(type.elementType);
  for (const Dim& dim : type.dims) {
    auto bound = dimUpperBound(dim, options);
    if (!bound)
      throw UserError(op.loc, "cannot plan memory for " + type.str() + ": dim " + dim.str() +
                                  " is not bounded by batch, seq and past");
    if (__builtin_mul_overflow(bytes, std::max<int64_t>(*bound, 0), &bytes) ||
        bytes > (int64_t(1) << 50))
      throw UserError(op.loc, "cannot plan memory for " + type.str() + ": too large");
  }
  return bytes;
}

// Where an op's result lives: every kind's placement rule (a new op kind must get one).
enum class Placement {
  ReadOnlyData, // weights file or constant data: not in the arena
  KVCache,      // a cache region that plan-kv-cache placed
  View,         // its first operand's buffer, seen with other dims
  Arena,        // a buffer of its own, or an operand's it overwrites (OpTrait::InPlace)
};

Placement placementOf(OpKind kind) {
  switch (kind) {
  case OpKind::Constant:
  case OpKind::Weight:
    return Placement::ReadOnlyData;
  case OpKind::KVCacheAppend:
    return Placement::KVCache;
  case OpKind::Reshape:
  case OpKind::Squeeze:
  case OpKind::Unsqueeze:
    return Placement::View;
  case OpKind::Add:
  case OpKind::Sub:
  case OpKind::Mul:
  case OpKind::Div:
  case OpKind::Pow:
  case OpKind::Max:
  case OpKind::Min:
  case OpKind::Sqrt:
  case OpKind::Rsqrt:
  case OpKind::Reciprocal:
  case OpKind::Neg:
  case OpKind::Exp:
  case OpKind::Tanh:
  case OpKind::Erf:
  case OpKind::Cos:
  case OpKind::Sin:
  case OpKind::Gelu:
  case OpKind::Cast:
  case OpKind::Equal:
  case OpKind::Less:
  case OpKind::LessEqual:
  case OpKind::Greater:
  case OpKind::GreaterEqual:
  case OpKind::And:
  case OpKind::Or:
  case OpKind::Xor:
  case OpKind::Not:
  case OpKind::IsNan:
  case OpKind::Where:
  case OpKind::MatMul:
  case OpKind::ReduceMean:
  case OpKind::ReduceSum:
  case OpKind::ReduceMax:
  case OpKind::Softmax:
  case OpKind::CumSum:
  case OpKind::ArgMax:
  case OpKind::Gather:
  case OpKind::Transpose:
  case OpKind::Concat:
  case OpKind::Slice:
  case OpKind::Expand:
  case OpKind::Range:
  case OpKind::Shape:
  case OpKind::RmsNorm:
  case OpKind::Rotary:
  case OpKind::Attention:
  case OpKind::GatedMlp:
    return Placement::Arena;
  }
  throw InternalError("op kind out of range");
}

class PlanMemory : public Pass {
public:
  std::string_view name() const override { return "plan-memory"; }

  bool run(Graph& graph) override {
    // Index the ops and the last read of every value (outputs are read at the end).
    std::vector<Op*> ops;
    for (auto& op : graph.ops)
      ops.push_back(op.get());
    int end = static_cast<int>(ops.size());
    std::map<const Value*, int> lastRead;
    for (int i = 0; i < end; ++i)
      for (const Value* operand : ops[i]->operands)
        lastRead[operand] = i;
    // A ring cache's new rows (plan-kv-cache) are read by the attention that reads the ring, and
    // written into it after that: they live as long as the ring's last reader.
    for (int i = 0; i < end; ++i)
      for (const Value* operand : ops[i]->operands)
        if (const Op* append = operand->definingOp;
            append && append->kind == OpKind::KVCacheAppend && append->attr<int64_t>("ring_rows"))
          lastRead[append->operands[1]] = std::max(lastRead[append->operands[1]], i);
    for (const Graph::Output& output : graph.outputs)
      lastRead[output.value] = end;

    // Buffers: union-find over the arena values, views and in-place results joining their operand.
    std::map<const Value*, int> bufferOf;
    std::vector<int> parent;
    std::vector<BufferRequest> buffers;
    auto find = [&](int b) {
      while (parent[b] != b)
        b = parent[b] = parent[parent[b]];
      return b;
    };
    int64_t weightsBytes = 0;
    std::set<std::string> weightNames; // a tensor read in two layouts is stored once
    for (int i = 0; i < end; ++i) {
      Op& op = *ops[i];
      if (op.kind == OpKind::Weight && weightNames.insert(*op.attr<std::string>("name")).second)
        weightsBytes += codec::storageBytes(op.result()->type.elementType,
                                            *op.result()->type.staticNumElements());
      Placement placement = placementOf(op.kind);
      if (placement == Placement::ReadOnlyData || placement == Placement::KVCache)
        continue;
      const Value* result = op.result();
      int64_t bytes = bytesUpperBound(op, result->type, options_);
      int last = lastRead.count(result) ? lastRead[result] : i;
      int joined = -1;
      for (const Value* operand : op.operands) {
        auto it = bufferOf.find(operand);
        if (it == bufferOf.end())
          continue;
        int buffer = find(it->second);
        bool view = placement == Placement::View && operand == op.operands[0];
        bool inPlace =
            hasTrait(op.kind, OpTrait::InPlace) && buffers[buffer].last == i &&
            operand->type.dims == result->type.dims &&
            elementSize(operand->type.elementType) == elementSize(result->type.elementType);
        if (view || inPlace) {
          joined = buffer;
          break;
        }
      }
      if (joined < 0) {
        joined = static_cast<int>(buffers.size());
        parent.push_back(joined);
        buffers.push_back({bytes, i, last});
      }
      buffers[joined].bytes = std::max(buffers[joined].bytes, bytes);
      buffers[joined].last = std::max(buffers[joined].last, last);
      bufferOf[result] = joined;
    }

    // Plan the distinct buffers and annotate.
    std::vector<int> roots;
    std::map<int, size_t> requestOf;
    std::vector<BufferRequest> requests;
    for (size_t b = 0; b < buffers.size(); ++b)
      if (find(static_cast<int>(b)) == static_cast<int>(b)) {
        requestOf[static_cast<int>(b)] = requests.size();
        requests.push_back(buffers[b]);
      }
    constexpr int64_t kAlignment = GEMMA_BUFFER_ALIGNMENT;
    // Each buffer is bounded (2^50 bytes) but their sum need not be: every offset, peak and live
    // total the planner computes is at most this sum, so checking it keeps them all in int64.
    int64_t total = 0;
    for (const BufferRequest& request : requests)
      if (__builtin_add_overflow(total, request.bytes + kAlignment, &total) ||
          total > (int64_t(1) << 60))
        throw UserError("cannot plan memory: the activations add up past 2^60 bytes");
    ArenaPlan plan = planArena(requests, kAlignment);
    for (Op* op : ops) {
      auto it = bufferOf.find(op->result());
      if (it == bufferOf.end())
        continue;
      size_t request = requestOf.at(find(it->second));
      op->attrs["arena_offset"] = plan.offsets[request];
      op->attrs["arena_bytes"] =
          (requests[request].bytes + kAlignment - 1) / kAlignment * kAlignment;
    }
    graph.attrs["arena_bytes"] = plan.peak;
    graph.attrs["arena_lower_bound"] = plan.lowerBound;
    graph.attrs["arena_buffers"] = static_cast<int64_t>(requests.size());
    graph.attrs["weights_bytes"] = weightsBytes;
    graph.attrs["max_batch"] = options_.maxBatch;
    graph.attrs["max_seq_len"] = options_.maxSeqLen;
    return true;
  }
};

} // namespace

std::unique_ptr<Pass> createPlanMemoryPass() {
  return std::make_unique<PlanMemory>();
}

} // namespace gemma
