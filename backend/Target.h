// The x86-64 feature set the kernels are compiled for. Always an explicit list: Halide's host
// string on this CPU (Zen 4) names avx512_sapphirerapids, whose AMX and VEX-VNNI code paths the
// CPU lacks (TOOLCHAIN.md, gotcha 2).
#pragma once

#include <Halide.h>
#include <optional>
#include <string>

namespace gemma {

// AVX512VNNI is AVX512 with VNNI and BF16 (Zen 4, Sapphire Rapids and later): the fast
// arithmetic's integer dot products need it; every other kernel is compiled as for AVX512.
enum class TargetKind { AVX2, AVX512, AVX512VNNI };

// AVX512VNNI where the host has avx512f/bw/dq/vl and avx512vnni/bf16, AVX512 without the last
// two, else AVX2.
TargetKind hostTargetKind();
// "avx2", "avx512", "avx512-vnni" or "host".
std::optional<TargetKind> parseTargetKind(const std::string& name);
std::string targetKindName(TargetKind kind);
Halide::Target halideTarget(TargetKind kind);
bool hasDotProductInstructions(TargetKind kind);
// The float vector width (lanes of f32) the schedules use on this target.
int vectorLanes(TargetKind kind);

} // namespace gemma
