// Proves the compiler-side dependencies link into one process and work together, as gemmac's
// compiler will use them (TOOLCHAIN.md): the shared LLVM 14 beside libHalide (static LLVM plus
// Halide aborts at start-up), a Halide pipeline JIT-compiled for an explicit x86 target (never the
// raw host string on Zen 4), and ONNX over the system protobuf. No sentencepiece here: it cannot
// share a process with protobuf.
#include <Halide.h>
#include <cstdio>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/Support/raw_ostream.h>
#include <onnx/checker.h>
#include <onnx/defs/parser.h>

namespace {

bool probeLLVM() {
  llvm::LLVMContext context;
  llvm::Module module("probe", context);
  auto* f32 = llvm::Type::getFloatTy(context);
  auto* type = llvm::FunctionType::get(f32, {f32, f32}, false);
  auto* function = llvm::Function::Create(type, llvm::Function::ExternalLinkage, "fma", module);
  llvm::IRBuilder<> builder(llvm::BasicBlock::Create(context, "entry", function));
  auto args = function->arg_begin();
  llvm::Value* a = &*args++;
  llvm::Value* b = &*args;
  builder.CreateRet(builder.CreateFAdd(builder.CreateFMul(a, b), a));
  return !llvm::verifyModule(module, &llvm::errs());
}

bool probeHalide() {
  Halide::Target target("x86-64-linux-avx-avx2-f16c-fma-sse41");
  Halide::Var x;
  Halide::Func square;
  square(x) = Halide::cast<float>(x) * Halide::cast<float>(x);
  Halide::Buffer<float> out = square.realize({8}, target);
  return out(7) == 49.0f;
}

bool probeONNX() {
  onnx::ModelProto model;
  auto status = onnx::OnnxParser::Parse(model, R"(
    <ir_version: 8, opset_import: ["" : 17]>
    probe (float[2] x) => (float[2] y) { y = Relu(x) }
  )");
  if (!status.IsOK()) {
    std::fprintf(stderr, "onnx parse: %s\n", status.ErrorMessage().c_str());
    return false;
  }
  onnx::checker::check_model(model);
  return model.graph().node_size() == 1 && model.graph().node(0).op_type() == "Relu";
}

} // namespace

int main() {
  bool llvm = probeLLVM(), halide = probeHalide(), onnx = probeONNX();
  std::printf("LLVM %s, Halide %s, ONNX %s\n", llvm ? "ok" : "FAILED", halide ? "ok" : "FAILED",
              onnx ? "ok" : "FAILED");
  return llvm && halide && onnx ? 0 : 1;
}
