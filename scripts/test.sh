#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (gtest suites and lit)
# through ctest.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"
"$root/scripts/build.sh"
cd "$build"
ctest --output-on-failure -j "$(nproc)" "$@"
