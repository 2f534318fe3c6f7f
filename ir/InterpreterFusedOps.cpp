// The reference interpreter's fused ops, rounded step by step as the Hugging Face form of each
// pattern is (IR.h).
#include "ir/InterpreterOps.h"
#include "ir/Rotary.h"
#include "ir/ShapeRules.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace gemma::reference {

// ---- Fused ops: the rounding sequence of the Hugging Face primitive pattern (IR.h) -------------

Tensor rmsNorm(const Op& op, const Tensor& x, const Tensor& w) {
  ElementType type = op.result()->type.elementType;
  int64_t width = x.shape.back();
  if (w.numElements() != width)
    fail(op, "weight has " + std::to_string(w.numElements()) + " values for rows of " +
                 std::to_string(width));
  double eps = f32(*op.attr<double>("eps"));
  bool unitOffset = *op.attr<bool>("unit_offset");
  Tensor result = makeResult(op, type, x.shape);
  for (int64_t row = 0; width > 0 && row < x.numElements() / width; ++row) {
    const double* in = x.data.data() + row * width;
    double sum = 0;
    for (int64_t i = 0; i < width; ++i)
      sum += f32(in[i] * in[i]);
    double inverse = f32(1.0 / std::sqrt(f32(f32(sum / static_cast<double>(width)) + eps)));
    for (int64_t i = 0; i < width; ++i) {
      double scale = unitOffset ? f32(1.0 + w.data[i]) : w.data[i];
      result.data[row * width + i] = roundToElementType(f32(f32(in[i] * inverse) * scale), type);
    }
  }
  return result;
}

Tensor rotary(const Op& op, const std::vector<const Tensor*>& operands) {
  const Tensor& x = *operands[0];
  ElementType type = x.elementType;
  int64_t batch = x.shape[0], seq = x.shape[2], headDim = x.shape[3];
  int64_t half = headDim / 2;
  if (headDim != *op.attr<int64_t>("head_dim"))
    fail(op, "x has head_dim " + std::to_string(headDim));
  // cos and sin at every x element, from positions or from the given tables.
  Tensor cosTable = makeResult(op, type, x.shape), sinTable = makeResult(op, type, x.shape);
  if (operands.size() == 2) {
    const Tensor& positions = *operands[1];
    if (positions.shape != std::vector<int64_t>{batch, seq})
      fail(op, "positions have shape " + positions.shapeString() + " for x " + x.shapeString());
    std::vector<double> inverse =
        rotaryInverseFrequencies(*op.attr<double>("theta"), headDim,
                                 op.attr<double>("factor") ? *op.attr<double>("factor") : 1.0);
    int64_t heads = x.shape[1];
    for (int64_t linear = 0; linear < x.numElements(); ++linear) {
      int64_t i = linear % headDim, s = (linear / headDim) % seq;
      int64_t b = linear / (headDim * seq * heads);
      double frequency = f32(f32(positions.data[b * seq + s]) * inverse[i % half]);
      cosTable.data[linear] = roundToElementType(f32(std::cos(frequency)), type);
      sinTable.data[linear] = roundToElementType(f32(std::sin(frequency)), type);
    }
  } else {
    for (size_t t = 1; t < 3; ++t) {
      Tensor& table = t == 1 ? cosTable : sinTable;
      if (broadcast(op, x.shape, operands[t]->shape) != x.shape)
        fail(op, "table " + operands[t]->shapeString() + " does not broadcast to x");
      forEachIndex(x.shape, {broadcastStrides(operands[t]->shape, x.shape)},
                   [&](int64_t linear, const std::vector<int64_t>& offsets) {
                     table.data[linear] = operands[t]->data[offsets[0]];
                   });
    }
  }
  Tensor result = makeResult(op, type, x.shape);
  for (int64_t linear = 0; linear < x.numElements(); ++linear) {
    int64_t i = linear % headDim;
    double rotated = i < half ? -x.data[linear + half] : x.data[linear - half];
    result.data[linear] =
        roundToElementType(roundToElementType(x.data[linear] * cosTable.data[linear], type) +
                               roundToElementType(rotated * sinTable.data[linear], type),
                           type);
  }
  return result;
}

Tensor attention(const Op& op, const std::vector<const Tensor*>& operands) {
  const Tensor &q = *operands[0], &k = *operands[1], &v = *operands[2];
  ElementType type = q.elementType;
  int64_t batch = q.shape[0], heads = q.shape[1], seq = q.shape[2], headDim = q.shape[3];
  int64_t kvHeads = k.shape[1], total = k.shape[2];
  if (k.shape != v.shape || k.shape[0] != batch || k.shape[3] != headDim ||
      heads != *op.attr<int64_t>("num_heads") || kvHeads != *op.attr<int64_t>("num_kv_heads"))
    fail(op, "has q " + q.shapeString() + ", k " + k.shapeString() + ", v " + v.shapeString());
  std::vector<int64_t> scoresShape = {batch, heads, seq, total};
  std::vector<int64_t> biasStrides(4, 0);
  const bool* causalAttr = op.attr<bool>("causal");
  bool causal = causalAttr && *causalAttr;
  const Tensor* keyMask = causal && operands.size() == 4 ? operands[3] : nullptr;
  if (keyMask && keyMask->shape != std::vector<int64_t>{batch, total})
    fail(op, "key mask " + keyMask->shapeString() + " is not [batch, total]");
  if (operands.size() == 4 && !causal) {
    if (broadcast(op, scoresShape, operands[3]->shape) != scoresShape)
      fail(op, "bias " + operands[3]->shapeString() + " does not broadcast to the scores");
    biasStrides = broadcastStrides(operands[3]->shape, scoresShape);
  }
  double scale = f32(*op.attr<double>("scale"));
  const double* softcapAttr = op.attr<double>("softcap");
  double softcap = softcapAttr ? *softcapAttr : 0.0;
  const int64_t* windowAttr = op.attr<int64_t>("window");
  int64_t window = windowAttr ? *windowAttr : 0;
  const bool* nanToZeroAttr = op.attr<bool>("nan_weights_to_zero");
  bool nanWeightsToZero = nanToZeroAttr && *nanToZeroAttr;
  double lowest = lowestFinite(type);
  auto round = [&](double value) { return roundToElementType(value, type); };
  Tensor result = makeResult(op, type, {batch, heads, seq, headDim});
  std::vector<double> scores(total);
  for (int64_t b = 0; b < batch; ++b)
    for (int64_t n = 0; n < heads; ++n) {
      int64_t kvHead = n / (heads / kvHeads);
      const double* keys = k.data.data() + (b * kvHeads + kvHead) * total * headDim;
      const double* values = v.data.data() + (b * kvHeads + kvHead) * total * headDim;
      for (int64_t s = 0; s < seq; ++s) {
        const double* query = q.data.data() + ((b * heads + n) * seq + s) * headDim;
        double maxScore = -INFINITY;
        for (int64_t t = 0; t < total; ++t) {
          double dot = 0;
          for (int64_t h = 0; h < headDim; ++h)
            dot += query[h] * keys[t * headDim + h];
          double score = round(f32(round(dot) * scale));
          if (softcap > 0)
            score = round(round(std::tanh(round(score / softcap))) * softcap);
          if (operands.size() == 4 && !causal)
            score = round(score + operands[3]->data[b * biasStrides[0] + n * biasStrides[1] +
                                                    s * biasStrides[2] + t * biasStrides[3]]);
          if (window > 0 && (total - seq + s) - t >= window)
            score = lowest;
          if (causal && (t > total - seq + s || (keyMask && keyMask->data[b * total + t] == 0)))
            score = lowest;
          scores[t] = score;
          maxScore = std::max(maxScore, score);
        }
        double sum = 0;
        for (int64_t t = 0; t < total; ++t)
          sum += std::exp(scores[t] - maxScore);
        for (int64_t t = 0; t < total; ++t) {
          scores[t] = round(f32(std::exp(scores[t] - maxScore) / sum));
          if (nanWeightsToZero && std::isnan(scores[t]))
            scores[t] = 0;
        }
        double* out = result.data.data() + ((b * heads + n) * seq + s) * headDim;
        for (int64_t h = 0; h < headDim; ++h) {
          double acc = 0;
          for (int64_t t = 0; t < total; ++t)
            acc += scores[t] * values[t * headDim + h];
          out[h] = round(acc);
        }
      }
    }
  return result;
}

Tensor gatedMlp(const Op& op, const std::vector<const Tensor*>& operands) {
  const Tensor &gate = *operands[1], &up = *operands[2], &down = *operands[3];
  Tensor x = *operands[0];
  ElementType type = x.elementType;
  std::vector<int64_t> shape = x.shape;
  x.shape = {x.numElements() / shape.back(), shape.back()}; // rows of D
  Tensor g = matmul(op, x, gate);
  Tensor u = matmul(op, x, up);
  bool tanhForm = *op.attr<std::string>("activation") == "gelu_tanh";
  for (size_t i = 0; i < g.data.size(); ++i) {
    double activated =
        roundToElementType(tanhForm ? geluTanh(g.data[i]) : geluExact(g.data[i]), type);
    g.data[i] = roundToElementType(activated * u.data[i], type);
  }
  Tensor result = matmul(op, g, down);
  shape.back() = down.shape[1];
  result.shape = shape;
  return result;
}

} // namespace gemma::reference
