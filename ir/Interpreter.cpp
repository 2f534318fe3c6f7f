#include "ir/Interpreter.h"

#include "ir/Rotary.h"
#include "ir/ShapeRules.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace gemma {

Tensor::Tensor(ElementType elementType, std::vector<int64_t> shape, std::vector<double> data)
    : elementType(elementType), shape(std::move(shape)), data(std::move(data)) {}

Tensor Tensor::zeros(ElementType elementType, std::vector<int64_t> shape) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  return Tensor(elementType, std::move(shape), std::vector<double>(count, 0.0));
}

std::string Tensor::shapeString() const {
  std::string out = "[";
  for (size_t i = 0; i < shape.size(); ++i)
    out += (i ? "," : "") + std::to_string(shape[i]);
  return out + "]";
}

double roundToElementType(double value, ElementType type) {
  switch (type) {
  case ElementType::F32:
    return static_cast<float>(value);
  case ElementType::BF16: {
    float f = static_cast<float>(value);
    if (std::isnan(f))
      return f;
    uint32_t bits;
    std::memcpy(&bits, &f, sizeof bits);
    bits = (bits + 0x7fffu + ((bits >> 16) & 1u)) & 0xffff0000u; // round to nearest even
    std::memcpy(&f, &bits, sizeof bits);
    return f;
  }
  case ElementType::F16:
    return static_cast<double>(static_cast<_Float16>(value));
  case ElementType::Bool:
    return value != 0 ? 1.0 : 0.0;
  case ElementType::I64:
  case ElementType::I32:
  case ElementType::I8: {
    if (std::isnan(value))
      return 0;
    double truncated = std::trunc(value);
    // Saturate to the int64 range first: converting an out-of-range double is undefined.
    constexpr double limit = 9223372036854774784.0; // largest double below 2^63
    int64_t wide = truncated >= limit    ? std::numeric_limits<int64_t>::max()
                   : truncated <= -limit ? std::numeric_limits<int64_t>::min()
                                         : static_cast<int64_t>(truncated);
    if (type == ElementType::I32)
      return static_cast<int32_t>(static_cast<uint32_t>(wide));
    if (type == ElementType::I8)
      return static_cast<int8_t>(static_cast<uint8_t>(wide));
    return static_cast<double>(wide);
  }
  }
  GEMMA_INTERNAL_ASSERT(false, "unknown element type");
}

namespace {

[[noreturn]] void fail(const Op& op, const std::string& message) {
  throw UserError(op.loc, "'" + std::string(op.mnemonic()) + "' " + message);
}

std::string shapeString(const std::vector<int64_t>& shape) {
  return Tensor(ElementType::F32, shape, {}).shapeString();
}

int64_t countElements(const Op& op, const std::vector<int64_t>& shape) {
  int64_t count = 1;
  for (int64_t d : shape)
    if (d < 0 || __builtin_mul_overflow(count, d, &count) || count > (int64_t(1) << 28))
      fail(op, "result shape " + shapeString(shape) + " is too large for the interpreter");
  return count;
}

Tensor makeResult(const Op& op, ElementType type, std::vector<int64_t> shape) {
  countElements(op, shape);
  return Tensor::zeros(type, std::move(shape));
}

std::vector<int64_t> broadcast(const Op& op, const std::vector<int64_t>& a,
                               const std::vector<int64_t>& b) {
  size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> result(rank);
  for (size_t i = 0; i < rank; ++i) {
    int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da != db && da != 1 && db != 1)
      fail(op, "cannot broadcast " + shapeString(a) + " with " + shapeString(b));
    result[i] = da == 1 ? db : da;
  }
  return result;
}

// Element strides of `shape` read as if broadcast to `target` (0 along broadcast dims).
std::vector<int64_t> broadcastStrides(const std::vector<int64_t>& shape,
                                      const std::vector<int64_t>& target) {
  std::vector<int64_t> strides(target.size(), 0);
  int64_t stride = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    size_t src = shape.size() - 1 - i;
    size_t dst = target.size() - 1 - i;
    strides[dst] = shape[src] == 1 ? 0 : stride;
    stride *= shape[src];
  }
  return strides;
}

// Visits every index of `shape` in row-major order, passing the offsets into each operand given
// by its strides.
template <typename Visit>
void forEachIndex(const std::vector<int64_t>& shape,
                  const std::vector<std::vector<int64_t>>& operandStrides, Visit visit) {
  int64_t count = 1;
  for (int64_t d : shape)
    count *= d;
  if (count == 0)
    return;
  std::vector<int64_t> index(shape.size(), 0);
  std::vector<int64_t> offsets(operandStrides.size(), 0);
  for (int64_t linear = 0; linear < count; ++linear) {
    visit(linear, offsets);
    for (int64_t d = static_cast<int64_t>(shape.size()) - 1; d >= 0; --d) {
      ++index[d];
      for (size_t k = 0; k < operandStrides.size(); ++k)
        offsets[k] += operandStrides[k][d];
      if (index[d] < shape[d])
        break;
      for (size_t k = 0; k < operandStrides.size(); ++k)
        offsets[k] -= operandStrides[k][d] * shape[d];
      index[d] = 0;
    }
  }
}

template <typename F>
Tensor elementwise(const Op& op, const std::vector<const Tensor*>& operands, ElementType type,
                   F f) {
  std::vector<int64_t> shape = operands[0]->shape;
  for (size_t i = 1; i < operands.size(); ++i)
    shape = broadcast(op, shape, operands[i]->shape);
  Tensor result = makeResult(op, type, shape);
  std::vector<std::vector<int64_t>> strides;
  for (const Tensor* operand : operands)
    strides.push_back(broadcastStrides(operand->shape, shape));
  forEachIndex(shape, strides, [&](int64_t linear, const std::vector<int64_t>& offsets) {
    double args[3] = {0, 0, 0};
    for (size_t k = 0; k < operands.size(); ++k)
      args[k] = operands[k]->data[offsets[k]];
    result.data[linear] = roundToElementType(f(args), type);
  });
  return result;
}

// Splits a shape around `axis` into [outer, axis, inner] extents.
struct AxisSplit {
  int64_t outer = 1, extent = 1, inner = 1;
};
AxisSplit splitAt(const std::vector<int64_t>& shape, int64_t axis) {
  AxisSplit split;
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    if (i < axis)
      split.outer *= shape[i];
    else if (i == axis)
      split.extent = shape[i];
    else
      split.inner *= shape[i];
  }
  return split;
}

int64_t axisAttr(const Op& op, const Tensor& input, const char* name = "axis") {
  return normalizeAxis(*op.attr<int64_t>(name), static_cast<int64_t>(input.shape.size()), op.loc);
}

bool keepdims(const Op& op) {
  const bool* keep = op.attr<bool>("keepdims");
  return !keep || *keep;
}

Tensor reduce(const Op& op, const Tensor& input) {
  int64_t rank = static_cast<int64_t>(input.shape.size());
  std::vector<bool> reduced(rank, false);
  for (int64_t axis : *op.attr<Ints>("axes"))
    reduced[normalizeAxis(axis, rank, op.loc)] = true;
  std::vector<int64_t> keptShape = input.shape;
  int64_t reducedCount = 1;
  for (int64_t i = 0; i < rank; ++i)
    if (reduced[i]) {
      reducedCount *= input.shape[i];
      keptShape[i] = 1;
    }
  bool isMax = op.kind == OpKind::ReduceMax;
  if (isMax && reducedCount == 0)
    fail(op, "reduces an empty axis");
  Tensor result = makeResult(op, input.elementType, keptShape);
  std::fill(result.data.begin(), result.data.end(), isMax ? -INFINITY : 0.0);
  forEachIndex(input.shape, {broadcastStrides(keptShape, input.shape)},
               [&](int64_t linear, const std::vector<int64_t>& offsets) {
                 double& acc = result.data[offsets[0]];
                 double v = input.data[linear];
                 acc = isMax ? (std::isnan(v) || v > acc ? v : acc) : acc + v;
               });
  for (double& v : result.data) {
    if (op.kind == OpKind::ReduceMean)
      v = reducedCount ? v / static_cast<double>(reducedCount) : NAN;
    v = roundToElementType(v, input.elementType);
  }
  if (!keepdims(op)) {
    result.shape.clear();
    for (int64_t i = 0; i < rank; ++i)
      if (!reduced[i])
        result.shape.push_back(input.shape[i]);
  }
  return result;
}

Tensor matmul(const Op& op, const Tensor& a, const Tensor& b) {
  size_t ra = a.shape.size(), rb = b.shape.size();
  int64_t m = a.shape[ra - 2], k = a.shape[ra - 1], n = b.shape[rb - 1];
  if (b.shape[rb - 2] != k)
    fail(op, "contraction dims differ: " + a.shapeString() + " x " + b.shapeString());
  std::vector<int64_t> batchA(a.shape.begin(), a.shape.end() - 2);
  std::vector<int64_t> batchB(b.shape.begin(), b.shape.end() - 2);
  std::vector<int64_t> batch = broadcast(op, batchA, batchB);
  std::vector<int64_t> shape = batch;
  shape.push_back(m);
  shape.push_back(n);
  Tensor result = makeResult(op, a.elementType, shape);
  forEachIndex(batch, {broadcastStrides(batchA, batch), broadcastStrides(batchB, batch)},
               [&](int64_t linear, const std::vector<int64_t>& offsets) {
                 const double* pa = a.data.data() + offsets[0] * m * k;
                 const double* pb = b.data.data() + offsets[1] * k * n;
                 double* out = result.data.data() + linear * m * n;
                 for (int64_t i = 0; i < m; ++i)
                   for (int64_t j = 0; j < n; ++j) {
                     double acc = 0;
                     for (int64_t p = 0; p < k; ++p)
                       acc += pa[i * k + p] * pb[p * n + j];
                     out[i * n + j] = roundToElementType(acc, a.elementType);
                   }
               });
  return result;
}

// Visits every 1-D lane along the split axis: element e of lane `lane` is at base + e * stride.
template <typename Visit> void forEachLane(const AxisSplit& s, Visit visit) {
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t i = 0; i < s.inner; ++i)
      visit(o * s.inner + i, o * s.extent * s.inner + i, s.inner);
}

Tensor softmax(const Op& op, const Tensor& input) {
  AxisSplit s = splitAt(input.shape, axisAttr(op, input));
  Tensor result = input;
  forEachLane(s, [&](int64_t, int64_t base, int64_t stride) {
    auto at = [&](int64_t e) -> double& { return result.data[base + e * stride]; };
    double maxValue = -INFINITY;
    for (int64_t e = 0; e < s.extent; ++e)
      maxValue = std::max(maxValue, at(e));
    double sum = 0;
    for (int64_t e = 0; e < s.extent; ++e)
      sum += std::exp(at(e) - maxValue);
    for (int64_t e = 0; e < s.extent; ++e)
      at(e) = roundToElementType(std::exp(at(e) - maxValue) / sum, input.elementType);
  });
  return result;
}

Tensor cumsum(const Op& op, const Tensor& input) {
  AxisSplit s = splitAt(input.shape, axisAttr(op, input));
  Tensor result = input;
  forEachLane(s, [&](int64_t, int64_t base, int64_t stride) {
    double sum = 0;
    for (int64_t e = 0; e < s.extent; ++e) {
      double& v = result.data[base + e * stride];
      sum += v;
      v = roundToElementType(sum, input.elementType);
    }
  });
  return result;
}

Tensor argmax(const Op& op, const Tensor& input) {
  int64_t axis = axisAttr(op, input);
  AxisSplit s = splitAt(input.shape, axis);
  if (s.extent == 0)
    fail(op, "takes the argmax of an empty axis");
  std::vector<int64_t> shape = input.shape;
  if (keepdims(op))
    shape[axis] = 1;
  else
    shape.erase(shape.begin() + axis);
  Tensor result = makeResult(op, ElementType::I64, shape);
  forEachLane(s, [&](int64_t lane, int64_t base, int64_t stride) {
    int64_t best = 0;
    for (int64_t e = 1; e < s.extent; ++e)
      if (input.data[base + e * stride] > input.data[base + best * stride])
        best = e;
    result.data[lane] = static_cast<double>(best);
  });
  return result;
}

Tensor gather(const Op& op, const Tensor& data, const Tensor& indices) {
  int64_t axis = axisAttr(op, data);
  AxisSplit s = splitAt(data.shape, axis);
  std::vector<int64_t> shape(data.shape.begin(), data.shape.begin() + axis);
  shape.insert(shape.end(), indices.shape.begin(), indices.shape.end());
  shape.insert(shape.end(), data.shape.begin() + axis + 1, data.shape.end());
  Tensor result = makeResult(op, data.elementType, shape);
  int64_t count = indices.numElements();
  for (int64_t o = 0; o < s.outer; ++o)
    for (int64_t j = 0; j < count; ++j) {
      auto index = static_cast<int64_t>(indices.data[j]);
      if (index < -s.extent || index >= s.extent)
        fail(op, "index " + std::to_string(index) + " is out of range for axis of size " +
                     std::to_string(s.extent));
      if (index < 0)
        index += s.extent;
      std::copy_n(data.data.begin() + (o * s.extent + index) * s.inner, s.inner,
                  result.data.begin() + (o * count + j) * s.inner);
    }
  return result;
}

Tensor transpose(const Op& op, const Tensor& input) {
  const Ints& perm = *op.attr<Ints>("perm");
  std::vector<int64_t> inputStrides(input.shape.size(), 1);
  for (int64_t i = static_cast<int64_t>(input.shape.size()) - 2; i >= 0; --i)
    inputStrides[i] = inputStrides[i + 1] * input.shape[i + 1];
  std::vector<int64_t> shape, strides;
  for (int64_t p : perm) {
    shape.push_back(input.shape[p]);
    strides.push_back(inputStrides[p]);
  }
  Tensor result = makeResult(op, input.elementType, shape);
  forEachIndex(shape, {strides}, [&](int64_t linear, const std::vector<int64_t>& offsets) {
    result.data[linear] = input.data[offsets[0]];
  });
  return result;
}

Tensor concat(const Op& op, const std::vector<const Tensor*>& operands, int64_t axis) {
  const Tensor& first = *operands[0];
  std::vector<int64_t> shape = first.shape;
  shape[axis] = 0;
  for (const Tensor* operand : operands) {
    for (size_t d = 0; d < shape.size(); ++d)
      if (static_cast<int64_t>(d) != axis && operand->shape[d] != first.shape[d])
        fail(op, "operands differ outside the concat axis: " + first.shapeString() + " and " +
                     operand->shapeString());
    shape[axis] += operand->shape[axis];
  }
  Tensor result = makeResult(op, first.elementType, shape);
  AxisSplit out = splitAt(shape, axis);
  int64_t position = 0;
  for (const Tensor* operand : operands) {
    AxisSplit in = splitAt(operand->shape, axis);
    for (int64_t o = 0; o < in.outer; ++o)
      std::copy_n(operand->data.begin() + o * in.extent * in.inner, in.extent * in.inner,
                  result.data.begin() + (o * out.extent + position) * out.inner);
    position += in.extent;
  }
  return result;
}

Tensor slice(const Op& op, const Tensor& input) {
  const Ints& starts = *op.attr<Ints>("starts");
  const Ints& ends = *op.attr<Ints>("ends");
  int64_t rank = static_cast<int64_t>(input.shape.size());
  std::vector<int64_t> begin(rank, 0), step(rank, 1), shape = input.shape;
  for (size_t i = 0; i < starts.size(); ++i) {
    int64_t axis = op.attr<Ints>("axes") ? (*op.attr<Ints>("axes"))[i] : static_cast<int64_t>(i);
    axis = normalizeAxis(axis, rank, op.loc);
    int64_t s = op.attr<Ints>("steps") ? (*op.attr<Ints>("steps"))[i] : 1;
    int64_t dim = input.shape[axis];
    int64_t start = starts[i];
    if (start < 0)
      start = start < -dim ? 0 : start + dim;
    start = s > 0 ? std::clamp<int64_t>(start, 0, dim) : std::clamp<int64_t>(start, 0, dim - 1);
    begin[axis] = start;
    step[axis] = s;
    shape[axis] = slicedLength(dim, starts[i], ends[i], s);
  }
  Tensor result = makeResult(op, input.elementType, shape);
  std::vector<int64_t> inputStrides(rank, 1);
  for (int64_t i = rank - 2; i >= 0; --i)
    inputStrides[i] = inputStrides[i + 1] * input.shape[i + 1];
  int64_t base = 0;
  std::vector<int64_t> strides(rank);
  for (int64_t i = 0; i < rank; ++i) {
    base += begin[i] * inputStrides[i];
    strides[i] = step[i] * inputStrides[i];
  }
  forEachIndex(shape, {strides}, [&](int64_t linear, const std::vector<int64_t>& offsets) {
    result.data[linear] = input.data[base + offsets[0]];
  });
  return result;
}

// Target shape of a reshape: from the shape operand (0 keeps the input dim, -1 is inferred) or
// from the declared result type (unknown dims are inferred).
std::vector<int64_t> reshapeTarget(const Op& op, const std::vector<const Tensor*>& operands,
                                   const std::vector<int64_t>& declared) {
  const Tensor& input = *operands[0];
  std::vector<int64_t> target = declared;
  if (operands.size() == 2) {
    const Tensor& shape = *operands[1];
    target.clear();
    for (int64_t i = 0; i < shape.numElements(); ++i) {
      auto v = static_cast<int64_t>(shape.data[i]);
      target.push_back(v == 0 && i < static_cast<int64_t>(input.shape.size()) ? input.shape[i] : v);
    }
  }
  int inferred = -1;
  int64_t known = 1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i] == -1 && inferred < 0)
      inferred = static_cast<int>(i);
    else if (target[i] < 0 || target[i] > kMaxDimValue)
      fail(op, "has an invalid target shape " + shapeString(target));
    else
      known *= target[i];
  }
  if (inferred >= 0) {
    if (known == 0 || input.numElements() % known != 0)
      fail(op,
           "cannot infer a dim reshaping " + input.shapeString() + " to " + shapeString(target));
    target[inferred] = input.numElements() / known;
  }
  if (countElements(op, target) != input.numElements())
    fail(op, "cannot reshape " + input.shapeString() + " to " + shapeString(target));
  return target;
}

Tensor constantValue(const Op& op, const std::vector<int64_t>& shape) {
  ElementType type = op.result()->type.elementType;
  Tensor result = makeResult(op, type, shape);
  std::vector<double> values;
  if (const Ints* ints = op.attr<Ints>("value"))
    values.assign(ints->begin(), ints->end());
  else if (const Floats* floats = op.attr<Floats>("value"))
    values = *floats;
  for (int64_t i = 0; i < result.numElements(); ++i)
    result.data[i] = roundToElementType(values.size() == 1 ? values[0] : values.at(i), type);
  return result;
}

double geluTanh(double x) {
  return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x)));
}
double geluExact(double x) {
  return 0.5 * x * (1.0 + std::erf(x / std::sqrt(2.0)));
}

double f32(double v) {
  return roundToElementType(v, ElementType::F32);
}

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
    std::vector<double> inverse = rotaryInverseFrequencies(*op.attr<double>("theta"), headDim);
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
  if (operands.size() == 4) {
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
          if (operands.size() == 4)
            score = round(score + operands[3]->data[b * biasStrides[0] + n * biasStrides[1] +
                                                    s * biasStrides[2] + t * biasStrides[3]]);
          if (window > 0 && (total - seq + s) - t >= window)
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

} // namespace

Tensor evaluateOp(const Op& op, const std::vector<const Tensor*>& operands,
                  const std::vector<int64_t>& declaredShape, const WeightProvider& weights) {
  ElementType type = op.result()->type.elementType;
  auto unary = [&](auto f) {
    return elementwise(op, operands, type, [&](const double* a) { return f(a[0]); });
  };
  auto binary = [&](auto f) {
    return elementwise(op, operands, type, [&](const double* a) { return f(a[0], a[1]); });
  };
  switch (op.kind) {
  case OpKind::Constant:
    return constantValue(op, declaredShape);
  case OpKind::Weight: {
    if (!weights)
      fail(op, "needs weights, but none were given");
    const Ints* perm = op.attr<Ints>("perm");
    if (perm) {
      // Folded transpose: the stored tensor, transposed by perm.
      TensorType stored = storedWeightType(op);
      std::vector<int64_t> storedShape(declaredShape.size());
      for (size_t i = 0; i < perm->size(); ++i)
        storedShape[static_cast<size_t>((*perm)[i])] = declaredShape[i];
      Tensor weight = weights(*op.attr<std::string>("name"), stored);
      if (weight.shape != storedShape)
        fail(op, "weight '" + *op.attr<std::string>("name") + "' has shape " +
                     weight.shapeString() + ", expected " + stored.str());
      return transpose(op, weight);
    }
    Tensor weight = weights(*op.attr<std::string>("name"), op.result()->type);
    if (weight.shape != declaredShape)
      fail(op, "weight '" + *op.attr<std::string>("name") + "' has shape " + weight.shapeString() +
                   ", expected " + shapeString(declaredShape));
    return weight;
  }
  case OpKind::Add:
    return binary([](double a, double b) { return a + b; });
  case OpKind::Sub:
    return binary([](double a, double b) { return a - b; });
  case OpKind::Mul:
    return binary([](double a, double b) { return a * b; });
  case OpKind::Div:
    if (!isFloat(type))
      for (double v : operands[1]->data)
        if (v == 0)
          fail(op, "divides an integer by zero");
    return binary([](double a, double b) { return a / b; });
  case OpKind::Pow:
    return binary([](double a, double b) { return std::pow(a, b); });
  case OpKind::Max:
    return binary([](double a, double b) { return std::isnan(a) || a > b ? a : b; });
  case OpKind::Min:
    return binary([](double a, double b) { return std::isnan(a) || a < b ? a : b; });
  case OpKind::Sqrt:
    return unary([](double a) { return std::sqrt(a); });
  case OpKind::Rsqrt:
    return unary([](double a) { return 1.0 / std::sqrt(a); });
  case OpKind::Reciprocal:
    return unary([](double a) { return 1.0 / a; });
  case OpKind::Neg:
    return unary([](double a) { return -a; });
  case OpKind::Exp:
    return unary([](double a) { return std::exp(a); });
  case OpKind::Tanh:
    return unary([](double a) { return std::tanh(a); });
  case OpKind::Erf:
    return unary([](double a) { return std::erf(a); });
  case OpKind::Cos:
    return unary([](double a) { return std::cos(a); });
  case OpKind::Sin:
    return unary([](double a) { return std::sin(a); });
  case OpKind::Gelu: {
    const std::string* approximate = op.attr<std::string>("approximate");
    if (approximate && *approximate == "tanh")
      return unary(geluTanh);
    return unary(geluExact);
  }
  case OpKind::Cast:
    return unary([](double a) { return a; });
  case OpKind::Equal:
    return binary([](double a, double b) { return double(a == b); });
  case OpKind::Less:
    return binary([](double a, double b) { return double(a < b); });
  case OpKind::LessEqual:
    return binary([](double a, double b) { return double(a <= b); });
  case OpKind::Greater:
    return binary([](double a, double b) { return double(a > b); });
  case OpKind::GreaterEqual:
    return binary([](double a, double b) { return double(a >= b); });
  case OpKind::And:
    return binary([](double a, double b) { return double(a != 0 && b != 0); });
  case OpKind::Or:
    return binary([](double a, double b) { return double(a != 0 || b != 0); });
  case OpKind::Xor:
    return binary([](double a, double b) { return double((a != 0) != (b != 0)); });
  case OpKind::Not:
    return unary([](double a) { return double(a == 0); });
  case OpKind::IsNan:
    return unary([](double a) { return double(std::isnan(a)); });
  case OpKind::Where:
    return elementwise(op, operands, type, [](const double* a) { return a[0] != 0 ? a[1] : a[2]; });
  case OpKind::MatMul:
    return matmul(op, *operands[0], *operands[1]);
  case OpKind::ReduceMean:
  case OpKind::ReduceSum:
  case OpKind::ReduceMax:
    return reduce(op, *operands[0]);
  case OpKind::Softmax:
    return softmax(op, *operands[0]);
  case OpKind::CumSum:
    return cumsum(op, *operands[0]);
  case OpKind::ArgMax:
    return argmax(op, *operands[0]);
  case OpKind::Gather:
    return gather(op, *operands[0], *operands[1]);
  case OpKind::Reshape: {
    Tensor result = *operands[0];
    result.shape = reshapeTarget(op, operands, declaredShape);
    return result;
  }
  case OpKind::Transpose:
    return transpose(op, *operands[0]);
  case OpKind::Concat:
    return concat(op, operands, axisAttr(op, *operands[0]));
  case OpKind::Slice:
    return slice(op, *operands[0]);
  case OpKind::Squeeze: {
    Tensor result = *operands[0];
    std::vector<int64_t> shape;
    int64_t rank = static_cast<int64_t>(result.shape.size());
    std::vector<bool> squeezed(rank, false);
    for (int64_t axis : *op.attr<Ints>("axes"))
      squeezed[normalizeAxis(axis, rank, op.loc)] = true;
    for (int64_t i = 0; i < rank; ++i) {
      if (!squeezed[i])
        shape.push_back(result.shape[i]);
      else if (result.shape[i] != 1)
        fail(op, "squeezes dim " + std::to_string(i) + " of " + result.shapeString() +
                     ", which is not 1");
    }
    result.shape = shape;
    return result;
  }
  case OpKind::Unsqueeze: {
    Tensor result = *operands[0];
    const Ints& axes = *op.attr<Ints>("axes");
    int64_t rank = static_cast<int64_t>(result.shape.size() + axes.size());
    std::vector<bool> inserted(rank, false);
    for (int64_t axis : axes)
      inserted[normalizeAxis(axis, rank, op.loc)] = true;
    std::vector<int64_t> shape;
    size_t next = 0;
    for (int64_t i = 0; i < rank; ++i)
      shape.push_back(inserted[i] ? 1 : result.shape[next++]);
    result.shape = shape;
    return result;
  }
  case OpKind::Expand: {
    std::vector<int64_t> target = declaredShape;
    if (operands.size() == 2) {
      target.clear();
      for (double v : operands[1]->data)
        target.push_back(static_cast<int64_t>(v));
    }
    for (int64_t& d : target)
      if (d < 0)
        d = 1; // unknown: taken from the input by broadcasting
    std::vector<int64_t> shape = broadcast(op, operands[0]->shape, target);
    Tensor result = makeResult(op, type, shape);
    forEachIndex(shape, {broadcastStrides(operands[0]->shape, shape)},
                 [&](int64_t linear, const std::vector<int64_t>& offsets) {
                   result.data[linear] = operands[0]->data[offsets[0]];
                 });
    return result;
  }
  case OpKind::Range: {
    double start = operands[0]->data[0], limit = operands[1]->data[0], delta = operands[2]->data[0];
    if (delta == 0 || !std::isfinite(start) || !std::isfinite(limit) || !std::isfinite(delta))
      fail(op, "needs a finite start and limit and a non-zero delta");
    double count = std::max(std::ceil((limit - start) / delta), 0.0);
    if (count > double(int64_t(1) << 31))
      fail(op, "would have more than 2^31 elements");
    Tensor result = makeResult(op, type, {static_cast<int64_t>(count)});
    for (int64_t i = 0; i < result.numElements(); ++i)
      result.data[i] = roundToElementType(start + static_cast<double>(i) * delta, type);
    return result;
  }
  case OpKind::Shape: {
    const auto& shape = operands[0]->shape;
    return Tensor(ElementType::I64, {static_cast<int64_t>(shape.size())},
                  std::vector<double>(shape.begin(), shape.end()));
  }
  case OpKind::RmsNorm:
    return rmsNorm(op, *operands[0], *operands[1]);
  case OpKind::Rotary:
    return rotary(op, operands);
  case OpKind::Attention:
    return attention(op, operands);
  case OpKind::GatedMlp:
    return gatedMlp(op, operands);
  case OpKind::KVCacheAppend: {
    int64_t batch = operands[0]->shape[0];
    int64_t total = operands[0]->shape[2] + operands[1]->shape[2];
    if (batch > *op.attr<int64_t>("max_batch") || total > *op.attr<int64_t>("max_seq_len"))
      fail(op, "holds at most " + std::to_string(*op.attr<int64_t>("max_batch")) + " rows of " +
                   std::to_string(*op.attr<int64_t>("max_seq_len")) + " tokens; asked for " +
                   std::to_string(batch) + " of " + std::to_string(total));
    return concat(op, operands, 2);
  }
  }
  GEMMA_INTERNAL_ASSERT(false, "unhandled op kind");
}

namespace {

// Binds the symbols in `dims` from concrete `shape`, solving one unbound symbol per dim.
bool bindSymbols(const std::vector<Dim>& dims, const std::vector<int64_t>& shape,
                 SymbolBindings& bindings) {
  bool progress = false;
  for (size_t i = 0; i < dims.size() && i < shape.size(); ++i) {
    const Dim& dim = dims[i];
    if (dim.isUnknown() || dim.evaluate(bindings))
      continue;
    const std::pair<std::string, int64_t>* unbound = nullptr;
    int64_t rest = dim.constantPart();
    bool solvable = true;
    for (const auto& term : dim.terms()) {
      auto it = bindings.find(term.first);
      if (it != bindings.end())
        rest += term.second * it->second;
      else if (!unbound)
        unbound = &term;
      else
        solvable = false;
    }
    if (!solvable || !unbound || (shape[i] - rest) % unbound->second != 0)
      continue;
    bindings[unbound->first] = (shape[i] - rest) / unbound->second;
    progress = true;
  }
  return progress;
}

std::string describe(const SymbolBindings& bindings) {
  std::string out;
  for (const auto& [name, value] : bindings)
    out += (out.empty() ? " with " : ", ") + name + "=" + std::to_string(value);
  return out;
}

void checkShape(const TensorType& declared, const std::vector<int64_t>& actual,
                const SymbolBindings& bindings, const Location& loc, const std::string& what) {
  bool matches = declared.rank() == static_cast<int64_t>(actual.size());
  for (size_t i = 0; matches && i < actual.size(); ++i)
    if (auto expected = declared.dims[i].evaluate(bindings))
      matches = *expected == actual[i];
  if (!matches)
    throw UserError(loc, what + " has shape " + shapeString(actual) + " but is declared " +
                             declared.str() + describe(bindings));
}

} // namespace

std::vector<Tensor> interpret(const Graph& graph, const std::vector<Tensor>& inputs,
                              const WeightProvider& weights) {
  if (inputs.size() != graph.inputs.size())
    throw UserError("graph @" + graph.name + " takes " + std::to_string(graph.inputs.size()) +
                    " inputs, got " + std::to_string(inputs.size()));
  SymbolBindings bindings;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Value& input = *graph.inputs[i];
    int64_t count = 1;
    for (int64_t d : inputs[i].shape)
      if (d < 0 || __builtin_mul_overflow(count, d, &count))
        count = -1;
    if (count != inputs[i].numElements())
      throw UserError(Location::named("input %" + input.name),
                      "tensor of shape " + inputs[i].shapeString() + " holds " +
                          std::to_string(inputs[i].numElements()) + " values");
    if (inputs[i].elementType != input.type.elementType ||
        static_cast<int64_t>(inputs[i].shape.size()) != input.type.rank())
      throw UserError(Location::named("input %" + input.name),
                      "expected " + input.type.str() + ", got " +
                          std::string(elementTypeName(inputs[i].elementType)) +
                          inputs[i].shapeString());
  }
  for (bool progress = true; progress;) {
    progress = false;
    for (size_t i = 0; i < inputs.size(); ++i)
      progress |= bindSymbols(graph.inputs[i]->type.dims, inputs[i].shape, bindings);
  }
  std::map<const Value*, Tensor> values;
  for (size_t i = 0; i < inputs.size(); ++i) {
    checkShape(graph.inputs[i]->type, inputs[i].shape, bindings,
               Location::named("input %" + graph.inputs[i]->name), "the input");
    values[graph.inputs[i].get()] = inputs[i];
  }

  for (const auto& op : graph.ops) {
    std::vector<const Tensor*> operands;
    for (const Value* operand : op->operands)
      operands.push_back(&values.at(operand));
    const TensorType& declared = op->result()->type;
    std::vector<int64_t> declaredShape;
    for (const Dim& dim : declared.dims)
      declaredShape.push_back(dim.evaluate(bindings).value_or(-1));
    Tensor result = evaluateOp(*op, operands, declaredShape, weights);
    bindSymbols(declared.dims, result.shape, bindings);
    checkShape(declared, result.shape, bindings, op->loc,
               "the result of '" + std::string(op->mnemonic()) + "'");
    values[op->result()] = std::move(result);
  }

  std::vector<Tensor> outputs;
  for (const Graph::Output& output : graph.outputs)
    outputs.push_back(values.at(output.value));
  return outputs;
}

} // namespace gemma
