// The reference interpreter's primitive ops: plain loops, float math in double, each result
// rounded to its element type.
#include "ir/InterpreterOps.h"

#include "ir/Rotary.h"
#include "ir/ShapeRules.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

namespace gemma::reference {

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

int64_t axisAttr(const Op& op, const Tensor& input, const char* name) {
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

} // namespace gemma::reference
