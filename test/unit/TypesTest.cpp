#include "ir/Types.h"

#include "ir/IR.h"

#include <gtest/gtest.h>
#include <set>

namespace gemma {
namespace {

TEST(Dim, AffineArithmeticAndPrinting) {
  Dim past = Dim::symbol("past"), seq = Dim::symbol("seq");
  EXPECT_EQ((past + seq).str(), "past+seq");
  EXPECT_EQ((seq + past).str(), "past+seq"); // canonical order
  EXPECT_EQ((seq + Dim::constant(1)).str(), "seq+1");
  EXPECT_EQ((seq - Dim::constant(1)).str(), "seq-1");
  EXPECT_EQ(seq.scaled(2).str(), "2*seq");
  EXPECT_EQ((Dim::constant(3) - seq).str(), "-seq+3");
  EXPECT_EQ((seq - seq).str(), "0");
  EXPECT_TRUE((seq - seq).isStatic());
  EXPECT_EQ(Dim::unknown().str(), "?");
  EXPECT_TRUE((seq + Dim::unknown()).isUnknown());
}

TEST(Dim, EvaluateAndOverflow) {
  Dim total = Dim::symbol("past") + Dim::symbol("seq").scaled(3) + Dim::constant(2);
  EXPECT_EQ(total.evaluate({{"past", 5}, {"seq", 7}}), 28);
  EXPECT_EQ(total.evaluate({{"past", 5}}), std::nullopt);
  EXPECT_TRUE(Dim::constant(kMaxDimValue).scaled(kMaxDimValue).isUnknown());
  EXPECT_TRUE((Dim::constant(kMaxDimValue) + Dim::constant(kMaxDimValue)).isUnknown());
}

TEST(Dim, Compatibility) {
  EXPECT_TRUE(Dim::symbol("seq").compatibleWith(Dim::unknown()));
  EXPECT_FALSE(Dim::symbol("seq").compatibleWith(Dim::constant(1)));
  EXPECT_TRUE(Dim::constant(4).compatibleWith(Dim::constant(4)));
}

TEST(TensorType, PrintsAndCounts) {
  TensorType t{ElementType::BF16, {Dim::symbol("batch"), Dim::constant(8)}};
  EXPECT_EQ(t.str(), "bf16[batch,8]");
  EXPECT_EQ(t.staticNumElements(), std::nullopt);
  EXPECT_EQ(tensorType(ElementType::I8, {2, 3, 4}).staticNumElements(), 24);
  EXPECT_EQ(tensorType(ElementType::F32, {}).str(), "f32[]");
}

TEST(ElementTypes, NamesRoundTrip) {
  for (ElementType type : {ElementType::F32, ElementType::BF16, ElementType::F16, ElementType::I64,
                           ElementType::I32, ElementType::I8, ElementType::Bool})
    EXPECT_EQ(parseElementType(elementTypeName(type)), type);
  EXPECT_EQ(parseElementType("f64"), std::nullopt);
}

// The traits agree with the categories and operand counts that make them meaningful.
TEST(OpTable, TraitsAgreeWithCategories) {
  for (const OpInfo& info : allOps()) {
    bool dataOrView = info.category == OpCategory::Leaf || info.category == OpCategory::View;
    EXPECT_EQ(info.has(OpTrait::NoKernel), dataOrView) << info.mnemonic;
    if (info.has(OpTrait::Commutative)) {
      EXPECT_TRUE(info.minOperands == 2 && info.maxOperands == 2) << info.mnemonic;
    }
    if (info.has(OpTrait::InPlace)) {
      EXPECT_EQ(info.category, OpCategory::Elementwise) << info.mnemonic;
    }
    if (info.category == OpCategory::Leaf) {
      EXPECT_EQ(info.maxOperands, 0) << info.mnemonic;
    }
  }
  EXPECT_EQ(opCategory(OpKind::RmsNorm), OpCategory::Fused);
  EXPECT_EQ(opCategory(OpKind::KVCacheAppend), OpCategory::Cache);
  EXPECT_TRUE(hasTrait(OpKind::Add, OpTrait::Commutative));
  EXPECT_FALSE(hasTrait(OpKind::Sub, OpTrait::Commutative));
  EXPECT_TRUE(hasTrait(OpKind::Reshape, OpTrait::NoKernel));
  EXPECT_FALSE(hasTrait(OpKind::Where, OpTrait::InPlace)); // its result may be wider than cond
}

TEST(OpTable, MnemonicsAreUniqueAndLookUp) {
  std::set<std::string_view> seen;
  for (const OpInfo& info : allOps()) {
    EXPECT_TRUE(seen.insert(info.mnemonic).second) << info.mnemonic;
    EXPECT_EQ(lookupOp(info.mnemonic), info.kind);
    EXPECT_EQ(&opInfo(info.kind), &info);
    EXPECT_GE(info.minOperands, 0);
    EXPECT_TRUE(info.maxOperands < 0 || info.maxOperands >= info.minOperands);
  }
  EXPECT_EQ(lookupOp("frobnicate"), std::nullopt);
  // The fused ops the fusion passes make.
  for (const char* name : {"rms_norm", "rotary", "attention", "gated_mlp"})
    EXPECT_TRUE(lookupOp(name).has_value()) << name;
  // Every primitive a Gemma graph needs (GEMMA_SPEC.md sections 2 and 6) has a row.
  for (const char* name :
       {"matmul",    "add",         "sub",        "mul",        "div",       "pow",     "sqrt",
        "rsqrt",     "reciprocal",  "neg",        "exp",        "tanh",      "erf",     "cos",
        "sin",       "reduce_mean", "reduce_sum", "reduce_max", "softmax",   "gather",  "reshape",
        "transpose", "concat",      "slice",      "squeeze",    "unsqueeze", "expand",  "where",
        "cast",      "constant",    "range",      "equal",      "less",      "greater", "and",
        "or",        "not",         "shape",      "weight"})
    EXPECT_TRUE(lookupOp(name).has_value()) << name;
}

} // namespace
} // namespace gemma
