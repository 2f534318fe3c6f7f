// com.microsoft contrib ops, as onnxruntime-genai's model builder writes them: its fused norms,
// RotaryEmbedding and GroupQueryAttention, lowered onto the IR's fused ops (and, for the past
// cache, onto the concat that plan-kv-cache makes the in-place append).
#include "frontend/onnx/OnnxNode.h"

#include <cmath>

namespace gemma::onnx_import {

namespace {

// onnxruntime's fused norms: straight onto rms_norm, the weight as given (no 1 + w: the builder
// folds it in).
Value* rmsNormOf(NodeContext& n, Value* x, Value* scale) {
  int64_t axis = n.intAttr("axis", -1);
  if (axis != -1 && axis != x->type.rank() - 1)
    n.fail("not supported (a norm over axis " + std::to_string(axis) + ")");
  const onnx::AttributeProto* eps = n.attribute("epsilon");
  return n.b.create(OpKind::RmsNorm, {x, scale},
                    {{"eps", eps ? static_cast<double>(eps->f()) : 1e-5}, {"unit_offset", false}});
}

std::vector<Value*> simplifiedLayerNormalization(NodeContext& n) {
  if (n.node.output_size() > 1 && !n.node.output(1).empty())
    n.fail("not supported (the inv_std_var output)");
  return {rmsNormOf(n, n.required(0), n.required(1))};
}

// The norm of x + skip (+ bias), and that sum as output 3.
std::vector<Value*> skipSimplifiedLayerNormalization(NodeContext& n) {
  Value* sum = n.b.binary(OpKind::Add, n.required(0), n.required(1));
  if (Value* bias = n.operand(3))
    sum = n.b.binary(OpKind::Add, sum, bias);
  for (int i = 1; i <= 2; ++i)
    if (n.node.output_size() > i && !n.node.output(i).empty())
      n.fail("not supported (the mean and inv_std_var outputs)");
  return {rmsNormOf(n, sum, n.required(2)), nullptr, nullptr, sum};
}

// A half-split rotary table for the IR's rotary: the cache's rows [positions, H/2] at the
// positions [B,S], each half repeated: [B,1,S,H].
Value* rotaryTable(Builder& b, Value* cache, Value* positions) {
  Value* rows = b.create(OpKind::Gather, {cache, positions}, {{"axis", int64_t(0)}});
  Value* both = b.create(OpKind::Concat, {rows, rows}, {{"axis", int64_t(-1)}});
  return b.create(OpKind::Unsqueeze, {both}, {{"axes", Ints{1}}});
}

// com.microsoft GroupQueryAttention as onnxruntime-genai's builder writes it: q, k, v packed in
// one [B,S,(N+2K)*H] input (or three), the past cache [B,K,P,H], seqlens_k (keys per row, less
// one), cos/sin caches for its own half-split rotary. Lowered onto the IR's fused ops: rotary
// at positions P..P+S-1, the present cache as concat(past, new) (plan-kv-cache makes it the
// in-place append), and attention with a causal bias that also hides keys past seqlens_k.
// Outputs: [B,S,N*H], present key and value.
std::vector<Value*> groupQueryAttention(NodeContext& n) {
  int64_t numHeads = n.intAttr("num_heads", 0), kvHeads = n.intAttr("kv_num_heads", 0);
  if (numHeads <= 0 || kvHeads <= 0 || numHeads % kvHeads != 0)
    n.fail("num_heads must be a positive multiple of kv_num_heads");
  if (n.intAttr("local_window_size", -1) != -1 || n.intAttr("rotary_interleaved", 0) ||
      n.intAttr("smooth_softmax", 0) || n.intAttr("qk_output", 0))
    n.fail("not supported (local window, interleaved rotary, smooth softmax or qk output)");
  for (int i = 9; i < n.node.input_size(); ++i)
    if (!n.node.input(i).empty())
      n.fail("not supported (position_ids, attention_bias or head_sink inputs)");
  Value* query = n.required(0);
  Value* pastKey = n.operand(3);
  Value* pastValue = n.operand(4);
  Value* seqlens = n.required(5);
  if (query->type.rank() != 3 || !query->type.dims[2].isStatic())
    n.fail("needs query [batch, seq, hidden]");
  if (!pastKey || !pastValue || pastKey->type.rank() != 4 || !pastKey->type.dims[3].isStatic())
    n.fail("needs the past key and value [batch, kv_heads, past, head_dim]");
  const Dim& batch = query->type.dims[0];
  const Dim& seq = query->type.dims[1];
  int64_t headDim = pastKey->type.dims[3].staticValue();
  ElementType type = query->type.elementType;
  // [B,S,heads*H] -> [B,heads,S,H]
  auto headsOf = [&](Value* x, int64_t heads) {
    return n.b.transpose(
        n.b.create(OpKind::Reshape, {x}, {},
                   TensorType{type, {batch, seq, Dim::constant(heads), Dim::constant(headDim)}}),
        {0, 2, 1, 3});
  };
  Value *q, *k, *v;
  if (n.operand(1)) {
    q = headsOf(query, numHeads);
    k = headsOf(n.required(1), kvHeads);
    v = headsOf(n.required(2), kvHeads);
  } else {
    if (query->type.dims[2].staticValue() != (numHeads + 2 * kvHeads) * headDim)
      n.fail("the packed query is not (num_heads + 2 kv_num_heads) x head_dim wide");
    auto part = [&](int64_t start, int64_t heads) {
      return headsOf(n.b.create(OpKind::Slice, {query},
                                {{"starts", Ints{start * headDim}},
                                 {"ends", Ints{(start + heads) * headDim}},
                                 {"axes", Ints{2}},
                                 {"steps", Ints{1}}}),
                     heads);
    };
    q = part(0, numHeads);
    k = part(numHeads, kvHeads);
    v = part(numHeads + kvHeads, kvHeads);
  }
  // Positions of the new rows: past .. past+seq-1, as [1,S].
  const Dim& past = pastKey->type.dims[2];
  Value* pastLength = n.b.create(
      OpKind::Gather, {n.b.create(OpKind::Shape, {pastKey}), n.b.scalar(ElementType::I64, 2)},
      {{"axis", int64_t(0)}});
  Value* seqLength = n.b.create(
      OpKind::Gather, {n.b.create(OpKind::Shape, {query}), n.b.scalar(ElementType::I64, 1)},
      {{"axis", int64_t(0)}});
  Value* one = n.b.scalar(ElementType::I64, 1);
  Value* rows =
      n.b.create(OpKind::Range, {pastLength, n.b.binary(OpKind::Add, pastLength, seqLength), one},
                 {}, TensorType{ElementType::I64, {seq}});
  Value* positions = n.b.create(OpKind::Unsqueeze, {rows}, {{"axes", Ints{0}}});
  if (n.intAttr("do_rotary", 0)) {
    Value* cosCache = n.required(7);
    Value* sinCache = n.required(8);
    if (cosCache->type.rank() != 2 || cosCache->type.dims[1] != Dim::constant(headDim / 2))
      n.fail("needs cos and sin caches [positions, head_dim/2]");
    Value* cosTable = rotaryTable(n.b, cosCache, positions);
    Value* sinTable = rotaryTable(n.b, sinCache, positions);
    q = n.b.create(OpKind::Rotary, {q, cosTable, sinTable}, {{"head_dim", headDim}});
    k = n.b.create(OpKind::Rotary, {k, cosTable, sinTable}, {{"head_dim", headDim}});
  }
  Value* presentKey = n.b.create(OpKind::Concat, {pastKey, k}, {{"axis", int64_t(2)}});
  Value* presentValue = n.b.create(OpKind::Concat, {pastValue, v}, {{"axis", int64_t(2)}});
  // Key t is visible to row s when t <= past + s and t <= seqlens_k[b].
  Dim total = past + seq;
  Value* keys = n.b.create(
      OpKind::Range,
      {n.b.scalar(ElementType::I64, 0), n.b.binary(OpKind::Add, pastLength, seqLength), one}, {},
      TensorType{ElementType::I64, {total}});
  Value* causal = n.b.binary(OpKind::LessEqual, keys,
                             n.b.create(OpKind::Unsqueeze, {rows}, {{"axes", Ints{1}}}));
  Value* lastKey = n.b.create(
      OpKind::Reshape,
      {n.b.create(OpKind::Cast, {seqlens}, {}, TensorType{ElementType::I64, seqlens->type.dims})},
      {},
      TensorType{ElementType::I64, {batch, Dim::constant(1), Dim::constant(1), Dim::constant(1)}});
  Value* visible = n.b.binary(OpKind::And, causal, n.b.binary(OpKind::LessEqual, keys, lastKey));
  double lowest = lowestFinite(type);
  Value* bias =
      n.b.create(OpKind::Where, {visible, n.b.scalar(type, 0.0), n.b.scalar(type, lowest)});
  double scale = n.attribute("scale") ? n.attribute("scale")->f() : 0.0;
  std::map<std::string, Attribute> attrs = {
      {"num_heads", numHeads},
      {"num_kv_heads", kvHeads},
      {"head_dim", headDim},
      {"scale", scale != 0 ? scale : 1.0 / std::sqrt(static_cast<double>(headDim))}};
  if (const onnx::AttributeProto* softcap = n.attribute("softcap"); softcap && softcap->f() > 0)
    attrs.emplace("softcap", static_cast<double>(softcap->f()));
  Value* context = n.b.create(OpKind::Attention, {q, presentKey, presentValue, bias}, attrs);
  Value* output = n.b.create(OpKind::Reshape, {n.b.transpose(context, {0, 2, 1, 3})}, {},
                             TensorType{type, {batch, seq, Dim::constant(numHeads * headDim)}});
  return {output, presentKey, presentValue};
}

// com.microsoft RotaryEmbedding, half-split (not interleaved) over the whole head: the cos and
// sin rows of the positions, each half repeated, then the IR's rotary with given tables.
// x is [B,N,S,H], or [B,S,N*H] with num_heads (viewed as heads and back).
Value* rotaryEmbedding(NodeContext& n) {
  if (n.intAttr("interleaved", 0))
    n.fail("not supported (interleaved)");
  const onnx::AttributeProto* scale = n.attribute("scale");
  if ((scale && scale->f() != 1.0f) || n.intAttr("is_packed_batching", 0))
    n.fail("not supported (scale or packed batching)");
  Value* x = n.required(0);
  Value* positions = n.required(1);
  Value* cosCache = n.required(2);
  Value* sinCache = n.required(3);
  const Dim& half = cosCache->type.dims.back();
  if (cosCache->type.rank() != 2 || !half.isStatic())
    n.fail("needs cos and sin caches [positions, head_dim/2]");
  int64_t headDim = 2 * half.staticValue();
  int64_t rotaryDim = n.intAttr("rotary_embedding_dim", 0);
  if (rotaryDim != 0 && rotaryDim != headDim)
    n.fail("not supported (a rotary dim other than the head's)");
  if (positions->type.rank() != 2)
    n.fail("not supported (positions other than [batch, seq])");
  Value* heads = x;
  std::vector<Dim> flat = x->type.dims;
  if (x->type.rank() == 3) { // [B,S,N*H] -> [B,N,S,H]
    int64_t numHeads = n.intAttr("num_heads", 0);
    if (numHeads <= 0)
      n.fail("needs num_heads for a 3-D input");
    std::vector<Dim> split = {flat[0], flat[1], Dim::constant(numHeads), Dim::constant(headDim)};
    heads = n.b.transpose(
        n.b.create(OpKind::Reshape, {x}, {}, TensorType{x->type.elementType, split}), {0, 2, 1, 3});
  } else if (x->type.rank() != 4) {
    n.fail("needs x [batch, heads, seq, head_dim] or [batch, seq, hidden]");
  }
  Value* rotated = n.b.create(
      OpKind::Rotary,
      {heads, rotaryTable(n.b, cosCache, positions), rotaryTable(n.b, sinCache, positions)},
      {{"head_dim", headDim}});
  if (x->type.rank() == 3)
    rotated = n.b.create(OpKind::Reshape, {n.b.transpose(rotated, {0, 2, 1, 3})}, {},
                         TensorType{x->type.elementType, flat});
  return rotated;
}

} // namespace

void addContribOps(OpHandlerTable& table) {
  table.insert({
      {"SimplifiedLayerNormalization", {simplifiedLayerNormalization}},
      {"SkipSimplifiedLayerNormalization", {skipSimplifiedLayerNormalization}},
      {"RotaryEmbedding", {single<rotaryEmbedding>}},
      {"GroupQueryAttention", {groupQueryAttention}},
  });
}

void addContribOpsOfTheDefaultDomain(OpHandlerTable& table) {
  table.insert({"SimplifiedLayerNormalization", {simplifiedLayerNormalization}});
}

} // namespace gemma::onnx_import
