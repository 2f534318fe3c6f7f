// The text form: print(parse(text)) reproduces a printed graph exactly, on hand-written cases and
// on 500 random graphs; malformed text gives a located error.
#include "RandomGraph.h"
#include "TestUtil.h"
#include "ir/Printer.h"

#include <cmath>

namespace gemma {
namespace {

using testing::errorOfText;

std::string roundTrip(const std::string& text, bool locations = false) {
  auto graph = parseGraph(text, "t.ir");
  verifyGraph(*graph);
  return printGraph(*graph, {locations});
}

TEST(Parser, RoundTripsHandWrittenGraphs) {
  const char* cases[] = {
      R"(graph @empty() {
  return
}
)",
      R"(graph @decode(%input_ids: i64[batch,seq], %past.0.key: bf16[batch,1,past,256]) {
  %0 = weight() {name = "model.embed_tokens.weight"} : bf16[1000,64]
  %1 = gather(%0, %input_ids) {axis = 0} : bf16[batch,seq,64]
  %2 = constant() {value = [8.0]} : bf16[]
  %3 = mul(%1, %2) : bf16[batch,seq,64]
  %4 = concat(%past.0.key, %past.0.key) {axis = 2} : bf16[batch,1,2*past,256]
  return %3 as "hidden", %4 as "present.0.key"
}
)",
      R"(graph @attrs(%x: f32[?,3]) {
  %0 = slice(%x) {axes = [1], ends = [9223372036854775807], starts = [-2], steps = [1]} : f32[?,2]
  %1 = gelu(%0) {approximate = "tanh"} : f32[?,2]
  %2 = constant() {value = [-inf, inf, nan, -0.0, 1e-300, 3.4028234663852886e+38]} : f32[6]
  %3 = constant() {value = [-9223372036854775807, 0, 7]} : i64[3]
  %4 = reduce_max(%1) {axes = [-1], keepdims = false} : f32[?]
  return %4, %2, %3
}
)",
  };
  for (const char* text : cases)
    EXPECT_EQ(roundTrip(text), text);
}

TEST(Parser, AcceptsFreeFormAndRenumbers) {
  std::string text = R"(// a comment
graph @g(%x: f32[seq-1, 2*seq+3]) { %y = exp(%x) : f32[seq-1,2*seq+3] loc("model.a")
   %z=neg(%y):f32[seq-1,2*seq+3]   return %z as "out" }  // trailing comment
)";
  EXPECT_EQ(roundTrip(text), R"(graph @g(%x: f32[seq-1,2*seq+3]) {
  %0 = exp(%x) : f32[seq-1,2*seq+3]
  %1 = neg(%0) : f32[seq-1,2*seq+3]
  return %1 as "out"
}
)");
  // Locations: an explicit origin is kept; otherwise the op's own place in the file.
  std::string withLocations = roundTrip(text, true);
  EXPECT_NE(withLocations.find("%0 = exp(%x) : f32[seq-1,2*seq+3] loc(\"model.a\")"),
            std::string::npos);
  EXPECT_NE(withLocations.find("%1 = neg(%0) : f32[seq-1,2*seq+3] loc(\"t.ir\":3:4)"),
            std::string::npos);
}

TEST(Parser, FloatsRoundTripBitExactly) {
  for (double v :
       {0.1, 1.0 / 3.0, 1e-6, 6.02214076e23, 5e-324, 1.7976931348623157e308, -2.5, 100.0, 1e22}) {
    std::string text = "graph @g() {\n  %0 = constant() {value = [" + formatFloat(v) +
                       "]} : f32[]\n  return %0\n}\n";
    auto graph = parseGraph(text);
    EXPECT_EQ((*graph->ops.front()->attr<Floats>("value"))[0], v) << formatFloat(v);
  }
}

TEST(Parser, RoundTripsFiveHundredRandomGraphs) {
  std::mt19937_64 rng(12345);
  size_t totalOps = 0;
  std::set<std::string_view> kindsSeen;
  for (int i = 0; i < 500; ++i) {
    auto graph = testing::makeRandomGraph(rng);
    ASSERT_NO_THROW(verifyGraph(*graph)) << printGraph(*graph);
    totalOps += graph->ops.size();
    for (const auto& op : graph->ops)
      kindsSeen.insert(op->mnemonic());
    for (bool locations : {false, true}) {
      std::string printed = printGraph(*graph, {locations});
      std::unique_ptr<Graph> reparsed;
      ASSERT_NO_THROW(reparsed = parseGraph(printed)) << printed;
      ASSERT_NO_THROW(verifyGraph(*reparsed)) << printed;
      ASSERT_EQ(printGraph(*reparsed, {locations}), printed);
    }
  }
  EXPECT_GT(totalOps, 500u * 5);
  EXPECT_GE(kindsSeen.size(), 30u); // the generator reaches most of the op table
}

// Every int64 the printer writes parses back, INT64_MIN included (it was refused as out of
// range: the magnitude was read signed after the '-'); one past either end is refused.
TEST(Parser, RoundTripsTheExtremeIntegers) {
  const char* text = R"(graph @extremes() {
  %0 = constant() {value = [-9223372036854775808, 9223372036854775807, -1]} : i64[3]
  %1 = slice(%0) {axes = [0], ends = [9223372036854775807], starts = [-9223372036854775808], steps = [1]} : i64[3]
  return %1
}
)";
  EXPECT_EQ(roundTrip(text), text);
  EXPECT_NE(
      errorOfText("graph @g() {\n  %0 = constant() {value = [-9223372036854775809]} : i64[1]\n"
                  "  return %0\n}")
          .find("integer '-9223372036854775809' is out of range"),
      std::string::npos);
  EXPECT_NE(errorOfText("graph @g() {\n  %0 = constant() {value = [9223372036854775808]} : i64[1]\n"
                        "  return %0\n}")
                .find("integer '9223372036854775808' is out of range"),
            std::string::npos);
}

TEST(Parser, ErrorsAreLocated) {
  struct Case {
    const char* text;
    const char* error;
  } cases[] = {
      {"", "t.ir:1:1: error: expected 'graph' but the input ended"},
      {"graph @g(%x: f32[2]) {\n  %0 = exp(%x) : f32[2]\n",
       "t.ir:3:1: error: expected a result '%name' or 'return' but the input ended"},
      {"graph @g(%x: f32[2]) {\n  %0 = frobnicate(%x) : f32[2]\n  return %0\n}",
       "t.ir:2:8: error: unknown op 'frobnicate'"},
      {"graph @g(%x: f32[2]) {\n  %0 = exp(%y) : f32[2]\n  return %0\n}",
       "t.ir:2:12: error: use of undefined value %y"},
      {"graph @g(%x: f64[2]) {\n  return %x\n}", "t.ir:1:14: error: unknown element type 'f64'"},
      {"graph @g(%x: f32[99999999999999999999]) {\n  return %x\n}",
       "t.ir:1:18: error: integer '99999999999999999999' is out of range"},
      {"graph @g(%x: f32[2000000000000]) {\n  return %x\n}",
       "t.ir:1:18: error: dim 2000000000000 is larger than 2^40"},
      {"graph @g(%x: f32[2]) {\n  %0 = exp(%x) {a = 1e99999} : f32[2]\n  return %0\n}",
       "t.ir:2:21: error: number '1e99999' is out of range"},
      {"graph @g(%x: f32[2]) {\n  %0 = exp(%x) {a = \"open} : f32[2]\n  return %0\n}",
       "t.ir:2:21: error: unterminated string"},
      {"graph @g(%x: f32[2]) {\n  %0 = exp(%x) {a = 1, a = 2} : f32[2]\n  return %0\n}",
       "t.ir:2:24: error: attribute 'a' is given twice"},
      {"graph @g(%x: f32[2]) {\n  %0 = exp(%x) {a = [1, 2.0]} : f32[2]\n  return %0\n}",
       "t.ir:2:25: error: list mixes integers and floats"},
      {"graph @g(%x: f32[2]) {\n  %0, %1 = exp(%x) : f32[2]\n  return %0\n}",
       "t.ir:2:12: error: 2 result(s) but 1 type(s)"},
      {"graph @g(%x: f32[2]) {\n  return %x\n} extra", "t.ir:3:3: error: expected end of input"},
      {"graph @g(%x: f32[2]) {\n  \x01\x02\n}", "t.ir:2:3: error: unexpected byte 0x01"},
      {"graph @g(%x: f32[2]) {\n  %0 = exp(%x) : f32[2] loc(\"f\":0:1)\n  return %0\n}",
       "error: loc line and column must be positive"},
  };
  for (const Case& c : cases) {
    std::string error = errorOfText(c.text);
    EXPECT_NE(error.find(c.error), std::string::npos) << "text: " << c.text << "\nerror: " << error;
  }
}

TEST(Parser, DeepRankIsRejected) {
  std::string dims;
  for (int i = 0; i < 20; ++i)
    dims += (i ? ",1" : "1");
  EXPECT_NE(errorOfText("graph @g(%x: f32[" + dims + "]) {\n  return %x\n}").find("rank above 16"),
            std::string::npos);
}

} // namespace
} // namespace gemma
