#include "backend/llvm/EntryPoint.h"

#include "ir/ElementCodec.h"
#include "ir/ModelRoles.h"

#include <algorithm>
#include <cstring>
#include <llvm/IR/IRBuilder.h>
#include <llvm/IR/LLVMContext.h>
#include <llvm/IR/LegacyPassManager.h>
#include <llvm/IR/Module.h>
#include <llvm/IR/Verifier.h>
#include <llvm/MC/TargetRegistry.h>
#include <llvm/Support/FileSystem.h>
#include <llvm/Support/TargetSelect.h>
#include <llvm/Support/raw_ostream.h>
#include <llvm/Target/TargetMachine.h>
#include <llvm/Target/TargetOptions.h>
#include <set>
#include <type_traits>

namespace gemma {

namespace {

// The signature gemma_model.h declares, as the emitter builds it below.
static_assert(std::is_same_v<gemma_entry, int32_t(const uint8_t*, uint8_t*, uint8_t*, void* const*,
                                                  void**, int64_t, int64_t, int64_t, int64_t)>,
              "the entry point's LLVM signature below must follow gemma_entry");

class EntryPointEmitter {
public:
  EntryPointEmitter(const Graph& graph, const KernelSet& kernels,
                    const std::map<std::string, int64_t>& weightOffsets)
      : graph_(graph), kernels_(kernels), weightOffsets_(weightOffsets),
        module_(std::make_unique<llvm::Module>("gemma_entry", context_)), b_(context_) {}

  std::unique_ptr<llvm::Module> emit(const std::string& name) {
    auto* i8p = b_.getInt8PtrTy();
    auto* i64 = b_.getInt64Ty();
    auto* fnType = llvm::FunctionType::get(
        b_.getInt32Ty(),
        {i8p, i8p, i8p, i8p->getPointerTo(), i8p->getPointerTo(), i64, i64, i64, i64}, false);
    fn_ = llvm::Function::Create(fnType, llvm::Function::ExternalLinkage, name, *module_);
    auto args = fn_->arg_begin();
    weights_ = &*args++;
    arena_ = &*args++;
    kvCache_ = &*args++;
    inputs_ = &*args++;
    outputs_ = &*args++;
    symbols_["batch"] = &*args++;
    symbols_["seq"] = &*args++;
    symbols_["past"] = &*args++;
    lastRows_ = &*args++;
    b_.SetInsertPoint(llvm::BasicBlock::Create(context_, "entry", fn_));
    // The head's result: the output recorded as such, else (a graph without roles) output 0.
    headOutput_ = graph_.outputs.front().value;
    for (size_t i = 0; i < graph_.outputs.size(); ++i)
      if (outputRole(graph_, i) == OutputRole::Head)
        headOutput_ = graph_.outputs[i].value;
    collectHeadRows();
    for (size_t i = 0; i < graph_.inputs.size(); ++i)
      host_[graph_.inputs[i].get()] =
          b_.CreateLoad(i8p, b_.CreateConstGEP1_64(i8p, inputs_, i), graph_.inputs[i]->name);
    // A past cache input lives in kv_cache: the program never passes its data, so only the
    // cache append (which never reads the past) and shape() (extents only) may use it.
    for (const auto& op : graph_.ops)
      for (const Value* operand : op->operands)
        if (isPastCacheInput(graph_, operand) && op->kind != OpKind::KVCacheAppend &&
            op->kind != OpKind::Shape)
          throw UserError(op->loc, "'" + std::string(op->mnemonic()) + "' reads the past cache '" +
                                       operand->name +
                                       "', which plan-kv-cache did not place in the KV cache");
    for (const auto& op : graph_.ops) {
      emitOp(*op);
      writeRingsReadBy(op.get());
    }
    writeRingsReadBy(nullptr); // rings no op reads (only returned)
    for (size_t i = 0; i < graph_.outputs.size(); ++i)
      b_.CreateStore(host_.at(graph_.outputs[i].value), b_.CreateConstGEP1_64(i8p, outputs_, i));
    b_.CreateRet(b_.getInt32(0));
    std::string problems;
    llvm::raw_string_ostream stream(problems);
    if (llvm::verifyModule(*module_, &stream))
      throw InternalError("entry point does not verify: " + problems);
    return std::move(module_);
  }

  llvm::LLVMContext& context() { return context_; }

private:
  llvm::Value* dimValue(const Dim& dim) {
    GEMMA_INTERNAL_ASSERT(!dim.isUnknown(), "an unknown dim reached code generation");
    llvm::Value* value = b_.getInt64(dim.constantPart());
    for (const auto& [symbol, coefficient] : dim.terms()) {
      auto it = symbols_.find(symbol);
      if (it == symbols_.end())
        throw UserError("dim symbol '" + symbol + "' is not batch, seq or past");
      value = b_.CreateAdd(value, b_.CreateMul(it->second, b_.getInt64(coefficient)));
    }
    return value;
  }

  llvm::Value* constantData(const Op& op) {
    const TensorType& type = op.result()->type;
    int64_t count = *type.staticNumElements();
    std::vector<double> values;
    if (const Ints* ints = op.attr<Ints>("value"))
      values.assign(ints->begin(), ints->end());
    else
      values = *op.attr<Floats>("value");
    std::vector<uint8_t> bytes(
        static_cast<size_t>(std::max<int64_t>(count, 1) * elementSize(type.elementType)));
    for (int64_t i = 0; i < count; ++i)
      codec::encodeElement(type.elementType, values.size() == 1 ? values[0] : values[i],
                           bytes.data() + i * elementSize(type.elementType));
    auto* data = llvm::ConstantDataArray::get(context_, llvm::ArrayRef<uint8_t>(bytes));
    auto* global = new llvm::GlobalVariable(*module_, data->getType(), true,
                                            llvm::GlobalValue::PrivateLinkage, data, "constant");
    global->setAlignment(llvm::Align(GEMMA_BUFFER_ALIGNMENT));
    return b_.CreateBitCast(global, b_.getInt8PtrTy());
  }

  // A halide_buffer_t (56 bytes) describing `value` at `host`, filled by gemma_rt_buffer. With
  // `rows`, dim 2 (a cache's rows) has that extent instead, its strides unchanged (a crop).
  llvm::Value* describe(const Value* value, llvm::Value* host, llvm::Value* rows = nullptr) {
    auto* i8p = b_.getInt8PtrTy();
    const TensorType& type = value->type;
    int rank = static_cast<int>(type.rank());
    llvm::Value* buffer = b_.CreateAlloca(b_.getInt64Ty(), b_.getInt32(7));
    llvm::Value* dims = b_.CreateAlloca(b_.getInt64Ty(), b_.getInt32(std::max(1, 2 * rank)));
    llvm::Value* extents = b_.CreateAlloca(b_.getInt64Ty(), b_.getInt32(std::max(1, rank)));
    llvm::Value* capacities = b_.CreateAlloca(b_.getInt64Ty(), b_.getInt32(std::max(1, rank)));
    auto region = capacity_.find(value); // values inside a cache region stride by its capacity
    auto ring = ringRows_.find(value);   // a ring buffer's view: all its rows
    for (int d = 0; d < rank; ++d) {
      llvm::Value* full =
          d == 2 && ring != ringRows_.end() ? b_.getInt64(ring->second) : dimValue(type.dims[d]);
      llvm::Value* extent = d == 2 && rows ? rows : full;
      auto at = static_cast<uint64_t>(d);
      b_.CreateStore(extent, b_.CreateConstGEP1_64(b_.getInt64Ty(), extents, at));
      b_.CreateStore(region == capacity_.end() ? full : b_.getInt64(region->second[d]),
                     b_.CreateConstGEP1_64(b_.getInt64Ty(), capacities, at));
    }
    Halide::Type halide = halideType(type.elementType);
    int code = static_cast<int>(halide.code()), bits = halide.bits();
    // A buffer of `dims` dims with the strides already stored in `capacities`.
    auto fillStrided = [&](int bufferRank) {
      llvm::FunctionCallee fill = module_->getOrInsertFunction(
          "gemma_rt_buffer_strided", b_.getVoidTy(), i8p, i8p, i8p, b_.getInt32Ty(),
          b_.getInt32Ty(), b_.getInt32Ty(), b_.getInt64Ty()->getPointerTo(),
          b_.getInt64Ty()->getPointerTo());
      b_.CreateCall(fill, {b_.CreateBitCast(buffer, i8p), b_.CreateBitCast(dims, i8p), host,
                           b_.getInt32(code), b_.getInt32(bits), b_.getInt32(bufferRank), extents,
                           capacities});
      return b_.CreateBitCast(buffer, i8p);
    };
    if (isBlockQuantized(type.elementType)) {
      // A weight's blocks: its stored rows as bytes, [rows, row bytes], as the kernels read them.
      TensorType stored = storedWeightType(*value->definingOp);
      int64_t rowBytes = codec::storageBytes(type.elementType, stored.dims[1].staticValue());
      const int64_t shape[2] = {stored.dims[0].staticValue(), rowBytes}, strides[2] = {rowBytes, 1};
      for (uint64_t d = 0; d < 2; ++d) {
        b_.CreateStore(b_.getInt64(shape[d]), b_.CreateConstGEP1_64(b_.getInt64Ty(), extents, d));
        b_.CreateStore(b_.getInt64(strides[d]),
                       b_.CreateConstGEP1_64(b_.getInt64Ty(), capacities, d));
      }
      return fillStrided(2);
    }
    if (hasPermutedStorage(*value)) {
      // A weight read through permuted strides, as its kernels were compiled for.
      std::vector<int64_t> strides = storageStrides(*value);
      for (int d = 0; d < rank; ++d)
        b_.CreateStore(
            b_.getInt64(strides[static_cast<size_t>(d)]),
            b_.CreateConstGEP1_64(b_.getInt64Ty(), capacities, static_cast<uint64_t>(d)));
      return fillStrided(rank);
    }
    llvm::FunctionCallee fill = module_->getOrInsertFunction(
        "gemma_rt_buffer", b_.getVoidTy(), i8p, i8p, i8p, b_.getInt32Ty(), b_.getInt32Ty(),
        b_.getInt32Ty(), b_.getInt64Ty()->getPointerTo(), b_.getInt64Ty()->getPointerTo());
    b_.CreateCall(fill,
                  {b_.CreateBitCast(buffer, i8p), b_.CreateBitCast(dims, i8p), host,
                   b_.getInt32(code), b_.getInt32(bits), b_.getInt32(rank), extents, capacities});
    return b_.CreateBitCast(buffer, i8p);
  }

  void emitOp(const Op& op) {
    const Value* result = op.result();
    switch (op.kind) {
    case OpKind::Weight: {
      const std::string& name = *op.attr<std::string>("name");
      auto it = weightOffsets_.find(name);
      if (it == weightOffsets_.end())
        throw UserError(op.loc, "weight '" + name + "' is not in the weights file");
      host_[result] = b_.CreateConstGEP1_64(b_.getInt8Ty(), weights_, it->second);
      return;
    }
    case OpKind::Constant:
      host_[result] = constantData(op);
      return;
    case OpKind::Reshape:
    case OpKind::Squeeze:
    case OpKind::Unsqueeze:
      host_[result] = host_.at(op.operands[0]); // a view of its operand's buffer
      viewCapacity(op);
      return;
    case OpKind::KVCacheAppend:
      emitCacheAppend(op);
      return;
    case OpKind::Add:
    case OpKind::Sub:
    case OpKind::Mul:
    case OpKind::Div:
    case OpKind::Pow:
    case OpKind::Max:
    case OpKind::Min:
    case OpKind::Sqrt:
    case OpKind::Rsqrt:
    case OpKind::Reciprocal:
    case OpKind::Neg:
    case OpKind::Exp:
    case OpKind::Tanh:
    case OpKind::Erf:
    case OpKind::Cos:
    case OpKind::Sin:
    case OpKind::Gelu:
    case OpKind::Cast:
    case OpKind::Equal:
    case OpKind::Less:
    case OpKind::LessEqual:
    case OpKind::Greater:
    case OpKind::GreaterEqual:
    case OpKind::And:
    case OpKind::Or:
    case OpKind::Xor:
    case OpKind::Not:
    case OpKind::IsNan:
    case OpKind::Where:
    case OpKind::MatMul:
    case OpKind::ReduceMean:
    case OpKind::ReduceSum:
    case OpKind::ReduceMax:
    case OpKind::Softmax:
    case OpKind::CumSum:
    case OpKind::ArgMax:
    case OpKind::Gather:
    case OpKind::Transpose:
    case OpKind::Concat:
    case OpKind::Slice:
    case OpKind::Expand:
    case OpKind::Range:
    case OpKind::Shape:
    case OpKind::RmsNorm:
    case OpKind::Rotary:
    case OpKind::Attention:
    case OpKind::GatedMlp:
      emitKernelCall(op); // its result in the arena, where plan-memory placed it
      return;
    }
    throw InternalError("no emission rule for '" + std::string(op.mnemonic()) + "'");
  }

  void emitKernelCall(const Op& op) {
    const Value* result = op.result();
    const int64_t* offset = op.attr<int64_t>("arena_offset");
    if (!offset)
      throw UserError(op.loc, "'" + std::string(op.mnemonic()) +
                                  "' has no place in the arena (run plan-memory first)");
    host_[result] = b_.CreateConstGEP1_64(b_.getInt8Ty(), arena_, static_cast<uint64_t>(*offset));
    std::vector<llvm::Value*> buffers;
    for (const Value* operand : op.operands)
      buffers.push_back(describe(operand, host_.at(operand)));
    if (const int64_t* ring = op.attr<int64_t>("ring_rows");
        op.kind == OpKind::Attention && ring && *ring > 0)
      for (int i : {1, 2}) { // the new rows, read where they were computed
        const Value* rows = op.operands[static_cast<size_t>(i)]->definingOp->operands[1];
        buffers.push_back(describe(rows, host_.at(rows)));
      }
    buffers.push_back(describe(result, host_[result]));
    if (headRows_.count(result)) {
      // The head's kernels compute the rows the caller wants (last_rows; 0: all) of a
      // [batch, seq, ...] result: the logits of the last token alone when generating. The rows
      // operand is narrowed with it (the matmul's activations, an elementwise op's input), so
      // that a kernel sees as many rows as it computes: a block matmul picks its one-row way by
      // its operand's rows.
      auto* i8p = b_.getInt8PtrTy();
      llvm::FunctionCallee keep = module_->getOrInsertFunction(
          "gemma_rt_keep_last_rows", b_.getVoidTy(), i8p, b_.getInt32Ty(), b_.getInt64Ty());
      bool rowWise = op.kind == OpKind::MatMul || opCategory(op.kind) == OpCategory::Elementwise;
      for (size_t i = 0; i < op.operands.size() && rowWise; ++i)
        if (sameRows(op.operands[i]->type, result->type))
          b_.CreateCall(keep, {buffers[i], b_.getInt32(1), lastRows_});
      b_.CreateCall(keep, {buffers.back(), b_.getInt32(1), lastRows_});
    }
    callKernel(op, buffers);
  }

  // Whether an operand has the result's [batch..., seq] rows (its last dim aside).
  static bool sameRows(const TensorType& operand, const TensorType& result) {
    if (operand.rank() != result.rank() || result.rank() < 2)
      return false;
    return std::equal(operand.dims.begin(), operand.dims.end() - 1, result.dims.begin());
  }

  // The head's result and the chain of row-wise ops that makes it (the matmul of the logits, then
  // elementwise ops on it alone, e.g. Gemma 2's final softcap): each computes only the rows the
  // caller keeps, since no other op reads their rows.
  void collectHeadRows() {
    auto hasSeqRows = [](const Value* v) {
      const TensorType& type = v->type;
      return type.rank() >= 2 && type.dims[type.rank() - 2] == Dim::symbol("seq");
    };
    std::map<const Value*, int> uses;
    for (const auto& op : graph_.ops)
      for (const Value* operand : op->operands)
        ++uses[operand];
    for (const Graph::Output& output : graph_.outputs)
      ++uses[output.value];
    const Value* v = headOutput_;
    while (v && hasSeqRows(v)) {
      headRows_.insert(v);
      const Op* op = v->definingOp;
      if (!op || opCategory(op->kind) != OpCategory::Elementwise)
        break;
      const Value* rows = nullptr;
      for (const Value* operand : op->operands) {
        if (operand->type.staticNumElements() == 1)
          continue; // a scalar
        if (rows || operand->type.dims != v->type.dims) {
          rows = nullptr; // two row operands, or one broadcast: not a chain of rows
          break;
        }
        rows = operand;
      }
      v = rows && uses[rows] == 1 ? rows : nullptr;
    }
  }

  // A view of a value inside a cache region strides as the region does: (un)squeezing adds or
  // drops dims of 1. A reshape that regroups dims has no such strides; the importer never makes
  // one of a cache.
  void viewCapacity(const Op& op) {
    auto region = capacity_.find(op.operands[0]);
    if (region == capacity_.end())
      return;
    const TensorType& in = op.operands[0]->type;
    const TensorType& out = op.result()->type;
    std::vector<int64_t> capacity;
    const Ints* axes = op.attr<Ints>("axes");
    auto listed = [&](int64_t d, int64_t rank) {
      return axes && std::any_of(axes->begin(), axes->end(),
                                 [&](int64_t a) { return (a < 0 ? a + rank : a) == d; });
    };
    int64_t inRank = static_cast<int64_t>(in.rank()), outRank = static_cast<int64_t>(out.rank());
    if (op.kind == OpKind::Unsqueeze) {
      for (int64_t o = 0, i = 0; o < outRank; ++o)
        capacity.push_back(listed(o, outRank) ? 1 : region->second[static_cast<size_t>(i++)]);
    } else if (op.kind == OpKind::Squeeze) {
      for (int64_t i = 0; i < inRank; ++i) {
        const Dim& dim = in.dims[static_cast<size_t>(i)];
        bool one = dim.isStatic() && dim.staticValue() == 1;
        if (!(axes ? listed(i, inRank) : one))
          capacity.push_back(region->second[static_cast<size_t>(i)]);
      }
    }
    if (static_cast<int64_t>(capacity.size()) != outRank)
      throw InternalError("cannot view a KV-cache region as " + out.str());
    capacity_[op.result()] = capacity;
  }

  // A cache's region is [max_batch,K,max_seq_len,H] at cache_offset in kv_cache; the new rows go
  // to rows [past, past+seq): the kernel copies `new` there and never reads the past. A ring
  // {ring_rows = R} is [max_batch,K,R,H]; its new rows are written once the attention reading the
  // ring has run (writeRingsReadBy), since they overwrite rows it reads.
  void emitCacheAppend(const Op& op) {
    const Value* result = op.result();
    const TensorType& type = result->type;
    int64_t kvHeads = type.dims[1].staticValue(), headDim = type.dims[3].staticValue();
    const int64_t* ring = op.attr<int64_t>("ring_rows");
    int64_t rows = ring && *ring > 0 ? *ring : *op.attr<int64_t>("max_seq_len");
    std::vector<int64_t> capacity = {*op.attr<int64_t>("max_batch"), kvHeads, rows, headDim};
    llvm::Value* region = b_.CreateConstGEP1_64(
        b_.getInt8Ty(), kvCache_, static_cast<uint64_t>(*op.attr<int64_t>("cache_offset")));
    host_[result] = region;
    capacity_[result] = capacity;
    if (ring && *ring > 0) {
      ringRows_[result] = *ring;
      const Op* lastReader = nullptr;
      for (const auto& other : graph_.ops)
        for (const Value* operand : other->operands)
          if (operand == result)
            lastReader = other.get();
      pendingRings_.emplace_back(&op, lastReader);
      return;
    }
    copyRows(op, symbols_.at("past"), b_.getInt64(0), dimValue(op.operands[1]->type.dims[2]));
  }

  // Copies `count` of the new rows of a cache append, from row `from`, to its region's row `to`.
  void copyRows(const Op& op, llvm::Value* to, llvm::Value* from, llvm::Value* count) {
    const Value* result = op.result();
    const Value* rows = op.operands[1];
    int64_t rowBytes = result->type.dims[3].staticValue() * elementSize(result->type.elementType);
    llvm::Value* destination =
        b_.CreateGEP(b_.getInt8Ty(), host_.at(result), b_.CreateMul(to, b_.getInt64(rowBytes)));
    llvm::Value* source =
        b_.CreateGEP(b_.getInt8Ty(), host_.at(rows), b_.CreateMul(from, b_.getInt64(rowBytes)));
    destinations_.push_back(std::make_unique<Value>(rows->type, nullptr, 0));
    const Value* placed = destinations_.back().get();
    capacity_[placed] = capacity_.at(result);
    callKernel(op, {describe(rows, source, count), describe(placed, destination, count)});
  }

  // The new rows of the rings whose last reader is `reader` (null: the rings no op reads): the
  // last min(seq, R) of them, row t at t mod R, in at most two runs (the second after the wrap).
  void writeRingsReadBy(const Op* reader) {
    for (auto it = pendingRings_.begin(); it != pendingRings_.end();) {
      if (it->second != reader) {
        ++it;
        continue;
      }
      const Op& op = *it->first;
      int64_t ring = *op.attr<int64_t>("ring_rows");
      llvm::Value* seq = dimValue(op.operands[1]->type.dims[2]);
      llvm::Value* ringRows = b_.getInt64(ring);
      llvm::Value* kept = b_.CreateSelect(b_.CreateICmpSLT(seq, ringRows), seq, ringRows);
      llvm::Value* skipped = b_.CreateSub(seq, kept);
      llvm::Value* slot =
          b_.CreateSRem(b_.CreateAdd(symbols_.at("past"), skipped), ringRows); // >= 0
      llvm::Value* room = b_.CreateSub(ringRows, slot);
      llvm::Value* firstRun = b_.CreateSelect(b_.CreateICmpSLT(kept, room), kept, room);
      copyRows(op, slot, skipped, firstRun);
      llvm::Value* secondRun = b_.CreateSub(kept, firstRun);
      auto* wrap = llvm::BasicBlock::Create(context_, "ring_wrap", fn_);
      auto* done = llvm::BasicBlock::Create(context_, "ring_done", fn_);
      b_.CreateCondBr(b_.CreateICmpSGT(secondRun, b_.getInt64(0)), wrap, done);
      b_.SetInsertPoint(wrap);
      copyRows(op, b_.getInt64(0), b_.CreateAdd(skipped, firstRun), secondRun);
      b_.CreateBr(done);
      b_.SetInsertPoint(done);
      it = pendingRings_.erase(it);
    }
  }

  void callKernel(const Op& op, const std::vector<llvm::Value*>& buffers) {
    const KernelGroup& group = kernels_.groups.at(kernels_.groupOf.at(&op));
    std::vector<llvm::Type*> types(buffers.size(), b_.getInt8PtrTy());
    llvm::FunctionCallee kernel = module_->getOrInsertFunction(
        group.symbol, llvm::FunctionType::get(b_.getInt32Ty(), types, false));
    llvm::Value* status = b_.CreateCall(kernel, buffers);
    // A Halide error ends the call with its code.
    auto* failed = llvm::BasicBlock::Create(context_, "failed", fn_);
    auto* next = llvm::BasicBlock::Create(context_, "next", fn_);
    b_.CreateCondBr(b_.CreateICmpNE(status, b_.getInt32(0)), failed, next);
    b_.SetInsertPoint(failed);
    b_.CreateRet(status);
    b_.SetInsertPoint(next);
  }

  const Graph& graph_;
  const KernelSet& kernels_;
  const std::map<std::string, int64_t>& weightOffsets_;
  llvm::LLVMContext context_;
  std::unique_ptr<llvm::Module> module_;
  llvm::IRBuilder<> b_;
  llvm::Function* fn_ = nullptr;
  llvm::Value *weights_ = nullptr, *arena_ = nullptr, *kvCache_ = nullptr, *inputs_ = nullptr,
              *outputs_ = nullptr, *lastRows_ = nullptr;
  std::map<std::string, llvm::Value*> symbols_;
  const Value* headOutput_ = nullptr;
  std::set<const Value*> headRows_; // values whose kernels compute only the kept rows
  std::map<const Value*, llvm::Value*> host_;
  std::map<const Value*, std::vector<int64_t>> capacity_;     // values inside a KV-cache region
  std::vector<std::unique_ptr<Value>> destinations_;          // the new rows' places in the regions
  std::map<const Value*, int64_t> ringRows_;                  // cache appends kept as rings
  std::vector<std::pair<const Op*, const Op*>> pendingRings_; // (ring append, its last reader)
};

} // namespace

void emitEntryPointObject(const Graph& graph, const KernelSet& kernels,
                          const std::map<std::string, int64_t>& weightOffsets,
                          const std::string& functionName, const std::string& path,
                          EntryPointFormat format) {
  LLVMInitializeX86TargetInfo();
  LLVMInitializeX86Target();
  LLVMInitializeX86TargetMC();
  LLVMInitializeX86AsmPrinter();
  EntryPointEmitter emitter(graph, kernels, weightOffsets);
  std::unique_ptr<llvm::Module> module = emitter.emit(functionName);
  std::string triple = "x86_64-unknown-linux-gnu", problem;
  const llvm::Target* target = llvm::TargetRegistry::lookupTarget(triple, problem);
  if (!target)
    throw InternalError("no x86-64 LLVM target: " + problem);
  std::unique_ptr<llvm::TargetMachine> machine(
      target->createTargetMachine(triple, "x86-64", "", llvm::TargetOptions(), llvm::Reloc::PIC_));
  module->setTargetTriple(triple);
  module->setDataLayout(machine->createDataLayout());
  std::error_code error;
  llvm::raw_fd_ostream out(path, error, llvm::sys::fs::OF_None);
  if (error)
    throw UserError(Location::named(path), "cannot be written: " + error.message());
  if (format == EntryPointFormat::LLVMAssembly) {
    module->print(out, nullptr);
    return;
  }
  llvm::legacy::PassManager passes;
  if (machine->addPassesToEmitFile(passes, out, nullptr, llvm::CGFT_ObjectFile))
    throw InternalError("LLVM cannot emit an object for x86-64");
  passes.run(*module);
  out.flush();
}

} // namespace gemma
