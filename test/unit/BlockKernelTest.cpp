// The kernels that read GGUF's block-quantized weights in their blocks (projections and logits,
// the gated MLP, the embedding lookup) against the same blocks dequantized by formats/Gguf.cpp
// (equal bit for bit to the gguf package's dequantization) and then computed in f32 by the
// interpreter: random blocks of every block type, with extreme scales (f16's largest, its
// smallest normal and subnormal, zero, negative), rows that are not a multiple of the kernels'
// panels, decode (one row) and prefill.
#include "BlockTestUtil.h"
#include "TestUtil.h"
#include "backend/halide/Kernels.h"
#include "formats/Gguf.h"
#include "formats/Safetensors.h"
#include "ir/ElementCodec.h"

#include <cmath>
#include <random>

namespace gemma {
namespace {

using testing::halfOffsets;
using testing::randomBlocks;

constexpr ElementType kBlockTypes[] = {ElementType::Q4_0, ElementType::Q4_1, ElementType::Q5_0,
                                       ElementType::Q5_1, ElementType::Q8_0, ElementType::Q4_K,
                                       ElementType::Q5_K, ElementType::Q6_K};

struct BlockTensor {
  ElementType type;
  int64_t rows, rowElements;
  std::vector<uint8_t> bytes;

  TensorView view(const std::string& name) const {
    return {name, "blocks", type, {rows, rowElements}, bytes.data(), bytes.size()};
  }
  Tensor dequantized() const { return toTensor(view("w")); }
  Halide::Buffer<uint8_t> buffer() const {
    int64_t rowBytes = codec::storageBytes(type, rowElements);
    Halide::Buffer<uint8_t> b(static_cast<int>(rowBytes), static_cast<int>(rows));
    std::memcpy(b.data(), bytes.data(), bytes.size());
    return b;
  }
};

Halide::Buffer<float> floatBuffer(const Tensor& t) {
  std::vector<int> extents(t.shape.rbegin(), t.shape.rend());
  Halide::Buffer<float> b(extents);
  for (int64_t i = 0; i < t.numElements(); ++i)
    b.data()[i] = static_cast<float>(t.data[i]);
  return b;
}

Tensor randomActivations(const std::vector<int64_t>& shape, std::mt19937_64& rng) {
  Tensor t = Tensor::zeros(ElementType::F32, shape);
  for (double& v : t.data)
    v = static_cast<float>(std::uniform_real_distribution<double>(-2, 2)(rng));
  return t;
}

// Runs the one-op graph's kernel on x and the block weights (in operand order), and the
// interpreter on the same blocks dequantized; returns both results.
// (The kernel is JIT-compiled once, for every x.)
std::vector<std::pair<Halide::Buffer<float>, Tensor>>
run(const std::string& text, const std::vector<Tensor>& xs,
    const std::map<std::string, BlockTensor>& weights) {
  auto graph = parseGraph(text);
  verifyGraph(*graph);
  const Op& op = *graph->ops.back();
  EXPECT_TRUE(hasKernel(op));
  TargetKind target = hostTargetKind();
  Kernel kernel = buildKernel(op, target);
  kernel.output.compile_jit(halideTarget(target));
  std::vector<Halide::Buffer<uint8_t>> blockBuffers;
  for (size_t i = 0; i < op.operands.size(); ++i) {
    const Op* producer = op.operands[i]->definingOp;
    if (producer && producer->kind == OpKind::Weight) {
      blockBuffers.push_back(weights.at(*producer->attr<std::string>("name")).buffer());
      kernel.inputs[i].set(blockBuffers.back());
    }
  }
  std::vector<std::pair<Halide::Buffer<float>, Tensor>> results;
  for (const Tensor& x : xs) {
    Tensor expected = interpret(*graph, {x}, [&](const std::string& name, const TensorType&) {
      return weights.at(name).dequantized();
    })[0];
    Halide::Buffer<float> xBuffer = floatBuffer(x);
    for (size_t i = 0; i < op.operands.size(); ++i)
      if (!op.operands[i]->definingOp)
        kernel.inputs[i].set(xBuffer);
    std::vector<int> extents(expected.shape.rbegin(), expected.shape.rend());
    Halide::Buffer<float> out(extents);
    kernel.output.realize(out, halideTarget(target));
    results.push_back({out, expected});
  }
  return results;
}

TEST(BlockKernels, ProjectionEqualsDequantizedF32) {
  std::mt19937_64 rng(17);
  for (ElementType type : kBlockTypes)
    for (int64_t n : {37, 148}) {
      // Panels of 4 and tasks of at least 16 panels: 37 outputs, the last panel's rows past the end
      // clamped; 148 in whole panels (read unclamped), in three tasks, the last one short.
      int64_t block = codec::storageLayout(type).blockElements;
      int64_t k = 3 * block;
      std::string name(elementTypeName(type));
      std::string text = "graph @g(%x: f32[batch,seq," + std::to_string(k) +
                         "]) {\n  %w = weight() {name = \"w\", perm = [1, 0]} : " + name + "[" +
                         std::to_string(k) + "," + std::to_string(n) +
                         "]\n  %0 = matmul(%x, %w) : f32[batch,seq," + std::to_string(n) +
                         "]\n  return %0\n}\n";
      BlockTensor w{type, n, k, randomBlocks(type, n, k, rng, true)};
      Tensor dequantized = w.dequantized();
      std::vector<Tensor> xs = {randomActivations({2, 1, k}, rng),
                                randomActivations({2, 6, k}, rng)};
      auto results = run(text, xs, {{"w", w}});
      for (size_t c = 0; c < xs.size(); ++c) {
        const Tensor& x = xs[c];
        int64_t seq = x.shape[1];
        const auto& [out, expected] = results[c];
        double worst = 0;
        for (int64_t row = 0; row < 2 * seq; ++row)
          for (int64_t j = 0; j < n; ++j) {
            // An f32 sum's error grows with the sum of its terms' magnitudes, not its result.
            double magnitude = 0;
            for (int64_t i = 0; i < k; ++i)
              magnitude += std::fabs(x.data[row * k + i] * dequantized.data[j * k + i]);
            double error = std::fabs(out.data()[row * n + j] - expected.data[row * n + j]);
            worst = std::max(worst, error / std::max(magnitude, 1e-30));
          }
        EXPECT_LE(worst, 1e-6) << name << " n " << n << " seq " << seq;
      }
    }
}

// The real file's mix of types in one MLP (Q5_0 gate and up, Q4_K or Q6_K down), and others.
TEST(BlockKernels, GatedMlpEqualsDequantizedF32) {
  std::mt19937_64 rng(23);
  const ElementType mixes[][3] = {{ElementType::Q5_0, ElementType::Q5_0, ElementType::Q4_K},
                                  {ElementType::Q8_0, ElementType::Q4_0, ElementType::Q6_K},
                                  {ElementType::Q4_K, ElementType::Q5_K, ElementType::Q5_1}};
  const int64_t d = 256, features = 512;
  for (const auto& mix : mixes) {
    std::map<std::string, BlockTensor> weights = {
        {"g", {mix[0], features, d, randomBlocks(mix[0], features, d, rng, false)}},
        {"u", {mix[1], features, d, randomBlocks(mix[1], features, d, rng, false)}},
        {"d", {mix[2], d, features, randomBlocks(mix[2], d, features, rng, false)}}};
    auto type = [&](int i) { return std::string(elementTypeName(mix[i])); };
    std::string text = "graph @g(%x: f32[batch,seq,256]) {\n"
                       "  %g = weight() {name = \"g\", perm = [1, 0]} : " +
                       type(0) +
                       "[256,512]\n  %u = weight() {name = \"u\", perm = [1, 0]} : " + type(1) +
                       "[256,512]\n  %d = weight() {name = \"d\", perm = [1, 0]} : " + type(2) +
                       "[512,256]\n  %0 = gated_mlp(%x, %g, %u, %d) {activation = "
                       "\"gelu_tanh\"} : f32[batch,seq,256]\n  return %0\n}\n";
    std::vector<Tensor> xs = {randomActivations({1, 1, d}, rng), randomActivations({1, 5, d}, rng)};
    auto results = run(text, xs, weights);
    for (size_t c = 0; c < xs.size(); ++c) {
      int64_t seq = xs[c].shape[1];
      const auto& [out, expected] = results[c];
      double scale = 0, worst = 0;
      for (double v : expected.data)
        scale = std::max(scale, std::fabs(v));
      for (int64_t i = 0; i < expected.numElements(); ++i)
        worst = std::max(worst, std::fabs(out.data()[i] - expected.data[i]));
      EXPECT_GT(scale, 0) << type(0);
      EXPECT_LE(worst / scale, 1e-5)
          << type(0) << "/" << type(1) << "/" << type(2) << " seq " << seq;
    }
  }
}

TEST(BlockKernels, EmbeddingRowsAreTheDequantizedValues) {
  std::mt19937_64 rng(29);
  for (ElementType type : kBlockTypes) {
    int64_t width = 2 * codec::storageLayout(type).blockElements, rows = 7;
    BlockTensor table{type, rows, width, randomBlocks(type, rows, width, rng, true)};
    Tensor dequantized = table.dequantized();
    std::string name(elementTypeName(type));
    std::string text = "graph @g(%ids: i64[2,3]) {\n  %t = weight() {name = \"t\"} : " + name +
                       "[7," + std::to_string(width) +
                       "]\n  %0 = gather(%t, %ids) {axis = 0} : " + "f32[2,3," +
                       std::to_string(width) + "]\n  return %0\n}\n";
    Tensor ids = Tensor::zeros(ElementType::I64, {2, 3});
    ids.data = {0, 6, 3, -1, 2, 5}; // -1: the last row, as ONNX Gather counts
    auto graph = parseGraph(text);
    verifyGraph(*graph);
    const Op& op = *graph->ops.back();
    Kernel kernel = buildKernel(op, hostTargetKind());
    Halide::Buffer<uint8_t> bytes = table.buffer();
    Halide::Buffer<int64_t> idBuffer(3, 2);
    for (int i = 0; i < 6; ++i)
      idBuffer.data()[i] = static_cast<int64_t>(ids.data[static_cast<size_t>(i)]);
    kernel.inputs[0].set(bytes);
    kernel.inputs[1].set(idBuffer);
    Halide::Buffer<float> out(static_cast<int>(width), 3, 2);
    kernel.output.realize(out, halideTarget(hostTargetKind()));
    for (int i = 0; i < 6; ++i) {
      int64_t row = static_cast<int64_t>(ids.data[static_cast<size_t>(i)]);
      row = row < 0 ? row + rows : row;
      // A row's values as gguf-py gives them; an FMA in the kernel's scale-and-min may round
      // differently by an ulp of the row's largest terms.
      double largest = 0;
      for (int64_t j = 0; j < width; ++j)
        largest = std::max(largest, std::fabs(dequantized.data[row * width + j]));
      for (int64_t j = 0; j < width; ++j)
        ASSERT_LE(std::fabs(out.data()[i * width + j] - dequantized.data[row * width + j]),
                  2e-7 * largest)
            << name << " id " << row << " element " << j;
    }
  }
}

} // namespace
} // namespace gemma
