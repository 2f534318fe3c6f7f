/// \file
/// narrow-weights: stores the model's matrices in fewer bytes than its f32 activations, so that
/// every decode step, which reads them all, reads less. Two ways:
///
/// - --weights-dtype bf16|f16: the matrices in a narrower float (the weights file rounds them to
///   nearest even when it is written):
///
///     %w = weight() {name = "q_proj.weight", perm = [1, 0]} : f32[D,N]
///     %y = matmul(%x, %w) : f32[1,seq,N]
///       ->
///     %w = weight() {name = "q_proj.weight", perm = [1, 0]} : bf16[D,N]
///     %y = matmul(%x, %w) : f32[1,seq,N]         (the kernel widens each weight as it reads it)
///
/// - --weights-dtype q8_0|q4_0|q4_k: the matrices quantized to GGUF's blocks (the weights file
///   quantizes them as llama.cpp's reference quantizer does); a matrix whose stored rows are not
///   whole blocks stays f32, as llama-quantize leaves it in another type.
///
/// - a GGUF's block-quantized tensors kept as the checkpoint has them (no --weights-dtype; with
///   --weights-dtype f32 the weights file dequantizes them instead): the weight gets its block
///   type back (`q4_k[D,N]`), and the kernel decodes the blocks in registers.
///
/// A tensor is narrowed when every op reading it (every weight op of that name: a tied embedding
/// is both a lookup and the logits) is a matmul's right operand, a gated_mlp's weight or a
/// gather's table - for blocks, one read through permuted strides along the stored rows (a
/// projection's torch-layout weight) or a table's rows. A bf16 or f16 gather yields the narrow
/// rows and a cast widens them back; a block gather yields f32 rows. Norm weights and anything
/// else stay as they are. Runs after fold-weight-transposes, so that the weights are the ops'
/// operands.

#include "ir/Builder.h"
#include "ir/Verifier.h"
#include "passes/Pass.h"
#include "passes/PatternMatch.h"

#include <map>
#include <set>

namespace gemma {

namespace {

class NarrowWeights : public Pass {
public:
  std::string_view name() const override { return "narrow-weights"; }

  bool run(Graph& graph) override {
    if (options_.weightsType == ElementType::F32)
      return false; // every weight as f32: the weights file dequantizes the blocks
    // The type each tensor is stored in, if narrowed.
    auto narrowType = [&](const std::string& tensor) -> std::optional<ElementType> {
      if (options_.weightsType)
        return options_.weightsType;
      auto it = options_.checkpointBlockTypes.find(tensor);
      return it == options_.checkpointBlockTypes.end() ? std::nullopt : std::optional(it->second);
    };
    // Which tensor names only narrow-capable ops read.
    std::map<const Value*, std::vector<std::pair<Op*, size_t>>> users;
    for (const auto& op : graph.ops)
      for (size_t i = 0; i < op->operands.size(); ++i)
        users[op->operands[i]].push_back({op.get(), i});
    std::set<const Value*> outputs;
    for (const Graph::Output& output : graph.outputs)
      outputs.insert(output.value);
    std::map<std::string, bool> narrowable;
    for (const auto& op : graph.ops) {
      if (op->kind != OpKind::Weight)
        continue;
      const std::string& tensor = *op->attr<std::string>("name");
      std::optional<ElementType> narrow = narrowType(tensor);
      bool ok = narrow && op->result()->type.elementType == ElementType::F32 &&
                !outputs.count(op->result()) &&
                (!isBlockQuantized(*narrow) || hasWholeBlockRows(*op, *narrow));
      for (const auto& [user, index] : users[op->result()])
        ok = ok && readsWidened(*user, index, *op, isBlockQuantized(*narrow));
      narrowable.emplace(tensor, true).first->second &= ok;
    }
    // The gated MLP's kernel decodes blocks in all three weights or in none: where one of them
    // stays f32, so do the others.
    bool blocks = !options_.weightsType || isBlockQuantized(*options_.weightsType);
    for (bool settled = false; !settled && blocks;) {
      settled = true;
      for (const auto& op : graph.ops) {
        if (op->kind != OpKind::GatedMlp)
          continue;
        bool all = true;
        for (size_t i = 1; i < 4; ++i)
          all = all && weightName(*op->operands[i]) && narrowable[*weightName(*op->operands[i])];
        for (size_t i = 1; i < 4 && !all; ++i)
          if (const std::string* tensor = weightName(*op->operands[i]);
              tensor && narrowable[*tensor]) {
            narrowable[*tensor] = false;
            settled = false;
          }
      }
    }
    bool changed = false;
    for (auto it = graph.ops.begin(); it != graph.ops.end(); ++it) {
      Op& op = **it;
      if (op.kind != OpKind::Weight || !narrowable[*op.attr<std::string>("name")])
        continue;
      ElementType narrow = *narrowType(*op.attr<std::string>("name"));
      op.result()->type.elementType = narrow;
      changed = true;
      for (const auto& [user, index] : users[op.result()]) {
        if (user->kind != OpKind::Gather || isBlockQuantized(narrow))
          continue;
        // The looked-up rows are narrow now; widen them where they were f32.
        Value* rows = user->result();
        auto next = std::find_if(graph.ops.begin(), graph.ops.end(),
                                 [&](const auto& o) { return o.get() == user; });
        Builder b(graph);
        b.setInsertPoint(std::next(next));
        b.setLocation(user->loc);
        TensorType wide = rows->type;
        rows->type.elementType = narrow;
        Value* widened = b.create(OpKind::Cast, {rows}, {}, wide);
        graph.replaceAllUsesWith(rows, widened);
        widened->definingOp->operands[0] = rows; // the cast itself still reads the rows
      }
    }
    return changed;
  }

private:
  // Kernels that widen this operand (a weight op's) as they read it; blocks only along the
  // stored rows (the verifier's rule).
  static bool readsWidened(const Op& user, size_t index, const Op& weight, bool blocks) {
    bool f32 = user.operands[0]->type.elementType == ElementType::F32;
    bool widens = (user.kind == OpKind::MatMul && index == 1 && f32) ||
                  (user.kind == OpKind::GatedMlp && index >= 1 && f32) ||
                  (user.kind == OpKind::Gather && index == 0);
    return widens && (!blocks || decodesBlocks(user, index, weight));
  }

  static const std::string* weightName(const Value& value) {
    return value.definingOp && value.definingOp->kind == OpKind::Weight
               ? value.definingOp->attr<std::string>("name")
               : nullptr;
  }
};

} // namespace

std::unique_ptr<Pass> createNarrowWeightsPass() {
  return std::make_unique<NarrowWeights>();
}

} // namespace gemma
