#!/usr/bin/env bash
# Installs missing packages, configures (once) and builds gemmac into build/ (or $GEMMAC_BUILD_DIR).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"
"$root/scripts/install-deps.sh"
if [ ! -f "$build/build.ninja" ]; then
  cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE="${GEMMAC_BUILD_TYPE:-RelWithDebInfo}" \
    ${GEMMAC_CMAKE_ARGS:-}
fi
cmake --build "$build" -j "$(nproc)"
