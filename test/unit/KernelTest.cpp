// Every Halide kernel against the reference interpreter on random inputs, with sizes that are not
// multiples of the vector width (tails) and symbolic dims bound at run time. Kernels are JIT-
// compiled here for the same explicit target the compiler uses.
#include "HalideTestUtil.h"
#include "TestUtil.h"
#include "backend/halide/Kernels.h"

#include <cmath>
#include <fstream>
#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

namespace gemma {
namespace {

using testing::disassemble;

Halide::Buffer<> toBuffer(const Tensor& t) {
  std::vector<int> extents(t.shape.rbegin(), t.shape.rend());
  if (t.elementType == ElementType::I64) {
    Halide::Buffer<int64_t> b(extents);
    for (int64_t i = 0; i < t.numElements(); ++i)
      b.data()[i] = static_cast<int64_t>(t.data[i]);
    return b;
  }
  Halide::Buffer<float> b(extents);
  for (int64_t i = 0; i < t.numElements(); ++i)
    b.data()[i] = static_cast<float>(t.data[i]);
  return b;
}

Tensor randomTensor(const TensorType& type, const std::vector<int64_t>& shape,
                    std::mt19937_64& rng) {
  Tensor t = Tensor::zeros(type.elementType, shape);
  for (double& v : t.data)
    v = type.elementType == ElementType::I64
            ? static_cast<double>(std::uniform_int_distribution<int>(-2, 10)(rng))
            : static_cast<double>(
                  static_cast<float>(std::uniform_real_distribution<double>(-2, 2)(rng)));
  return t;
}

// Parses a one-op graph, runs the kernel and the interpreter on the same random inputs (shapes
// given per graph input; `adjust` may then set some), and returns the worst relative difference
// (infinite where only one of the two is NaN).
double compareKernel(const std::string& text, const std::vector<std::vector<int64_t>>& shapes,
                     const std::function<void(std::vector<Tensor>&)>& adjust = {}) {
  auto graph = parseGraph(text);
  verifyGraph(*graph);
  const Op& op = *graph->ops.back();
  EXPECT_TRUE(hasKernel(op)) << op.mnemonic();
  std::mt19937_64 rng(11);
  std::vector<Tensor> inputs;
  for (size_t i = 0; i < graph->inputs.size(); ++i)
    inputs.push_back(randomTensor(graph->inputs[i]->type, shapes[i], rng));
  if (adjust)
    adjust(inputs);
  // Weights read through permuted strides (fold-weight-transposes): random stored tensors, which
  // the interpreter transposes and the kernel reads in place.
  std::map<std::string, Tensor> stored;
  for (const auto& other : graph->ops) {
    if (other->kind != OpKind::Weight)
      continue;
    std::vector<int64_t> shape;
    for (const Dim& d : storedWeightType(*other).dims)
      shape.push_back(d.staticValue());
    stored.emplace(*other->attr<std::string>("name"),
                   randomTensor(other->result()->type, shape, rng));
  }
  Tensor expected = interpret(*graph, inputs, [&](const std::string& name, const TensorType&) {
    return stored.at(name);
  })[0];

  TargetKind target = hostTargetKind();
  Kernel kernel = buildKernel(op, target);
  std::vector<Halide::Buffer<>> weightBuffers;
  for (size_t i = 0; i < op.operands.size(); ++i) {
    const Op* producer = op.operands[i]->definingOp;
    if (!producer) {
      kernel.inputs[i].set(toBuffer(inputs[op.operands[i]->resultIndex]));
      continue;
    }
    // Halide dim h of the value is its tensor dim r-1-h, which is the stored tensor's dim
    // perm[r-1-h], Halide dim r-1-perm[r-1-h] of the stored buffer.
    const Ints& perm = *producer->attr<Ints>("perm");
    int rank = static_cast<int>(perm.size());
    std::vector<int> order;
    for (int h = 0; h < rank; ++h)
      order.push_back(rank - 1 - static_cast<int>(perm[static_cast<size_t>(rank - 1 - h)]));
    weightBuffers.push_back(toBuffer(stored.at(*producer->attr<std::string>("name"))));
    kernel.inputs[i].set(weightBuffers.back().transposed(order));
  }
  std::vector<int> extents(expected.shape.rbegin(), expected.shape.rend());
  Halide::Buffer<float> out(extents);
  kernel.output.realize(out, halideTarget(target));
  double worst = 0;
  for (int64_t i = 0; i < expected.numElements(); ++i) {
    if (std::isnan(out.data()[i]) != std::isnan(expected.data[i]))
      return INFINITY;
    if (!std::isnan(expected.data[i]))
      worst = std::max(worst, std::fabs(out.data()[i] - expected.data[i]) /
                                  std::max(1.0, std::fabs(expected.data[i])));
  }
  return worst;
}

TEST(Kernels, RmsNorm) {
  for (const char* unit : {"true", "false"}) {
    std::string text = std::string("graph @g(%x: f32[batch,seq,37], %w: f32[37]) {\n"
                                   "  %0 = rms_norm(%x, %w) {eps = 1e-06, unit_offset = ") +
                       unit + "} : f32[batch,seq,37]\n  return %0\n}\n";
    EXPECT_LE(compareKernel(text, {{2, 3, 37}, {37}}), 1e-5) << unit;
  }
}

TEST(Kernels, MatMulPrefillAndDecode) {
  const char* text = "graph @g(%a: f32[batch,seq,37], %b: f32[37,19]) {\n"
                     "  %0 = matmul(%a, %b) : f32[batch,seq,19]\n  return %0\n}\n";
  EXPECT_LE(compareKernel(text, {{2, 5, 37}, {37, 19}}), 1e-5);
  EXPECT_LE(compareKernel(text, {{1, 1, 37}, {37, 19}}), 1e-5);
  const char* wide = "graph @g(%a: f32[seq,130], %b: f32[130,70]) {\n"
                     "  %0 = matmul(%a, %b) : f32[seq,70]\n  return %0\n}\n";
  EXPECT_LE(compareKernel(wide, {{3, 130}, {130, 70}}), 1e-5);
}

// Attention's products with fusions off: stacks of matrices, a batch dim of 1 broadcast.
TEST(Kernels, BatchedMatMul) {
  const char* scores = "graph @g(%q: f32[batch,4,seq,10], %k: f32[batch,4,10,past+seq]) {\n"
                       "  %0 = matmul(%q, %k) : f32[batch,4,seq,past+seq]\n  return %0\n}\n";
  EXPECT_LE(compareKernel(scores, {{2, 4, 5, 10}, {2, 4, 10, 5}}), 1e-5);
  EXPECT_LE(compareKernel(scores, {{1, 4, 1, 10}, {1, 4, 10, 23}}), 1e-5);
  const char* broadcast = "graph @g(%a: f32[3,seq,17], %b: f32[1,17,9]) {\n"
                          "  %0 = matmul(%a, %b) : f32[3,seq,9]\n  return %0\n}\n";
  EXPECT_LE(compareKernel(broadcast, {{3, 6, 17}, {1, 17, 9}}), 1e-5);
}

TEST(Kernels, EmbeddingGather) {
  const char* text = "graph @g(%t: f32[11,21], %ids: i64[batch,seq]) {\n"
                     "  %0 = gather(%t, %ids) {axis = 0} : f32[batch,seq,21]\n  return %0\n}\n";
  EXPECT_EQ(compareKernel(text, {{11, 21}, {2, 3}}), 0.0);
}

TEST(Kernels, ElementwiseWithBroadcasting) {
  for (const char* op : {"add", "sub", "mul", "max", "min"}) {
    std::string text = std::string("graph @g(%a: f32[batch,3,17], %b: f32[17]) {\n  %0 = ") + op +
                       "(%a, %b) : f32[batch,3,17]\n  return %0\n}\n";
    EXPECT_EQ(compareKernel(text, {{2, 3, 17}, {17}}), 0.0) << op;
  }
  const char* both = "graph @g(%a: f32[2,1,17], %b: f32[2,5,1]) {\n"
                     "  %0 = add(%a, %b) : f32[2,5,17]\n  return %0\n}\n";
  EXPECT_EQ(compareKernel(both, {{2, 1, 17}, {2, 5, 1}}), 0.0);
  const char* symbolic = "graph @g(%a: f32[seq,9], %b: f32[seq,9]) {\n"
                         "  %0 = div(%a, %b) : f32[seq,9]\n  return %0\n}\n";
  EXPECT_LE(compareKernel(symbolic, {{4, 9}, {4, 9}}), 1e-6);
}

TEST(Kernels, Unary) {
  for (const char* op : {"neg", "exp", "tanh", "gelu", "gelu_tanh"}) {
    std::string name = op, attrs;
    if (name == "gelu")
      attrs = " {approximate = \"none\"}";
    if (name == "gelu_tanh") {
      name = "gelu";
      attrs = " {approximate = \"tanh\"}";
    }
    std::string text = "graph @g(%a: f32[3,29]) {\n  %0 = " + name + "(%a)" + attrs +
                       " : f32[3,29]\n  return %0\n}\n";
    EXPECT_LE(compareKernel(text, {{3, 29}}), 1e-5) << op;
  }
}

// GELU's tanh is a rational fit clamped at +-7.9 (Kernels.cpp vectorTanh): inputs across [-12, 12]
// reach both the fit's whole range and the clamp, and tiny ones the identity branch.
TEST(Kernels, GeluTanhAcrossTheFitsRange) {
  std::string text = "graph @g(%a: f32[401]) {\n  %0 = gelu(%a) {approximate = \"tanh\"} : "
                     "f32[401]\n  return %0\n}\n";
  double worst = compareKernel(text, {{401}}, [](std::vector<Tensor>& inputs) {
    for (size_t i = 0; i < inputs[0].data.size(); ++i)
      inputs[0].data[i] = -12.0 + 24.0 * static_cast<double>(i) / 400.0;
    inputs[0].data[200] = 1e-5; // below the fit's identity threshold
  });
  // Where gelu is near 0 (x very negative), 1 + tanh cancels and the error is |x| / 2 times
  // tanh's absolute error, 3.4e-7 for the fit: at most 2.1e-6 at |x| = 12.
  EXPECT_LE(worst, 2.1e-6);
}

TEST(Kernels, RotaryFromPositionsAndTables) {
  const char* positions =
      "graph @g(%x: f32[batch,3,seq,10], %p: i64[batch,seq]) {\n"
      "  %0 = rotary(%x, %p) {head_dim = 10, theta = 10000.0} : f32[batch,3,seq,10]\n"
      "  return %0\n}\n";
  EXPECT_LE(compareKernel(positions, {{2, 3, 5, 10}, {2, 5}}), 1e-5);
  const char* tables = "graph @g(%x: f32[1,2,seq,6], %c: f32[1,1,seq,6], %s: f32[1,1,seq,6]) {\n"
                       "  %0 = rotary(%x, %c, %s) {head_dim = 6} : f32[1,2,seq,6]\n"
                       "  return %0\n}\n";
  EXPECT_LE(compareKernel(tables, {{1, 2, 4, 6}, {1, 1, 4, 6}, {1, 1, 4, 6}}), 1e-6);
}

TEST(Kernels, AttentionGQAWithMaskSoftcapWindow) {
  const char* masked =
      "graph @g(%q: f32[batch,4,seq,10], %k: f32[batch,2,total,10], %v: f32[batch,2,total,10], "
      "%b: f32[batch,1,seq,total]) {\n"
      "  %0 = attention(%q, %k, %v, %b) {head_dim = 10, num_heads = 4, num_kv_heads = 2, "
      "scale = 0.31622776601683794} : f32[batch,4,seq,10]\n  return %0\n}\n";
  EXPECT_LE(compareKernel(masked, {{2, 4, 3, 10}, {2, 2, 7, 10}, {2, 2, 7, 10}, {2, 1, 3, 7}}),
            1e-5);
  const char* capped =
      "graph @g(%q: f32[1,2,seq,8], %k: f32[1,1,total,8], %v: f32[1,1,total,8]) {\n"
      "  %0 = attention(%q, %k, %v) {head_dim = 8, num_heads = 2, num_kv_heads = 1, scale = 0.5, "
      "softcap = 3.0, window = 4} : f32[1,2,seq,8]\n  return %0\n}\n";
  EXPECT_LE(compareKernel(capped, {{1, 2, 2, 8}, {1, 1, 9, 8}, {1, 1, 9, 8}}), 1e-5);
}

// Causal attention with a key mask, as Gemma's layers run it: a chunk of queries after a past
// and a whole first prompt, with and without a sliding window. The kernel scores only the keys
// each query can see; the interpreter scores all and masks. Batch 1 is left-padded after a past,
// and has holes in its mask in a first prompt (a query masked everywhere is padding, whose output
// is unspecified, so none is here).
TEST(Kernels, CausalAttentionScoresOnlyTheVisibleKeys) {
  const int64_t total = 9;
  for (const char* window : {"", ", window = 4"})
    for (int64_t seq : {int64_t{3}, total}) {
      std::string text =
          std::string("graph @g(%q: f32[batch,4,seq,8], %k: f32[batch,2,total,8], %v: "
                      "f32[batch,2,total,8], %m: i64[batch,total]) {\n"
                      "  %0 = attention(%q, %k, %v, %m) {causal = true, head_dim = 8, num_heads = "
                      "4, num_kv_heads = 2, scale = 0.35") +
          window + "} : f32[batch,4,seq,8]\n  return %0\n}\n";
      auto mask = [&](std::vector<Tensor>& inputs) {
        for (int64_t t = 0; t < total; ++t) {
          bool hidden = seq < total ? t < 2 : t == 1 || t == 4;
          inputs[3].data[static_cast<size_t>(t)] = 1;
          inputs[3].data[static_cast<size_t>(total + t)] = hidden ? 0 : 1;
        }
      };
      EXPECT_LE(compareKernel(
                    text, {{2, 4, seq, 8}, {2, 2, total, 8}, {2, 2, total, 8}, {2, total}}, mask),
                1e-5)
          << window << " seq " << seq;
    }
}

// torch's SDPA export zeroes the NaN weights of a query row masked everywhere (its bias all -inf):
// with nan_weights_to_zero that row's output is 0 in kernel and interpreter alike; without, NaN.
TEST(Kernels, AttentionRowMaskedEverywhere) {
  auto maskSecondRow = [](std::vector<Tensor>& inputs) {
    Tensor& bias = inputs[3]; // [1,1,3,5]
    for (int64_t t = 0; t < 5; ++t)
      bias.data[static_cast<size_t>(5 + t)] = -INFINITY;
  };
  for (bool guarded : {true, false}) {
    std::string text =
        std::string("graph @g(%q: f32[1,2,seq,8], %k: f32[1,1,total,8], %v: f32[1,1,total,8], "
                    "%b: f32[1,1,seq,total]) {\n  %0 = attention(%q, %k, %v, %b) {head_dim = 8, ") +
        (guarded ? "nan_weights_to_zero = true, " : "") +
        "num_heads = 2, num_kv_heads = 1, scale = 0.35} : f32[1,2,seq,8]\n  return %0\n}\n";
    EXPECT_LE(compareKernel(text, {{1, 2, 3, 8}, {1, 1, 5, 8}, {1, 1, 5, 8}, {1, 1, 3, 5}},
                            maskSecondRow),
              1e-5)
        << text;
    auto graph = parseGraph(text);
    std::mt19937_64 rng(3);
    std::vector<Tensor> inputs;
    for (const auto& shape :
         std::vector<std::vector<int64_t>>{{1, 2, 3, 8}, {1, 1, 5, 8}, {1, 1, 5, 8}, {1, 1, 3, 5}})
      inputs.push_back(randomTensor(graph->inputs[inputs.size()]->type, shape, rng));
    maskSecondRow(inputs);
    Tensor out = interpret(*graph, inputs, nullptr)[0];
    for (int64_t head = 0; head < 2; ++head)
      for (int64_t h = 0; h < 8; ++h) {
        double masked = out.data[static_cast<size_t>((head * 3 + 1) * 8 + h)];
        double visible = out.data[static_cast<size_t>((head * 3 + 2) * 8 + h)];
        EXPECT_TRUE(guarded ? masked == 0 : std::isnan(masked)) << masked;
        EXPECT_FALSE(std::isnan(visible));
      }
  }
}

TEST(Kernels, GatedMlp) {
  for (const char* activation : {"gelu_tanh", "gelu"}) {
    std::string text = std::string("graph @g(%x: f32[batch,seq,19], %g: f32[19,45], "
                                   "%u: f32[19,45], %d: f32[45,19]) {\n"
                                   "  %0 = gated_mlp(%x, %g, %u, %d) {activation = \"") +
                       activation + "\"} : f32[batch,seq,19]\n  return %0\n}\n";
    EXPECT_LE(compareKernel(text, {{2, 3, 19}, {19, 45}, {19, 45}, {45, 19}}), 1e-5) << activation;
  }
}

// Projections and the gated MLP as compiled programs run them: torch's [out, in] weights read in
// place (weight {perm}), as dot products over weight rows in panels and row blocks. Decode (one
// row) and prefill (rows not a multiple of the block), widths not multiples of the vector.
TEST(Kernels, DotProductsOverWeightRows) {
  const char* linear = "graph @g(%x: f32[batch,seq,37]) {\n"
                       "  %w = weight() {name = \"w\", perm = [1, 0]} : f32[37,19]\n"
                       "  %0 = matmul(%x, %w) : f32[batch,seq,19]\n  return %0\n}\n";
  for (int64_t seq : {1, 5, 9})
    EXPECT_LE(compareKernel(linear, {{2, seq, 37}}), 1e-5) << seq;
  for (const char* activation : {"gelu_tanh", "gelu"}) {
    std::string mlp = std::string("graph @g(%x: f32[batch,seq,19]) {\n"
                                  "  %g = weight() {name = \"g\", perm = [1, 0]} : f32[19,45]\n"
                                  "  %u = weight() {name = \"u\", perm = [1, 0]} : f32[19,45]\n"
                                  "  %d = weight() {name = \"d\", perm = [1, 0]} : f32[45,19]\n"
                                  "  %0 = gated_mlp(%x, %g, %u, %d) {activation = \"") +
                      activation + "\"} : f32[batch,seq,19]\n  return %0\n}\n";
    // Two chained f32 dot products (19, then 45 terms) whose FMA contraction follows the
    // schedule: a few ulps of the sums more than a single projection.
    for (int64_t seq : {1, 6})
      EXPECT_LE(compareKernel(mlp, {{1, seq, 19}}), 2e-5) << activation << " " << seq;
  }
}

TEST(Kernels, SoftmaxTransposeConcatAppend) {
  EXPECT_LE(compareKernel("graph @g(%x: f32[batch,3,21]) {\n  %0 = softmax(%x) {axis = -1} : "
                          "f32[batch,3,21]\n  return %0\n}\n",
                          {{2, 3, 21}}),
            1e-6);
  EXPECT_EQ(compareKernel("graph @g(%x: f32[2,3,5,7]) {\n  %0 = transpose(%x) {perm = [0, 2, 1, "
                          "3]} : f32[2,5,3,7]\n  return %0\n}\n",
                          {{2, 3, 5, 7}}),
            0.0);
  EXPECT_EQ(compareKernel("graph @g(%x: f32[2,3,5]) {\n  %0 = transpose(%x) {perm = [2, 0, 1]} : "
                          "f32[5,2,3]\n  return %0\n}\n",
                          {{2, 3, 5}}),
            0.0);
  EXPECT_EQ(compareKernel("graph @g(%a: f32[2,3,4], %b: f32[2,5,4]) {\n  %0 = concat(%a, %b, %a) "
                          "{axis = 1} : f32[2,11,4]\n  return %0\n}\n",
                          {{2, 3, 4}, {2, 5, 4}}),
            0.0);
}

// kv_cache_append is lowered in place: its kernel copies only the new rows to where its result
// buffer points (the entry point aims it at rows [past, past+seq) of the cache region).
TEST(Kernels, CacheAppendCopiesTheNewRows) {
  auto graph = parseGraph("graph @g(%past: f32[batch,1,past,6], %new: f32[batch,1,seq,6]) {\n"
                          "  %0 = kv_cache_append(%past, %new) {cache_bytes = 4096, cache_offset = "
                          "0, max_batch = 2, max_seq_len = 16} : f32[batch,1,past+seq,6]\n"
                          "  return %0\n}\n");
  Kernel kernel = buildKernel(*graph->ops.back(), hostTargetKind());
  ASSERT_EQ(kernel.inputs.size(), 1u);
  std::mt19937_64 rng(4);
  Tensor rows = randomTensor(graph->inputs[1]->type, {2, 1, 3, 6}, rng);
  kernel.inputs[0].set(toBuffer(rows));
  Halide::Buffer<float> out(6, 3, 1, 2);
  kernel.output.realize(out, halideTarget(hostTargetKind()));
  for (int64_t i = 0; i < rows.numElements(); ++i)
    EXPECT_EQ(out.data()[i], static_cast<float>(rows.data[i]));
}

using testing::element;
using testing::typedBuffer;

// Every numpy case of the interpreter's fixture whose op has a kernel, through the kernel.
TEST(Kernels, EveryInterpreterCaseWithAKernel) {
  std::ifstream file(GEMMAC_FIXTURES_DIR "/interpreter/op_cases.json");
  nlohmann::json fixture = nlohmann::json::parse(file);
  std::set<std::string> covered, without;
  for (const auto& c : fixture.at("cases")) {
    SCOPED_TRACE(c.at("name").get<std::string>());
    auto graph = parseGraph(c.at("ir").get<std::string>());
    Op& op = *graph->ops.back();
    if (!hasKernel(op) || op.kind == OpKind::KVCacheAppend) { // the latter: CacheAppend test
      without.insert(std::string(op.mnemonic()) + " (" + c.at("name").get<std::string>() + ")");
      continue;
    }
    covered.insert(std::string(op.mnemonic()));
    std::vector<Tensor> inputs;
    for (const auto& input : c.at("inputs"))
      inputs.emplace_back(*parseElementType(input.at("dtype").get<std::string>()),
                          input.at("shape").get<std::vector<int64_t>>(),
                          input.at("data").get<std::vector<double>>());
    // The op's operands (graph inputs or constants before it), by the interpreter.
    auto prefix = graph->clone();
    prefix->outputs.clear();
    for (Value* operand : prefix->ops.back()->operands)
      prefix->addOutput(operand);
    std::vector<Tensor> operands = interpret(*prefix, inputs);
    Tensor expected = interpret(*graph, inputs)[0];
    Kernel kernel = buildKernel(op, hostTargetKind());
    for (size_t i = 0; i < operands.size(); ++i)
      kernel.inputs[i].set(typedBuffer(operands[i]));
    Halide::Buffer<> out = typedBuffer(Tensor::zeros(expected.elementType, expected.shape));
    kernel.output.realize(out, halideTarget(hostTargetKind()));
    double tolerance = c.at("tolerance").get<double>() * 10; // f32 sums against double ones
    for (int64_t i = 0; i < expected.numElements(); ++i)
      ASSERT_NEAR(element(out, i, expected.elementType), expected.data[i],
                  tolerance * std::max(1.0, std::fabs(expected.data[i])))
          << "element " << i;
  }
  std::string list;
  for (const std::string& name : without)
    list += " " + name;
  std::printf("kernels: %zu ops checked on the numpy cases; without a kernel (views share their "
              "operand's buffer; the rest not yet):%s\n",
              covered.size(), list.c_str());
  EXPECT_GE(covered.size(), 40u);
}

// bf16 and f16 tensors: read into f32, computed in f32, rounded once on the way out; the
// interpreter rounds after every step as transformers does, so the two may differ by an ulp of the
// type (bf16: 2^-8 relative, f16: 2^-11) where an intermediate lands next to a rounding boundary.
TEST(Kernels, HalfPrecisionInAndOut) {
  auto check = [](const std::string& text, const std::vector<std::vector<int64_t>>& shapes) {
    auto graph = parseGraph(text);
    verifyGraph(*graph);
    std::mt19937_64 rng(5);
    std::vector<Tensor> inputs;
    for (size_t i = 0; i < graph->inputs.size(); ++i) {
      Tensor t = randomTensor(graph->inputs[i]->type, shapes[i], rng);
      for (double& v : t.data)
        v = roundToElementType(v, t.elementType);
      inputs.push_back(t);
    }
    Tensor expected = interpret(*graph, inputs)[0];
    Kernel kernel = buildKernel(*graph->ops.back(), hostTargetKind());
    for (size_t i = 0; i < inputs.size(); ++i)
      kernel.inputs[i].set(typedBuffer(inputs[i]));
    Halide::Buffer<> out = typedBuffer(Tensor::zeros(expected.elementType, expected.shape));
    kernel.output.realize(out, halideTarget(hostTargetKind()));
    double worst = 0;
    for (int64_t i = 0; i < expected.numElements(); ++i)
      worst = std::max(worst, std::fabs(element(out, i, expected.elementType) - expected.data[i]) /
                                  std::max(1.0, std::fabs(expected.data[i])));
    return worst;
  };
  EXPECT_LE(check("graph @g(%x: bf16[2,3,40], %w: bf16[40]) {\n  %0 = rms_norm(%x, %w) {eps = "
                  "1e-06, unit_offset = true} : bf16[2,3,40]\n  return %0\n}\n",
                  {{2, 3, 40}, {40}}),
            0x1p-7);
  EXPECT_LE(check("graph @g(%a: bf16[seq,40], %b: bf16[40,24]) {\n  %0 = matmul(%a, %b) : "
                  "bf16[seq,24]\n  return %0\n}\n",
                  {{3, 40}, {40, 24}}),
            0x1p-7);
  EXPECT_EQ(check("graph @g(%t: bf16[11,8], %i: i64[4]) {\n  %0 = gather(%t, %i) {axis = 0} : "
                  "bf16[4,8]\n  return %0\n}\n",
                  {{11, 8}, {4}}),
            0.0);
  EXPECT_LE(check("graph @g(%x: f16[2,3,40], %w: f16[40]) {\n  %0 = rms_norm(%x, %w) {eps = "
                  "1e-06, unit_offset = true} : f16[2,3,40]\n  return %0\n}\n",
                  {{2, 3, 40}, {40}}),
            0x1p-10);
  EXPECT_LE(check("graph @g(%a: f16[seq,40], %b: f16[40,24]) {\n  %0 = matmul(%a, %b) : "
                  "f16[seq,24]\n  return %0\n}\n",
                  {{3, 40}, {40, 24}}),
            0x1p-10);
  EXPECT_LE(check("graph @g(%x: f16[2,5,17]) {\n  %0 = softmax(%x) {axis = -1} : "
                  "f16[2,5,17]\n  return %0\n}\n",
                  {{2, 5, 17}}),
            0x1p-10);
}

// Kernels compiled ahead of time for the explicit AVX-512 target use zmm registers and none of
// the instructions Zen 4 lacks (AMX tiles, VEX-encoded VNNI: TOOLCHAIN.md, gotcha 2).
TEST(Kernels, ObjectsForTheExplicitTarget) {
  auto graph = parseGraph("graph @g(%a: f32[seq,64], %b: f32[64,48]) {\n"
                          "  %0 = matmul(%a, %b) : f32[seq,48]\n  return %0\n}\n");
  std::string dir = ::testing::TempDir();
  Kernel kernel = buildKernel(*graph->ops.back(), TargetKind::AVX512);
  compileKernelToObject(kernel, dir + "/matmul.o", "gemma_matmul_64x48", TargetKind::AVX512);
  compileHalideRuntime(dir + "/halide_runtime.o", TargetKind::AVX512);
  std::string code = disassemble(dir + "/matmul.o");
  EXPECT_NE(code.find("<gemma_matmul_64x48>:"), std::string::npos);
  EXPECT_NE(code.find("zmm"), std::string::npos);
  for (const char* forbidden : {"ldtilecfg", "tdpb", "{vex} vpdpbusd"})
    EXPECT_EQ(code.find(forbidden), std::string::npos) << forbidden;
  EXPECT_NE(disassemble(dir + "/halide_runtime.o").find("halide_"), std::string::npos);
}

} // namespace
} // namespace gemma
