#!/usr/bin/env bash
# The main job, as far as it exists today: build, import the bundled small Gemma checkpoint
# (test/fixtures/hf/mqa_f32, made by transformers) into IR, run the default pipeline over it,
# compile its Halide kernels to objects, and run gemma-opt on the example RMSNorm graph. Linking
# a native program and generating text come with the rest of the backend.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"
"$root/scripts/build.sh" >/dev/null
model="${1:-$root/test/fixtures/hf/mqa_f32}"
gemmac="$build/tools/gemmac/gemmac"
gemma_opt="$build/tools/gemma-opt/gemma-opt"

echo "== gemmac inspect $model"
"$gemmac" inspect "$model"
echo
echo "== gemmac import $model | gemma-opt -O   (first layer's attention)"
"$gemmac" import "$model" --print-loc | "$gemma_opt" -O --print-loc |
  grep 'loc("model.layers.0.self_attn' | head -40
echo
echo "== gemmac compile $model --emit obj"
"$gemmac" compile "$model" -o "$build/run-output" --emit obj
ls "$build/run-output/kernels" | head -5
echo "   ..."
echo
echo "== gemma-opt -O examples/rmsnorm.ir"
"$gemma_opt" "$root/examples/rmsnorm.ir" -O
