// Halide pipelines for IR ops. A kernel takes each operand as an ImageParam and produces the
// op's result; tensors are row-major, so a Halide dim i is the tensor's dim rank-1-i (the innermost
// first). Static dims of the model are stated as constraints, so schedules may rely on them;
// batch, seq and past stay run-time extents. Schedules are written by hand: the innermost dim
// vectorised to the target's f32 lanes, the outermost parallel over Halide's thread pool.
#pragma once

#include "backend/Target.h"
#include "ir/IR.h"

#include <Halide.h>
#include <string>
#include <vector>

namespace gemma {

struct Kernel {
  std::string name;
  std::vector<Halide::ImageParam> inputs; // one per operand, in order
  Halide::Func output;
  // AVX512-VNNI's vpdpbusd (the fast arithmetic): compiled for a target that has it
  // (kernelTarget), which only TargetKind::AVX512VNNI kernels may use.
  bool usesDotProductInstructions = false;
  std::vector<Halide::Argument> arguments() const;
};

// The Halide target `kernel` is compiled for on `target`: halideTarget(target), or for a kernel
// using dot-product instructions, Halide's avx512_sapphirerapids (its only way to them), whose
// CPU and extra features compileKernelToObject replaces with ones Zen 4 has.
Halide::Target kernelTarget(const Kernel& kernel, TargetKind target);

// Compiles the kernel to an object file exporting `functionName` (halide_buffer_t* arguments,
// operands then the result), without the Halide runtime: one runtime object serves every kernel
// of a program (compileHalideRuntime).
void compileKernelToObject(const Kernel& kernel, const std::string& objectPath,
                           const std::string& functionName, TargetKind target);
void compileHalideRuntime(const std::string& objectPath, TargetKind target);

// The Halide type holding an element type (bool as uint8).
Halide::Type halideType(ElementType type);

// A value's element strides as stored, outermost dim first: row-major, except a weight with
// `perm` (fold-weight-transposes), which is the stored tensor read through permuted strides.
// Kernels are compiled for these strides; the entry point describes buffers with them.
std::vector<int64_t> storageStrides(const Value& value);
bool hasPermutedStorage(const Value& value);

// Whether buildKernel handles this op (kind, element types) yet.
bool hasKernel(const Op& op);
// Builds the kernel for `op`; throws UserError if there is none for it. kv_cache_append's kernel
// takes only the new rows and writes them where its result buffer points (into the cache region).
Kernel buildKernel(const Op& op, TargetKind target);

} // namespace gemma
