// The x86-64 feature set the kernels are compiled for. Always an explicit list: Halide's host
// string on this CPU (Zen 4) names avx512_sapphirerapids, whose AMX and VEX-VNNI code paths the
// CPU lacks (TOOLCHAIN.md, gotcha 2).
#pragma once

#include <Halide.h>
#include <optional>
#include <string>

namespace gemma {

enum class TargetKind { AVX2, AVX512 };

// AVX-512 where the host has avx512f/bw/dq/vl, else AVX2.
TargetKind hostTargetKind();
// "avx2", "avx512" or "host".
std::optional<TargetKind> parseTargetKind(const std::string& name);
std::string targetKindName(TargetKind kind);
Halide::Target halideTarget(TargetKind kind);
// The float vector width (lanes of f32) the schedules use on this target.
int vectorLanes(TargetKind kind);

} // namespace gemma
