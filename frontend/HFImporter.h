// The Hugging Face frontend: a Gemma checkpoint folder (config.json + safetensors) becomes IR of
// primitive ops that computes what transformers computes, head by head (GEMMA_SPEC.md section 2).
//
// The graph's signature is the same for every head, so one graph serves prefill and decode:
//   inputs   %input_ids: i64[batch,seq]        new tokens
//            %attention_mask: i64[batch,past+seq]  1 = a real token, 0 = padding (left padding)
//            %position_ids: i64[batch,seq]     as generate() computes them: cumsum(mask) - 1
//            %past.{i}.key, %past.{i}.value: T[batch,K,past,H]   per layer, after RoPE
//   outputs  the head's result ("logits" or "last_hidden_state"), then
//            present.{i}.key, present.{i}.value: T[batch,K,past+seq,H]
// T is the checkpoint's activation dtype (that of embed_tokens). Weights are `weight` ops named by
// their checkpoint tensor names; ops carry the HF module path they implement as their location.
#pragma once

#include "frontend/ImportedModel.h"

#include <optional>
#include <string>

namespace gemma {

// Reads FOLDER/config.json and its safetensors, checks every tensor the head needs (present, right
// shape, float dtype) and that nothing unknown is there, and builds the graph. `head` overrides the
// config's `architectures`. Throws UserError naming the file or tensor at fault.
ImportedModel importHFCheckpoint(const std::string& folder, std::optional<Head> head = {});

// The second half of that, shared with the GGUF frontend (which renames its tensors to the
// checkpoint's names): checks `model.weights` against its config and head, sets the base-model
// prefix, and builds and verifies the graph. model.config, head and activationType must be set.
void buildGemmaGraph(ImportedModel& model);

} // namespace gemma
