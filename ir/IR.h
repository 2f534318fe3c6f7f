// The IR: a Graph of Ops in SSA form over tensor Values.
//
// General notes on the semantics of the IR
// ----------------------------------------
// - A Graph has named, typed inputs, a list of ops in execution order, and named outputs. Every
//   value is defined once (a graph input or an op result) and used only after its definition.
// - Types are tensors: an element type and a shape (Types.h). Dims are static, symbolic (affine in
//   named symbols such as `batch`, `seq`, `past`) or unknown `?`. Symbols are bound by the shapes
//   of the graph inputs when the graph runs.
// - Elementwise binary ops, comparisons, logic and `where` broadcast their operands as numpy does;
//   operands share one element type (except `where`'s bool condition). Comparisons give bool.
// - `pow` with float operands; `gelu {approximate="tanh"}` is
// 0.5x(1+tanh(0.7978845608(x+0.044715x^3)))
//   and `gelu {approximate="none"}` is 0.5x(1+erf(x/sqrt 2)).
// - Float ops round their result to the result's element type (f32, bf16 round-to-nearest-even,
//   f16); integer ops wrap to their width. `cast` converts to the result's element type (float to
//   integer truncates toward zero; anything to bool is `!= 0`).
// - `matmul` is numpy matmul for rank >= 2: [..., M, K] x [..., K, N] -> [..., M, N], batch dims
//   broadcast.
// - Axes attributes may be negative (counted from the end). `reduce_*` keep reduced dims as 1 when
//   `keepdims`. `softmax` is over one axis. `cumsum` is inclusive. `argmax` gives the first
//   maximum.
// - `gather(data, indices) {axis}` is ONNX Gather: result dims are data[:axis] ++ indices ++
//   data[axis+1:]; negative indices count from the end.
// - `slice {starts, ends, axes, steps}` is ONNX Slice with clamping; `transpose {perm}` permutes
//   dims; `concat {axis}` joins; `squeeze`/`unsqueeze {axes}` remove/insert size-1 dims.
// - `reshape` and `expand` take their target shape from the result type, or from an optional second
//   operand (an i64 vector; reshape: 0 keeps the input dim, -1 is inferred).
// - `range(start, limit, delta)` takes three scalars and gives ceil((limit-start)/delta) elements.
// - `shape(x)` is the i64 vector of x's dims.
// - `constant {value}` holds a small literal (ints or floats, one per element, or one to splat);
//   `weight {name}` reads a named tensor of the weights file: tensor data is never in the IR.
//
// Fused ops (made by the fusion passes). T is the result's element type; "in f32" means rounded to
// f32 after each step, "round T" rounded to T; sums accumulate exactly before one rounding.
// - `rms_norm(x, w) {eps, unit_offset}` over x's last axis, in f32: s = x^2, m = mean(s),
//   r = rsqrt(m + eps), n = x * r, y = n * (unit_offset ? 1 + w : w); result round T.
// - `rotary(x, positions) {theta, head_dim[, factor]}`: x [batch,heads,seq,H], positions
//   [batch,seq]; inv_freq = rotaryInverseFrequencies(theta, H, factor) (linear scaling), f =
//   positions * inv_freq (f32), cos/sin = round T of f32 cos/sin(concat(f, f)); result round T of
//   round T(x * cos) + round T(rotate_half(x) * sin), rotate_half(x) = concat(-x[H/2:], x[:H/2]).
//   `rotary(x, cos, sin) {head_dim}` takes the tables (broadcast to x) instead.
// - `matmul {softcap = c}` (fuse-softcap's): the matmul's result r, then round T(c * round
//   T(tanh(round T(r / c)))), as div, tanh and mul by the scalar c compute it.
// - `attention(q, k, v[, bias]) {num_heads N, num_kv_heads K, head_dim H, scale, softcap, window}`:
//   q [batch,N,seq,H], k and v [batch,K,total,H]; query head n reads kv head n / (N/K). Scores
//   round T(q.k), then round T(f32(scores * scale)); with softcap c > 0, round T(c * tanh(s / c));
//   plus bias (broadcast to [batch,N,seq,total]) round T; with window w > 0, query i (at absolute
//   index total - seq + i) sees keys j with (total - seq + i) - j < w only; softmax over keys in
//   f32, round T; result round T(probs . v), [batch,N,seq,H].
//   `attention(q, k, v[, key_mask]) {..., causal = true}` builds the mask itself instead of reading
//   a bias: query i sees key j iff j <= total - seq + i, the window above allows it, and
//   key_mask[b, j] != 0 (an i64 [batch,total], the attention_mask; all keys real without it).
//   A score it hides is T's lowest value, as transformers' additive mask makes it.
//   {ring_rows = R} (set by plan-kv-cache) says where k and v live, not what is computed: their
//   kv_cache_appends keep only the last R rows of the cache, in a ring buffer; R >= window.
// - `gated_mlp(x, gate, up, down) {activation}`: round T(round T(act(round T(x.gate)) *
//   round T(x.up)) . down), with gate, up [D,I] and down [I,D'] as matmul right operands;
//   act is gelu with approximate "tanh" (gelu_tanh) or "none" (gelu).
// - `kv_cache_append(past, new) {max_batch, max_seq_len, cache_offset, cache_bytes}`: the value of
//   concat(past, new, axis = 2) for past, new [batch,K,*,H], where past is a graph input holding a
//   layer's keys or values. The result lives in that cache's fixed region,
//   [max_batch,K,max_seq_len,H] at cache_offset in the KV-cache area: past is already there and
//   only `new` is written, at rows [past, past+seq) - decoding appends in place. batch > max_batch
//   or past+seq > max_seq_len is a run-time error (the prompt is longer than the compiled context).
//   With {ring_rows = R} (a sliding layer's cache, read only by attention with a window <= R) the
//   region is [max_batch,K,R,H]: row t of the cache lives at t mod R, the new rows are written
//   after the attention has read the old ones, and only the last R rows are kept.
#pragma once

#include "ir/Diagnostics.h"
#include "ir/Types.h"

#include <cstdint>
#include <list>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

namespace gemma {

enum class OpKind {
#define GEMMA_OP(kind, mnemonic, minOperands, maxOperands, results, category, traits) kind,
#include "ir/Ops.def"
};

// What kind of thing an op is (Ops.def's header says what each category holds).
enum class OpCategory { Leaf, Elementwise, View, Reduction, Movement, Fused, Cache };

// Facts about an op that passes and the backend query instead of keeping lists of kinds.
enum class OpTrait : uint32_t {
  InPlace = 1u << 0,     // may write its result over an operand of its shape nothing reads later
  Commutative = 1u << 1, // its two operands may be swapped
  NoKernel = 1u << 2,    // nothing to compute: data (leaves) or an operand's buffer (views)
};

struct OpInfo {
  OpKind kind;
  std::string_view mnemonic;
  int minOperands;
  int maxOperands; // -1: variadic
  int numResults;
  OpCategory category;
  uint32_t traits; // OpTrait bits

  bool has(OpTrait trait) const { return (traits & static_cast<uint32_t>(trait)) != 0; }
};

const OpInfo& opInfo(OpKind kind);
inline OpCategory opCategory(OpKind kind) {
  return opInfo(kind).category;
}
inline bool hasTrait(OpKind kind, OpTrait trait) {
  return opInfo(kind).has(trait);
}
std::optional<OpKind> lookupOp(std::string_view mnemonic);
const std::vector<OpInfo>& allOps();

// A named attribute's value. Attributes are typed; an empty list parses as Ints and is accepted
// where Floats are expected.
using Ints = std::vector<int64_t>;
using Floats = std::vector<double>;
using Attribute = std::variant<int64_t, double, bool, std::string, Ints, Floats>;

class Op;

class Value {
public:
  Value(TensorType type, Op* definingOp, int resultIndex, std::string name = "", Location loc = {})
      : type(std::move(type)), definingOp(definingOp), resultIndex(resultIndex),
        name(std::move(name)), loc(std::move(loc)) {}

  TensorType type;
  Op* definingOp;   // null for a graph input
  int resultIndex;  // index among the defining op's results, or among the graph inputs
  std::string name; // graph inputs only: their name in the signature
  Location loc;     // graph inputs only: where the signature declares them
  bool isGraphInput() const { return definingOp == nullptr; }
};

class Op {
public:
  Op(OpKind kind, std::vector<Value*> operands, const std::vector<TensorType>& resultTypes,
     std::map<std::string, Attribute> attrs, Location loc);

  const OpInfo& info() const { return opInfo(kind); }
  std::string_view mnemonic() const { return info().mnemonic; }
  Value* result(size_t i = 0) const { return results.at(i).get(); }
  bool hasAttr(const std::string& name) const { return attrs.count(name) != 0; }
  // Typed access for passes and the interpreter; the verifier has already checked kinds.
  template <typename T> const T* attr(const std::string& name) const {
    auto it = attrs.find(name);
    return it == attrs.end() ? nullptr : std::get_if<T>(&it->second);
  }

  OpKind kind;
  std::vector<Value*> operands;
  std::vector<std::unique_ptr<Value>> results;
  std::map<std::string, Attribute> attrs;
  Location loc;
};

class Graph {
public:
  struct Output {
    Value* value;
    std::string name; // may be empty
    Location loc;     // where the return names it
  };
  using OpList = std::list<std::unique_ptr<Op>>;

  explicit Graph(std::string name = "main") : name(std::move(name)) {}
  Graph(const Graph&) = delete;
  Graph& operator=(const Graph&) = delete;

  Value* addInput(std::string inputName, TensorType type, Location loc = {});
  // Appends at the end, or inserts before `position`.
  Op* append(OpKind kind, std::vector<Value*> operands, const std::vector<TensorType>& resultTypes,
             std::map<std::string, Attribute> attrs = {}, Location loc = {});
  Op* insertBefore(OpList::iterator position, std::unique_ptr<Op> op);
  void addOutput(Value* value, std::string outputName = "", Location loc = {}) {
    outputs.push_back({value, std::move(outputName), std::move(loc)});
  }

  // Every use of `from` (as an operand or graph output) becomes a use of `to`.
  void replaceAllUsesWith(Value* from, Value* to);
  // How many times each value is used (operands and outputs), computed on demand.
  std::map<const Value*, int> useCounts() const;
  // A deep copy (values remapped), for tests that compare a graph before and after a pass.
  std::unique_ptr<Graph> clone() const;
  // An integer whole-graph fact (`kv_cache_bytes`, ...), or `fallback` when the graph lacks it.
  int64_t integerAttr(const std::string& attrName, int64_t fallback = 0) const {
    auto it = attrs.find(attrName);
    const int64_t* value = it == attrs.end() ? nullptr : std::get_if<int64_t>(&it->second);
    return value ? *value : fallback;
  }

  std::string name;
  std::vector<std::unique_ptr<Value>> inputs;
  OpList ops;
  std::vector<Output> outputs;
  // Whole-graph facts a pass records (the memory plan's sizes and options), printed after the
  // signature as `attributes {...}`.
  std::map<std::string, Attribute> attrs;
};

// The type a weight op's tensor is stored with in the weights: its result type, un-permuted when
// the op reads it through `perm` (fold-weight-transposes).
TensorType storedWeightType(const Op& weight);

} // namespace gemma
