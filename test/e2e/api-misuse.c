/* The C API as a careless caller uses it: null sessions and arrays, negative counts, a past that
 * overflows the context check, too many stop ids. Every call answers an error (or the documented
 * "" / -1 of a getter) and nothing crashes; one line per call, checked by api-misuse.test.
 *   ./a.out OUT/NAME.weights OUT/tokenizer.model */
#include MODEL_HEADER

#include <stdint.h>
#include <stdio.h>

int main(int argc, char** argv) {
  if (argc != 3)
    return 2;
  char error[512];
  gemma_session* s = gemma_open(&MODEL, argv[1], argv[2], error, sizeof error);
  if (!s) {
    fprintf(stderr, "error: %s\n", error);
    return 1;
  }
  printf("null getters: '%s' %d %lld %lld %lld %lld '%s'\n", gemma_model_name(NULL),
         gemma_head_kind(NULL), (long long)gemma_max_batch(NULL),
         (long long)gemma_max_seq_len(NULL), (long long)gemma_output_width(NULL),
         (long long)gemma_planned_bytes(NULL), gemma_error(NULL));
  char text[64];
  int32_t ids[16] = {2, 5, 9};
  long long n = gemma_detokenize(s, NULL, 5, text, sizeof text);
  printf("detokenize null ids: %lld %s\n", n, gemma_error(s));
  n = gemma_detokenize(s, ids, -1, text, sizeof text);
  printf("detokenize negative count: %lld %s\n", n, gemma_error(s));
  printf("detokenize null session: %lld\n", (long long)gemma_detokenize(NULL, ids, 3, text, 64));
  printf("tokenize null text: %d %s\n", gemma_tokenize(s, NULL, 1, ids, 16), gemma_error(s));
  printf("tokenize negative capacity: %d %s\n", gemma_tokenize(s, "hi", 1, ids, -1),
         gemma_error(s));
  printf("piece null: %d %s\n", gemma_piece_id(s, NULL), gemma_error(s));
  int64_t one[1] = {2}, mask[1] = {1}, position[1] = {0};
  static float out[1 << 16];
  printf("forward past overflow: %d %s\n",
         gemma_forward(s, 1, 1, INT64_MAX, one, mask, position, out), gemma_error(s));
  printf("forward seq overflow: %d %s\n",
         gemma_forward(s, 1, INT64_MAX, 2, one, mask, position, out), gemma_error(s));
  printf("forward null session: %d\n", gemma_forward(NULL, 1, 1, 0, one, mask, position, out));
  gemma_generation_config config;
  gemma_generation_config_default(s, &config);
  config.max_length = 8;
  config.num_stop_ids = 9;
  int32_t output[16];
  printf("generate 9 stop ids: %d %s\n", gemma_generate(s, ids, 3, &config, output, 16, NULL),
         gemma_error(s));
  config.num_stop_ids = -1;
  printf("generate -1 stop ids: %d %s\n", gemma_generate(s, ids, 3, &config, output, 16, NULL),
         gemma_error(s));
  gemma_generation_config_default(NULL, &config);
  gemma_generation_config_default(s, NULL);
  printf("default config without a session: max_length %d top_k %d\n", config.max_length,
         config.top_k);
  gemma_generation_stats stats;
  gemma_last_stats(NULL, &stats);
  gemma_last_stats(s, NULL);
  printf("stats without a session: %lld\n", (long long)stats.decode_tokens);
  gemma_close(s);
  gemma_close(NULL);
  printf("done\n");
  return 0;
}
