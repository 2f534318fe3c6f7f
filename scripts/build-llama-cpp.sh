#!/usr/bin/env bash
# Builds llama.cpp, the peer of the benchmarks, from the pinned llama-cpp-python source package
# (its vendored llama.cpp, commit 0c1e570) into a cache outside the repository, once; prints the
# folder holding llama-bench, llama-cli... last. About 16 minutes at -j2 the first time.
#   build-llama-cpp.sh
# GEMMAC_CACHE overrides the cache folder (default ~/.cache/gemmac).
set -euo pipefail
version=0.3.36
commit=0c1e570
cache="${GEMMAC_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/gemmac}"
prefix="$cache/llama.cpp-$commit"
bin="$prefix/build/bin"
targets=(llama-bench llama-simple llama-tokenize llama-quantize)
if [ -x "$bin/llama-bench" ] && [ -f "$prefix/.built" ]; then
  echo "$bin"
  exit 0
fi
rm -rf "$prefix"
mkdir -p "$prefix"
work="$(mktemp -d "$cache/llama-src.XXXXXX")"
trap 'rm -rf "$work"' EXIT
echo "build-llama-cpp: pip download llama-cpp-python==$version (source)" >&2
python3 -m pip download --quiet --no-deps --no-binary :all: -d "$work" \
  "llama-cpp-python==$version" >&2
tar -xzf "$work"/llama_cpp_python-"$version".tar.gz -C "$work"
mv "$work/llama_cpp_python-$version/vendor/llama.cpp" "$prefix/src"
cmake -S "$prefix/src" -B "$prefix/build" -G Ninja -DCMAKE_BUILD_TYPE=Release \
  -DGGML_NATIVE=ON -DLLAMA_CURL=OFF -DLLAMA_BUILD_COMMIT="$commit" -DBUILD_SHARED_LIBS=OFF >&2
cmake --build "$prefix/build" -j "$(nproc)" --target "${targets[@]}" >&2
touch "$prefix/.built"
echo "$bin"
