#include "backend/Target.h"

namespace gemma {

TargetKind hostTargetKind() {
  __builtin_cpu_init();
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  if (!avx512)
    return TargetKind::AVX2;
  bool vnni = __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("avx512bf16");
  return vnni ? TargetKind::AVX512VNNI : TargetKind::AVX512;
}

std::optional<TargetKind> parseTargetKind(const std::string& name) {
  if (name == "host")
    return hostTargetKind();
  if (name == "avx2")
    return TargetKind::AVX2;
  if (name == "avx512")
    return TargetKind::AVX512;
  if (name == "avx512-vnni")
    return TargetKind::AVX512VNNI;
  return std::nullopt;
}

std::string targetKindName(TargetKind kind) {
  switch (kind) {
  case TargetKind::AVX2:
    return "avx2";
  case TargetKind::AVX512:
    return "avx512";
  case TargetKind::AVX512VNNI:
    return "avx512-vnni";
  }
  return "avx2";
}

bool hasDotProductInstructions(TargetKind kind) {
  return kind == TargetKind::AVX512VNNI;
}

Halide::Target halideTarget(TargetKind kind) {
  // avx512_cannonlake is Halide's name for F+CD+BW+DQ+VL+IFMA+VBMI: all on Zen 4, no AMX.
  // (Kernels with VNNI dot products get theirs from kernelTarget.)
  return Halide::Target(kind == TargetKind::AVX2
                            ? "x86-64-linux-avx-avx2-f16c-fma-sse41"
                            : "x86-64-linux-avx-avx2-avx512-avx512_cannonlake-f16c-fma-sse41");
}

int vectorLanes(TargetKind kind) {
  return kind == TargetKind::AVX2 ? 8 : 16;
}

} // namespace gemma
