// The GGUF frontend: a llama.cpp model file of architecture gemma, gemma2 or gemma3 becomes the
// same graph the Hugging Face frontend builds (GEMMA_SPEC.md section 7).
//
// Its metadata becomes a config.json as transformers' GGUF loader derives one (with the defaults
// that loader and llama.cpp share for absent keys: sliding-window pattern 6, local RoPE base
// 10,000, query_pre_attn_scalar = head_dim); llama.cpp's tensor names (token_embd,
// blk.N.attn_q, ...) become the checkpoint's; every tensor is decoded to f32 at compile time, as
// gguf.quants.dequantize does, and the norms lose the +1 llama.cpp's converter adds to Gemma's
// RMSNorm weights. The tokenizer.ggml.* vocabulary becomes a sentencepiece model, with the two
// fixes transformers' GGUF loader applies to Gemma files (space runs respelled with U+2581,
// merges ranked by the order of the vocabulary).
#pragma once

#include "frontend/ImportedModel.h"

#include <optional>
#include <string>

namespace gemma {

// True when the file at `path` begins with GGUF's magic.
bool isGgufFile(const std::string& path);

// Throws UserError naming the file and the key or tensor at fault.
ImportedModel importGgufModel(const std::string& path, std::optional<Head> head = {});

} // namespace gemma
