#!/usr/bin/env bash
# Creates the project's Python venv (.venv at the repository root) with the pinned packages of
# scripts/requirements.txt. Used only to regenerate test fixtures and to run peers in benchmarks.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
venv="${GEMMAC_VENV:-$root/.venv}"
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
"$venv/bin/python" -m pip install --quiet --upgrade pip
"$venv/bin/python" -m pip install --quiet -r "$root/scripts/requirements.txt"
echo "$venv"
