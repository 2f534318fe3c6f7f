/* A C program embedding a compiled model through its header and static library, as a user would:
 *   cc -std=c11 -I OUT -DMODEL_HEADER='"mqa_f32.h"' -DMODEL=mqa_f32_model embed.c \
 *      OUT/libmqa_f32.a -lsentencepiece -lstdc++ -lpthread -ldl -lm
 *   ./a.out OUT/mqa_f32.weights OUT/tokenizer.model PROMPT MAX_LENGTH
 * prints the greedy ids, then the text. */
#include MODEL_HEADER

#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  if (argc != 5) {
    fprintf(stderr, "usage: %s WEIGHTS TOKENIZER PROMPT MAX_LENGTH\n", argv[0]);
    return 2;
  }
  char error[512];
  gemma_session* session = gemma_open(&MODEL, argv[1], argv[2], error, sizeof error);
  if (!session) {
    fprintf(stderr, "error: %s\n", error);
    return 1;
  }
  int32_t ids[512];
  int32_t length = gemma_tokenize(session, argv[3], 1, ids, 512);
  gemma_generation_config config;
  gemma_generation_config_default(session, &config);
  config.max_length = atoi(argv[4]);
  if (length > 0)
    length = gemma_generate(session, ids, length, &config, ids, 512, NULL);
  if (length < 0) {
    fprintf(stderr, "error: %s\n", gemma_error(session));
    gemma_close(session);
    return 1;
  }
  for (int32_t i = 0; i < length; ++i)
    printf(i ? " %d" : "%d", ids[i]);
  char text[4096];
  gemma_detokenize(session, ids, length, text, sizeof text);
  printf("\n%s\n", text);
  gemma_close(session);
  return 0;
}
