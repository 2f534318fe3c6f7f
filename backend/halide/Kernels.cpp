// Halide kernels: the builder of each op kind (one switch over every kind, so a new op without a
// kernel fails to build), the storage of weights read through permuted strides, and compilation
// to objects. The builders themselves are in one file per family (KernelBuilders.h).
#include "backend/halide/KernelBuilders.h"

#include <llvm/IR/Constants.h>
#include <llvm/IR/Instructions.h>
#include <llvm/IR/Intrinsics.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/Support/raw_ostream.h>

namespace gemma {

bool hasPermutedStorage(const Value& value) {
  return value.definingOp && value.definingOp->kind == OpKind::Weight &&
         value.definingOp->attr<Ints>("perm");
}

std::vector<int64_t> storageStrides(const Value& value) {
  const TensorType& type = value.type;
  size_t rank = static_cast<size_t>(type.rank());
  std::vector<int64_t> strides(rank, 1);
  if (!hasPermutedStorage(value)) {
    for (size_t d = rank; d-- > 1;)
      strides[d - 1] = strides[d] * (type.dims[d].isStatic() ? type.dims[d].staticValue() : 0);
    return strides;
  }
  // Stored dim perm[i] is the value's dim i: row-major strides of the stored shape, permuted.
  const Ints& perm = *value.definingOp->attr<Ints>("perm");
  TensorType stored = storedWeightType(*value.definingOp);
  std::vector<int64_t> storedStrides(rank, 1);
  for (size_t d = rank; d-- > 1;)
    storedStrides[d - 1] = storedStrides[d] * stored.dims[d].staticValue();
  for (size_t i = 0; i < rank; ++i)
    strides[i] = storedStrides[static_cast<size_t>(perm[i])];
  return strides;
}

Halide::Type halideType(ElementType type) {
  using namespace Halide;
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
  case ElementType::Q4_0:
  case ElementType::Q4_1:
  case ElementType::Q5_0:
  case ElementType::Q5_1:
  case ElementType::Q8_0:
  case ElementType::Q4_K:
  case ElementType::Q5_K:
  case ElementType::Q6_K:
    return UInt(8); // a weight's blocks, read as bytes
  }
  return Float(32);
}

std::vector<Halide::Argument> Kernel::arguments() const {
  return std::vector<Halide::Argument>(inputs.begin(), inputs.end());
}

Halide::Target kernelTarget(const Kernel& kernel, TargetKind target) {
  if (!kernel.usesDotProductInstructions)
    return halideTarget(target);
  if (!hasDotProductInstructions(target))
    throw InternalError("kernel '" + kernel.name + "' uses VNNI dot products, which target " +
                        targetKindName(target) + " lacks");
  return halideTarget(target).with_feature(Halide::Target::AVX512_SapphireRapids);
}

void compileKernelToObject(const Kernel& kernel, const std::string& objectPath,
                           const std::string& functionName, TargetKind target) {
  Halide::Func output = kernel.output; // a handle: compiling does not change the pipeline
  Halide::Target halide = kernelTarget(kernel, target).with_feature(Halide::Target::NoRuntime);
  Halide::Module module = output.compile_to_module(kernel.arguments(), functionName, halide);
  llvm::LLVMContext context;
  std::unique_ptr<llvm::Module> ir = Halide::compile_module_to_llvm_module(module, context);
  if (kernel.usesDotProductInstructions) {
    // Halide's avx512_sapphirerapids also makes LLVM's CPU "sapphirerapids", whose AMX,
    // AVX512-FP16 and VEX-encoded AVX-VNNI Zen 4 lacks (an f16 conversion alone may then become
    // an FP16 instruction). The module keeps Halide's dot-product intrinsics, but is emitted for
    // an Ice Lake server's AVX-512 (all on Zen 4) plus BF16, with those features off.
    ir->setModuleFlag(llvm::Module::Warning, "halide_mcpu",
                      llvm::MDString::get(context, "icelake-server"));
    ir->setModuleFlag(llvm::Module::Warning, "halide_mattrs",
                      llvm::MDString::get(context, "+f16c,+fma,+avx512f,+avx512cd,+avx512vl,"
                                                   "+avx512bw,+avx512dq,+avx512ifma,+avx512vbmi,"
                                                   "+avx512vnni,+avx512bf16,-avxvnni,-amx-tile,"
                                                   "-amx-int8,-amx-bf16,-avx512fp16"));
  }
  // Halide 14's prefetch is prefetchnta (locality 0), which on Intel fills neither L2 nor L3:
  // the weight rows a kernel prefetches a few panels ahead then arrive later than with no
  // prefetch at all. As prefetcht0 (locality 3) they arrive in time (the real 270M's Q8_0 logits,
  // 178 MB a token: 18.4 ms without prefetch, 21.3 with prefetchnta, 13.0 with prefetcht0, on an
  // Intel Xeon; gemma_kernel_bench's FastQ8_0LogitsFull).
  for (llvm::Function& function : *ir)
    for (llvm::BasicBlock& block : function)
      for (llvm::Instruction& instruction : block)
        if (auto* call = llvm::dyn_cast<llvm::CallInst>(&instruction))
          if (const llvm::Function* callee = call->getCalledFunction();
              callee && callee->getIntrinsicID() == llvm::Intrinsic::prefetch)
            call->setArgOperand(2, llvm::ConstantInt::get(llvm::Type::getInt32Ty(context), 3));
  std::unique_ptr<llvm::raw_fd_ostream> stream = Halide::make_raw_fd_ostream(objectPath);
  Halide::compile_llvm_module_to_object(*ir, *stream);
}

void compileHalideRuntime(const std::string& objectPath, TargetKind target) {
  Halide::compile_standalone_runtime(objectPath, halideTarget(target));
}

bool hasKernel(const Op& op) {
  // Every element type: f32, bf16 and f16 (read into f32, rounded once when written), integers
  // and bool. Data and views have nothing to compute (the program reads their buffers).
  if (hasTrait(op.kind, OpTrait::NoKernel))
    return false;
  if (op.kind == OpKind::Softmax) { // over the innermost axis only
    int64_t axis = *op.attr<int64_t>("axis");
    return axis == -1 || axis == op.operands[0]->type.rank() - 1;
  }
  if (op.kind == OpKind::MatMul) // ONNX MatMul of two matrices or stacks of them (no 1-D operand)
    return op.operands[0]->type.rank() >= 2 && op.operands[1]->type.rank() >= 2;
  if (op.kind == OpKind::GatedMlp) { // blocks in all three weights or none
    int blocks = 0;
    for (size_t i = 1; i < 4; ++i)
      blocks += isBlockQuantized(op.operands[i]->type.elementType);
    return blocks == 0 || blocks == 3;
  }
  return true;
}

namespace {

// Where quantize-activations marked `op` for integer dot products ({arithmetic = "int8"}; the
// shape rules check its value and weight types), its target must have them (the block kernels
// then use them: DotProductKernels.cpp).
void checkArithmetic(const Op& op, TargetKind target) {
  if (op.hasAttr("arithmetic") && !hasDotProductInstructions(target))
    throw UserError(op.loc, "--arithmetic fast needs AVX512-VNNI's dot products; target " +
                                targetKindName(target) + " has none (--target avx512-vnni)");
}

} // namespace

Kernel buildKernel(const Op& op, TargetKind target) {
  using namespace kernels;
  using Halide::Expr;
  using Args = std::vector<Expr>;
  if (!hasKernel(op))
    throw UserError(op.loc, "no Halide kernel for '" + std::string(op.mnemonic()) +
                                "' with these types yet");
  // An elementwise op: its formula over the widened operands (f32, or i64 for integers and bool).
  auto each = [&](const ElementwiseFormula& formula) {
    return elementwise(op, target, formula, op.operands.size());
  };
  switch (op.kind) {
  case OpKind::Constant:
  case OpKind::Weight:
  case OpKind::Reshape:
  case OpKind::Squeeze:
  case OpKind::Unsqueeze:
    break; // OpTrait::NoKernel: refused above
  case OpKind::Add:
    return each([](const Args& a) { return a[0] + a[1]; });
  case OpKind::Sub:
    return each([](const Args& a) { return a[0] - a[1]; });
  case OpKind::Mul:
    return each([](const Args& a) { return a[0] * a[1]; });
  case OpKind::Div:
    // Integer division truncates toward zero (Halide's rounds down).
    return each([](const Args& a) {
      return a[0].type().is_float() ? a[0] / a[1]
                                    : Halide::cast<int64_t>(Halide::trunc(
                                          Halide::cast<double>(a[0]) / Halide::cast<double>(a[1])));
    });
  case OpKind::Pow:
    return each([](const Args& a) { return Halide::pow(a[0], a[1]); });
  case OpKind::Max:
    return each([](const Args& a) { return Halide::max(a[0], a[1]); });
  case OpKind::Min:
    return each([](const Args& a) { return Halide::min(a[0], a[1]); });
  case OpKind::Sqrt:
    return each([](const Args& a) { return Halide::sqrt(a[0]); });
  case OpKind::Rsqrt:
    return each([](const Args& a) { return 1.0f / Halide::sqrt(a[0]); });
  case OpKind::Reciprocal:
    return each([](const Args& a) { return 1.0f / a[0]; });
  case OpKind::Neg:
    return each([](const Args& a) { return -a[0]; });
  case OpKind::Exp:
    return each([](const Args& a) { return Halide::exp(a[0]); });
  case OpKind::Tanh:
    return each([](const Args& a) { return Halide::tanh(a[0]); });
  case OpKind::Erf:
    return each([](const Args& a) { return Halide::erf(a[0]); });
  case OpKind::Cos:
    return each([](const Args& a) { return Halide::cos(a[0]); });
  case OpKind::Sin:
    return each([](const Args& a) { return Halide::sin(a[0]); });
  case OpKind::Gelu: {
    const std::string* approximate = op.attr<std::string>("approximate");
    bool tanhApproximation = approximate && *approximate == "tanh";
    return each([=](const Args& a) { return gelu(a[0], tanhApproximation); });
  }
  case OpKind::Cast: {
    // Float to integer truncates; anything to bool is != 0.
    ElementType to = op.result()->type.elementType;
    return each([=](const Args& a) {
      return to == ElementType::Bool                               ? boolean(truth(a[0]))
             : (halideType(to).is_float() || a[0].type().is_int()) ? a[0]
                                                                   : Halide::trunc(a[0]);
    });
  }
  case OpKind::Equal:
    return each([](const Args& a) { return boolean(a[0] == a[1]); });
  case OpKind::Less:
    return each([](const Args& a) { return boolean(a[0] < a[1]); });
  case OpKind::LessEqual:
    return each([](const Args& a) { return boolean(a[0] <= a[1]); });
  case OpKind::Greater:
    return each([](const Args& a) { return boolean(a[0] > a[1]); });
  case OpKind::GreaterEqual:
    return each([](const Args& a) { return boolean(a[0] >= a[1]); });
  case OpKind::And:
    return each([](const Args& a) { return boolean(truth(a[0]) && truth(a[1])); });
  case OpKind::Or:
    return each([](const Args& a) { return boolean(truth(a[0]) || truth(a[1])); });
  case OpKind::Xor:
    return each([](const Args& a) { return boolean(truth(a[0]) != truth(a[1])); });
  case OpKind::Not:
    return each([](const Args& a) { return boolean(!truth(a[0])); });
  case OpKind::IsNan:
    return each([](const Args& a) { return boolean(Halide::is_nan(a[0])); });
  case OpKind::Where:
    return each([](const Args& a) { return Halide::select(truth(a[0]), a[1], a[2]); });
  case OpKind::MatMul:
    checkArithmetic(op, target);
    return matmul(op, target);
  case OpKind::ReduceMean:
  case OpKind::ReduceSum:
  case OpKind::ReduceMax:
    return reduce(op, target);
  case OpKind::Softmax:
    return softmax(op, target);
  case OpKind::CumSum:
    return cumulativeSum(op, target);
  case OpKind::ArgMax:
    return argMax(op, target);
  case OpKind::Gather:
    return gather(op, target);
  case OpKind::Transpose:
    return transpose(op, target);
  case OpKind::Concat:
    return concatenate(op, target, *op.attr<int64_t>("axis"));
  case OpKind::Slice:
    return slice(op, target);
  case OpKind::Expand: // broadcast: the first operand at the result's coordinates
    return elementwise(
        op, target, [](const Args& a) { return a[0]; }, 1);
  case OpKind::Range:
    return range(op, target);
  case OpKind::Shape:
    return shape(op, target);
  case OpKind::RmsNorm:
    return rmsNorm(op, target);
  case OpKind::Rotary:
    return rotary(op, target);
  case OpKind::Attention:
    return attention(op, target);
  case OpKind::GatedMlp:
    checkArithmetic(op, target);
    return gatedMlp(op, target);
  case OpKind::KVCacheAppend:
    return cacheRows(op, target);
  }
  throw InternalError("no kernel builder for '" + std::string(op.mnemonic()) + "'");
}

} // namespace gemma
