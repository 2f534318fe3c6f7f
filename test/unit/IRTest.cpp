#include "TestUtil.h"
#include "ir/Builder.h"
#include "ir/Printer.h"

namespace gemma {
namespace {

using testing::userErrorOf;

TEST(Builder, InfersResultTypesFromOperands) {
  Graph graph("attn");
  Builder b(graph);
  Value* x = graph.addInput(
      "x", {ElementType::F32, {Dim::symbol("batch"), Dim::symbol("seq"), Dim::constant(16)}});
  Value* w = b.weight("q_proj.weight", tensorType(ElementType::F32, {32, 16}));
  Value* wt = b.transpose(w, {1, 0});
  Value* q = b.matmul(x, wt);
  EXPECT_EQ(q->type.str(), "f32[batch,seq,32]");
  Value* past = graph.addInput(
      "past", {ElementType::F32, {Dim::symbol("batch"), Dim::symbol("past"), Dim::constant(32)}});
  Value* all = b.create(OpKind::Concat, {past, q}, {{"axis", int64_t(1)}});
  EXPECT_EQ(all->type.str(), "f32[batch,past+seq,32]");
  Value* mean = b.create(OpKind::ReduceMean, {all}, {{"axes", Ints{-1}}, {"keepdims", false}});
  EXPECT_EQ(mean->type.str(), "f32[batch,past+seq]");
  graph.addOutput(mean, "m");
  EXPECT_NO_THROW(verifyGraph(graph));
  EXPECT_EQ(graph.ops.size(), 5u);
}

TEST(Builder, RejectsBadOperandsWithoutInserting) {
  Graph graph;
  Builder b(graph);
  b.setLocation(Location::named("model.layers.3.mlp"));
  Value* x = graph.addInput("x", tensorType(ElementType::F32, {2, 3}));
  Value* y = graph.addInput("y", tensorType(ElementType::F32, {4, 5}));
  std::string error = userErrorOf([&] { b.matmul(x, y); });
  EXPECT_NE(error.find("model.layers.3.mlp"), std::string::npos) << error;
  EXPECT_NE(error.find("contraction dims differ"), std::string::npos) << error;
  EXPECT_TRUE(graph.ops.empty());
}

TEST(Graph, ReplaceAllUsesAndUseCounts) {
  Graph graph;
  Builder b(graph);
  Value* x = graph.addInput("x", tensorType(ElementType::F32, {4}));
  Value* y = b.unary(OpKind::Exp, x);
  Value* z = b.binary(OpKind::Add, y, y);
  graph.addOutput(z);
  graph.addOutput(y);
  EXPECT_EQ(graph.useCounts()[y], 3);
  graph.replaceAllUsesWith(y, x);
  EXPECT_EQ(graph.useCounts()[y], 0);
  EXPECT_EQ(graph.useCounts()[x], 4);
  EXPECT_EQ(graph.outputs[1].value, x);
}

TEST(Graph, CloneIsDeepAndPrintsTheSame) {
  auto graph = parseGraph(R"(graph @g(%x: f32[seq,4]) {
  %0 = constant() {value = [2.0]} : f32[]
  %1 = mul(%x, %0) : f32[seq,4] loc("a.b")
  return %1 as "y"
}
)");
  auto copy = graph->clone();
  EXPECT_EQ(printGraph(*graph, {true}), printGraph(*copy, {true}));
  copy->ops.front()->attrs["value"] = Floats{3.0};
  EXPECT_NE(printGraph(*graph), printGraph(*copy));
}

} // namespace
} // namespace gemma
