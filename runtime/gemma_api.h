/* The C API of a model compiled by gemmac. The compiler writes this declaration block into
 * OUT/<name>.h, after the declaration of the model itself (`extern const gemma_model_desc
 * <name>_model;`), and links its implementation into OUT/lib<name>.a.
 *
 *   gemma_session* s = gemma_open(&gemma_model, "OUT/gemma.weights", "OUT/tokenizer.model",
 *                                 error, sizeof error);
 *   int32_t ids[256];
 *   int32_t n = gemma_tokenize(s, "Hello", 1, ids, 256);
 *   gemma_generation_config config;
 *   gemma_generation_config_default(s, &config);
 *   config.max_length = 50;
 *   n = gemma_generate(s, ids, n, &config, ids, 256, NULL);
 *
 * Link: cc main.c OUT/lib<name>.a -lsentencepiece -lstdc++ -lpthread -ldl -lm
 * Every function that can fail returns a negative value or NULL and leaves a message that
 * gemma_error() returns. A session is not thread-safe; the kernels use all cores themselves. */
#ifndef GEMMA_API_H
#define GEMMA_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct gemma_model_desc gemma_model_desc; /* one per compiled model, made by gemmac */
typedef struct gemma_session gemma_session;

/* Stop ids a generation config holds: gemmac refuses a checkpoint with more eos ids. */
#define GEMMA_MAX_STOP_IDS 8

enum gemma_head {
  GEMMA_HEAD_CAUSAL_LM = 0, /* logits [batch, seq, vocab] */
  GEMMA_HEAD_MODEL = 1,     /* last hidden state [batch, seq, hidden] */
  GEMMA_HEAD_SEQ_CLS = 2,   /* scores [batch, labels] at each row's last non-pad token */
  GEMMA_HEAD_TOKEN_CLS = 3  /* scores [batch, seq, labels] */
};

/* Reads the weights file into memory (checked against the model: a foreign or truncated file is
 * refused),
 * allocates the KV cache and the activation arena, and loads the tokenizer (NULL: none; the
 * session then works on ids only). On failure returns NULL with the reason in `error`. */
gemma_session* gemma_open(const gemma_model_desc* model, const char* weights_path,
                          const char* tokenizer_path, char* error, size_t error_size);
void gemma_close(gemma_session* session);
const char* gemma_error(const gemma_session* session);

/* What the model was compiled for. */
const char* gemma_model_name(const gemma_session* session);
int32_t gemma_head_kind(const gemma_session* session);
int64_t gemma_max_batch(const gemma_session* session);
int64_t gemma_max_seq_len(const gemma_session* session);   /* past + new tokens, at most */
int64_t gemma_output_width(const gemma_session* session);  /* vocab, hidden size or labels */
int64_t gemma_planned_bytes(const gemma_session* session); /* weights + KV cache + arena */

/* Text to ids (a <bos> first when add_bos): returns the count, which may exceed `capacity` (then
 * only `capacity` ids are written), or -1. */
int32_t gemma_tokenize(gemma_session* session, const char* text, int32_t add_bos, int32_t* ids,
                       int32_t capacity);
/* Gemma's chat template around one user message, ending with the model's turn, as ids. */
int32_t gemma_tokenize_chat(gemma_session* session, const char* user_message, int32_t* ids,
                            int32_t capacity);
/* Ids to text as transformers' decode(ids) prints it (special tokens written out). Returns the
 * text's length, which may exceed capacity - 1 (the text is then cut and still NUL-terminated),
 * or -1. */
int64_t gemma_detokenize(gemma_session* session, const int32_t* ids, int32_t count, char* text,
                         size_t capacity);
/* The id of a piece such as "<end_of_turn>", or -1. */
int32_t gemma_piece_id(gemma_session* session, const char* piece);

/* One call of the model over the KV cache: `seq` new tokens per row after `past` cached ones.
 * input_ids and position_ids are [batch, seq], attention_mask [batch, past + seq]. The output
 * (float32) is [batch, seq, width], or [batch, width] for sequence classification. past = 0
 * starts over. Returns 0 or -1. */
int32_t gemma_forward(gemma_session* session, int64_t batch, int64_t seq, int64_t past,
                      const int64_t* input_ids, const int64_t* attention_mask,
                      const int64_t* position_ids, float* output);

/* transformers' generate() for one prompt: greedy unless do_sample; stops at max_length tokens in
 * all (max_new_tokens, when > 0, wins), or after a stop id (which is kept). */
typedef struct gemma_generation_config {
  int32_t max_length;     /* default: generation_config.json's, else 20;
                             at most the compiled context */
  int32_t max_new_tokens; /* > 0: overrides max_length */
  int32_t do_sample;
  float temperature; /* 1 */
  int32_t top_k;     /* 50, as transformers; 0: off */
  float top_p;       /* 1: off */
  uint64_t seed;
  int32_t stop_ids[GEMMA_MAX_STOP_IDS]; /* the checkpoint's eos ids */
  int32_t num_stop_ids;                 /* 0..GEMMA_MAX_STOP_IDS, else an error */
  int32_t prefill_tokens; /* > 0: prefill only these, then feed the rest of the prompt one token
                             at a time through the cache (testing) */
} gemma_generation_config;
void gemma_generation_config_default(const gemma_session* session, gemma_generation_config* config);

typedef struct gemma_generation_callbacks {
  /* After each new token, with the sequence so far; a non-zero return stops generation. */
  int32_t (*on_token)(void* user, const int32_t* ids, int32_t length);
  /* The output rows of each forward call (prefill: one per prompt token; then one per step). */
  void (*on_logits)(void* user, const float* rows, int64_t count, int64_t width);
  void* user;
} gemma_generation_callbacks;

/* Writes prompt + generated ids to `output` (capacity >= max length) and returns the length, or
 * -1. `callbacks` may be NULL. */
int32_t gemma_generate(gemma_session* session, const int32_t* prompt, int32_t prompt_length,
                       const gemma_generation_config* config, int32_t* output, int32_t capacity,
                       const gemma_generation_callbacks* callbacks);

/* Time spent by the last gemma_generate. */
typedef struct gemma_generation_stats {
  int64_t prefill_tokens, decode_tokens;
  double prefill_seconds, decode_seconds;
} gemma_generation_stats;
void gemma_last_stats(const gemma_session* session, gemma_generation_stats* stats);

#ifdef __cplusplus
}
#endif

#endif
