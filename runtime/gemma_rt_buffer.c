/* Halide buffer descriptors for the compiled entry points: the generated code calls this once per
 * kernel operand rather than laying out halide_buffer_t itself. */
#include "runtime/gemma_rt.h"

void gemma_rt_buffer_strided(halide_buffer_t* buffer, halide_dimension_t* dims, void* host,
                             int32_t code, int32_t bits, int32_t rank, const int64_t* extents,
                             const int64_t* strides) {
  /* extents and strides are the tensor's dims outermost first; Halide's dim 0 is the innermost. */
  for (int32_t d = 0; d < rank; ++d) {
    dims[d].min = 0;
    dims[d].extent = (int32_t)extents[rank - 1 - d];
    dims[d].stride = (int32_t)strides[rank - 1 - d];
    dims[d].flags = 0;
  }
  buffer->device = 0;
  buffer->device_interface = 0;
  buffer->host = (uint8_t*)host;
  buffer->flags = 0;
  buffer->type.code = (halide_type_code_t)code;
  buffer->type.bits = (uint8_t)bits;
  buffer->type.lanes = 1;
  buffer->dimensions = rank;
  buffer->dim = dims;
  buffer->padding = 0;
}

void gemma_rt_keep_last_rows(halide_buffer_t* buffer, int32_t dim, int64_t rows) {
  halide_dimension_t* d = &buffer->dim[dim];
  if (rows <= 0 || rows >= d->extent)
    return;
  int32_t skipped = d->extent - (int32_t)rows;
  /* The kept rows are addressed from 0, as every operand and result of the call narrowed alike
     is (the kernels' inputs are constrained to min 0); host addresses the element at the mins. */
  buffer->host += (int64_t)skipped * d->stride * ((buffer->type.bits + 7) / 8);
  d->extent = (int32_t)rows;
}

void gemma_rt_buffer(halide_buffer_t* buffer, halide_dimension_t* dims, void* host, int32_t code,
                     int32_t bits, int32_t rank, const int64_t* extents,
                     const int64_t* capacities) {
  /* Row-major in storage of the capacities' shape. rank <= 8 (the IR's tensors are rank <= 5). */
  int64_t strides[8];
  int64_t stride = 1;
  for (int32_t d = rank - 1; d >= 0; --d) {
    strides[d] = stride;
    stride *= capacities[d];
  }
  gemma_rt_buffer_strided(buffer, dims, host, code, bits, rank, extents, strides);
}
