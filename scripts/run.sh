#!/usr/bin/env bash
# The main job, as far as it exists today: build, then run gemma-opt's default pipeline on the
# example RMSNorm graph and print the IR before and after. (Compiling and running a model comes
# with the backend.)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"
"$root/scripts/build.sh" >/dev/null
example="${1:-$root/examples/rmsnorm.ir}"
echo "== $example, as written"
"$build/tools/gemma-opt/gemma-opt" "$example"
echo "== after gemma-opt -O"
"$build/tools/gemma-opt/gemma-opt" "$example" -O --time-passes
