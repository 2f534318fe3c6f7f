"""The benchmark's report (scripts/bench.sh runs it): reads what that run wrote to its work folder
and prints one table of the performance issue's measures, each beside its target and whether this
run met it, then writes the same as JSON (WORK/bench.json).

    python report.py CHECKPOINT WORK --bandwidth GBS --peak GFLOPS --weights-dtype D

Files read from WORK: bench.txt (the program's --bench lines), run.txt and compile.txt
(/usr/bin/time's peaks and seconds), and where present fusions.txt (--fusion-table), peer.txt
(--onnxruntime), llama.json and llama-blocks.txt (--llama-cpp) and profile-decode.txt / profile-prefill.txt (--profile).
"""
import argparse
import glob
import json
import os
import re


# Linux functions a profile shows, and what the program was doing in them.
KNOWN = {
    "clear_page_erms": "  (the kernel zeroing pages: the weights' memory at load, temporaries)",
    "_copy_to_iter": "  (the kernel copying the weights file into memory at load)",
    "exc_page_fault": "  (first touches of memory)",
}


def parse_args():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("work")
    parser.add_argument("--bandwidth", type=float, required=True, help="measured read GB/s")
    parser.add_argument("--peak", type=float, required=True, help="measured fp32 FMA GFLOP/s")
    parser.add_argument("--weights-dtype", default="checkpoint")
    return parser.parse_args()


def rate(match):
    return int(match.group(1)) / float(match.group(2))


def main():
    args = parse_args()
    work = args.work
    config = json.load(open(os.path.join(args.checkpoint, "config.json")))
    text = open(os.path.join(work, "bench.txt")).read()
    prefill = re.search(r"prefill: (\d+) tokens in ([\d.]+) s", text)
    decode = re.search(r"decode: (\d+) tokens in ([\d.]+) s", text)
    planned = re.search(r"planned ([\d.]+) MiB", text)
    p_tokens, d_tokens = int(prefill.group(1)), int(decode.group(1))
    prefill_rate, decode_rate = rate(prefill), rate(decode)

    d, i, v = config["hidden_size"], config["intermediate_size"], config["vocab_size"]
    h, n, k = config["head_dim"], config["num_attention_heads"], config["num_key_value_heads"]
    layers = config["num_hidden_layers"]
    item = 4 if config.get("dtype", config.get("torch_dtype")) == "float32" else 2
    cache_item = item  # the KV cache holds activations
    if args.weights_dtype in ("bf16", "f16"):
        item = 2
    # Bytes per weight of GGUF's blocks: Q8_0 34 per 32, Q4_0 18 per 32, Q4_K 144 per 256.
    item = {"q8_0": 34 / 32, "q4_0": 18 / 32, "q4_k": 144 / 256}.get(args.weights_dtype, item)
    # What one decode step must read: every weight matrix once (the embedding's one row aside; the
    # tied logits read its transposed copy), the KV cache so far.
    matrix_params = layers * (d * n * h + 2 * d * k * h + n * h * d + 3 * d * i) + v * d
    context = p_tokens + d_tokens / 2
    step_bytes = matrix_params * item + layers * 2 * k * h * context * cache_item
    roofline = args.bandwidth * 1e9 / step_bytes
    # Prefill's useful work: every layer's matrices for every prompt token, the logits for the
    # last one only (generation asks for no other), and causal attention's query-key pairs.
    layer_params = matrix_params - v * d
    pairs = p_tokens * (p_tokens + 1) / 2
    prefill_flops = (2 * layer_params * p_tokens + 2 * v * d + layers * 4 * n * h * pairs)
    prefill_gflops = prefill_flops / float(prefill.group(2)) / 1e9

    compile_facts = dict(l.split() for l in open(os.path.join(work, "compile.txt")))
    run_facts = dict(l.split() for l in open(os.path.join(work, "run.txt")))
    checkpoint_bytes = sum(os.path.getsize(p)
                           for p in glob.glob(os.path.join(args.checkpoint, "*.safetensors")))
    compile_seconds = float(compile_facts["compile_seconds"])
    compile_peak = int(compile_facts["compile_peak_kib"]) * 1024
    program_peak = int(run_facts["run_peak_kib"]) * 1024
    planned_bytes = float(planned.group(1)) * 1048576

    result = {
        "model": {"layers": layers, "dtype": config.get("dtype", config.get("torch_dtype")),
                  "weights_dtype": args.weights_dtype, "matrix_params": matrix_params},
        "machine": {"read_bandwidth_gbs": args.bandwidth, "fma_peak_gflops": args.peak},
        "decode": {"tokens_per_s": decode_rate, "roofline_tokens_per_s": roofline,
                   "bytes_per_step": step_bytes, "of_roofline": decode_rate / roofline},
        "prefill": {"prompt_tokens": p_tokens, "tokens_per_s": prefill_rate,
                    "gflops": prefill_gflops, "of_fma_peak": prefill_gflops / args.peak},
        "compile": {"seconds": compile_seconds, "peak_bytes": compile_peak,
                    "checkpoint_bytes": checkpoint_bytes},
        "program": {"peak_bytes": program_peak, "planned_bytes": planned_bytes},
    }
    # (name, measured, target, met) rows of the table, in the order.
    targets = [
        ("decode, share of the bandwidth roofline", decode_rate / roofline, 0.85, "{:.0%}"),
        (f"prefill ({p_tokens} tokens), share of the FMA peak", prefill_gflops / args.peak, 0.50,
         "{:.0%}"),
    ]
    peer = os.path.join(work, "peer.txt")
    if os.path.exists(peer):
        rows = {l.split()[0]: (int(l.split()[1]), float(l.split()[2]))
                for l in open(peer) if l.strip()}
        ort_prefill = rows["onnxruntime_prefill"][0] / rows["onnxruntime_prefill"][1]
        ort_decode = rows["onnxruntime_decode"][0] / rows["onnxruntime_decode"][1]
        result["onnxruntime"] = {"decode_tokens_per_s": ort_decode,
                                 "prefill_tokens_per_s": ort_prefill,
                                 "decode_ratio": decode_rate / ort_decode,
                                 "prefill_ratio": prefill_rate / ort_prefill}
        narrow = args.weights_dtype in ("bf16", "f16")
        targets.append(("decode vs onnxruntime fp32", decode_rate / ort_decode,
                        1.9 if narrow else 1.1, "{:.2f}x"))
        if narrow:
            targets.append(("prefill vs onnxruntime fp32", prefill_rate / ort_prefill, 1.5,
                            "{:.2f}x"))
    llama = os.path.join(work, "llama.json")
    if os.path.exists(llama):
        results = json.load(open(llama))
        pp = next(r["avg_ts"] for r in results if r["n_gen"] == 0)
        tg = next(r["avg_ts"] for r in results if r["n_prompt"] == 0)
        kind = {"checkpoint": result["model"]["dtype"]}.get(args.weights_dtype,
                                                             args.weights_dtype)
        result["llama_cpp"] = {"type": kind, "decode_tokens_per_s": tg,
                               "prefill_tokens_per_s": pp, "decode_ratio": decode_rate / tg,
                               "prefill_ratio": prefill_rate / pp}
        blocks = os.path.join(work, "llama-blocks.txt")
        if os.path.exists(blocks):
            result["llama_cpp"]["blocks"] = open(blocks).readline().strip()
        targets.append((f"decode vs llama.cpp, same weights ({kind})", decode_rate / tg, 1.2,
                        "{:.2f}x"))
        targets.append((f"prefill vs llama.cpp, same weights ({kind})", prefill_rate / pp, 1.2,
                        "{:.2f}x"))
    slack = 64 * 1048576
    targets += [
        ("program peak RSS over its plan (weights + KV + arena)", program_peak - planned_bytes,
         -slack, "{:+.0f} MiB"),
        ("compiler peak RSS / checkpoint size", compile_peak / checkpoint_bytes, -1.5, "{:.2f}x"),
        ("compile time (s)", compile_seconds, -180.0, "{:.1f}"),
    ]

    print()
    weights_note = "" if args.weights_dtype == "checkpoint" else \
        f", matrices stored {args.weights_dtype}"
    print(f"model: gemma-2b shapes, {layers} layers, {result['model']['dtype']}{weights_note}; "
          f"{matrix_params / 1e9:.2f} G matrix parameters")
    print(f"machine (this run): read bandwidth {args.bandwidth:.1f} GB/s, "
          f"fp32 FMA peak {args.peak:.0f} GFLOP/s")
    print(f"decode (batch 1): {decode_rate:.2f} tokens/s; roofline {roofline:.2f} tokens/s "
          f"({step_bytes / 1e9:.2f} GB per step)")
    print(f"prefill ({p_tokens} tokens): {prefill_rate:.1f} tokens/s, {prefill_gflops:.0f} GFLOP/s")
    if "onnxruntime" in result:
        o = result["onnxruntime"]
        print(f"onnxruntime (fp32 ONNX, same run and threads): decode "
              f"{o['decode_tokens_per_s']:.2f} tokens/s, prefill {o['prefill_tokens_per_s']:.1f} "
              f"tokens/s")
    if "llama_cpp" in result:
        l = result["llama_cpp"]
        print(f"llama.cpp (llama-bench, same run, 2 threads, {l['type']}): decode "
              f"{l['decode_tokens_per_s']:.2f} tokens/s, prefill {l['prefill_tokens_per_s']:.1f} "
              f"tokens/s")
        if "blocks" in l:
            print(l["blocks"])
    print(f"compile {compile_seconds:.1f} s, compiler peak {compile_peak / 2**30:.2f} GiB "
          f"(checkpoint {checkpoint_bytes / 2**30:.2f} GiB); program peak "
          f"{program_peak / 2**30:.2f} GiB, planned {planned_bytes / 2**30:.2f} GiB")
    print()
    print(f"  {'measure':<56} {'this run':>12} {'target':>12}  met")
    table = []
    for name, measured, target, form in targets:
        # A negative target is an upper bound.
        met = measured >= target if target >= 0 else measured <= -target
        shown = measured / 1048576 if "MiB" in form else measured
        bound = (abs(target) / 1048576 if "MiB" in form else abs(target))
        print(f"  {name:<56} {form.format(shown):>12} "
              f"{('>= ' if target >= 0 else '<= ') + form.format(bound):>12}  "
              f"{'yes' if met else 'NO'}")
        table.append({"measure": name, "measured": measured, "target": abs(target),
                      "bound": "at least" if target >= 0 else "at most", "met": met})
    result["targets"] = table

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
            print(f"  {'without ' + fusion:<28} {r.get('decode', 0):>8.2f} "
                  f"{r.get('prefill', 0):>8.1f}   (all fusions: decode "
                  f"{decode_rate / r.get('decode', 1):.2f}x, prefill "
                  f"{prefill_rate / r.get('prefill', 1):.2f}x)")
        result["fusions"] = {f"without {f}": r for f, r in rates.items()}

    for phase in ("decode", "prefill"):
        path = os.path.join(work, f"profile-{phase}.txt")
        if os.path.exists(path):
            shares = []
            for line in open(path):
                m = re.match(r"\s*([\d.]+)%\s+\[[.k]\]\s+(\S+)", line)
                if m and float(m.group(1)) >= 0.5:
                    shares.append((m.group(2), float(m.group(1))))
            print()
            print(f"where {phase}'s time goes (perf samples, functions over 0.5%):")
            for symbol, share in shares[:12]:
                print(f"  {share:5.1f}%  {symbol}{KNOWN.get(symbol, '')}")
            result.setdefault("profile", {})[phase] = dict(shares)

    with open(os.path.join(work, "bench.json"), "w") as out:
        json.dump(result, out, indent=2)
    print()
    print(f"(as JSON: {os.path.join(work, 'bench.json')})")


if __name__ == "__main__":
    main()
