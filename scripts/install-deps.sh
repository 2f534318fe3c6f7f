#!/usr/bin/env bash
# Installs the Debian packages gemmac needs (TOOLCHAIN.md), only those missing. Idempotent,
# non-interactive; needs root (or sudo) when something is missing.
set -euo pipefail

packages=(
  cmake ninja-build g++ pkg-config python3 python3-venv
  llvm-14-dev llvm-14-tools libhalide14-0-dev libpng-dev libjpeg-dev
  libonnx-dev libprotobuf-dev protobuf-compiler libonnx-testdata
  libsentencepiece-dev sentencepiece
  libgtest-dev libgmock-dev libbenchmark-dev nlohmann-json3-dev libcli11-dev libxxhash-dev
  clang-format graphviz time
)

missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

sudo=""
if [ "$(id -u)" -ne 0 ]; then
  command -v sudo >/dev/null || { echo "install-deps: need root to install: ${missing[*]}" >&2; exit 1; }
  sudo="sudo"
fi
echo "install-deps: installing ${missing[*]}"
$sudo apt-get update -q
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
