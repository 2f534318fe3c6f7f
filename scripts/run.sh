#!/usr/bin/env bash
# The main job: build gemmac, compile the bundled small Gemma checkpoint (test/fixtures/hf/mqa_f32,
# random weights made by transformers, with a look-alike of Gemma's tokenizer) into a native
# program, and generate text with it. Give another checkpoint folder and prompt to use those:
#   bash scripts/run.sh [FOLDER] [PROMPT]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"
"$root/scripts/install-deps.sh" >/dev/null
"$root/scripts/build.sh" >/dev/null
model="${1:-$root/test/fixtures/hf/mqa_f32}"
prompt="${2:-Plants create energy through a process known as photosynthesis.}"
gemmac="$build/tools/gemmac/gemmac"
out="$build/run-output"
name=gemma

echo "== gemmac inspect $model"
"$gemmac" inspect "$model"
echo
echo "== gemmac compile $model -o $out --name $name"
rm -rf "$out"
"$gemmac" compile "$model" -o "$out" --name "$name"
ls -l "$out"
echo
echo "== $out/$name --prompt \"$prompt\" --max-length 50"
"$out/$name" --prompt "$prompt" --max-length 50
echo
echo "== the same through the KV cache, with timings (--bench ignores eos)"
"$out/$name" --prompt "$prompt" --max-length 50 --bench > /dev/null
