// ONNX ops that map onto an IR op of their own: arithmetic, comparisons and logic, unary math,
// casts, constants, matmul, reductions, softmax, cumsum, argmax.
#include "frontend/onnx/OnnxNode.h"

namespace gemma::onnx_import {

namespace {

// Binary ops broadcast as numpy does; on known integer vectors the result is known too.
template <OpKind kind> std::vector<Value*> binary(NodeContext& n) {
  Value* a = n.required(0);
  Value* b = n.required(1);
  Value* r = n.b.binary(kind, a, b);
  n.known.propagateArithmetic(kind, a, b, r);
  return {r};
}

template <OpKind kind> std::vector<Value*> unary(NodeContext& n) {
  return {n.b.unary(kind, n.required(0))};
}

std::vector<Value*> equal(NodeContext& n) {
  Value* a = n.required(0);
  Value* c = n.required(1);
  Value* r = n.b.binary(OpKind::Equal, a, c);
  n.known.propagateEqual(a, c, r);
  return {r};
}

std::vector<Value*> where(NodeContext& n) {
  Value* cond = n.required(0);
  Value* x = n.required(1);
  Value* y = n.required(2);
  Value* r = n.b.create(OpKind::Where, {cond, x, y});
  n.known.propagateWhere(cond, x, y, r);
  return {r};
}

std::vector<Value*> identity(NodeContext& n) {
  return {n.required(0)};
}

template <OpKind kind> std::vector<Value*> variadic(NodeContext& n) { // Max, Min
  Value* r = n.required(0);
  for (int i = 1; i < n.node.input_size(); ++i)
    r = n.b.binary(kind, r, n.required(i));
  return {r};
}

std::vector<Value*> gelu(NodeContext& n) {
  return {n.b.create(OpKind::Gelu, {n.required(0)},
                     {{"approximate", n.stringAttr("approximate", "none")}})};
}

std::vector<Value*> cast(NodeContext& n) {
  auto to = elementTypeOf(static_cast<int32_t>(n.intAttr("to", 0)));
  if (!to)
    n.fail("not supported (cast to " + dataTypeName(static_cast<int32_t>(n.intAttr("to", 0))) +
           ")");
  Value* x = n.required(0);
  Value* r = n.b.create(OpKind::Cast, {x}, {}, TensorType{*to, x->type.dims});
  if (auto known = n.known.dims(x); known && isInteger(*to))
    n.known.set(r, *known);
  return {r};
}

Value* constant(NodeContext& n) {
  if (const onnx::AttributeProto* a = n.attribute("value"))
    return n.tensorValue(n.node.output(0), n.decodeTensor(a->t(), "node '" + n.node.name() + "'"));
  if (const onnx::AttributeProto* a = n.attribute("value_float"))
    return n.b.scalar(ElementType::F32, a->f());
  if (const onnx::AttributeProto* a = n.attribute("value_int")) {
    Value* v = n.b.scalar(ElementType::I64, static_cast<double>(a->i()));
    n.known.set(v, {Dim::constant(a->i())});
    return v;
  }
  if (const onnx::AttributeProto* a = n.attribute("value_floats"))
    return n.b.constant(ElementType::F32, {a->floats_size()},
                        Floats(a->floats().begin(), a->floats().end()));
  if (const onnx::AttributeProto* a = n.attribute("value_ints")) {
    Ints ints(a->ints().begin(), a->ints().end());
    Value* v = n.b.constant(ElementType::I64, {static_cast<int64_t>(ints.size())}, ints);
    std::vector<Dim> known;
    for (int64_t x : ints)
      known.push_back(Dim::constant(x));
    n.known.set(v, known);
    return v;
  }
  n.fail("not supported (a constant without a numeric value)");
}

template <OpKind kind> Value* reduce(NodeContext& n) {
  // axes: an attribute before opset 18 (ReduceSum: before 13), an input after.
  bool axesInput = kind == OpKind::ReduceSum ? n.opset >= 13 : n.opset >= 18;
  Value* x = n.required(0);
  Ints axes = axesInput ? n.axesFrom(1, "") : n.intsAttr("axes").value_or(Ints{});
  if (axes.empty()) {
    if (n.intAttr("noop_with_empty_axes", 0))
      return x;
    for (int64_t d = 0; d < x->type.rank(); ++d)
      axes.push_back(d);
  }
  return n.b.create(kind, {x}, {{"axes", axes}, {"keepdims", n.intAttr("keepdims", 1) != 0}});
}

Value* softmax(NodeContext& n) {
  return n.b.create(OpKind::Softmax, {n.required(0)}, {{"axis", n.intAttr("axis", -1)}});
}

Value* cumulativeSum(NodeContext& n) {
  if (n.intAttr("exclusive", 0) || n.intAttr("reverse", 0))
    n.fail("not supported (exclusive or reverse)");
  Ints axis = n.requireInts(1, "axis");
  if (axis.size() != 1)
    n.fail("axis must be one value");
  return n.b.create(OpKind::CumSum, {n.required(0)}, {{"axis", axis[0]}});
}

Value* argMax(NodeContext& n) {
  if (n.intAttr("select_last_index", 0))
    n.fail("not supported (select_last_index)");
  return n.b.create(OpKind::ArgMax, {n.required(0)},
                    {{"axis", n.intAttr("axis", 0)}, {"keepdims", n.intAttr("keepdims", 1) != 0}});
}

} // namespace

void addOps(OpHandlerTable& table) {
  table.insert({
      {"Add", {binary<OpKind::Add>}},
      {"Sub", {binary<OpKind::Sub>}},
      {"Mul", {binary<OpKind::Mul>}},
      {"Div", {binary<OpKind::Div>}},
      {"Pow", {binary<OpKind::Pow>}},
      {"Less", {binary<OpKind::Less>}},
      {"LessOrEqual", {binary<OpKind::LessEqual>}},
      {"Greater", {binary<OpKind::Greater>}},
      {"GreaterOrEqual", {binary<OpKind::GreaterEqual>}},
      {"And", {binary<OpKind::And>}},
      {"Or", {binary<OpKind::Or>}},
      {"Xor", {binary<OpKind::Xor>}},
      {"MatMul", {binary<OpKind::MatMul>}},
      {"Equal", {equal}},
      {"Where", {where}},
      {"Max", {variadic<OpKind::Max>}},
      {"Min", {variadic<OpKind::Min>}},
      {"Sqrt", {unary<OpKind::Sqrt>}},
      {"Reciprocal", {unary<OpKind::Reciprocal>}},
      {"Neg", {unary<OpKind::Neg>}},
      {"Exp", {unary<OpKind::Exp>}},
      {"Tanh", {unary<OpKind::Tanh>}},
      {"Erf", {unary<OpKind::Erf>}},
      {"Cos", {unary<OpKind::Cos>}},
      {"Sin", {unary<OpKind::Sin>}},
      {"Not", {unary<OpKind::Not>}},
      {"IsNaN", {unary<OpKind::IsNan>}},
      {"Identity", {identity}},
      {"Gelu", {gelu, 20}}, // in the default domain from opset 20
      {"Cast", {cast}},
      {"Constant", {single<constant>}},
      {"ReduceMean", {single<reduce<OpKind::ReduceMean>>}},
      {"ReduceSum", {single<reduce<OpKind::ReduceSum>>}},
      {"ReduceMax", {single<reduce<OpKind::ReduceMax>>}},
      {"Softmax", {single<softmax>}},
      {"CumSum", {single<cumulativeSum>}},
      {"ArgMax", {single<argMax>}},
  });
}

} // namespace gemma::onnx_import
