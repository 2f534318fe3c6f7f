#!/usr/bin/env bash
# The GGUF benchmark (bench.sh --gguf runs it; not a test): a GGUF model (default: the real
# Gemma 3 270M, scripts/fetch-model.sh) compiled by gemmac and run on a prompt of P tokens then T
# new ones, with 2 threads; with --llama-cpp, llama.cpp's llama-bench (scripts/build-llama-cpp.sh)
# on the same file in the same run (-t 2 -p P -n T). Prints prefill and decode tokens/s of each,
# gemmac's over llama.cpp's, and each decode rate as a share of the bandwidth roofline (the bytes
# a decode step reads over the read bandwidth this run measured).
#   bash scripts/bench.sh --gguf [FILE] [--llama-cpp] [--weights-dtype bf16]
#                         [--prompt-tokens P] [--new-tokens T]
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
build="${GEMMAC_BUILD_DIR:-$root/build}"
gguf= peer= weights_dtype=checkpoint prompt_tokens=512 new_tokens=64
while [ $# -gt 0 ]; do
  case "$1" in
    --gguf)
      if [ $# -ge 2 ] && [ "${2#--}" = "$2" ]; then gguf="$2"; shift 2; else shift; fi ;;
    --llama-cpp) peer=1; shift ;;
    --weights-dtype) weights_dtype="$2"; shift 2 ;;
    --prompt-tokens) prompt_tokens="$2"; shift 2 ;;
    --new-tokens) new_tokens="$2"; shift 2 ;;
    *) echo "bench.sh --gguf: unknown argument '$1'" >&2; exit 1 ;;
  esac
done
"$root/scripts/install-deps.sh" >/dev/null
"$root/scripts/build.sh" >/dev/null
[ -n "$gguf" ] || gguf="$(bash "$root/scripts/fetch-model.sh" | tail -n 1)"
work="$build/bench-gguf"
mkdir -p "$work"

echo "== measuring the machine"
cc -O3 -march=native -fopenmp "$root/scripts/bench/machine.c" -o "$work/machine"
"$work/machine" | tee "$work/machine.txt"

# Each arithmetic gemmac has on this CPU: exact (the default), and fast (--arithmetic fast: int8
# activations for the Q8_0, Q4_0 and Q5_0 tensors) where the CPU has AVX512-VNNI.
arithmetics=(exact)
grep -qw avx512_vnni /proc/cpuinfo && arithmetics+=(fast)
# A prompt of exactly P tokens (ids, so that the tokenizer does not decide the length).
ids=2
for ((i = 1; i < prompt_tokens; i++)); do ids="$ids,$((1000 + i % 5000))"; done
for arithmetic in "${arithmetics[@]}"; do
  echo "== gemmac compile $gguf (weights: $weights_dtype, arithmetic: $arithmetic)"
  out="$work/program-$arithmetic"
  rm -rf "$out"
  "$build/tools/gemmac/gemmac" compile "$gguf" -o "$out" --name gemma \
    --max-seq-len $((prompt_tokens + new_tokens)) --weights-dtype "$weights_dtype" \
    --arithmetic "$arithmetic" 2>&1 | tail -n 3
done
# The programs one after the other, twice, so that a slow moment of this shared machine does not
# fall on one of them only; each one's better run counts.
for round in 1 2; do
  for arithmetic in "${arithmetics[@]}"; do
    echo "== gemmac ($arithmetic, run $round): $prompt_tokens prompt tokens, $new_tokens new" \
      "(--bench), $(nproc) threads"
    "$work/program-$arithmetic/gemma" --input-ids "$ids" --max-new-tokens "$new_tokens" --bench \
      --ids > /dev/null 2> "$work/gemmac-$arithmetic-$round.txt"
    cat "$work/gemmac-$arithmetic-$round.txt"
  done
done

rm -f "$work/llama.json"
if [ -n "$peer" ]; then
  llama_bin="$(bash "$root/scripts/build-llama-cpp.sh" | tail -n 1)"
  echo "== llama-bench -t 2 -p $prompt_tokens -n $new_tokens (llama.cpp $llama_bin)"
  # On a CPU that reports AMX (Sapphire Rapids and later) llama.cpp's AMX weight repacking
  # crashes in ggml_backend_amx_mul_mat (seen under a hypervisor); then it runs again without its
  # repacked weight buffers (--repack 0), as its plain AVX-512 kernels, and says so.
  if ! "$llama_bin/llama-bench" -m "$gguf" -t 2 -p "$prompt_tokens" -n "$new_tokens" -o json \
    > "$work/llama.json" 2> "$work/llama.err"; then
    echo "llama-bench failed ($(tail -n 1 "$work/llama.err")); again with --repack 0"
    "$llama_bin/llama-bench" -m "$gguf" -t 2 -p "$prompt_tokens" -n "$new_tokens" -o json \
      --repack 0 > "$work/llama.json"
  fi
fi

python3 - "$gguf" "$work" "${arithmetics[@]}" <<'PY'
import json, os, re, sys
gguf, work, arithmetics = sys.argv[1], sys.argv[2], sys.argv[3:]
machine = dict(line.split() for line in open(os.path.join(work, "machine.txt")) if line.strip())
bandwidth = float(machine["read_bandwidth_gbs"]) * 1e9
rate = lambda m: int(m.group(1)) / float(m.group(2))
rows = []
for arithmetic in arithmetics:
    prefill = decode = 0.0
    for round in (1, 2):
        text = open(os.path.join(work, f"gemmac-{arithmetic}-{round}.txt")).read()
        prefill = max(prefill, rate(re.search(r"prefill: (\d+) tokens in ([\d.]+) s", text)))
        decode = max(decode, rate(re.search(r"decode: (\d+) tokens in ([\d.]+) s", text)))
    # A decode step reads every weight once (the tied embedding is the logits' matrix too):
    # gemmac's weights file, llama.cpp's tensor data.
    weights = os.path.join(work, f"program-{arithmetic}", "gemma.weights")
    rows.append((f"gemmac {arithmetic}", prefill, decode, os.path.getsize(weights)))
path = os.path.join(work, "llama.json")
if os.path.exists(path):
    results = json.load(open(path))
    pp = next(r["avg_ts"] for r in results if r["n_gen"] == 0)
    tg = next(r["avg_ts"] for r in results if r["n_prompt"] == 0)
    model_bytes = next(r.get("model_size", 0) for r in results)
    rows.append(("llama.cpp", pp, tg, model_bytes))
print()
print(f"read bandwidth {bandwidth / 1e9:.1f} GB/s (measured now); {os.path.basename(gguf)}")
print(f"{'':14} {'prefill tok/s':>14} {'decode tok/s':>13} {'bytes/token':>14} "
      f"{'roofline tok/s':>15} {'% of roofline':>14}")
for name, p, d, b in rows:
    roof = bandwidth / b
    print(f"{name:14} {p:14.1f} {d:13.2f} {b:14,d} {roof:15.1f} {100 * d / roof:13.0f}%")
report = {"model": os.path.basename(gguf), "read_bandwidth_gbs": bandwidth / 1e9,
          "rows": [{"name": n, "prefill_tok_s": p, "decode_tok_s": d, "bytes_per_token": b,
                    "roofline_share": d * b / bandwidth} for n, p, d, b in rows]}
peer = next((r for r in rows if r[0] == "llama.cpp"), None)
if peer:
    print("targets (issue 17): decode >= 1.3x llama.cpp, decode >= 85% of roofline, "
          "prefill >= 1.5x llama.cpp (fast arithmetic)")
    for name, p, d, b in rows:
        if name == "llama.cpp":
            continue
        ratios = (p / peer[1], d / peer[2], d * b / bandwidth)
        met = lambda ok: "met" if ok else "missed"
        print(f"{name} / llama.cpp: prefill {ratios[0]:.2f}x ({met(ratios[0] >= 1.5)}), decode "
              f"{ratios[1]:.2f}x ({met(ratios[1] >= 1.3)}), {100 * ratios[2]:.0f}% of roofline "
              f"({met(ratios[2] >= 0.85)})")
        report[f"{name} / llama.cpp"] = {"prefill": ratios[0], "decode": ratios[1]}
json.dump(report, open(os.path.join(work, "gguf-bench.json"), "w"), indent=1)
print(f"(JSON: {os.path.join(work, 'gguf-bench.json')})")
PY
