// ONNX ops on shapes and data movement: each result's dims, and the values of integer vectors of
// dims, are tracked symbolically (KnownValues.h) so shapes computed at run time from batch, seq
// and past stay affine dims of the IR.
#include "frontend/onnx/OnnxNode.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace gemma::onnx_import {

namespace {

// shape(x), or a slice of it ([start, end) of the dims); its values are the dims.
Value* shape(NodeContext& n) {
  Value* x = n.required(0);
  Value* r = n.b.create(OpKind::Shape, {x});
  int64_t rank = x->type.rank();
  int64_t start = n.intAttr("start", 0), end = n.intAttr("end", rank);
  start = std::clamp(start < 0 ? start + rank : start, int64_t(0), rank);
  end = std::clamp(end < 0 ? end + rank : end, int64_t(0), rank);
  n.known.set(r, x->type.dims);
  if (start != 0 || end != rank) {
    Value* s = n.b.create(
        OpKind::Slice, {r},
        {{"starts", Ints{start}}, {"ends", Ints{std::max(start, end)}}, {"axes", Ints{0}}});
    n.known.set(s, std::vector<Dim>(x->type.dims.begin() + start,
                                    x->type.dims.begin() + std::max(start, end)));
    return {s};
  }
  return {r};
}

Value* gather(NodeContext& n) {
  Value* data = n.required(0);
  Value* indices = n.required(1);
  int64_t axis = n.intAttr("axis", 0);
  Value* r = n.b.create(OpKind::Gather, {data, indices}, {{"axis", axis}});
  auto known = n.known.dims(data);
  auto picks = n.known.ints(indices);
  if (known && picks && data->type.rank() == 1 && indices->type.rank() <= 1) {
    std::vector<Dim> out;
    for (int64_t i : *picks) {
      int64_t extent = static_cast<int64_t>(known->size());
      if (i < -extent || i >= extent)
        n.fail("index " + std::to_string(i) + " is out of range");
      out.push_back((*known)[static_cast<size_t>(i < 0 ? i + extent : i)]);
    }
    n.known.set(r, out);
  }
  return r;
}

// GatherND (batch_dims 0) as a Gather from the data flattened over its first k dims, at the
// linear index sum_j idx[..., j] * stride_j (exporters look masks up so: mask[b, kv]).
Value* gatherND(NodeContext& n) {
  if (n.intAttr("batch_dims", 0) != 0)
    n.fail("not supported (batch_dims)");
  Value* data = n.required(0);
  Value* indices = n.required(1);
  int64_t rank = data->type.rank(), indexRank = indices->type.rank();
  const Dim& depthDim = indices->type.dims.back();
  if (indexRank < 1 || !depthDim.isStatic() || depthDim.staticValue() < 1 ||
      depthDim.staticValue() > rank)
    n.fail("its indices' last dim must be static, between 1 and the data's rank");
  int64_t depth = depthDim.staticValue();
  // The first `depth` dims flattened: their product must stay affine.
  Dim flat = affineProduct(data->type.dims.begin(), data->type.dims.begin() + depth);
  if (flat.isUnknown())
    n.fail("indexes a product of symbolic dims");
  std::vector<Dim> flatDims = {flat};
  flatDims.insert(flatDims.end(), data->type.dims.begin() + depth, data->type.dims.end());
  Value* table =
      n.b.create(OpKind::Reshape, {data}, {}, TensorType{data->type.elementType, flatDims});
  Value* shape = n.b.create(OpKind::Shape, {data});
  Value* linear = nullptr;
  for (int64_t j = 0; j < depth; ++j) {
    Value* column = n.b.create(
        OpKind::Slice, {indices},
        {{"starts", Ints{j}}, {"ends", Ints{j + 1}}, {"axes", Ints{-1}}, {"steps", Ints{1}}});
    column = n.b.create(OpKind::Squeeze, {column}, {{"axes", Ints{indexRank - 1}}});
    column = n.b.cast(column, ElementType::I64);
    // stride_j = product of dims j+1..depth-1, read from the data's shape at run time
    Value* stride = n.b.scalar(ElementType::I64, 1);
    for (int64_t d = j + 1; d < depth; ++d) {
      Value* at = n.b.constant(ElementType::I64, {}, Ints{d});
      stride = n.b.binary(OpKind::Mul, stride,
                          n.b.create(OpKind::Gather, {shape, at}, {{"axis", int64_t(0)}}));
    }
    Value* term = n.b.binary(OpKind::Mul, column, stride);
    linear = linear ? n.b.binary(OpKind::Add, linear, term) : term;
  }
  return n.b.create(OpKind::Gather, {table, linear}, {{"axis", int64_t(0)}});
}

Value* reshape(NodeContext& n) {
  Value* x = n.required(0);
  Value* shape = n.required(1);
  std::vector<Dim> target = n.shapeFrom(shape);
  // allowzero makes a 0 a dim of 0 rather than a copy of the input's: the same when none is 0.
  if (n.intAttr("allowzero", 0) && std::any_of(target.begin(), target.end(), [](const Dim& d) {
        return d.isStatic() && d.staticValue() == 0;
      }))
    n.fail("not supported (allowzero with a 0 in the shape)");
  // 0 copies the input's dim, -1 is what is left.
  int inferred = -1;
  for (size_t i = 0; i < target.size(); ++i) {
    if (target[i].isStatic() && target[i].staticValue() == 0 &&
        i < static_cast<size_t>(x->type.rank()))
      target[i] = x->type.dims[i];
    else if (target[i].isStatic() && target[i].staticValue() == -1)
      inferred = static_cast<int>(i);
  }
  if (inferred >= 0) {
    target[static_cast<size_t>(inferred)] = Dim::unknown();
    target[static_cast<size_t>(inferred)] = remainingDim(x->type.dims, target);
  }
  // The target is known here: the reshape needs no shape operand.
  Value* r = n.b.create(OpKind::Reshape, {x}, {}, TensorType{x->type.elementType, target});
  if (auto known = n.known.dims(x); known && r->type.rank() <= 1)
    n.known.set(r, *known);
  return r;
}

Value* flatten(NodeContext& n) {
  Value* x = n.required(0);
  int64_t rank = x->type.rank(), axis = n.intAttr("axis", 1);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis > rank)
    n.fail("axis is out of range");
  const std::vector<Dim>& dims = x->type.dims;
  Dim outer = affineProduct(dims.begin(), dims.begin() + axis);
  Dim inner = affineProduct(dims.begin() + axis, dims.end());
  if (outer.isUnknown() || inner.isUnknown())
    n.fail("flattens a product of symbolic dims");
  return {n.b.create(OpKind::Reshape, {x}, {}, TensorType{x->type.elementType, {outer, inner}})};
}

Value* transpose(NodeContext& n) {
  Value* x = n.required(0);
  Ints perm = n.intsAttr("perm").value_or(Ints{});
  if (perm.empty())
    for (int64_t d = x->type.rank() - 1; d >= 0; --d)
      perm.push_back(d);
  return {n.b.transpose(x, perm)};
}

Value* concat(NodeContext& n) {
  std::vector<Value*> parts;
  for (int i = 0; i < n.node.input_size(); ++i)
    parts.push_back(n.required(i));
  int64_t axis = n.intAttr("axis", 0);
  Value* r = n.b.create(OpKind::Concat, parts, {{"axis", axis}});
  std::vector<Dim> known;
  bool all = r->type.rank() == 1;
  for (Value* p : parts) {
    auto k = n.known.dims(p);
    if (!k) {
      all = false;
      break;
    }
    known.insert(known.end(), k->begin(), k->end());
  }
  if (all)
    n.known.set(r, known);
  return r;
}

// A slice's starts or ends as integers. Exporters write bounds such as `key.shape[-2]`: a
// symbolic bound that lies a constant distance below its axis' dim becomes that distance counted
// from the end (the dim itself: to the end).
Ints sliceBounds(NodeContext& n, int i, const char* what, const Value* x, const Ints& axes) {
  auto dims = n.known.dims(n.required(i));
  if (!dims)
    n.fail(std::string(what) + " must be known at compile time");
  Ints bounds;
  for (size_t k = 0; k < dims->size(); ++k) {
    const Dim& bound = (*dims)[k];
    if (bound.isStatic()) {
      bounds.push_back(bound.staticValue());
      continue;
    }
    int64_t rank = x->type.rank();
    int64_t axis = k < axes.size() ? (axes[k] < 0 ? axes[k] + rank : axes[k]) : -1;
    Dim below =
        axis >= 0 && axis < rank ? x->type.dims[static_cast<size_t>(axis)] - bound : Dim::unknown();
    if (below.isUnknown() || !below.isStatic() || below.staticValue() < 0)
      n.fail(std::string(what) + " must be constants or an input's dim less a constant");
    bounds.push_back(below.staticValue() == 0 ? std::numeric_limits<int64_t>::max()
                                              : -below.staticValue());
  }
  return bounds;
}

Value* slice(NodeContext& n) {
  Value* x = n.required(0);
  Ints axes, steps;
  size_t count = n.known.dims(n.required(1)).value_or(std::vector<Dim>{}).size();
  if (n.operand(3))
    axes = n.requireInts(3, "axes");
  else
    for (size_t i = 0; i < count; ++i)
      axes.push_back(static_cast<int64_t>(i));
  if (n.operand(4))
    steps = n.requireInts(4, "steps");
  else
    steps.assign(count, 1);
  Ints starts = sliceBounds(n, 1, "starts", x, axes);
  Ints ends = sliceBounds(n, 2, "ends", x, axes);
  if (axes.size() != starts.size() || ends.size() != starts.size() || steps.size() != starts.size())
    n.fail("starts, ends, axes and steps differ in length");
  // Ends past a dim (INT64_MAX for "to the end") clamp to it where the dim is known.
  for (size_t i = 0; i < ends.size(); ++i) {
    int64_t rank = x->type.rank();
    int64_t axis = axes[i] < 0 ? axes[i] + rank : axes[i];
    if (axis < 0 || axis >= rank)
      n.fail("axis " + std::to_string(axes[i]) + " is out of range");
    const Dim& dim = x->type.dims[static_cast<size_t>(axis)];
    if (dim.isStatic()) {
      int64_t extent = dim.staticValue();
      ends[i] = std::clamp<int64_t>(ends[i], steps[i] < 0 ? -extent - 1 : -extent, extent);
      starts[i] = std::clamp<int64_t>(starts[i], -extent, steps[i] < 0 ? extent - 1 : extent);
    } else {
      ends[i] = std::min<int64_t>(ends[i], kMaxDimValue);
    }
  }
  Value* r = n.b.create(OpKind::Slice, {x},
                        {{"starts", starts}, {"ends", ends}, {"axes", axes}, {"steps", steps}});
  if (auto known = n.known.dims(x); known && x->type.rank() == 1 && steps[0] == 1) {
    int64_t extent = static_cast<int64_t>(known->size());
    int64_t s = std::clamp<int64_t>(starts[0] < 0 ? starts[0] + extent : starts[0], 0, extent);
    int64_t e = std::clamp<int64_t>(ends[0] < 0 ? ends[0] + extent : ends[0], 0, extent);
    n.known.set(r, std::vector<Dim>(known->begin() + s, known->begin() + std::max(s, e)));
  }
  return r;
}

std::vector<Value*> split(NodeContext& n) {
  Value* x = n.required(0);
  int64_t rank = x->type.rank();
  int64_t axis = n.intAttr("axis", 0);
  if (axis < 0)
    axis += rank;
  if (axis < 0 || axis >= rank)
    n.fail("axis is out of range");
  const Dim& dim = x->type.dims[static_cast<size_t>(axis)];
  Ints sizes;
  if (n.operand(1))
    sizes = n.requireInts(1, "split");
  else if (auto attr = n.intsAttr("split"))
    sizes = *attr;
  if (sizes.empty()) {
    if (!dim.isStatic())
      n.fail("splits a dim that is not static into equal parts");
    int64_t parts =
        n.opset >= 18 ? n.intAttr("num_outputs", n.node.output_size()) : n.node.output_size();
    int64_t extent = dim.staticValue(), each = (extent + parts - 1) / parts;
    for (int64_t start = 0; start < extent; start += each)
      sizes.push_back(std::min(each, extent - start));
  }
  std::vector<Value*> results;
  int64_t start = 0;
  for (int64_t size : sizes) {
    results.push_back(n.b.create(OpKind::Slice, {x},
                                 {{"starts", Ints{start}},
                                  {"ends", Ints{start + size}},
                                  {"axes", Ints{axis}},
                                  {"steps", Ints{1}}}));
    start += size;
  }
  return results;
}

template <bool unsqueeze> Value* squeeze(NodeContext& n) {
  Value* x = n.required(0);
  Ints axes = n.axesFrom(1, "axes");
  if (!unsqueeze && axes.empty())
    for (int64_t d = 0; d < x->type.rank(); ++d)
      if (x->type.dims[static_cast<size_t>(d)].isStatic() &&
          x->type.dims[static_cast<size_t>(d)].staticValue() == 1)
        axes.push_back(d);
  Value* r = n.b.create(unsqueeze ? OpKind::Unsqueeze : OpKind::Squeeze, {x}, {{"axes", axes}});
  if (auto known = n.known.dims(x); known && r->type.rank() <= 1)
    n.known.set(r, *known);
  return r;
}

Value* expand(NodeContext& n) {
  Value* x = n.required(0);
  Value* shape = n.required(1);
  std::vector<Dim> target = n.shapeFrom(shape);
  // numpy broadcasting of x's dims with the target's
  std::vector<Dim> dims(std::max<size_t>(target.size(), static_cast<size_t>(x->type.rank())));
  for (size_t i = 0; i < dims.size(); ++i) {
    size_t fromEnd = dims.size() - 1 - i;
    const Dim* t = fromEnd < target.size() ? &target[target.size() - 1 - fromEnd] : nullptr;
    const Dim* s = fromEnd < static_cast<size_t>(x->type.rank())
                       ? &x->type.dims[x->type.dims.size() - 1 - fromEnd]
                       : nullptr;
    dims[i] = !t || (t->isStatic() && t->staticValue() == 1) ? *s : *t;
  }
  return {n.b.create(OpKind::Expand, {x, shape}, {}, TensorType{x->type.elementType, dims})};
}

Value* constantOfShape(NodeContext& n) {
  Value* shape = n.required(0);
  std::vector<Dim> dims = n.shapeFrom(shape);
  TensorData fill{ElementType::F32, {}, std::vector<uint8_t>(4, 0)};
  if (const onnx::AttributeProto* value = n.attribute("value"))
    fill = n.decodeTensor(value->t(), "node '" + n.node.name() + "' value");
  if (fill.count() != 1)
    n.fail("value must hold one element");
  double v = fill.values()[0];
  Value* scalar = n.b.scalar(fill.type, v);
  Value* r = n.b.create(OpKind::Expand, {scalar, shape}, {}, TensorType{fill.type, dims});
  if (isInteger(fill.type) && dims.size() == 1 && dims[0].isStatic() &&
      dims[0].staticValue() <= KnownValues::kMaxLength)
    n.known.set(r, std::vector<Dim>(static_cast<size_t>(dims[0].staticValue()),
                                    Dim::constant(static_cast<int64_t>(v))));
  return {r};
}

// ceil((limit - start) / delta), at least 0, as ONNX Range computes its length; a delta of 0, a
// non-finite bound or a length past what a dim may hold is refused (onnxruntime refuses them too;
// the cast of inf to an integer was undefined behaviour).
int64_t rangeLength(NodeContext& n, double span, double delta) {
  if (delta == 0 || !std::isfinite(delta) || !std::isfinite(span))
    n.fail("not supported (a delta of 0, or a start, limit or delta that is not finite)");
  double count = std::ceil(span / delta);
  if (count <= 0)
    return 0;
  if (!(count <= static_cast<double>(kMaxDimValue)))
    n.fail("its length " + std::to_string(count) + " is too large");
  return static_cast<int64_t>(count);
}

Value* range(NodeContext& n) {
  Value* start = n.required(0);
  Value* limit = n.required(1);
  Value* delta = n.required(2);
  auto s = n.known.dims(start), l = n.known.dims(limit);
  auto d = constantScalar(delta);
  Dim length = Dim::unknown();
  if (s && l && d && s->size() == 1 && l->size() == 1) {
    Dim span = (*l)[0] - (*s)[0];
    if (span.isStatic())
      length = Dim::constant(rangeLength(n, static_cast<double>(span.staticValue()), *d));
    else if (*d == 1)
      length = span;
  } else if (auto a = constantScalar(start); a && d && constantScalar(limit)) {
    length = Dim::constant(rangeLength(n, *constantScalar(limit) - *a, *d));
  }
  if (length.isUnknown())
    n.fail("its length is not known at compile time");
  Value* r = n.b.create(OpKind::Range, {start, limit, delta}, {},
                        TensorType{start->type.elementType, {length}});
  if (s && d && *d == 1 && length.isStatic() && length.staticValue() <= KnownValues::kMaxLength &&
      isInteger(start->type.elementType)) {
    std::vector<Dim> values;
    for (int64_t i = 0; i < length.staticValue(); ++i)
      values.push_back((*s)[0] + Dim::constant(i));
    n.known.set(r, values);
  }
  return r;
}

} // namespace

void addShapeOps(OpHandlerTable& table) {
  table.insert({
      {"Shape", {single<shape>}},
      {"Gather", {single<gather>}},
      {"GatherND", {single<gatherND>}},
      {"Reshape", {single<reshape>}},
      {"Flatten", {single<flatten>}},
      {"Transpose", {single<transpose>}},
      {"Concat", {single<concat>}},
      {"Slice", {single<slice>}},
      {"Split", {split}},
      {"Squeeze", {single<squeeze<false>>}},
      {"Unsqueeze", {single<squeeze<true>>}},
      {"Expand", {single<expand>}},
      {"ConstantOfShape", {single<constantOfShape>}},
      {"Range", {single<range>}},
  });
}

} // namespace gemma::onnx_import
