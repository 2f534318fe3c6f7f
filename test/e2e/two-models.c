/* Two compiled models in one C program, each through its own header and static library:
 *   cc -std=c11 -I A -I B two-models.c A/liba.a B/libb.a -lsentencepiece -lstdc++ -lpthread -ldl
 * -lm
 *   ./a.out A/a.weights A/tokenizer.model B/b.weights B/tokenizer.model PROMPT MAX_LENGTH
 * prints each model's greedy ids on a line of its own (the same as each program's --ids). */
#include "alpha.h"
#include "beta.h"

#include <stdio.h>
#include <stdlib.h>

static int run(const gemma_model_desc* model, const char* weights, const char* tokenizer,
               const char* prompt, int32_t maxLength) {
  char error[512];
  gemma_session* session = gemma_open(model, weights, tokenizer, error, sizeof error);
  if (!session) {
    fprintf(stderr, "error: %s\n", error);
    return 1;
  }
  int32_t ids[512];
  int32_t length = gemma_tokenize(session, prompt, 1, ids, 512);
  gemma_generation_config config;
  gemma_generation_config_default(session, &config);
  config.max_length = maxLength;
  if (length > 0)
    length = gemma_generate(session, ids, length, &config, ids, 512, NULL);
  if (length < 0) {
    fprintf(stderr, "error: %s\n", gemma_error(session));
    gemma_close(session);
    return 1;
  }
  for (int32_t i = 0; i < length; ++i)
    printf(i ? " %d" : "%d", ids[i]);
  printf("\n");
  gemma_close(session);
  return 0;
}

int main(int argc, char** argv) {
  if (argc != 7) {
    fprintf(stderr, "usage: %s A_WEIGHTS A_TOKENIZER B_WEIGHTS B_TOKENIZER PROMPT MAX_LENGTH\n",
            argv[0]);
    return 2;
  }
  int32_t maxLength = atoi(argv[6]);
  if (run(&alpha_model, argv[1], argv[2], argv[5], maxLength) != 0)
    return 1;
  return run(&beta_model, argv[3], argv[4], argv[5], maxLength);
}
