// attention (scores, softmax and the weighted values in one kernel) and softmax on its own.
#include "backend/halide/KernelBuilders.h"

#include <limits>

namespace gemma::kernels {

using namespace Halide;

// Attention for one (batch, head, query) row at a time: scores over the cache, softmax, and the
// weighted sum of values; query head n reads kv head n / (N/K).
//
// Over a ring buffer {ring_rows = R} (a sliding layer's cache, plan-kv-cache) the inputs are
// (q, k ring, v ring, key mask, k new, v new): the past's last R rows at t mod R, the new rows as
// computed (written to the ring only after this kernel). The keys read are the last R of the
// past and the new ones, t = past - R + j for j < R + seq: a decode step reads R + 1 keys, not
// the whole context.
Kernel attention(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "attention";
  ImageParam q = operandParam(op, 0, "q"), key = operandParam(op, 1, "k"),
             value = operandParam(op, 2, "v");
  k.inputs = {q, key, value};
  Var h("h"), t("t"), s("s"), n("n"), b("b");
  int groups = static_cast<int>(*op.attr<int64_t>("num_heads") / *op.attr<int64_t>("num_kv_heads"));
  const int64_t* ringAttr = op.attr<int64_t>("ring_rows");
  const int ringRows = ringAttr ? static_cast<int>(*ringAttr) : 0;
  const bool* causalAttr = op.attr<bool>("causal");
  bool causal = causalAttr && *causalAttr;
  Expr headDim = q.dim(0).extent(), seq = q.dim(1).extent();
  // total: the keys the queries are among (past + seq); keys: how many this kernel reads, and
  // index(t) the key the t-th of them is.
  Expr total, keys, first;
  Func keyRows("key_rows"), valueRows("value_rows"); // (h, t, kv head, b) of the keys read
  ImageParam keyMask;
  if (ringRows > 0) {
    keyMask = operandParam(op, 3, "key_mask");
    ImageParam newKeys = operandParam(*op.operands[1]->definingOp, 1, "k_new");
    ImageParam newValues = operandParam(*op.operands[2]->definingOp, 1, "v_new");
    k.inputs.insert(k.inputs.end(), {keyMask, newKeys, newValues});
    total = keyMask.dim(0).extent();
    Expr past = total - seq;
    keys = ringRows + seq;
    first = past - ringRows;
    Var hv("hv"), tv("tv"), kv("kv"), bv("bv");
    Expr at = first + tv; // may be negative: no such key (hidden below), reads clamped
    Expr fresh = clamp(at - past, 0, seq - 1), slot = clamp(at % ringRows, 0, ringRows - 1);
    keyRows(hv, tv, kv, bv) =
        select(at >= past, toF32(newKeys(hv, fresh, kv, bv)), toF32(key(hv, slot, kv, bv)));
    valueRows(hv, tv, kv, bv) =
        select(at >= past, toF32(newValues(hv, fresh, kv, bv)), toF32(value(hv, slot, kv, bv)));
  } else {
    total = key.dim(1).extent();
    keys = total;
    first = 0;
    Var hv("hv"), tv("tv"), kv("kv"), bv("bv");
    // Scores are computed in whole vectors past the last key (RoundUp below): reads clamp to it.
    keyRows(hv, tv, kv, bv) = toF32(key(hv, clamp(tv, 0, total - 1), kv, bv));
    valueRows(hv, tv, kv, bv) = toF32(value(hv, tv, kv, bv));
  }
  Expr at = first + t; // the key's index among all keys
  Expr tc = clamp(at, 0, total - 1);
  RDom rh(0, headDim);
  Func scores("scores");
  // The dot products in a Func of their own: an inline reduction under the window's select gets
  // its bounds from the select's condition in Halide 14, and writes out of them.
  Func dots("dots");
  dots(t, s, n, b) = 0.0f;
  dots(t, s, n, b) += toF32(q(rh, s, n, b)) * keyRows(rh, t, n / groups, b);
  Expr score = dots(t, s, n, b) * static_cast<float>(*op.attr<double>("scale"));
  const double* softcap = op.attr<double>("softcap");
  if (softcap && *softcap > 0)
    score = vectorTanh(score / static_cast<float>(*softcap)) * static_cast<float>(*softcap);
  // The lowest value of the result's type, as transformers' additive mask leaves a hidden score.
  float hidden = static_cast<float>(lowestFinite(op.result()->type.elementType));
  if (op.operands.size() == 4 && !causal) {
    ImageParam bias = operandParam(op, 3, "bias");
    k.inputs.push_back(bias);
    score += toF32(broadcastRead(bias, {tc, s, n, b}));
  }
  // Which keys a query may not see, in a Func of its own: a select on conditions over t would
  // give Halide 14 bounds for the dot products from them, one past what is computed.
  Expr query = total - seq + s; // the query's index among the keys
  Expr masked = Internal::const_false();
  const int64_t* window = op.attr<int64_t>("window");
  if (window && *window > 0)
    masked = query - at >= static_cast<int>(*window);
  if (causal) {
    masked = masked || at > query || at < 0;
    if (op.operands.size() == 4) {
      if (ringRows == 0) {
        keyMask = operandParam(op, 3, "key_mask");
        k.inputs.push_back(keyMask);
      }
      masked = masked || keyMask(tc, b) == cast<int64_t>(0);
    }
  }
  Func hiddenKey("hidden_key");
  hiddenKey(t, s, b) = cast<uint8_t>(masked);
  score = select(hiddenKey(t, s, b) != 0, hidden, score);
  scores(t, s, n, b) = score;
  RDom rt(0, keys, "rt");
  if (causal) {
    // Only the keys a query can see are scored: t in [from, query - first], the ones that exist
    // (at >= 0), not after the query, and inside its window. Halide 14 turns these predicates
    // into the reductions' loop bounds and the scores' bounds follow, so a first prompt of 512
    // tokens over a sliding layer's 512-row ring scores 256 keys a query on average, not 1024.
    // Within the range the masks above still hide padding.
    Expr from = -first;
    if (window && *window > 0)
      from = max(from, query - static_cast<int>(*window) + 1 - first);
    rt.where(rt.x >= from);
    rt.where(rt.x <= query - first);
  }
  Func rowMax("row_max"), weights("weights"), rowSum("row_sum"), weighted("weighted");
  rowMax(s, n, b) = Float(32).min(); // -inf, as a row masked everywhere by -inf leaves it
  rowMax(s, n, b) = max(rowMax(s, n, b), scores(rt, s, n, b));
  weights(t, s, n, b) = exp(scores(t, s, n, b) - rowMax(s, n, b));
  rowSum(s, n, b) = 0.0f;
  rowSum(s, n, b) += weights(rt, s, n, b);
  weighted(h, s, n, b) = 0.0f;
  weighted(h, s, n, b) += weights(rt, s, n, b) * valueRows(h, rt, n / groups, b);
  // A query that sees no key (left padding: every key up to it hidden) gets, as from
  // transformers' additive mask, equal weights on every key of the kernel's range: the values'
  // mean. Summed only for such a query (the predicate), so the range above stays the cost.
  Expr seesNoKey = rowMax(s, n, b) == hidden;
  RDom rall(0, keys, "rall");
  if (causal)
    rall.where(seesNoKey);
  Func allValues("all_values");
  allValues(h, s, n, b) = 0.0f;
  allValues(h, s, n, b) += valueRows(h, rall, n / groups, b);
  Expr attended = weighted(h, s, n, b) / rowSum(s, n, b);
  if (causal)
    attended = select(seesNoKey, allValues(h, s, n, b) / cast<float>(keys), attended);
  Func context("context");
  const bool* nanWeightsToZero = op.attr<bool>("nan_weights_to_zero");
  if (nanWeightsToZero && *nanWeightsToZero) {
    // The guard of torch's SDPA export: a row masked everywhere (its largest score -inf) has NaN
    // weights, which become 0. Tested on the bits: Halide's float math assumes no NaNs or infs.
    Expr maskedEverywhere = reinterpret<uint32_t>(rowMax(s, n, b)) == Expr(0xff800000u);
    context(h, s, n, b) = select(maskedEverywhere, 0.0f, attended);
  } else {
    context(h, s, n, b) = attended;
  }
  k.output = Func("out");
  k.output(h, s, n, b) = cast(halideType(op.result()->type.elementType), context(h, s, n, b));
  int lanes = vectorLanes(target);
  k.output.vectorize(h, lanes, TailStrategy::GuardWithIf).parallel(b).parallel(n);
  // Each row of scores in whole vectors: RoundUp pads the row buffers (the key reads clamp).
  for (Func f : {scores, weights})
    f.compute_at(k.output, s).vectorize(t, lanes, TailStrategy::RoundUp);
  hiddenKey.compute_at(k.output, s).vectorize(t, lanes, TailStrategy::RoundUp);
  // The query-key dot products along the head dim, which is contiguous in both (vectorized across
  // keys, each lane would gather a key's element a head dim apart): lane partial sums for
  // kKeyTile keys at a time, in registers, summed across the lanes at the end.
  constexpr int kKeyTile = 4;
  RVar outer("h_outer"), inner("h_inner");
  Var lane("lane"), tile("key_tile"), key_("key");
  dots.update().split(rh.x, outer, inner, lanes, TailStrategy::GuardWithIf);
  Func partial = dots.update().rfactor(inner, lane);
  dots.compute_at(k.output, s);
  partial.compute_at(k.output, s).reorder_storage(lane, t, s, n, b).vectorize(lane);
  partial.update()
      .split(t, tile, key_, kKeyTile, TailStrategy::GuardWithIf)
      .reorder(lane, key_, outer, tile)
      .vectorize(lane)
      .unroll(key_);
  for (Func f : {rowMax, rowSum})
    f.compute_at(k.output, s);
  weighted.compute_at(k.output, s).vectorize(h, lanes, TailStrategy::GuardWithIf);
  weighted.update().vectorize(h, lanes, TailStrategy::GuardWithIf);
  allValues.compute_at(k.output, s).vectorize(h, lanes, TailStrategy::GuardWithIf);
  allValues.update().vectorize(h, lanes, TailStrategy::GuardWithIf);
  return k;
}

// softmax over the innermost axis.
Kernel softmax(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "softmax";
  ImageParam x = operandParam(op, 0, "x");
  k.inputs = {x};
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Var> rows(v.begin() + 1, v.end());
  RDom r(0, x.dim(0).extent());
  std::vector<Expr> at = {r.x};
  at.insert(at.end(), rows.begin(), rows.end());
  Func rowMax("row_max"), rowSum("row_sum");
  rowMax(rows) = maximum(toF32(x(at)));
  rowSum(rows) = sum(exp(toF32(x(at)) - rowMax(rows)));
  k.output = Func("out");
  k.output(v) = cast(halideType(op.result()->type.elementType),
                     exp(toF32(x(exprs(v))) - rowMax(rows)) / rowSum(rows));
  scheduleElementwise(k.output, v, target);
  if (!rows.empty()) {
    rowMax.compute_at(k.output, rows[0]);
    rowSum.compute_at(k.output, rows[0]);
  }
  return k;
}

} // namespace gemma::kernels
