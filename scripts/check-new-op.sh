#!/usr/bin/env bash
# Shows which files must handle a new op: adds a scratch row to a copy of ir/Ops.def and compiles
# every translation unit of the build (syntax only, from build/compile_commands.json) against the
# copy, listing those that fail. Today: ShapeRules, Interpreter, Kernels, EntryPoint, PlanMemory
# (README "Adding an op"). The working tree is not touched.
#   bash scripts/check-new-op.sh        (after scripts/build.sh)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"
[ -f "$build/compile_commands.json" ] || { echo "error: run scripts/build.sh first" >&2; exit 1; }
copy="$(mktemp -d)"
trap 'rm -rf "$copy"' EXIT
tar -C "$root" --exclude=./build --exclude='./build-*' --exclude=./.git --exclude='./.venv*' \
  -cf - . | tar -C "$copy" -xf -
sed -i 's|^GEMMA_OP(Where, .*|&\nGEMMA_OP(Scratch, "scratch", 1, 1, 1, Elementwise, None)|' "$copy/ir/Ops.def"
grep -q 'GEMMA_OP(Scratch' "$copy/ir/Ops.def" || { echo "error: could not add the row" >&2; exit 1; }
python3 - "$build/compile_commands.json" "$root" "$copy" <<'PY'
import concurrent.futures, json, os, re, subprocess, sys
commands, root, copy = json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3]
jobs = []
for entry in commands:
    source = entry["file"]
    if not source.startswith(root + "/") or source.startswith(os.path.join(root, "build")):
        continue
    command = entry["command"].replace("-I" + root + " ", "-I" + copy + " ")
    command = re.sub(r" -o \S+| -MD| -MT \S+| -MF \S+", "", command)
    command = command.replace(source, copy + source[len(root):]) + " -fsyntax-only"
    jobs.append((os.path.relpath(source, root), command))
def compile_one(job):
    result = subprocess.run(job[1], shell=True, capture_output=True, text=True, cwd=copy)
    errors = [l.replace(copy + "/", "") for l in result.stderr.splitlines() if "error:" in l]
    return job[0], result.returncode, errors[:2]
with concurrent.futures.ThreadPoolExecutor(os.cpu_count()) as pool:
    results = list(pool.map(compile_one, jobs))
failing = [r for r in results if r[1] != 0]
print(f"{len(results)} translation units; {len(failing)} fail with a scratch row in Ops.def:")
for name, _, errors in failing:
    print(f"  {name}: {errors[0] if errors else ''}")
PY
