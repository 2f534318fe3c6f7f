/* The C runtime of compiled Gemma programs (grows with the code generator). */
#ifndef GEMMA_RT_H
#define GEMMA_RT_H

#include <HalideRuntime.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Describes a row-major tensor at `host` to Halide: `extents` (outermost first) are its logical
 * dims, `capacities` those of the storage it sits in (the same for a dense tensor; a KV-cache
 * region holds max_seq_len rows of which past+seq are in use); `code` a halide_type_code_t, `dims`
 * room for `rank` dimensions. */
void gemma_rt_buffer(halide_buffer_t* buffer, halide_dimension_t* dims, void* host, int32_t code,
                     int32_t bits, int32_t rank, const int64_t* extents, const int64_t* capacities);

/* The same with explicit element strides (outermost first): a weight read in place through
 * permuted strides. */
void gemma_rt_buffer_strided(halide_buffer_t* buffer, halide_dimension_t* dims, void* host,
                             int32_t code, int32_t bits, int32_t rank, const int64_t* extents,
                             const int64_t* strides);

/* Narrows `buffer` (as filled above) to the last `rows` positions of its Halide dim `dim`, so
 * that a kernel writing it computes only those: rows <= 0 or >= the extent leaves it whole. The
 * kept rows are addressed from 0: a call narrows the rows it reads and writes alike. */
void gemma_rt_keep_last_rows(halide_buffer_t* buffer, int32_t dim, int64_t rows);

#ifdef __cplusplus
}
#endif

#endif
