/* What gemmac tells the runtime about a compiled model: the entry point and everything the plan
 * fixed at compile time. The compiler writes one `const gemma_model_desc <name>_model` in C. */
#ifndef GEMMA_MODEL_H
#define GEMMA_MODEL_H

#include "runtime/gemma_api.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GEMMA_MODEL_ABI 2

/* The LLVM-emitted entry point (backend/llvm/EntryPoint.h). `last_rows` > 0: the first output's
 * rows (a [batch, seq, ...] output) are computed only for its last `last_rows` positions (the
 * others hold stale data): generation needs the logits of the last token only. 0: every row. */
typedef int32_t (*gemma_entry_fn)(const uint8_t* weights, uint8_t* arena, uint8_t* kv_cache,
                                  void* const* inputs, void** outputs, int64_t batch, int64_t seq,
                                  int64_t past, int64_t last_rows);

enum gemma_output_type { GEMMA_OUTPUT_F32 = 0, GEMMA_OUTPUT_BF16 = 1, GEMMA_OUTPUT_F16 = 2 };

enum gemma_input_role {
  GEMMA_INPUT_IDS = 0,       /* int64 [batch, seq] */
  GEMMA_INPUT_MASK = 1,      /* int64 [batch, past + seq] */
  GEMMA_INPUT_POSITIONS = 2, /* int64 [batch, seq] */
  GEMMA_INPUT_PAST = 3       /* a past cache: kept in kv_cache, never read from the input */
};

struct gemma_model_desc {
  int32_t abi; /* GEMMA_MODEL_ABI */
  const char* name;
  const char* model_hash; /* the weights file's metadata must name it */
  gemma_entry_fn forward;
  int64_t weights_file_bytes;
  int64_t arena_bytes;
  int64_t kv_cache_bytes;
  int64_t max_batch;
  int64_t max_seq_len;
  int32_t head; /* enum gemma_head */
  int32_t vocab_size;
  int32_t output_width; /* vocab, hidden or labels */
  int32_t output_type;  /* enum gemma_output_type */
  int32_t pad_id;       /* -1: none */
  int32_t bos_id;       /* -1: none */
  int32_t num_eos;
  const int32_t* eos_ids;
  int32_t default_max_length; /* from generation_config.json, else transformers' 20 */
  int32_t num_inputs;
  const int32_t* input_roles; /* enum gemma_input_role, one per entry-point input */
  int32_t num_outputs;        /* output 0 is the head's; the others are the present caches */
};

#ifdef __cplusplus
}
#endif

#endif
