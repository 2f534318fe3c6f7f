// The model's entry point as LLVM IR, compiled to an object: straight-line code that, for each op
// of the planned graph, describes its operands and result to Halide (pointers into the weights,
// the arena, the caller's inputs or constant data; extents computed from batch, seq and past) and
// calls the op's kernel. Nothing walks a graph at run time.
//
//   int32_t NAME(const uint8_t* weights, uint8_t* arena, uint8_t* kv_cache, void* const* inputs,
//                void** outputs, int64_t batch, int64_t seq, int64_t past, int64_t last_rows);
//
// (runtime/gemma_model.h's gemma_entry, model ABI 2; EntryPoint.cpp checks its signature against
// that type.) inputs[i] is graph input i's data (dense, row-major; an input whose recorded role is
// a past cache lives in kv_cache and is not read from there); outputs[i] receives output i's
// address (in the arena, or a cache region [max_batch,K,max_seq_len,H] for a present cache). A
// kv_cache_append writes only the new rows into its region, which keeps the past rows from
// earlier calls. last_rows > 0 computes only the last last_rows rows of a [batch, seq, ...] head
// output (the logits of the last token when generating); 0 computes them all. Returns 0, or the
// first kernel's non-zero Halide error code.
#pragma once

#include "backend/Target.h"
#include "backend/halide/KernelSet.h"
#include "ir/IR.h"

#include <map>
#include <string>

namespace gemma {

enum class EntryPointFormat { Object, LLVMAssembly };

// `weightOffsets` maps each weight name to its data's byte offset from the weights base. Writes
// an x86-64 object, or the module as LLVM assembly text (`gemmac compile --emit llvm`).
void emitEntryPointObject(const Graph& graph, const KernelSet& kernels,
                          const std::map<std::string, int64_t>& weightOffsets,
                          const std::string& functionName, const std::string& path,
                          EntryPointFormat format = EntryPointFormat::Object);

} // namespace gemma
