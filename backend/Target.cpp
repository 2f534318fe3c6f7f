#include "backend/Target.h"

namespace gemma {

TargetKind hostTargetKind() {
  __builtin_cpu_init();
  bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
  return avx512 ? TargetKind::AVX512 : TargetKind::AVX2;
}

std::optional<TargetKind> parseTargetKind(const std::string& name) {
  if (name == "host")
    return hostTargetKind();
  if (name == "avx2")
    return TargetKind::AVX2;
  if (name == "avx512")
    return TargetKind::AVX512;
  return std::nullopt;
}

std::string targetKindName(TargetKind kind) {
  return kind == TargetKind::AVX512 ? "avx512" : "avx2";
}

Halide::Target halideTarget(TargetKind kind) {
  // avx512_cannonlake is Halide's name for F+CD+BW+DQ+VL+IFMA+VBMI: all on Zen 4, no AMX.
  return Halide::Target(kind == TargetKind::AVX512
                            ? "x86-64-linux-avx-avx2-avx512-avx512_cannonlake-f16c-fma-sse41"
                            : "x86-64-linux-avx-avx2-f16c-fma-sse41");
}

int vectorLanes(TargetKind kind) {
  return kind == TargetKind::AVX512 ? 16 : 8;
}

} // namespace gemma
