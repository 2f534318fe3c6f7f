// Elementwise kernels: one output element from the operands' elements at the same coordinates,
// with numpy broadcasting. Each op's formula is in Kernels.cpp's buildKernel.
#include "backend/halide/KernelBuilders.h"

namespace gemma::kernels {

using namespace Halide;

Kernel elementwise(const Op& op, TargetKind target, const ElementwiseFormula& formula,
                   size_t operandsRead) {
  Kernel k;
  k.name = std::string(op.mnemonic());
  for (size_t i = 0; i < op.operands.size(); ++i)
    k.inputs.push_back(operandParam(op, i, "in" + std::to_string(i)));
  std::vector<Var> v = vars(op.result()->type.rank());
  std::vector<Expr> args;
  for (size_t i = 0; i < operandsRead; ++i)
    args.push_back(widen(broadcastRead(k.inputs[i], exprs(v))));
  k.output = Func("out");
  k.output(v) = cast(halideType(op.result()->type.elementType), formula(args));
  scheduleElementwise(k.output, v, target);
  return k;
}

Expr truth(Expr e) {
  return e != Internal::make_zero(e.type());
}

Expr boolean(Expr condition) {
  return select(condition, 1, 0);
}

} // namespace gemma::kernels
