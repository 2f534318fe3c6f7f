/* The boundary between gemmac and the runtime, declared once: the entry point's signature, the
 * roles of its inputs and outputs, the alignment of the buffers it is handed, the weights file's
 * format, and the description of a compiled model (everything the plan fixed at compile time),
 * which the compiler writes as one `const gemma_model_desc <name>_model` in C. The compiler
 * includes this header too (backend/llvm/EntryPoint.cpp checks its LLVM signature against
 * gemma_entry, passes/ plan with GEMMA_BUFFER_ALIGNMENT, ir/ModelRoles.h names the roles). */
#ifndef GEMMA_MODEL_H
#define GEMMA_MODEL_H

#include "runtime/gemma_api.h"

#ifdef __cplusplus
extern "C" {
#endif

#define GEMMA_MODEL_ABI 2

/* Every buffer the entry point is handed or places (the arena, the KV cache and each region in
 * them, constant data) starts at a multiple of this many bytes: a cache line, an AVX-512 vector. */
#define GEMMA_BUFFER_ALIGNMENT 64

/* The weights file's `__metadata__.format` (backend/WeightsFile.h, runtime/LoadedWeights.cpp). */
#define GEMMA_WEIGHTS_FORMAT "gemmac-weights/1"

/* The LLVM-emitted entry point (backend/llvm/EntryPoint.h). `last_rows` > 0: the head output's
 * rows (a [batch, seq, ...] output) are computed only for its last `last_rows` positions (the
 * others hold stale data): generation needs the logits of the last token only. 0: every row.
 * A compiled model declares its entry point as `gemma_entry <name>_model_forward;`. */
typedef int32_t gemma_entry(const uint8_t* weights, uint8_t* arena, uint8_t* kv_cache,
                            void* const* inputs, void** outputs, int64_t batch, int64_t seq,
                            int64_t past, int64_t last_rows);
typedef gemma_entry* gemma_entry_fn;

enum gemma_output_type { GEMMA_OUTPUT_F32 = 0, GEMMA_OUTPUT_BF16 = 1, GEMMA_OUTPUT_F16 = 2 };

enum gemma_input_role {
  GEMMA_INPUT_IDS = 0,       /* int64 [batch, seq] */
  GEMMA_INPUT_MASK = 1,      /* int64 [batch, past + seq] */
  GEMMA_INPUT_POSITIONS = 2, /* int64 [batch, seq] */
  GEMMA_INPUT_PAST = 3       /* a past cache: kept in kv_cache, never read from the input */
};

enum gemma_output_role {
  GEMMA_OUTPUT_HEAD = 0,   /* the head's result: logits, hidden states or labels (output 0) */
  GEMMA_OUTPUT_PRESENT = 1 /* a present cache: past + new rows, in its kv_cache region */
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
