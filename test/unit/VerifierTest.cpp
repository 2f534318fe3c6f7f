// Each verifier rule with a case that must fail, and the location in its message.
#include "TestUtil.h"
#include "ir/Builder.h"

namespace gemma {
namespace {

using testing::errorOfText;
using testing::userErrorOf;

// One op on inputs %a: f32[2,3], %b: f32[3,4], %i: i64[2], %p: bool[2,3].
std::string errorOfOp(const std::string& op) {
  return errorOfText("graph @g(%a: f32[2,3], %b: f32[3,4], %i: i64[2], %p: bool[2,3]) {\n  " + op +
                     "\n  return %r\n}\n");
}

void expectError(const std::string& error, const std::string& fragment) {
  EXPECT_NE(error.find(fragment), std::string::npos) << "error was: " << error;
  // Located: the op is on line 2, column 3 of t.ir.
  EXPECT_EQ(error.rfind("t.ir:2:3: error: ", 0), 0u) << "error was: " << error;
}

TEST(Verifier, AcceptsValidOps) {
  EXPECT_EQ(errorOfOp("%r = matmul(%a, %b) : f32[2,4]"), "");
  EXPECT_EQ(errorOfOp("%r = add(%a, %a) : f32[2,?]"), "");
  EXPECT_EQ(errorOfOp("%r = where(%p, %a, %a) : f32[2,3]"), "");
  EXPECT_EQ(errorOfOp("%r = gather(%b, %i) {axis = 0} : f32[2,4]"), "");
}

// A block-quantized type (a GGUF's blocks) only as a 2-D weight with whole-block rows, read by a
// kernel that decodes blocks.
TEST(Verifier, BlockQuantizedTypesAreWeightsOnly) {
  auto graph = [](const std::string& body, const std::string& inputs = "%x: f32[1,64]") {
    return errorOfText("graph @g(" + inputs + ") {\n" + body + "}\n");
  };
  EXPECT_EQ(graph("  %w = weight() {name = \"w\", perm = [1, 0]} : q4_0[64,8]\n"
                  "  %r = matmul(%x, %w) : f32[1,8]\n  return %r\n"),
            "");
  EXPECT_EQ(graph("  %t = weight() {name = \"t\"} : q8_0[5,64]\n"
                  "  %r = gather(%t, %i) {axis = 0} : f32[3,64]\n  return %r\n",
                  "%i: i64[3]"),
            "");
  std::string input = graph("  return %x\n", "%x: q4_k[2,256]");
  EXPECT_NE(input.find("a block-quantized type is a weight's only"), std::string::npos) << input;
  std::string unpermuted = graph("  %w = weight() {name = \"w\"} : q4_0[8,64]\n"
                                 "  %r = matmul(%x, %w) : f32[1,64]\n  return %r\n",
                                 "%x: f32[1,8]");
  EXPECT_NE(unpermuted.find("reads blocks"), std::string::npos) << unpermuted;
  std::string partial = graph("  %w = weight() {name = \"w\", perm = [1, 0]} : q4_k[128,8]\n"
                              "  %r = matmul(%x, %w) : f32[1,8]\n  return %r\n",
                              "%x: f32[1,128]");
  EXPECT_NE(partial.find("rows of whole blocks of 256"), std::string::npos) << partial;
  std::string added = graph("  %w = weight() {name = \"w\"} : q8_0[1,64]\n"
                            "  %r = add(%x, %w) : f32[1,64]\n  return %r\n");
  EXPECT_NE(added.find("reads blocks"), std::string::npos) << added;
  std::string returned = graph("  %w = weight() {name = \"w\"} : q8_0[1,64]\n  return %w\n");
  EXPECT_NE(returned.find("a block-quantized type is a weight's only"), std::string::npos)
      << returned;
}

TEST(Verifier, Arity) {
  expectError(errorOfOp("%r = add(%a) : f32[2,3]"), "'add' takes 2 operand(s), got 1");
  expectError(errorOfOp("%r = exp(%a, %a) : f32[2,3]"), "'exp' takes 1 operand(s), got 2");
  expectError(errorOfOp("%r = concat() {axis = 0} : f32[2,3]"), "takes at least 1");
  expectError(errorOfOp("%r = reshape(%a, %i, %i) : f32[6]"), "takes 1 to 2 operand(s)");
  expectError(errorOfOp("%r, %s = exp(%a) : f32[2,3], f32[2,3]"), "has 1 result(s), got 2");
}

TEST(Verifier, Attributes) {
  expectError(errorOfOp("%r = softmax(%a) : f32[2,3]"), "needs attribute 'axis'");
  expectError(errorOfOp("%r = softmax(%a) {axis = 1.0} : f32[2,3]"), "must be an integer");
  expectError(errorOfOp("%r = exp(%a) {axis = 1} : f32[2,3]"), "has no attribute 'axis'");
  expectError(errorOfOp("%r = softmax(%a) {axis = 2} : f32[2,3]"), "axis 2 is out of range");
  expectError(errorOfOp("%r = transpose(%a) {perm = [0, 0]} : f32[2,3]"), "not a permutation");
  expectError(errorOfOp("%r = reduce_sum(%a) {axes = [1, -1]} : f32[2,1]"), "repeated axis");
  expectError(errorOfOp("%r = gelu(%a) {approximate = \"fast\"} : f32[2,3]"), "approximate");
  expectError(errorOfOp("%r = slice(%a) {starts = [0], ends = [1], steps = [0]} : f32[0,3]"),
              "zero step");
  expectError(errorOfOp("%r = constant() {value = [1.0, 2.0]} : f32[3]"), "has 2 values");
  expectError(errorOfOp("%r = constant() {value = [1.5]} : i64[]"), "needs integer values");
  expectError(errorOfOp("%r = weight() {name = \"\"} : f32[2]"), "non-empty name");
}

TEST(Verifier, ElementTypes) {
  expectError(errorOfOp("%r = add(%a, %i) : f32[2,3]"), "one element type");
  expectError(errorOfOp("%r = sqrt(%i) : i64[2]"), "must be a float tensor");
  expectError(errorOfOp("%r = where(%a, %a, %a) : f32[2,3]"), "must be a bool tensor");
  expectError(errorOfOp("%r = and(%a, %a) : f32[2,3]"), "must be a bool tensor");
  expectError(errorOfOp("%r = gather(%b, %a) {axis = 0} : f32[2,3,4]"), "integer tensor");
  expectError(errorOfOp("%r = less(%a, %a) : f32[2,3]"),
              "declared f32[2,3] but its operands give bool[2,3]");
}

TEST(Verifier, ShapeRules) {
  expectError(errorOfOp("%r = matmul(%a, %a) : f32[2,3]"), "contraction dims differ");
  expectError(errorOfOp("%r = add(%a, %b) : f32[2,3]"), "cannot broadcast dim 2 with 3");
  expectError(errorOfOp("%r = exp(%a) : f32[2,4]"),
              "declared f32[2,4] but its operands give f32[2,3]");
  expectError(errorOfOp("%r = exp(%a) : f32[2]"), "declared f32[2]");
  expectError(errorOfOp("%r = reshape(%a) : f32[7]"), "cannot reshape f32[2,3] to f32[7]: 6 vs 7");
  EXPECT_NE(
      errorOfText("graph @g(%x: f32[seq,4]) {\n  %r = reshape(%x) : f32[seq,2,3]\n  return %r\n}")
          .find("cannot reshape f32[seq,4] to f32[seq,2,3]: 4 vs 6 elements"),
      std::string::npos);
  expectError(errorOfOp("%r = squeeze(%a) {axes = [0]} : f32[3]"), "which is not 1");
  expectError(errorOfOp("%r = concat(%a, %b) {axis = 0} : f32[5,3]"),
              "differ outside the concat axis");
  expectError(errorOfOp("%r = matmul(%i, %i) : i64[2]"), "rank >= 2");
  expectError(errorOfOp("%r = range(%a, %a, %a) : f32[?]"), "must be scalars");
}

TEST(Verifier, TypesWithinBounds) {
  expectError(errorOfOp("%r = constant() {value = [1.0]} : f32[1099511627776,1099511627776]"),
              "too many elements");
  EXPECT_NE(errorOfText("graph @g(%x: f32[2]) {\n  %r = exp(%x) : f32[0-3]\n  return %r\n}\n")
                .find("outside [0, 2^40]"),
            std::string::npos);
}

TEST(Verifier, SSAUseBeforeDefinition) {
  // Parsed text cannot express this; build it and then move the user before its producer.
  Graph graph;
  Builder b(graph);
  b.setLocation(Location::named("late.user"));
  Value* x = graph.addInput("x", tensorType(ElementType::F32, {2}));
  Value* y = b.unary(OpKind::Exp, x);
  b.setLocation(Location::named("the.user"));
  b.unary(OpKind::Neg, y);
  graph.ops.reverse();
  std::string error = userErrorOf([&] { verifyGraph(graph); });
  EXPECT_NE(error.find("error: the.user: 'neg' uses a value that is not defined before it"),
            std::string::npos)
      << error;
}

TEST(Verifier, SSAValueFromAnotherGraph) {
  Graph graph, other;
  Value* foreign = other.addInput("x", tensorType(ElementType::F32, {2}));
  graph.addInput("x", tensorType(ElementType::F32, {2}));
  graph.append(OpKind::Exp, {foreign}, {tensorType(ElementType::F32, {2})}, {},
               Location::named("n"));
  EXPECT_NE(userErrorOf([&] { verifyGraph(graph); }).find("not defined before it"),
            std::string::npos);
}

TEST(Verifier, SSADefinedOnce) {
  EXPECT_NE(errorOfText("graph @g(%x: f32[2]) {\n  %r = exp(%x) : f32[2]\n  %r = exp(%x) : f32[2]\n"
                        "  return %r\n}\n")
                .find("t.ir:3:3: error: value %r is already defined"),
            std::string::npos);
  EXPECT_NE(errorOfText("graph @g(%x: f32[2]) {\n  %x = exp(%x) : f32[2]\n  return %x\n}\n")
                .find("already defined"),
            std::string::npos);
  // A result pointer reused by a second op is caught structurally too.
  Graph graph;
  Value* x = graph.addInput("x", tensorType(ElementType::F32, {2}));
  Op* first = graph.append(OpKind::Exp, {x}, {tensorType(ElementType::F32, {2})});
  Op* second = graph.append(OpKind::Exp, {x}, {tensorType(ElementType::F32, {2})});
  second->results[0].swap(first->results[0]);
  EXPECT_NE(userErrorOf([&] { verifyGraph(graph); }).find("already defined"), std::string::npos);
}

TEST(Verifier, GraphSignature) {
  EXPECT_NE(
      errorOfText("graph @g(%x: f32[2], %x: f32[2]) {\n  return %x\n}\n").find("already defined"),
      std::string::npos);
  Graph graph;
  graph.addInput("0bad", tensorType(ElementType::F32, {2}));
  EXPECT_NE(userErrorOf([&] { verifyGraph(graph); }).find("not a valid identifier"),
            std::string::npos);
  Graph outputs;
  Value* x = outputs.addInput("x", tensorType(ElementType::F32, {2}));
  outputs.addOutput(x, "y");
  outputs.addOutput(x, "y");
  EXPECT_NE(userErrorOf([&] { verifyGraph(outputs); }).find("output name is used twice"),
            std::string::npos);
}

} // namespace
} // namespace gemma
