// ONNX ops without an IR op of their own, written with the IR's ops (numbers as ONNX defines
// them; ONNX's node tests check each).
#include "frontend/onnx/OnnxNode.h"

namespace gemma::onnx_import {

namespace {

Value* scalarLike(Builder& b, Value* like, double value) {
  return b.scalar(like->type.elementType, value);
}

Value* relu(NodeContext& n) {
  Value* x = n.required(0);
  return n.b.binary(OpKind::Max, x, scalarLike(n.b, x, 0));
}

Value* absolute(NodeContext& n) {
  Value* x = n.required(0);
  return n.b.binary(OpKind::Max, x, n.b.unary(OpKind::Neg, x));
}

// 1 / (1 + exp(-x))
Value* sigmoid(NodeContext& n) {
  Value* x = n.required(0);
  return n.b.unary(OpKind::Reciprocal,
                   n.b.binary(OpKind::Add, scalarLike(n.b, x, 1),
                              n.b.unary(OpKind::Exp, n.b.unary(OpKind::Neg, x))));
}

Value* leakyRelu(NodeContext& n) {
  Value* x = n.required(0);
  const onnx::AttributeProto* alpha = n.attribute("alpha");
  Value* scaled = n.b.binary(OpKind::Mul, x, scalarLike(n.b, x, alpha ? alpha->f() : 0.01));
  return n.b.create(OpKind::Where, {n.b.binary(OpKind::Less, x, scalarLike(n.b, x, 0)), scaled, x});
}

Value* sumOrMean(NodeContext& n) {
  const std::string& op = n.opType();
  Value* r = n.required(0);
  for (int i = 1; i < n.node.input_size(); ++i)
    r = n.b.binary(OpKind::Add, r, n.required(i));
  if (op == "Mean")
    r = n.b.binary(OpKind::Div, r, scalarLike(n.b, r, n.node.input_size()));
  return r;
}

Value* clip(NodeContext& n) {
  Value* r = n.required(0);
  if (Value* low = n.operand(1))
    r = n.b.binary(OpKind::Max, r, low);
  if (Value* high = n.operand(2))
    r = n.b.binary(OpKind::Min, r, high);
  return r;
}

// inference: the identity
Value* dropout(NodeContext& n) {
  if (n.node.output_size() > 1 && !n.node.output(1).empty())
    n.fail("not supported (the mask output)");
  if (n.operand(2)) {
    auto training = n.known.ints(n.required(2));
    if (!training || training->size() != 1 || (*training)[0] != 0)
      n.fail("not supported (training mode)");
  }
  return n.required(0);
}

Value* castLike(NodeContext& n) {
  Value* x = n.required(0);
  return n.b.cast(x, n.required(1)->type.elementType);
}

// ReduceSumSquare, ReduceL2 and ReduceMin through reduce_sum and reduce_max.
Value* otherReduction(NodeContext& n) {
  const std::string& op = n.opType();
  Value* x = n.required(0);
  Ints axes = n.opset >= 18 ? n.axesFrom(1, "") : n.intsAttr("axes").value_or(Ints{});
  if (axes.empty()) {
    if (n.intAttr("noop_with_empty_axes", 0))
      n.fail("not supported (noop_with_empty_axes)");
    for (int64_t d = 0; d < x->type.rank(); ++d)
      axes.push_back(d);
  }
  std::map<std::string, Attribute> attrs = {{"axes", axes},
                                            {"keepdims", n.intAttr("keepdims", 1) != 0}};
  if (op == "ReduceMin")
    return n.b.unary(OpKind::Neg,
                     n.b.create(OpKind::ReduceMax, {n.b.unary(OpKind::Neg, x)}, attrs));
  Value* squares = n.b.create(OpKind::ReduceSum, {n.b.binary(OpKind::Mul, x, x)}, attrs);
  return op == "ReduceL2" ? n.b.unary(OpKind::Sqrt, squares) : squares;
}

// alpha * A' B' + beta * C
Value* gemm(NodeContext& n) {
  Value* a = n.required(0);
  Value* bm = n.required(1);
  if (n.intAttr("transA", 0))
    a = n.b.transpose(a, {1, 0});
  if (n.intAttr("transB", 0))
    bm = n.b.transpose(bm, {1, 0});
  Value* r = n.b.matmul(a, bm);
  const onnx::AttributeProto* alpha = n.attribute("alpha");
  const onnx::AttributeProto* beta = n.attribute("beta");
  if (alpha && alpha->f() != 1.0f)
    r = n.b.binary(OpKind::Mul, r, scalarLike(n.b, r, alpha->f()));
  if (Value* c = n.operand(2)) {
    if (beta && beta->f() != 1.0f)
      c = n.b.binary(OpKind::Mul, c, scalarLike(n.b, c, beta->f()));
    r = n.b.binary(OpKind::Add, r, c);
  }
  return r;
}

// keep x where col - row >= k (upper) or <= k (lower), else 0
Value* trilu(NodeContext& n) {
  Value* x = n.required(0);
  int64_t rank = x->type.rank();
  if (rank < 2)
    n.fail("needs a matrix");
  int64_t k = 0;
  if (n.operand(1)) {
    Ints ks = n.requireInts(1, "k");
    if (ks.size() != 1)
      n.fail("k must be one value");
    k = ks[0];
  }
  Value* rowsShape = n.b.create(OpKind::Shape, {x});
  auto indexRange = [&](int64_t dim) {
    const Dim& extent = x->type.dims[static_cast<size_t>(dim)];
    Value* at = n.b.constant(ElementType::I64, {}, Ints{dim});
    Value* count = n.b.create(OpKind::Gather, {rowsShape, at}, {{"axis", int64_t(0)}});
    return n.b.create(OpKind::Range,
                      {n.b.scalar(ElementType::I64, 0), count, n.b.scalar(ElementType::I64, 1)}, {},
                      TensorType{ElementType::I64, {extent}});
  };
  Value* rows = n.b.create(OpKind::Unsqueeze, {indexRange(rank - 2)}, {{"axes", Ints{1}}});
  Value* columns = indexRange(rank - 1);
  Value* offset = n.b.binary(OpKind::Sub, columns, rows); // [R, C]
  Value* keep = n.b.binary(n.intAttr("upper", 1) ? OpKind::GreaterEqual : OpKind::LessEqual, offset,
                           n.b.scalar(ElementType::I64, static_cast<double>(k)));
  return n.b.create(OpKind::Where, {keep, x, scalarLike(n.b, x, 0)});
}

Value* size(NodeContext& n) {
  Value* x = n.required(0);
  auto count = x->type.staticNumElements();
  if (!count)
    n.fail("its input's size is not static");
  Value* v = n.b.scalar(ElementType::I64, static_cast<double>(*count));
  n.known.set(v, {Dim::constant(*count)});
  return v;
}

} // namespace

void addCompositeOps(OpHandlerTable& table) {
  table.insert({
      {"Relu", {single<relu>}},
      {"Abs", {single<absolute>}},
      {"Sigmoid", {single<sigmoid>}},
      {"LeakyRelu", {single<leakyRelu>}},
      {"Sum", {single<sumOrMean>}},
      {"Mean", {single<sumOrMean>}},
      {"Clip", {single<clip>}},
      {"Dropout", {single<dropout>}},
      {"CastLike", {single<castLike>}},
      {"ReduceSumSquare", {single<otherReduction>}},
      {"ReduceL2", {single<otherReduction>}},
      {"ReduceMin", {single<otherReduction>}},
      {"Gemm", {single<gemm>}},
      {"Trilu", {single<trilu>}},
      {"Size", {single<size>}},
  });
}

} // namespace gemma::onnx_import
