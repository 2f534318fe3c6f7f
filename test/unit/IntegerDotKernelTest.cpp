// The fast arithmetic's kernels (IntegerDotKernels.cpp: one row, and many in tiles),
// compiled ahead of time as gemmac compiles them, against their definition computed here
// independently: each row of activations
// quantized per block of 32 as llama.cpp's quantize_row_q8_0 does (scale max|x| / 127, quants
// roundf(x / scale), ties away from zero), times the weight blocks dequantized by formats/Gguf.cpp
// (the gguf package's values), summed in double. Random blocks with extreme scales, rows that are
// not a multiple of the panels, decode and prefill, activations with exact ties.
#include "AheadOfTimeKernel.h"
#include "BlockTestUtil.h"
#include "HalideTestUtil.h"
#include "TestUtil.h"
#include "formats/Gguf.h"
#include "ir/ElementCodec.h"
#include "ir/Parser.h"
#include "ir/Verifier.h"

#include <array>
#include <cmath>
#include <cstdio>
#include <random>
#include <sstream>

namespace gemma {
namespace {

using testing::disassemble;
using testing::randomBlocks;

constexpr ElementType kIntegerTypes[] = {ElementType::Q8_0, ElementType::Q4_0, ElementType::Q5_0,
                                         ElementType::Q4_K, ElementType::Q6_K};

// Rows of a whole number of the type's blocks: Q4_K's and Q6_K's are 256 elements (8 runs of 32,
// each its own scale and min; 16 runs of 16, each its own scale), the others' 32.
bool superBlocks(ElementType type) {
  return type == ElementType::Q4_K || type == ElementType::Q6_K;
}

std::vector<float> dequantized(ElementType type, const std::vector<uint8_t>& bytes,
                               int64_t elements) {
  std::vector<float> out(static_cast<size_t>(elements));
  dequantizeBlocks(static_cast<uint32_t>(ggmlTypeOf(type)), bytes.data(), elements, out.data());
  return out;
}

// llama.cpp's quantize_row_q8_0, then each quant times its block's scale.
std::vector<double> quantizedActivations(const std::vector<float>& x) {
  std::vector<double> out(x.size());
  for (size_t b = 0; b < x.size(); b += 32) {
    float amax = 0;
    for (size_t i = b; i < b + 32; ++i)
      amax = std::max(amax, std::fabs(x[i]));
    float d = amax / 127.0f, id = d != 0 ? 1.0f / d : 0.0f;
    for (size_t i = b; i < b + 32; ++i)
      out[i] = static_cast<double>(d) * std::roundf(x[i] * id);
  }
  return out;
}

// Activations in [-2, 2), and in every third block the exact ties of a block whose scale is 1
// (max |x| = 127): half-integers, which round away from zero.
std::vector<float> activations(int64_t rows, int64_t k, std::mt19937_64& rng) {
  std::vector<float> x(static_cast<size_t>(rows * k));
  std::uniform_real_distribution<float> value(-2, 2);
  for (float& v : x)
    v = value(rng);
  for (size_t b = 0; b < x.size(); b += 96) {
    x[b] = 127.0f;
    for (size_t i = 1; i < 32; ++i)
      x[b + i] = (static_cast<float>(i % 7) - 3.0f) + (i % 2 ? 0.5f : -0.5f);
  }
  return x;
}

std::string projectionText(ElementType type, int64_t k, int64_t n) {
  std::string name(elementTypeName(type)), K = std::to_string(k), N = std::to_string(n);
  return "graph @g(%x: f32[1,seq," + K +
         "]) {\n  %w = weight() {name = \"w\", perm = [1, 0]} : " + name + "[" + K + "," + N +
         "]\n  %0 = matmul(%x, %w) {arithmetic = \"int8\"} : f32[1,seq," + N +
         "]\n  return %0\n}\n";
}

Halide::Buffer<> weightBuffer(ElementType type, const std::vector<uint8_t>& bytes, int64_t rows,
                              int64_t k) {
  Halide::Buffer<uint8_t> b(static_cast<int>(codec::storageBytes(type, k)), static_cast<int>(rows));
  std::memcpy(b.data(), bytes.data(), bytes.size());
  return b;
}

bool vnniHost() {
  return hostTargetKind() == TargetKind::AVX512VNNI;
}

TEST(IntegerDotKernels, ProjectionEqualsQuantizedActivationsTimesDequantizedWeights) {
  if (!vnniHost())
    GTEST_SKIP() << "this CPU has no AVX512-VNNI";
  std::mt19937_64 rng(29);
  for (ElementType type : kIntegerTypes)
    for (auto [k, n] : {std::pair<int64_t, int64_t>{64, 40}, {192, 150}}) {
      // Panels of 4 and tasks of at least 16 panels: 40 rows in whole panels (read unclamped),
      // 150 in three tasks, the last panel's rows past the end clamped. K-quants' rows are 4 and 8
      // times longer (one and three 256-element blocks would not test the runs' order).
      if (superBlocks(type))
        k *= k == 64 ? 4 : 8;
      auto graph = parseGraph(projectionText(type, k, n));
      Kernel kernel = buildKernel(*graph->ops.back(), TargetKind::AVX512VNNI);
      std::string name = "int8_matmul_" + std::string(elementTypeName(type)) + std::to_string(k);
      testing::AheadOfTimeKernel compiled(kernel, name, TargetKind::AVX512VNNI);
      std::vector<uint8_t> blocks = randomBlocks(type, n, k, rng, true);
      std::vector<float> w = dequantized(type, blocks, n * k);
      // One row (decode) and many (prefill's integer tiles of 4 rows, the last one cut).
      for (int64_t rows : {1, 2, 6, 37}) {
        std::vector<float> x = activations(rows, k, rng);
        std::vector<double> xq = quantizedActivations(x);
        Halide::Buffer<float> xBuffer(static_cast<int>(k), static_cast<int>(rows), 1);
        std::memcpy(xBuffer.data(), x.data(), x.size() * sizeof(float));
        Halide::Buffer<float> out(static_cast<int>(n), static_cast<int>(rows), 1);
        ASSERT_EQ(compiled.run({xBuffer, weightBuffer(type, blocks, n, k)}, out), 0);
        for (int64_t m = 0; m < rows; ++m)
          for (int64_t j = 0; j < n; ++j) {
            double expected = 0, magnitude = 0;
            for (int64_t i = 0; i < k; ++i) {
              double term = static_cast<double>(w[static_cast<size_t>(j * k + i)]) *
                            xq[static_cast<size_t>(m * k + i)];
              expected += term;
              magnitude += std::fabs(term);
            }
            EXPECT_NEAR(out(static_cast<int>(j), static_cast<int>(m), 0), expected,
                        1e-5 * magnitude + 1e-30)
                << elementTypeName(type) << " k " << k << " rows " << rows << " at " << j << ","
                << m;
          }
      }
    }
}

// Gate and up on the quantized x, the gated activations quantized again for down: the reference
// computes the gated activations in double, so a quant may fall on the other side of a rounding
// boundary; each element may then differ by one quant step of its block. A weight without an
// integer dot product (a Q5_K down beside Q5_0 gate and Q8_0 up) stays exact:
// its dot product is over the gated activations as they are.
TEST(IntegerDotKernels, GatedMlpEqualsItsDefinition) {
  if (!vnniHost())
    GTEST_SKIP() << "this CPU has no AVX512-VNNI";
  std::mt19937_64 rng(31);
  const int64_t d = 64, inner = 256;
  std::vector<std::array<ElementType, 3>> mixes;
  for (ElementType type : kIntegerTypes)
    if (!superBlocks(type)) // (gate and up's rows are 64 elements)
      mixes.push_back({type, type, type});
  mixes.push_back({ElementType::Q5_0, ElementType::Q5_0, ElementType::Q4_K});
  mixes.push_back({ElementType::Q5_0, ElementType::Q8_0, ElementType::Q6_K});
  mixes.push_back({ElementType::Q5_0, ElementType::Q8_0, ElementType::Q5_K});
  for (const auto& [gateType, upType, downType] : mixes) {
    std::string g(elementTypeName(gateType)), u(elementTypeName(upType)),
        dn(elementTypeName(downType)), t = g + "_" + u + "_" + dn;
    std::string text = "graph @g(%x: f32[1,seq,64]) {\n"
                       "  %g = weight() {name = \"g\", perm = [1, 0]} : " +
                       g + "[64,256]\n  %u = weight() {name = \"u\", perm = [1, 0]} : " + u +
                       "[64,256]\n  %d = weight() {name = \"d\", perm = [1, 0]} : " + dn +
                       "[256,64]\n  %0 = gated_mlp(%x, %g, %u, %d) {activation = \"gelu_tanh\", "
                       "arithmetic = \"int8\"} : f32[1,seq,64]\n  return %0\n}\n";
    auto graph = parseGraph(text);
    Kernel kernel = buildKernel(*graph->ops.back(), TargetKind::AVX512VNNI);
    testing::AheadOfTimeKernel compiled(kernel, "int8_gated_mlp_" + t, TargetKind::AVX512VNNI);
    // Typical scales only (the projection test has the extreme ones; here they would make the
    // one-step bound meaningless).
    std::vector<uint8_t> gate = randomBlocks(gateType, inner, d, rng, false),
                         up = randomBlocks(upType, inner, d, rng, false),
                         down = randomBlocks(downType, d, inner, rng, false);
    std::vector<float> wg = dequantized(gateType, gate, inner * d),
                       wu = dequantized(upType, up, inner * d),
                       wd = dequantized(downType, down, d * inner);
    // One row (decode) and 20 (prefill's integer tiles), every row an integer dot product.
    for (int64_t rowsMax : {1, 20}) {
      std::vector<float> x = activations(rowsMax, d, rng);
      std::vector<double> xq = quantizedActivations(x);
      Halide::Buffer<float> xBuffer(static_cast<int>(d), static_cast<int>(rowsMax), 1);
      std::memcpy(xBuffer.data(), x.data(), x.size() * sizeof(float));
      Halide::Buffer<float> out(static_cast<int>(d), static_cast<int>(rowsMax), 1);
      ASSERT_EQ(
          compiled.run({xBuffer, weightBuffer(gateType, gate, inner, d),
                        weightBuffer(upType, up, inner, d), weightBuffer(downType, down, d, inner)},
                       out),
          0);
      bool downInteger = hasIntegerDotProduct(downType);
      for (int64_t m = 0; m < rowsMax; ++m) {
        std::vector<float> gated(static_cast<size_t>(inner));
        for (int64_t i = 0; i < inner; ++i) {
          double gs = 0, us = 0;
          for (int64_t j = 0; j < d; ++j) {
            gs += wg[static_cast<size_t>(i * d + j)] * xq[static_cast<size_t>(m * d + j)];
            us += wu[static_cast<size_t>(i * d + j)] * xq[static_cast<size_t>(m * d + j)];
          }
          double gelu =
              0.5 * gs * (1 + std::tanh(0.7978845608028654 * (gs + 0.044715 * gs * gs * gs)));
          gated[static_cast<size_t>(i)] = static_cast<float>(gelu * us);
        }
        std::vector<double> gq = downInteger ? quantizedActivations(gated)
                                             : std::vector<double>(gated.begin(), gated.end());
        for (int64_t o = 0; o < d; ++o) {
          double expected = 0, magnitude = 0, step = 0;
          for (int64_t i = 0; i < inner; ++i) {
            double w = wd[static_cast<size_t>(o * inner + i)];
            expected += w * gq[static_cast<size_t>(i)];
            magnitude += std::fabs(w * gq[static_cast<size_t>(i)]);
            float amax = 0;
            for (int64_t e = i / 32 * 32; e < i / 32 * 32 + 32; ++e)
              amax = std::max(amax, std::fabs(gated[static_cast<size_t>(e)]));
            if (downInteger)
              step += std::fabs(w) * amax / 127.0 * 1e-3; // a flipped quant is rare: 1 in 1000
          }
          EXPECT_NEAR(out(static_cast<int>(o), static_cast<int>(m), 0), expected,
                      1e-4 * magnitude + step + 1e-30)
              << t << " row " << m << " output " << o;
        }
      }
    }
  }
}

// The object uses vpdpbusd (EVEX-encoded: one row's block a ymm, a tile's 16 outputs a zmm) and
// none of what Halide's Sapphire Rapids CPU would let LLVM pick and Zen 4 lacks: AMX tiles,
// VEX-encoded AVX-VNNI, AVX512-FP16 conversions. (Compiling needs no VNNI on this machine; running
// does.)
TEST(IntegerDotKernels, ObjectHasOnlyZen4Instructions) {
  for (ElementType type : kIntegerTypes) {
    auto graph = parseGraph(projectionText(type, 1024, 64));
    Kernel kernel = buildKernel(*graph->ops.back(), TargetKind::AVX512VNNI);
    std::string path = ::testing::TempDir() + "/int8_object.o";
    compileKernelToObject(kernel, path, "int8_object", TargetKind::AVX512VNNI);
    std::string code = disassemble(path);
    // The accumulator (the last operand) a ymm for one row, a zmm for the tiles; the activations
    // may come from memory.
    bool ymm = false, zmm = false;
    std::istringstream lines(code);
    for (std::string line; std::getline(lines, line);)
      if (line.find("vpdpbusd") != std::string::npos) {
        ymm = ymm || line.rfind(",%ymm") != std::string::npos;
        zmm = zmm || line.rfind(",%zmm") != std::string::npos;
      }
    EXPECT_TRUE(ymm) << elementTypeName(type); // one row
    EXPECT_TRUE(zmm) << elementTypeName(type); // tiles
    for (const char* forbidden : {"ldtilecfg", "tdpb", "{vex}", "vcvtsh2ss", "vcvtph2psx", "vmovw"})
      EXPECT_EQ(code.find(forbidden), std::string::npos) << elementTypeName(type) << forbidden;
  }
}

TEST(IntegerDotKernels, RefusedOnATargetWithoutVnni) {
  auto graph = parseGraph(projectionText(ElementType::Q8_0, 64, 8));
  EXPECT_THROW(buildKernel(*graph->ops.back(), TargetKind::AVX512), UserError);
  // Weights without an integer dot product are refused by the IR's shape rules.
  auto kQuant = parseGraph("graph @g(%x: f32[1,seq,256]) {\n  %w = weight() {name = \"w\", perm = "
                           "[1, 0]} : q5_k[256,8]\n  %0 = matmul(%x, %w) {arithmetic = \"int8\"} : "
                           "f32[1,seq,8]\n  return %0\n}\n");
  EXPECT_THROW(verifyGraph(*kQuant), UserError);
}

} // namespace
} // namespace gemma
