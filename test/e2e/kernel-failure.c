/* A kernel that fails inside the model's forward call (here: every Halide allocation refused, as
 * under memory pressure) is an error return with Halide's message, never an abort of the program:
 *   cc -std=c11 -I OUT -I /usr/include/halide14 -DMODEL_HEADER='"km.h"' -DMODEL=km_model \
 *      kernel-failure.c OUT/libkm.a -lsentencepiece -lstdc++ -lpthread -ldl -lm
 *   ./a.out OUT/km.weights
 * prints the error and exits 0 when the call failed cleanly. */
#include MODEL_HEADER

#include <HalideRuntime.h>
#include <stdio.h>
#include <string.h>

static void* refuse(void* user_context, size_t bytes) {
  (void)user_context;
  (void)bytes;
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 2)
    return 2;
  char error[512];
  gemma_session* session = gemma_open(&MODEL, argv[1], NULL, error, sizeof error);
  if (!session) {
    fprintf(stderr, "error: %s\n", error);
    return 1;
  }
  int64_t ids[4] = {2, 5, 9, 11}, mask[4] = {1, 1, 1, 1}, positions[4] = {0, 1, 2, 3};
  static float output[4 * 4096];
  halide_set_custom_malloc(refuse);
  int32_t status = gemma_forward(session, 1, 4, 0, ids, mask, positions, output);
  printf("status %d: %s\n", status, status ? gemma_error(session) : "");
  int clean = status == -1 && strstr(gemma_error(session), "a kernel failed") != NULL;
  gemma_close(session);
  return clean ? 0 : 1;
}
