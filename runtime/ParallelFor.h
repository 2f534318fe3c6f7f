// The kernels' parallel loops (Halide's halide_do_par_for) on gemmac's own thread pool, whose
// workers spin between loops instead of sleeping: a decode step runs some 400 parallel loops of
// well under a millisecond each, and Halide's default pool puts its workers to sleep between them
// and wakes them with futex calls (measured: one of the two cores idle half of decode).
#pragma once

#include <HalideRuntime.h>

namespace gemma::rt {

// Runs task(user_context, i, closure) for i in [min, min + size) across the pool's threads (the
// caller's among them) and returns 0, or one failing task's nonzero result. HL_NUM_THREADS, as
// for Halide's pool, sets the threads (default: the machine's). A loop called from inside a task,
// or while another thread's loop holds the pool, runs on Halide's default pool instead.
int parallelFor(void* user_context, halide_task_t task, int min, int size, uint8_t* closure);

// Makes parallelFor the kernels' halide_do_par_for (once per process).
void installParallelFor();

} // namespace gemma::rt
