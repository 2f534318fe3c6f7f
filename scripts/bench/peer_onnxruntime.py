"""The benchmark's peer: the same checkpoint exported to ONNX (torch.onnx's TorchScript exporter,
fp32, with past_key_values inputs and present outputs, as test/fixtures/make_onnx_fixtures.py
exports the fixtures) and run by onnxruntime's CPU provider with the same thread count and the
same prompt and token counts as gemmac's program. Prints lines the benchmark parses:

    onnxruntime_prefill TOKENS SECONDS
    onnxruntime_decode TOKENS SECONDS

    python peer_onnxruntime.py CHECKPOINT WORK_DIR --prompt-tokens P --new-tokens T --threads N
"""
import argparse
import os
import sys
import time

import numpy as np
import onnxruntime
import torch
from transformers import GemmaForCausalLM

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "test", "fixtures"))
from make_onnx_fixtures import WithPast, cache_io  # noqa: E402


def export(checkpoint, path):
    model = GemmaForCausalLM.from_pretrained(checkpoint, dtype=torch.float32,
                                             attn_implementation="eager").eval()
    config = model.config
    names, presents, axes = cache_io(config)
    past = 2
    example = (torch.tensor([[2, 300, 301]]), torch.ones(1, past + 3, dtype=torch.long),
               torch.arange(past, past + 3)[None])
    example += tuple(torch.zeros(1, config.num_key_value_heads, past, config.head_dim)
                     for _ in names)
    with torch.no_grad():
        torch.onnx.export(WithPast(model), example, path,
                          input_names=["input_ids", "attention_mask", "position_ids"] + names,
                          output_names=["logits"] + presents, dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    return config


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("checkpoint")
    parser.add_argument("work")
    parser.add_argument("--prompt-tokens", type=int, default=64)
    parser.add_argument("--new-tokens", type=int, default=16)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    os.makedirs(args.work, exist_ok=True)
    path = os.path.join(args.work, "model.onnx")
    stamp = os.path.join(args.work, "exported-from")
    if not (os.path.exists(path) and open(stamp).read() == os.path.abspath(args.checkpoint)
            if os.path.exists(stamp) else False):
        print(f"exporting {args.checkpoint} to {path}", file=sys.stderr)
        export(args.checkpoint, path)
        with open(stamp, "w") as f:
            f.write(os.path.abspath(args.checkpoint))
    torch.set_num_threads(args.threads)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = args.threads
    options.inter_op_num_threads = 1
    session = onnxruntime.InferenceSession(path, options, providers=["CPUExecutionProvider"])
    inputs = [i.name for i in session.get_inputs()]
    pasts = [n for n in inputs if n.startswith("past_key_values")]
    kv_shape = next(i.shape for i in session.get_inputs() if i.name == pasts[0])
    kv_heads, head_dim = kv_shape[1], kv_shape[3]

    def step(ids, start, cache):
        feed = {"input_ids": np.array([ids], dtype=np.int64),
                "attention_mask": np.ones((1, start + len(ids)), dtype=np.int64),
                "position_ids": np.arange(start, start + len(ids), dtype=np.int64)[None]}
        feed.update(cache)
        out = session.run(None, feed)
        return out[0], dict(zip(pasts, out[1:]))

    prompt = [2] + [300 + i % 200 for i in range(1, args.prompt_tokens)]  # as bench.sh's ids
    empty = {n: np.zeros((1, kv_heads, 0, head_dim), np.float32) for n in pasts}
    step(prompt[:8], 0, empty)  # warm up
    begin = time.perf_counter()
    logits, cache = step(prompt, 0, empty)
    prefill = time.perf_counter() - begin
    token = int(logits[0, -1].argmax())
    length = len(prompt)
    begin = time.perf_counter()
    for _ in range(args.new_tokens - 1):
        logits, cache = step([token], length, cache)
        length += 1
        token = int(logits[0, -1].argmax())
    decode = time.perf_counter() - begin
    print(f"onnxruntime_prefill {len(prompt)} {prefill:.4f}")
    print(f"onnxruntime_decode {args.new_tokens - 1} {decode:.4f}")


if __name__ == "__main__":
    main()
