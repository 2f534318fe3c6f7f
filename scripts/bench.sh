#!/usr/bin/env bash
# The benchmark (not a test): a random-weight checkpoint with gemma-2b's shapes (made here, never
# committed), compiled by gemmac and run; reports decode and prefill tokens/s, the share of the
# machine's read-bandwidth roofline and FMA peak (both measured by this same run), the compile
# time, and the compiler's and the program's peak memory.
#   bash scripts/bench.sh [--layers N] [--dtype float32|bfloat16] [--weights-dtype bf16]
#                         [--prompt-tokens P] [--new-tokens T] [--onnxruntime] [--fusion-table]
# (--onnxruntime: also run the same checkpoint exported to ONNX fp32 by onnxruntime's CPU provider
# with the same threads, prompt and tokens, and print the ratios; it needs memory for the export,
# so use it with fewer layers, e.g. --layers 4. --fusion-table: also compile and run the model
# with each fusion pass disabled in turn and print decode and prefill tokens/s for each.)
# (--dtype: the checkpoint's; --weights-dtype bf16: gemmac stores its matrices as bf16 under f32
# activations.)
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"
layers=18 dtype=float32 weights_dtype=checkpoint prompt_tokens=64 new_tokens=16 peer=
fusion_table=
while [ $# -gt 0 ]; do
  case "$1" in
    --layers) layers="$2"; shift 2 ;;
    --dtype) dtype="$2"; shift 2 ;;
    --weights-dtype) weights_dtype="$2"; shift 2 ;;
    --onnxruntime) peer=onnxruntime; shift ;;
    --fusion-table) fusion_table=1; shift ;;
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
out="$work/program"
rm -rf "$out"
/usr/bin/time -f "compile_seconds %e\ncompile_peak_kib %M" -o "$work/compile.txt" \
  "$build/tools/gemmac/gemmac" compile "$checkpoint" -o "$out" --name gemma --max-seq-len 512 \
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
    "$build/tools/gemmac/gemmac" compile "$checkpoint" -o "$variant" --name gemma --max-seq-len 512 \
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

"$venv/bin/python" - "$checkpoint" "$out" "$work" "$bandwidth" "$peak" "$weights_dtype" <<'PY'
import json, os, re, sys
checkpoint, out, work, bandwidth, peak = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
weights_dtype = sys.argv[6]
config = json.load(open(os.path.join(checkpoint, "config.json")))
text = open(os.path.join(work, "bench.txt")).read()
prefill = re.search(r"prefill: (\d+) tokens in ([\d.]+) s", text)
decode = re.search(r"decode: (\d+) tokens in ([\d.]+) s", text)
p_tokens, p_seconds = int(prefill.group(1)), float(prefill.group(2))
d_tokens, d_seconds = int(decode.group(1)), float(decode.group(2))
d, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
h, n, k, layers = config["head_dim"], config["num_attention_heads"], config["num_key_value_heads"], config["num_hidden_layers"]
item = 4 if config.get("dtype", config.get("torch_dtype")) == "float32" else 2
cache_item = item  # the KV cache holds activations
if weights_dtype in ("bf16", "f16"):
    item = 2
# What one decode step must read: every weight matrix once (the embedding's one row aside; the
# tied logits read its transposed copy), the KV cache so far.
matrix_params = layers * (d * n * h + 2 * d * k * h + n * h * d + 3 * d * i) + v * d
context = p_tokens + d_tokens / 2
step_bytes = matrix_params * item + layers * 2 * k * h * context * cache_item
roofline = bandwidth * 1e9 / step_bytes
decode_rate = d_tokens / d_seconds
flops_per_token = 2 * matrix_params
prefill_rate = p_tokens / p_seconds
compile = dict(l.split() for l in open(os.path.join(work, "compile.txt")))
run = dict(l.split() for l in open(os.path.join(work, "run.txt")))
print()
weights_note = "" if weights_dtype == "checkpoint" else f", matrices stored {weights_dtype}"
print(f"model: gemma-2b shapes, {layers} layers, {config.get('dtype')}{weights_note}; {matrix_params / 1e9:.2f} G matrix parameters")
print(f"machine (this run): read bandwidth {bandwidth:.1f} GB/s, fp32 FMA peak {peak:.0f} GFLOP/s")
print(f"decode (batch 1): {decode_rate:.2f} tokens/s; roofline {roofline:.2f} tokens/s "
      f"({step_bytes / 1e9:.2f} GB per step) -> {100 * decode_rate / roofline:.0f}% of the bandwidth roofline")
print(f"prefill ({p_tokens} tokens): {prefill_rate:.1f} tokens/s, {prefill_rate * flops_per_token / 1e9:.0f} GFLOP/s "
      f"-> {100 * prefill_rate * flops_per_token / 1e9 / peak:.0f}% of the FMA peak")
print(f"compile: {float(compile['compile_seconds']):.1f} s, peak {int(compile['compile_peak_kib']) / 1048576:.2f} GiB; "
      f"program peak {int(run['run_peak_kib']) / 1048576:.2f} GiB")
fusions = os.path.join(work, "fusions.txt")
if os.path.exists(fusions):
    rates = {}
    for line in open(fusions):
        m = re.match(r"(\S+) (prefill|decode): (\d+) tokens in ([\d.]+) s", line)
        if m:
            rates.setdefault(m.group(1), {})[m.group(2)] = int(m.group(3)) / float(m.group(4))
    print()
    print("what each fusion buys (the same model with that pass disabled; tokens/s):")
    print(f"  {'program':<28} {'decode':>8} {'prefill':>8}")
    print(f"  {'all fusions':<28} {decode_rate:>8.2f} {prefill_rate:>8.1f}")
    for fusion, r in rates.items():
        print(f"  {'without ' + fusion:<28} {r.get('decode', 0):>8.2f} {r.get('prefill', 0):>8.1f}"
              f"   (all fusions: decode {decode_rate / r.get('decode', 1):.2f}x, prefill {prefill_rate / r.get('prefill', 1):.2f}x)")
peer = os.path.join(work, "peer.txt")
if os.path.exists(peer):
    rows = dict((l.split()[0], (int(l.split()[1]), float(l.split()[2]))) for l in open(peer) if l.strip())
    ort_prefill = rows["onnxruntime_prefill"][0] / rows["onnxruntime_prefill"][1]
    ort_decode = rows["onnxruntime_decode"][0] / rows["onnxruntime_decode"][1]
    print(f"onnxruntime (fp32 ONNX, same run and threads): decode {ort_decode:.2f} tokens/s, prefill {ort_prefill:.1f} tokens/s")
    print(f"gemmac / onnxruntime: decode {decode_rate / ort_decode:.2f}x, prefill {prefill_rate / ort_prefill:.2f}x")
PY
