#!/usr/bin/env bash
# The benchmark (not a test): a random-weight checkpoint with gemma-2b's shapes (made here, never
# committed), compiled by gemmac and run; reports decode and prefill tokens/s, the share of the
# machine's read-bandwidth roofline and FMA peak (both measured by this same run), the compile
# time, and the compiler's and the program's peak memory.
#   bash scripts/bench.sh [--layers N] [--dtype float32|bfloat16]
#                         [--weights-dtype bf16|q8_0|q4_0|q4_k] [--arithmetic exact|fast]
#                         [--prompt-tokens P]
#                         [--new-tokens T] [--onnxruntime] [--llama-cpp] [--fusion-table]
#                         [--profile]
# (--llama-cpp: also run llama.cpp's llama-bench (scripts/build-llama-cpp.sh) on the same
# checkpoint converted by its convert_hf_to_gguf.py and, for a block type, quantized to the same
# type by llama-quantize --pure; prints the ratios and whether gemmac's blocks equal
# llama-quantize's byte for byte.
# --onnxruntime: also run the same checkpoint exported to ONNX fp32 by onnxruntime's CPU provider
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
layers=18 dtype=float32 weights_dtype=checkpoint arithmetic=exact prompt_tokens=512 new_tokens=16 peer=
fusion_table= profile= llama=
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers="$2"; shift 2 ;;
    --dtype) dtype="$2"; shift 2 ;;
    --weights-dtype) weights_dtype="$2"; shift 2 ;;
    --arithmetic) arithmetic="$2"; shift 2 ;;
    --onnxruntime) peer=onnxruntime; shift ;;
    --llama-cpp) llama=1; shift ;;
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
  --weights-dtype "$weights_dtype" --arithmetic "$arithmetic"
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

rm -f "$work/llama.json" "$work/llama-blocks.txt"
if [ -n "$llama" ]; then
  llama_bin="$(bash "$root/scripts/build-llama-cpp.sh" | tail -n 1)"
  llama_src="$(dirname "$(dirname "$llama_bin")")/src"
  # llama.cpp's own converter (the float type as the checkpoint's), then its quantizer without
  # k-quant mixtures (--pure), so that every matrix has the type gemmac stores.
  outtype=f32
  [ "$dtype" = bfloat16 ] && outtype=bf16
  converted="$checkpoint-$outtype.gguf"
  if [ ! -f "$converted" ]; then
    echo "== llama.cpp convert_hf_to_gguf.py --outtype $outtype"
    "$venv/bin/python" "$llama_src/convert_hf_to_gguf.py" "$checkpoint" --outtype "$outtype" \
      --outfile "$converted" > "$work/convert.log" 2>&1 || { tail -n 5 "$work/convert.log"; exit 1; }
  fi
  peer_gguf="$converted"
  case "$weights_dtype" in
    q8_0|q4_0|q4_k|bf16)
      peer_gguf="$work/peer-$weights_dtype.gguf"
      echo "== llama-quantize --pure $(echo "$weights_dtype" | tr a-z A-Z)"
      "$llama_bin/llama-quantize" --pure "$converted" "$peer_gguf" \
        "$(echo "$weights_dtype" | tr a-z A-Z)" > "$work/quantize.log" 2>&1 ||
        { tail -n 5 "$work/quantize.log"; exit 1; }
      if [ "$weights_dtype" != bf16 ]; then
        "$venv/bin/python" "$root/scripts/bench/compare_blocks.py" "$peer_gguf" "$out/gemma.weights" |
          tee "$work/llama-blocks.txt"
      fi ;;
  esac
  echo "== llama-bench -t 2 -p $prompt_tokens -n $new_tokens on $(basename "$peer_gguf")"
  if ! "$llama_bin/llama-bench" -m "$peer_gguf" -t 2 -p "$prompt_tokens" -n "$new_tokens" -o json \
    > "$work/llama.json" 2> "$work/llama.err"; then
    echo "llama-bench failed ($(tail -n 1 "$work/llama.err")); again with --repack 0"
    "$llama_bin/llama-bench" -m "$peer_gguf" -t 2 -p "$prompt_tokens" -n "$new_tokens" -o json \
      --repack 0 > "$work/llama.json"
  fi
  [ "$peer_gguf" = "$converted" ] || rm -f "$peer_gguf"
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
