// The interpreter on every op against values numpy computed (test/fixtures/
// make_interpreter_refs.py wrote them into interpreter/op_cases.json), plus the properties numpy
// cannot state: rounding to each element type, symbol binding, run-time errors.
#include "TestUtil.h"
#include "ir/Builder.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>

namespace gemma {
namespace {

using testing::userErrorOf;

Tensor tensorFromJson(const nlohmann::json& j) {
  auto type = parseElementType(j.at("dtype").get<std::string>());
  return Tensor(*type, j.at("shape").get<std::vector<int64_t>>(),
                j.at("data").get<std::vector<double>>());
}

nlohmann::json loadCases() {
  std::ifstream file(GEMMAC_FIXTURES_DIR "/interpreter/op_cases.json");
  return nlohmann::json::parse(file);
}

TEST(Interpreter, MatchesNumpyOnEveryOp) {
  nlohmann::json fixture = loadCases();
  std::set<std::string_view> covered;
  int checked = 0;
  for (const auto& c : fixture.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto graph = parseGraph(c.at("ir").get<std::string>(), c.at("name").get<std::string>());
    ASSERT_NO_THROW(verifyGraph(*graph)) << c.at("ir").get<std::string>();
    for (const auto& op : graph->ops)
      covered.insert(op->mnemonic());
    std::vector<Tensor> inputs;
    for (const auto& input : c.at("inputs"))
      inputs.push_back(tensorFromJson(input));
    std::vector<Tensor> outputs = interpret(*graph, inputs);
    ASSERT_EQ(outputs.size(), c.at("outputs").size());
    double tolerance = c.at("tolerance").get<double>();
    for (size_t i = 0; i < outputs.size(); ++i) {
      Tensor expected = tensorFromJson(c.at("outputs")[i]);
      ASSERT_EQ(outputs[i].elementType, expected.elementType);
      ASSERT_EQ(outputs[i].shape, expected.shape);
      for (size_t k = 0; k < expected.data.size(); ++k) {
        double bound = tolerance * std::max(1.0, std::fabs(expected.data[k]));
        ASSERT_LE(std::fabs(outputs[i].data[k] - expected.data[k]), bound)
            << "element " << k << ": got " << outputs[i].data[k] << ", numpy " << expected.data[k];
        ++checked;
      }
    }
  }
  EXPECT_GT(checked, 1000);
  // Every op of the table has a numpy case, except `weight` (tested below: numpy has no weights).
  for (const OpInfo& info : allOps()) {
    if (info.kind != OpKind::Weight) {
      EXPECT_TRUE(covered.count(info.mnemonic)) << "no numpy case for '" << info.mnemonic << "'";
    }
  }
}

TEST(Interpreter, WeightsComeFromTheProvider) {
  Graph graph;
  Builder b(graph);
  b.setLocation(Location::named("lm_head"));
  Value* w = b.weight("embed", tensorType(ElementType::F32, {2, 2}));
  graph.addOutput(b.binary(OpKind::Add, w, w));
  auto provider = [](const std::string& name, const TensorType&) {
    if (name != "embed")
      throw UserError("no tensor named " + name);
    return Tensor(ElementType::F32, {2, 2}, {1, 2, 3, 4});
  };
  EXPECT_EQ(interpret(graph, {}, provider)[0].data, (std::vector<double>{2, 4, 6, 8}));
  EXPECT_NE(userErrorOf([&] { interpret(graph, {}); }).find("lm_head: 'weight' needs weights"),
            std::string::npos);
  auto wrongShape = [](const std::string&, const TensorType&) {
    return Tensor(ElementType::F32, {4}, {1, 2, 3, 4});
  };
  EXPECT_NE(
      userErrorOf([&] { interpret(graph, {}, wrongShape); }).find("has shape [4], expected [2,2]"),
      std::string::npos);
}

TEST(Interpreter, RoundsToElementTypes) {
  EXPECT_EQ(roundToElementType(1.0 + 1.0 / 256, ElementType::BF16), 1.0); // tie -> even
  EXPECT_EQ(roundToElementType(1.0 + 3.0 / 256, ElementType::BF16), 1.0 + 4.0 / 256);
  EXPECT_EQ(roundToElementType(0.1, ElementType::F32), static_cast<double>(0.1f));
  EXPECT_EQ(roundToElementType(65520.0, ElementType::F16), INFINITY);
  EXPECT_EQ(roundToElementType(-2.7, ElementType::I64), -2);
  EXPECT_EQ(roundToElementType(300, ElementType::I8), 44);
  EXPECT_EQ(roundToElementType(4294967297.0, ElementType::I32), 1);
  EXPECT_EQ(roundToElementType(1e300, ElementType::I64), 9223372036854775807.0);
  EXPECT_EQ(roundToElementType(NAN, ElementType::I32), 0);
  EXPECT_EQ(roundToElementType(-0.5, ElementType::Bool), 1);
  EXPECT_TRUE(std::isnan(roundToElementType(NAN, ElementType::BF16)));
}

TEST(Interpreter, BindsSymbolsAndChecksShapes) {
  auto graph = parseGraph(R"(graph @g(%past: f32[past,2], %new: f32[seq,2], %all: f32[past+seq,2]) {
  %0 = concat(%past, %new) {axis = 0} : f32[past+seq,2]
  %1 = add(%0, %all) : f32[past+seq,2]
  return %1
}
)");
  verifyGraph(*graph);
  auto zeros = [](int64_t n) { return Tensor::zeros(ElementType::F32, {n, 2}); };
  EXPECT_EQ(interpret(*graph, {zeros(3), zeros(1), zeros(4)})[0].shape,
            (std::vector<int64_t>{4, 2}));
  std::string error = userErrorOf([&] { interpret(*graph, {zeros(3), zeros(1), zeros(5)}); });
  EXPECT_NE(error.find("has shape [5,2] but is declared f32[past+seq,2] with past=3, seq=1"),
            std::string::npos)
      << error;
  EXPECT_NE(userErrorOf([&] { interpret(*graph, {zeros(3)}); }).find("takes 3 inputs, got 1"),
            std::string::npos);
}

TEST(Interpreter, RunTimeErrorsAreReported) {
  auto graph = parseGraph(R"(graph @g(%t: f32[3,2], %i: i64[2]) {
  %0 = gather(%t, %i) {axis = 0} : f32[2,2] loc("embed")
  return %0
}
)");
  Tensor table = Tensor::zeros(ElementType::F32, {3, 2});
  EXPECT_NE(userErrorOf([&] {
              interpret(*graph, {table, Tensor(ElementType::I64, {2}, {0, 3})});
            }).find("embed: 'gather' index 3 is out of range for axis of size 3"),
            std::string::npos);
  auto division = parseGraph(R"(graph @g(%a: i64[2], %b: i64[2]) {
  %0 = div(%a, %b) : i64[2]
  return %0
}
)");
  EXPECT_NE(userErrorOf([&] {
              interpret(*division, {Tensor(ElementType::I64, {2}, {1, 2}),
                                    Tensor(ElementType::I64, {2}, {1, 0})});
            }).find("divides an integer by zero"),
            std::string::npos);
}

} // namespace
} // namespace gemma
