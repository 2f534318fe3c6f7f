#!/usr/bin/env bash
# The benchmark (not a test): a random-weight checkpoint with gemma-2b's shapes (made here, never
# committed), compiled by gemmac and run; reports decode and prefill tokens/s, the share of the
# machine's read-bandwidth roofline and FMA peak (both measured by this same run), the compile
# time, and the compiler's and the program's peak memory.
#   bash scripts/bench.sh [--layers N] [--dtype float32|bfloat16] [--weights-dtype bf16]
#                         [--prompt-tokens P] [--new-tokens T] [--onnxruntime] [--fusion-table]
#                         [--profile]
# (--onnxruntime: also run the same checkpoint exported to ONNX fp32 by onnxruntime's CPU provider
# with the same threads, prompt and tokens, and print the ratios; it needs memory for the export,
# so use it with fewer layers, e.g. --layers 4. --fusion-table: also compile and run the model
# with each fusion pass disabled in turn and print decode and prefill tokens/s for each.
# --profile: also run decode alone and prefill alone under perf and print where the time goes.)
# It ends with one table: each of the performance issue's measures beside its target, met or not;
# the same as JSON in build/bench/bench.json.
# (--dtype: the checkpoint's; --weights-dtype bf16: gemmac stores its matrices as bf16 under f32
# activations.)
# bench.sh --gguf [FILE] [--llama-cpp] ... is the GGUF benchmark instead: scripts/bench/gguf.sh.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
for argument in "$@"; do
  [ "$argument" = --gguf ] && exec bash "$root/scripts/bench/gguf.sh" "$@"
done
build="${GEMMAC_BUILD_DIR:-$root/build}"
layers=18 dtype=float32 weights_dtype=checkpoint prompt_tokens=512 new_tokens=16 peer=
fusion_table= profile=
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers="$2"; shift 2 ;;
    --dtype) dtype="$2"; shift 2 ;;
    --weights-dtype) weights_dtype="$2"; shift 2 ;;
    --onnxruntime) peer=onnxruntime; shift ;;
    --fusion-table) fusion_table=1; shift ;;
    --profile) profile=1; shift ;;
    --prompt-tokens) prompt_tokens="$2"; shift 2 ;;
    --new-tokens) new_tokens="$2"; shift 2 ;;
    *) echo "bench.sh: unknown argument '$1'" >&2; exit 1 ;;
  esac
done
"$root/scripts/install-deps.sh" >/dev/null
"$root/scripts/build.sh" >/dev/null
venv="$(bash "$root/scripts/setup-venv.sh" | tail -n 1)"
work="$build/bench"
checkpoint="$work/gemma-2b-random-$dtype-$layers"
mkdir -p "$work"
if [ ! -f "$checkpoint/model.safetensors" ]; then
  echo "== making $checkpoint"
  "$venv/bin/python" "$root/scripts/bench/make_checkpoint.py" "$checkpoint" --layers "$layers" --dtype "$dtype"
fi

echo "== measuring the machine"
cc -O3 -march=native -fopenmp "$root/scripts/bench/machine.c" -o "$work/machine"
"$work/machine" | tee "$work/machine.txt"
bandwidth=$(awk '/^read_bandwidth_gbs/ {print $2}' "$work/machine.txt")
peak=$(awk '/^fma_peak_gflops/ {print $2}' "$work/machine.txt")

echo "== gemmac compile"
max_seq_len=$((prompt_tokens + new_tokens))
out="$work/program"
rm -rf "$out"
/usr/bin/time -f "compile_seconds %e\ncompile_peak_kib %M" -o "$work/compile.txt" \
  "$build/tools/gemmac/gemmac" compile "$checkpoint" -o "$out" --name gemma --max-seq-len "$max_seq_len" \
  --weights-dtype "$weights_dtype"
cat "$work/compile.txt"

# The checkpoint's pages leave the page cache: on a 24 GiB machine they would crowd out the
# program's 10 GB of weights and make decode read them from disk.
"$venv/bin/python" - "$checkpoint" <<'PY'
import glob, os, sys
for path in glob.glob(os.path.join(sys.argv[1], "*.safetensors")):
    fd = os.open(path, os.O_RDONLY)
    os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    os.close(fd)
PY

# A prompt of exactly P tokens: ids, so that the look-alike tokenizer does not decide the length.
ids=2
for ((i = 1; i < prompt_tokens; i++)); do ids="$ids,$((300 + i % 200))"; done
echo "== $out/gemma --input-ids <$prompt_tokens ids> --max-new-tokens $new_tokens --bench"
/usr/bin/time -f "run_peak_kib %M" -o "$work/run.txt" \
  "$out/gemma" --input-ids "$ids" --max-new-tokens "$new_tokens" --bench --ids > /dev/null 2> "$work/bench.txt"
cat "$work/bench.txt" "$work/run.txt"

rm -f "$work/fusions.txt"
if [ -n "$fusion_table" ]; then
  for fusion in fuse-rmsnorm fuse-rotary fuse-attention fuse-mlp; do
    echo "== without $fusion"
    variant="$work/program-no-$fusion"
    rm -rf "$variant"
    "$build/tools/gemmac/gemmac" compile "$checkpoint" -o "$variant" --name gemma --max-seq-len "$max_seq_len" \
      --weights-dtype "$weights_dtype" --disable-pass "$fusion" > "$variant.log" 2>&1
    "$variant/gemma" --input-ids "$ids" --max-new-tokens "$new_tokens" --bench --ids \
      2>&1 > /dev/null | sed "s/^/$fusion /" | grep -E "prefill|decode" | tee -a "$work/fusions.txt"
    rm -rf "$variant" # its weights file: the disk and the page cache hold one at a time
  done
fi

rm -f "$work/peer.txt"
if [ -n "$peer" ]; then
  echo "== onnxruntime on the same checkpoint (exported to ONNX fp32), $(nproc) threads"
  "$venv/bin/python" "$root/scripts/bench/peer_onnxruntime.py" "$checkpoint" "$checkpoint-onnx" \
    --prompt-tokens "$prompt_tokens" --new-tokens "$new_tokens" --threads "$(nproc)" | tee "$work/peer.txt"
fi

rm -f "$work"/profile-*.txt
if [ -n "$profile" ]; then
  # Where the time goes: decode alone (a 2-token prompt), then the prompt's prefill alone.
  for phase in decode prefill; do
    if [ "$phase" = decode ]; then args=(--input-ids 2,300 --max-new-tokens "$new_tokens");
    else args=(--input-ids "$ids" --max-new-tokens 1); fi
    echo "== perf record: $phase"
    perf record -q -o "$work/perf-$phase.data" "$out/gemma" "${args[@]}" --bench --ids > /dev/null 2>&1
    perf report -i "$work/perf-$phase.data" --no-children --sort symbol 2> /dev/null |
      grep -v '^#' | grep '%' > "$work/profile-$phase.txt"
  done
fi

"$venv/bin/python" "$root/scripts/bench/report.py" "$checkpoint" "$work" --bandwidth "$bandwidth" \
  --peak "$peak" --weights-dtype "$weights_dtype"
