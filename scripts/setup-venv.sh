#!/usr/bin/env bash
# Creates a Python venv with pinned packages. Used only to regenerate test fixtures and to run
# peers in benchmarks.
#   setup-venv.sh                 the project's venv: .venv, scripts/requirements.txt
#   setup-venv.sh optimum         optimum-onnx's: .venv-optimum, scripts/requirements-optimum.txt
# (GEMMAC_VENV overrides the folder.) Prints the venv's path last.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
flavour="${1:-}"
suffix="${flavour:+-$flavour}"
requirements="$root/scripts/requirements$suffix.txt"
[ -f "$requirements" ] || { echo "error: no $requirements" >&2; exit 1; }
venv="${GEMMAC_VENV:-$root/.venv$suffix}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$requirements"
echo "$venv"
