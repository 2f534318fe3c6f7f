// Kernel micro-benchmarks (Google Benchmark; not a test): the generated Halide kernels for
// gemma-2b's shapes, JIT-compiled for the same explicit target as gemmac uses, on one and on all
// cores (HL_NUM_THREADS). Projections read torch's [out, in] weights in place, as compiled
// programs do. Reported: bytes_per_second (weights and cache read; what bounds decode) and FLOPS
// (what bounds prefill), to set against scripts/bench.sh's measured bandwidth and FMA peak.
//   build/test/gemma_kernel_bench [--benchmark_filter=REGEX]
#include "../unit/AheadOfTimeKernel.h"
#include "backend/Target.h"
#include "backend/halide/Kernels.h"
#include "ir/ElementCodec.h"
#include "ir/Parser.h"

#include <Halide.h>
#include <benchmark/benchmark.h>
#include <random>

namespace gemma {
namespace {

constexpr int64_t kHidden = 2048, kIntermediate = 16384, kHeads = 8, kHeadDim = 256;

// A one-op graph's kernel with random inputs: graph inputs dense, weights stored [out, in] and
// read through the op's permutation.
struct KernelRun {
  std::unique_ptr<Graph> graph;
  Kernel kernel;
  std::vector<Halide::Buffer<float>> buffers;
  std::vector<Halide::Buffer<>> stored;  // the weights in their stored element type
  std::vector<Halide::Buffer<>> weights; // views of the stored weights in the op's order
  Halide::Buffer<float> output;

  KernelRun(const std::string& text, const std::vector<std::vector<int>>& inputExtents,
            const std::vector<int>& outputExtents)
      : graph(parseGraph(text)) {
    const Op& op = *graph->ops.back();
    TargetKind target = hostTargetKind();
    kernel = buildKernel(op, target);
    std::mt19937 rng(5);
    std::uniform_real_distribution<float> value(-1.0f, 1.0f);
    auto fill = [&](Halide::Buffer<float>& b) {
      for (float& x : b)
        x = value(rng);
    };
    size_t nextInput = 0;
    for (size_t i = 0; i < op.operands.size(); ++i) {
      const Op* producer = op.operands[i]->definingOp;
      if (!producer) {
        buffers.emplace_back(inputExtents[nextInput++]);
        fill(buffers.back());
        kernel.inputs[i].set(buffers.back());
        continue;
      }
      // A [in, out] value stored [out, in]: Halide dims (out, in) of the stored buffer.
      TensorType type = storedWeightType(*producer);
      std::vector<int> extents;
      for (const Dim& d : type.dims)
        extents.insert(extents.begin(), static_cast<int>(d.staticValue()));
      buffers.emplace_back(extents);
      fill(buffers.back());
      stored.push_back(Halide::Buffer<>(buffers.back()));
      if (type.elementType == ElementType::BF16) {
        Halide::Buffer<Halide::bfloat16_t> narrow(extents);
        narrow.for_each_value([](Halide::bfloat16_t& n, float f) { n = Halide::bfloat16_t(f); },
                              buffers.back());
        stored.back() = narrow;
      }
      weights.push_back(stored.back().transposed(std::vector<int>{1, 0}));
      kernel.inputs[i].set(weights.back());
    }
    output = Halide::Buffer<float>(outputExtents);
    kernel.output.compile_jit(halideTarget(target));
    if (const char* asmPath = getenv("GEMMA_BENCH_ASM")) {
      std::vector<Halide::Argument> args(kernel.inputs.begin(), kernel.inputs.end());
      kernel.output.compile_to_assembly(asmPath, args, halideTarget(target));
      kernel.output.compile_to_lowered_stmt(std::string(asmPath) + ".stmt", args, Halide::Text,
                                            halideTarget(target));
    }
  }
  void run() { kernel.output.realize(output); }
};

// A weight of logical type [in, out] stored as torch's [out, in].
std::string weightDecl(const std::string& name, int64_t in, int64_t out, const std::string& type) {
  return "  %" + name + " = weight() {name = \"" + name + "\", perm = [1, 0]} : " + type + "[" +
         std::to_string(in) + "," + std::to_string(out) + "]\n";
}

std::string projection(int64_t in, int64_t out, const std::string& weightType,
                       const std::string& attrs = "") {
  return "graph @g(%x: f32[1,seq," + std::to_string(in) + "]) {\n" +
         weightDecl("w", in, out, weightType) + "  %0 = matmul(%x, %w)" + attrs + " : f32[1,seq," +
         std::to_string(out) + "]\n  return %0\n}\n";
}

void report(benchmark::State& state, double bytes, double flops) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes));
  state.counters["FLOPS"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
}

// A projection (the model's q/o projections: 2048 -> 2048) for `rows` tokens, weights f32 or
// (--weights-dtype bf16) bf16.
void projectionBench(benchmark::State& state, const std::string& weightType, double weightBytes) {
  int rows = static_cast<int>(state.range(0));
  KernelRun k(projection(kHidden, kHidden, weightType), {{kHidden, rows, 1}}, {kHidden, rows, 1});
  for (auto _ : state)
    k.run();
  report(state, weightBytes * kHidden * kHidden, 2.0 * kHidden * kHidden * rows);
}
void Projection(benchmark::State& state) {
  projectionBench(state, "f32", 4.0);
}
void ProjectionBf16(benchmark::State& state) {
  projectionBench(state, "bf16", 2.0);
}
BENCHMARK(Projection)->Arg(1)->Arg(64)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(ProjectionBf16)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

// The gated MLP (2048 -> 16384 x 2 -> 2048) for `rows` tokens.
void gatedMlpBench(benchmark::State& state, const std::string& w, double weightBytes) {
  int rows = static_cast<int>(state.range(0));
  std::string d = std::to_string(kHidden);
  std::string text =
      "graph @g(%x: f32[1,seq," + d + "]) {\n" + weightDecl("g", kHidden, kIntermediate, w) +
      weightDecl("u", kHidden, kIntermediate, w) + weightDecl("d", kIntermediate, kHidden, w) +
      "  %0 = gated_mlp(%x, %g, %u, %d) {activation = \"gelu_tanh\"} : f32[1,seq," + d +
      "]\n  return %0\n}\n";
  KernelRun k(text, {{static_cast<int>(kHidden), rows, 1}}, {static_cast<int>(kHidden), rows, 1});
  for (auto _ : state)
    k.run();
  double params = 3.0 * kHidden * kIntermediate;
  report(state, weightBytes * params, 2.0 * params * rows);
}
void GatedMlp(benchmark::State& state) {
  gatedMlpBench(state, "f32", 4.0);
}
void GatedMlpBf16(benchmark::State& state) {
  gatedMlpBench(state, "bf16", 2.0);
}
BENCHMARK(GatedMlp)->Arg(1)->Arg(64)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(GatedMlpBf16)->Arg(1)->Arg(64)->Unit(benchmark::kMillisecond)->UseRealTime();

// Attention of `seq` new rows over a cache of `total` rows (gemma-2b: 8 heads sharing 1 kv head
// of 256), causal bias.
void Attention(benchmark::State& state) {
  int seq = static_cast<int>(state.range(0)), total = static_cast<int>(state.range(1));
  std::string h = std::to_string(kHeadDim), n = std::to_string(kHeads);
  std::string text = "graph @g(%q: f32[1," + n + ",seq," + h + "], %k: f32[1,1,total," + h +
                     "], %v: f32[1,1,total," + h + "], %b: f32[1,1,seq,total]) {\n" +
                     "  %0 = attention(%q, %k, %v, %b) {head_dim = " + h + ", num_heads = " + n +
                     ", num_kv_heads = 1, scale = 0.0625} : f32[1," + n + ",seq," + h +
                     "]\n  return %0\n}\n";
  int heads = static_cast<int>(kHeads), headDim = static_cast<int>(kHeadDim);
  KernelRun k(text,
              {{headDim, seq, heads, 1},
               {headDim, total, 1, 1},
               {headDim, total, 1, 1},
               {total, seq, 1, 1}},
              {headDim, seq, heads, 1});
  for (auto _ : state)
    k.run();
  report(state, 2.0 * 4.0 * total * kHeadDim, 4.0 * kHeads * seq * total * kHeadDim);
}
BENCHMARK(Attention)
    ->Args({1, 512})
    ->Args({512, 512})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A projection whose weight is in GGUF blocks, as the real Gemma 3 270M's are: 640 -> 2048
// (gate/up, Q5_0), 2048 -> 640 (down, Q4_K/Q6_K), and the 640 -> 262144 Q8_0 logits' shape cut
// to 16384 rows. Random quants; each block's f16 scales (and mins) a small positive number, so
// that no value is inf or NaN. bytes_per_second counts the blocks read.
// With `fast`, the fast arithmetic's integer dot products.
void blockProjectionBench(benchmark::State& state, ElementType type, int64_t in, int64_t out,
                          bool fast = false) {
  int rows = static_cast<int>(state.range(0));
  if (fast && hostTargetKind() != TargetKind::AVX512VNNI) {
    state.SkipWithError("no AVX512-VNNI on this CPU");
    return;
  }
  auto graph = parseGraph(projection(in, out, std::string(elementTypeName(type)),
                                     fast ? " {arithmetic = \"int8\"}" : ""));
  const Op& op = *graph->ops.back();
  TargetKind target = hostTargetKind();
  Kernel kernel = buildKernel(op, target);
  codec::StorageLayout layout = codec::storageLayout(type);
  int64_t rowBytes = codec::storageBytes(type, in);
  Halide::Buffer<uint8_t> weight(static_cast<int>(rowBytes), static_cast<int>(out));
  std::mt19937 rng(5);
  for (uint8_t& b : weight)
    b = static_cast<uint8_t>(rng());
  std::vector<int> halves = {0}; // where ggml-common.h's blocks keep their f16 scales
  if (type == ElementType::Q4_K || type == ElementType::Q5_K || type == ElementType::Q4_1 ||
      type == ElementType::Q5_1)
    halves = {0, 2};
  if (type == ElementType::Q6_K)
    halves = {208};
  uint8_t* bytes = weight.data();
  for (int64_t block = 0; block < rowBytes * out / layout.blockBytes; ++block)
    for (int offset : halves) {
      bytes[block * layout.blockBytes + offset] = 0x00; // f16 0x2000: 2^-7
      bytes[block * layout.blockBytes + offset + 1] = 0x20;
    }
  Halide::Buffer<float> x(static_cast<int>(in), rows, 1), result(static_cast<int>(out), rows, 1);
  std::uniform_real_distribution<float> value(-1.0f, 1.0f);
  for (float& v : x)
    v = value(rng);
  // Compiled ahead of time as gemmac compiles it (a JIT kernel would get neither the fast
  // arithmetic's CPU nor prefetcht0: compileKernelToObject).
  if (const char* stmtPath = getenv("GEMMA_BENCH_ASM")) {
    std::vector<Halide::Argument> args(kernel.inputs.begin(), kernel.inputs.end());
    kernel.output.compile_to_lowered_stmt(std::string(stmtPath) + ".stmt", args, Halide::Text,
                                          halideTarget(target));
  }
  testing::AheadOfTimeKernel compiled(kernel,
                                      "bench_" + std::string(elementTypeName(type)) +
                                          (fast ? "_int8_" : "_") + std::to_string(out),
                                      target);
  for (auto _ : state)
    compiled.run({x, weight}, result);
  report(state, static_cast<double>(rowBytes * out), 2.0 * static_cast<double>(in * out) * rows);
}
void BlockQ8_0Logits(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q8_0, 640, 16384);
}
// The whole 262144-row logits (178 MB, as a decode step reads them: from memory, not cache).
void BlockQ8_0LogitsFull(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q8_0, 640, 262144);
}
void BlockQ5_0Up(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q5_0, 640, 2048);
}
void BlockQ4_0Up(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q4_0, 640, 2048);
}
void BlockQ4_KDown(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q4_K, 2048, 640);
}
void BlockQ6_KDown(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q6_K, 2048, 640);
}
BENCHMARK(BlockQ8_0Logits)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BlockQ8_0LogitsFull)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
// The same shapes in the fast arithmetic (--arithmetic fast).
void FastQ8_0Logits(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q8_0, 640, 16384, true);
}
void FastQ8_0LogitsFull(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q8_0, 640, 262144, true);
}
void FastQ4_0Up(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q4_0, 640, 2048, true);
}
void FastQ5_0Up(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q5_0, 640, 2048, true);
}
void FastQ4_KDown(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q4_K, 2048, 640, true);
}
void FastQ6_KDown(benchmark::State& state) {
  blockProjectionBench(state, ElementType::Q6_K, 2048, 640, true);
}
BENCHMARK(FastQ8_0Logits)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FastQ8_0LogitsFull)->Arg(1)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FastQ4_0Up)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FastQ5_0Up)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FastQ4_KDown)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(FastQ6_KDown)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BlockQ5_0Up)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BlockQ4_0Up)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BlockQ4_KDown)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();
BENCHMARK(BlockQ6_KDown)->Arg(1)->Arg(512)->Unit(benchmark::kMillisecond)->UseRealTime();

} // namespace
} // namespace gemma

BENCHMARK_MAIN();
