// Builds ops with their result types inferred by the shape rules, so frontends and passes write
// `b.matmul(x, w)` rather than spelling out types. Ops whose result type is not a function of
// their operands (constant, weight, cast, reshape, expand, range) take it explicitly.
#pragma once

#include "ir/IR.h"

#include <optional>

namespace gemma {

class Builder {
public:
  explicit Builder(Graph& graph) : graph_(graph), insertPoint_(graph.ops.end()) {}

  // New ops get this location.
  void setLocation(Location loc) { loc_ = std::move(loc); }
  // New ops go before `position` (default: the end of the graph).
  void setInsertPoint(Graph::OpList::iterator position) { insertPoint_ = position; }

  // Creates an op; its result type is inferred from the operands, with `declared` supplying what
  // inference cannot know. Throws UserError if the operands break the op's rules.
  Value* create(OpKind kind, std::vector<Value*> operands,
                std::map<std::string, Attribute> attrs = {},
                std::optional<TensorType> declared = std::nullopt);
  // The same for operands that may not make a valid op: a pass whose pattern matched values
  // that do not fit together (mismatched heads or dims) gets null, and nothing is inserted, where
  // create would report the user's mistake.
  Value* tryCreate(OpKind kind, std::vector<Value*> operands,
                   std::map<std::string, Attribute> attrs = {},
                   std::optional<TensorType> declared = std::nullopt);

  Value* constant(ElementType type, const std::vector<int64_t>& dims, Attribute values);
  Value* scalar(ElementType type, double value);
  Value* weight(const std::string& name, TensorType type);
  Value* cast(Value* x, ElementType to); // x itself if it already has that element type
  Value* reshape(Value* x, std::vector<Dim> dims);

  Value* binary(OpKind kind, Value* a, Value* b) { return create(kind, {a, b}); }
  Value* unary(OpKind kind, Value* x) { return create(kind, {x}); }
  Value* matmul(Value* a, Value* b) { return create(OpKind::MatMul, {a, b}); }
  Value* transpose(Value* x, Ints perm) { return create(OpKind::Transpose, {x}, {{"perm", perm}}); }

  Graph& graph() { return graph_; }

private:
  Graph& graph_;
  Graph::OpList::iterator insertPoint_;
  Location loc_;
};

} // namespace gemma
