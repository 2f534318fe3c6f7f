#include "backend/halide/Kernels.h"

#include <cmath>

namespace gemma {

namespace {

using namespace Halide;

Type halideType(ElementType type) {
  switch (type) {
  case ElementType::F32:
    return Float(32);
  case ElementType::BF16:
    return BFloat(16);
  case ElementType::F16:
    return Float(16);
  case ElementType::I64:
    return Int(64);
  case ElementType::I32:
    return Int(32);
  case ElementType::I8:
    return Int(8);
  case ElementType::Bool:
    return UInt(8);
  }
  return Float(32);
}

std::vector<Var> vars(int64_t rank) {
  std::vector<Var> v;
  for (int64_t i = 0; i < rank; ++i)
    v.emplace_back("d" + std::to_string(i));
  return v;
}

std::vector<Expr> exprs(const std::vector<Var>& v) {
  return std::vector<Expr>(v.begin(), v.end());
}

// An ImageParam for operand `i`, with the operand's static dims as constraints.
ImageParam operandParam(const Op& op, size_t i, const std::string& name) {
  const TensorType& type = op.operands[i]->type;
  ImageParam param(halideType(type.elementType), static_cast<int>(type.rank()), name);
  for (int64_t d = 0; d < type.rank(); ++d) {
    const Dim& dim = type.dims[type.rank() - 1 - d];
    param.dim(static_cast<int>(d)).set_min(0);
    if (dim.isStatic())
      param.dim(static_cast<int>(d)).set_extent(static_cast<int>(dim.staticValue()));
  }
  return param;
}

// Reads operand `param` at the result's coordinates with numpy broadcasting (a dim of extent 1
// is read at 0; the operand may have fewer dims).
Expr broadcastRead(const ImageParam& param, const std::vector<Var>& at) {
  std::vector<Expr> index;
  for (int d = 0; d < param.dimensions(); ++d)
    index.push_back(select(param.dim(d).extent() == 1, 0, at[d]));
  return param(index);
}

Expr toF32(Expr e) {
  return e.type() == Float(32) ? e : cast<float>(e);
}

void scheduleElementwise(Func f, const std::vector<Var>& v, TargetKind target) {
  f.vectorize(v[0], vectorLanes(target), TailStrategy::GuardWithIf);
  if (v.size() > 1)
    f.parallel(v.back());
}

Kernel elementwise(const Op& op, TargetKind target) {
  Kernel k;
  k.name = std::string(op.mnemonic());
  for (size_t i = 0; i < op.operands.size(); ++i)
    k.inputs.push_back(operandParam(op, i, "in" + std::to_string(i)));
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Expr> args;
  for (const ImageParam& p : k.inputs)
    args.push_back(toF32(broadcastRead(p, v)));
  Expr a = args[0], b = args.size() > 1 ? args[1] : Expr();
  Expr value;
  switch (op.kind) {
  case OpKind::Add:
    value = a + b;
    break;
  case OpKind::Sub:
    value = a - b;
    break;
  case OpKind::Mul:
    value = a * b;
    break;
  case OpKind::Div:
    value = a / b;
    break;
  case OpKind::Max:
    value = max(a, b);
    break;
  case OpKind::Min:
    value = min(a, b);
    break;
  case OpKind::Neg:
    value = -a;
    break;
  case OpKind::Exp:
    value = exp(a);
    break;
  case OpKind::Tanh:
    value = tanh(a);
    break;
  case OpKind::Sqrt:
    value = sqrt(a);
    break;
  case OpKind::Rsqrt:
    value = 1.0f / sqrt(a);
    break;
  case OpKind::Gelu: {
    const std::string* approximate = op.attr<std::string>("approximate");
    value = approximate && *approximate == "tanh"
                ? 0.5f * a * (1.0f + tanh(0.7978845608028654f * (a + 0.044715f * a * a * a)))
                : 0.5f * a * (1.0f + erf(a * 0.7071067811865476f));
    break;
  }
  default:
    throw UserError(op.loc, "no kernel for '" + std::string(op.mnemonic()) + "'");
  }
  k.output = Func("out");
  k.output(v) = cast(halideType(op.result()->type.elementType), value);
  scheduleElementwise(k.output, v, target);
  return k;
}

// rms_norm over the innermost dim: in f32, x * rsqrt(mean(x^2) + eps) * (1 + w | w).
Kernel rmsNorm(const Op& op, TargetKind target) {
  Kernel k;
  k.name = "rms_norm";
  ImageParam x = operandParam(op, 0, "x"), w = operandParam(op, 1, "w");
  k.inputs = {x, w};
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Var> rows(v.begin() + 1, v.end());
  Expr width = x.dim(0).extent();
  RDom r(0, width);
  Func sumSquares("sum_squares");
  std::vector<Expr> at = {r.x};
  at.insert(at.end(), rows.begin(), rows.end());
  Expr xr = toF32(x(at));
  sumSquares(rows) = sum(xr * xr);
  float eps = static_cast<float>(*op.attr<double>("eps"));
  Func inverse("inverse");
  inverse(rows) = 1.0f / sqrt(sumSquares(rows) / cast<float>(width) + eps);
  Expr scale = *op.attr<bool>("unit_offset") ? 1.0f + toF32(w(v[0])) : toF32(w(v[0]));
  k.output = Func("out");
  k.output(v) =
      cast(halideType(op.result()->type.elementType), (toF32(x(exprs(v))) * inverse(rows)) * scale);
  k.output.vectorize(v[0], vectorLanes(target), TailStrategy::GuardWithIf);
  if (!rows.empty())
    k.output.parallel(v.back());
  inverse.compute_at(k.output, rows.empty() ? Var::outermost() : rows[0]);
  return k;
}

// matmul [..., M, K] x [K, N] (a 2-D right operand, the model's projections), rows of the
// result in parallel. (Decode-shaped matvec schedules are the performance issue's.)
Kernel matmul(const Op& op, TargetKind target) {
  if (op.operands[1]->type.rank() != 2)
    throw UserError(op.loc, "no kernel for a batched right operand yet");
  Kernel k;
  k.name = "matmul";
  ImageParam a = operandParam(op, 0, "a"), b = operandParam(op, 1, "b");
  k.inputs = {a, b};
  std::vector<Var> v = vars(op.result()->type.rank()); // v[0] = n, v[1] = m, ...
  RDom r(0, a.dim(0).extent());
  std::vector<Expr> aAt = {r.x};
  aAt.insert(aAt.end(), v.begin() + 1, v.end());
  Func dot("dot");
  dot(v) = 0.0f;
  dot(v) += toF32(a(aAt)) * toF32(b(v[0], r.x));
  k.output = Func("out");
  k.output(v) = cast(halideType(op.result()->type.elementType), dot(v));
  // A row of the result at a time: the dot products vectorised across N, accumulated over K.
  int lanes = vectorLanes(target);
  k.output.vectorize(v[0], lanes, TailStrategy::GuardWithIf).parallel(v.back());
  dot.compute_at(k.output, v[1]).vectorize(v[0], lanes, TailStrategy::GuardWithIf);
  dot.update().reorder(v[0], r.x).vectorize(v[0], lanes, TailStrategy::GuardWithIf);
  return k;
}

// Embedding: table [V, D] gathered at integer ids -> [..ids, D].
Kernel gather(const Op& op, TargetKind target) {
  if (*op.attr<int64_t>("axis") != 0 || op.operands[0]->type.rank() != 2)
    throw UserError(op.loc, "no kernel for gather other than an embedding lookup yet");
  Kernel k;
  k.name = "gather";
  ImageParam table = operandParam(op, 0, "table"), ids = operandParam(op, 1, "ids");
  k.inputs = {table, ids};
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Expr> idAt(v.begin() + 1, v.end());
  Expr id = cast<int>(ids(idAt));
  Expr rows = table.dim(1).extent();
  id = clamp(select(id < 0, id + rows, id), 0, rows - 1);
  k.output = Func("out");
  k.output(v) = table(v[0], id);
  scheduleElementwise(k.output, v, target);
  return k;
}

} // namespace

std::vector<Halide::Argument> Kernel::arguments() const {
  return std::vector<Halide::Argument>(inputs.begin(), inputs.end());
}

void compileKernelToObject(const Kernel& kernel, const std::string& objectPath,
                           const std::string& functionName, TargetKind target) {
  Halide::Func output = kernel.output; // a handle: compiling does not change the pipeline
  output.compile_to_object(objectPath, kernel.arguments(), functionName,
                           halideTarget(target).with_feature(Halide::Target::NoRuntime));
}

void compileHalideRuntime(const std::string& objectPath, TargetKind target) {
  Halide::compile_standalone_runtime(objectPath, halideTarget(target));
}

bool hasKernel(const Op& op) {
  for (const Value* operand : op.operands)
    if (operand->type.elementType != ElementType::F32 &&
        !(op.kind == OpKind::Gather && isInteger(operand->type.elementType)))
      return false;
  switch (op.kind) {
  case OpKind::Add:
  case OpKind::Sub:
  case OpKind::Mul:
  case OpKind::Div:
  case OpKind::Max:
  case OpKind::Min:
  case OpKind::Neg:
  case OpKind::Exp:
  case OpKind::Tanh:
  case OpKind::Sqrt:
  case OpKind::Rsqrt:
  case OpKind::Gelu:
  case OpKind::RmsNorm:
    return true;
  case OpKind::MatMul:
    return op.operands[1]->type.rank() == 2;
  case OpKind::Gather:
    return op.operands[0]->type.rank() == 2 && *op.attr<int64_t>("axis") == 0;
  default:
    return false;
  }
}

Kernel buildKernel(const Op& op, TargetKind target) {
  if (!hasKernel(op))
    throw UserError(op.loc, "no Halide kernel for '" + std::string(op.mnemonic()) +
                                "' with these types yet");
  switch (op.kind) {
  case OpKind::RmsNorm:
    return rmsNorm(op, target);
  case OpKind::MatMul:
    return matmul(op, target);
  case OpKind::Gather:
    return gather(op, target);
  default:
    return elementwise(op, target);
  }
}

} // namespace gemma
