"""Whether gemmac's quantized matrices equal llama-quantize's, byte for byte: each block tensor of
a GGUF (llama.cpp's names) against the same tensor in a gemmac weights file (transformers' names).

    python compare_blocks.py PEER.gguf PROGRAM.weights
"""
import json
import struct
import sys

import gguf

LAYER_NAMES = {"attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
               "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
               "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj", "ffn_down": "mlp.down_proj"}
BLOCK_TYPES = ("Q8_0", "Q4_0", "Q4_K")


def weights_file(path):
    with open(path, "rb") as f:
        length = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(length))
        base = 8 + length
    return header, base


def main():
    peer, weights = sys.argv[1:3]
    header, base = weights_file(weights)
    equal, different, missing = 0, [], []
    with open(weights, "rb") as data:
        for tensor in gguf.GGUFReader(peer).tensors:
            if tensor.tensor_type.name not in BLOCK_TYPES:
                continue
            parts = tensor.name.split(".")
            if parts[0] == "blk":
                name = f"model.layers.{parts[1]}.{LAYER_NAMES[parts[2]]}.weight"
            elif parts[0] == "token_embd":
                name = "model.embed_tokens.weight"
            else:
                name = "lm_head.weight"
            entry = header.get(name)
            if entry is None or entry["dtype"] != tensor.tensor_type.name:
                missing.append(f"{name} ({entry['dtype'] if entry else 'absent'})")
                continue
            begin, end = entry["data_offsets"]
            data.seek(base + begin)
            if data.read(end - begin) == tensor.data.tobytes():
                equal += 1
            else:
                different.append(name)
    print(f"gemmac's blocks vs llama-quantize's: {equal} tensors equal byte for byte, "
          f"{len(different)} different, {len(missing)} not stored in that type by gemmac")
    for name in different + missing:
        print(f"  {name}")


if __name__ == "__main__":
    main()
