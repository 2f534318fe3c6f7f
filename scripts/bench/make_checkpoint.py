"""Writes a random-weight Gemma checkpoint with gemma-2b's shapes (GEMMA_SPEC.md section 1) for the
benchmark: config.json from transformers' own GemmaConfig, model.safetensors streamed tensor by
tensor (never the whole model in memory), the look-alike tokenizer of the test fixtures.

    python make_checkpoint.py OUT_DIR [--layers N] [--dtype float32|bfloat16]
"""
import argparse
import json
import os
import shutil
import struct

import numpy as np
from transformers import GemmaConfig

HERE = os.path.dirname(os.path.abspath(__file__))
TOKENIZER = os.path.join(HERE, "..", "..", "test", "fixtures", "tokenizer", "tokenizer.model")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("out")
    parser.add_argument("--layers", type=int, default=18)
    parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    args = parser.parse_args()
    config = GemmaConfig(vocab_size=256000, hidden_size=2048, intermediate_size=16384,
                         num_hidden_layers=args.layers, num_attention_heads=8,
                         num_key_value_heads=1, head_dim=256, max_position_embeddings=8192,
                         rms_norm_eps=1e-6, hidden_act="gelu_pytorch_tanh", pad_token_id=0,
                         eos_token_id=1, bos_token_id=2, tie_word_embeddings=True,
                         dtype=args.dtype, architectures=["GemmaForCausalLM"])
    os.makedirs(args.out, exist_ok=True)
    config.save_pretrained(args.out)
    shutil.copy(TOKENIZER, os.path.join(args.out, "tokenizer.model"))

    d, i, h = config.hidden_size, config.intermediate_size, config.head_dim
    n, k = config.num_attention_heads, config.num_key_value_heads
    shapes = [("model.embed_tokens.weight", (config.vocab_size, d))]
    for layer in range(config.num_hidden_layers):
        p = f"model.layers.{layer}."
        shapes += [(p + "input_layernorm.weight", (d,)),
                   (p + "self_attn.q_proj.weight", (n * h, d)),
                   (p + "self_attn.k_proj.weight", (k * h, d)),
                   (p + "self_attn.v_proj.weight", (k * h, d)),
                   (p + "self_attn.o_proj.weight", (d, n * h)),
                   (p + "post_attention_layernorm.weight", (d,)),
                   (p + "mlp.gate_proj.weight", (i, d)),
                   (p + "mlp.up_proj.weight", (i, d)),
                   (p + "mlp.down_proj.weight", (d, i))]
    shapes.append(("model.norm.weight", (d,)))

    itemsize = 4 if args.dtype == "float32" else 2
    header, offset = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in shapes:
        size = int(np.prod(shape)) * itemsize
        header[name] = {"dtype": "F32" if itemsize == 4 else "BF16", "shape": list(shape),
                        "data_offsets": [offset, offset + size]}
        offset += size
    text = json.dumps(header).encode()
    text += b" " * ((8 - len(text) % 8) % 8)
    rng = np.random.default_rng(0)
    with open(os.path.join(args.out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for name, shape in shapes:
            scale = 0.1 if len(shape) == 1 else 1.0 / np.sqrt(shape[-1])
            rows = max(1, (1 << 24) // int(np.prod(shape[1:])))  # about 64 MB at a time
            for start in range(0, shape[0], rows):
                # float32 times a float32 scale: numpy 2 would promote to float64 with a
                # float64 scalar, writing twice the bytes the header declares.
                block = (rng.standard_normal((min(rows, shape[0] - start),) + shape[1:],
                                             dtype=np.float32) * np.float32(scale))
                assert block.dtype == np.float32
                if itemsize == 2:
                    block = (block.view(np.uint32) >> 16).astype(np.uint16)
                f.write(block.tobytes())
    print(f"{args.out}: {offset / 1e9:.2f} GB of {args.dtype} weights, "
          f"{config.num_hidden_layers} layers")


if __name__ == "__main__":
    main()
