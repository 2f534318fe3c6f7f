#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (gtest suites, lit,
# toolchain probes, format check) through ctest. Then builds again with AddressSanitizer and UBSan
# and runs the IR tests there too (parser, verifier, interpreter, passes, gemma-opt fuzzing), so
# malformed input is shown not to crash in either build. GEMMAC_SANITIZE_TESTS=0 skips that part.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"

"$root/scripts/build.sh"
(cd "$build" && ctest --output-on-failure -j "$(nproc)" "$@")

if [ "${GEMMAC_SANITIZE_TESTS:-1}" != 0 ]; then
  echo "== again with AddressSanitizer and UBSan"
  GEMMAC_BUILD_DIR="$build-sanitize" GEMMAC_BUILD_TYPE=Debug \
    GEMMAC_CMAKE_ARGS="-DGEMMAC_SANITIZE=ON" "$root/scripts/build.sh"
  # The toolchain probes and the kernel tests run LLVM and Halide (uninstrumented, JIT code
  # included), whose own leaks are not ours to judge.
  (cd "$build-sanitize" && ctest --output-on-failure -j "$(nproc)" -E '^(toolchain|format)' \
    -LE kernels "$@")
fi
