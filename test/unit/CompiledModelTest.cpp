// A fixture model compiled end to end as far as the backend goes: -O and planning (the KV cache
// in fixed regions, the arena), Halide kernel objects, the weights file, and the LLVM entry point,
// linked by the system compiler into a shared library that the test loads and calls. Its logits
// must equal the interpreter's (and so transformers'): a prefill from an empty cache, then a
// decode step that reads the rows the prefill appended in place.
#include "FixtureUtil.h"
#include "TestUtil.h"
#include "backend/WeightsFile.h"
#include "backend/halide/KernelSet.h"
#include "backend/llvm/EntryPoint.h"
#include "frontend/HFImporter.h"
#include "passes/Pass.h"

#include <cmath>
#include <cstring>
#include <dlfcn.h>
#include <filesystem>

namespace gemma {
namespace {

using Entry = int32_t (*)(const uint8_t*, uint8_t*, uint8_t*, void* const*, void**, int64_t,
                          int64_t, int64_t, int64_t);

// A fixture compiled with -O and planned for `maxBatch` x `maxSeqLen`, linked into a shared
// library and loaded; run() calls its entry point with the KV cache kept across calls.
class CompiledFixture {
public:
  CompiledFixture(const std::string& fixture, int64_t maxBatch, int64_t maxSeqLen)
      : model_(importHFCheckpoint(testing::hfFixtureDir(fixture))),
        reference_(model_.graph->clone()) {
    namespace fs = std::filesystem;
    dir_ = ::testing::TempDir() + "/compiled_" + fixture;
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    PassManagerOptions options;
    options.passOptions.maxBatch = maxBatch;
    options.passOptions.maxSeqLen = maxSeqLen;
    PassManager passes(options);
    passes.addDefaultPipeline();
    passes.addPlanningPipeline();
    passes.run(*model_.graph);

    kernels_ = collectKernels(*model_.graph, "test_model");
    compileKernels(kernels_, dir_, hostTargetKind());
    std::string weightsPath = dir_ + "/model.weights";
    writeWeightsFile(*model_.graph, model_.weights, weightsPath);
    weightsFile_ = openWeightsFile(*model_.graph, weightsPath);
    std::map<std::string, int64_t> offsets;
    for (const auto& [name, view] : weightsFile_->tensors())
      offsets[name] = view.data - weightsFile_->base();
    emitEntryPointObject(*model_.graph, kernels_, offsets, "gemma_forward", dir_ + "/entry.o");

    std::string command = "c++ -shared -o " + dir_ + "/model.so " + dir_ + "/entry.o";
    for (const KernelGroup& group : kernels_.groups)
      command += " " + group.objectPath;
    command += " " + kernels_.runtimeObjectPath + " " + GEMMA_RT_LIBRARY + " -lpthread -ldl -lm";
    if (std::system(command.c_str()) != 0)
      throw std::runtime_error("cannot link: " + command);
    library_ = dlopen((dir_ + "/model.so").c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!library_)
      throw std::runtime_error(dlerror());
    forward_ = reinterpret_cast<Entry>(dlsym(library_, "gemma_forward"));
    arena_.resize(static_cast<size_t>(model_.graph->integerAttr("arena_bytes")));
    cache_.resize(static_cast<size_t>(model_.graph->integerAttr("kv_cache_bytes")));
  }
  ~CompiledFixture() {
    if (library_)
      dlclose(library_);
  }

  // The head's output for `in` (ids, mask, positions, then the past caches: their data is never
  // read, the compiled cache holds them).
  Tensor run(const std::vector<Tensor>& in, int64_t batch, int64_t newTokens, int64_t past,
             int64_t lastRows = 0) {
    std::vector<std::vector<uint8_t>> storage;
    std::vector<void*> pointers;
    for (const Tensor& t : in) {
      // (+8: an empty past still gets a valid pointer)
      storage.emplace_back(t.numElements() * elementSize(t.elementType) + 8);
      testing::encodeTensor(t, storage.back().data());
      pointers.push_back(storage.back().data());
    }
    std::vector<void*> outputs(model_.graph->outputs.size(), nullptr);
    EXPECT_EQ(forward_(weightsFile_->base(), arena_.data(), cache_.data(), pointers.data(),
                       outputs.data(), batch, newTokens, past, lastRows),
              0);
    return testing::decodeTensor(static_cast<const uint8_t*>(outputs[0]), ElementType::F32,
                                 {batch, newTokens, model_.config.vocabSize});
  }

  std::vector<Tensor> interpret(const std::vector<Tensor>& in) const {
    return gemma::interpret(*reference_, in, [&](const std::string& name, const TensorType&) {
      return model_.weights.load(name);
    });
  }
  // Empty past caches for the interpreter, one key and one value per layer.
  std::vector<Tensor> emptyPast(int64_t batch) const {
    const GemmaConfig& c = model_.config;
    return std::vector<Tensor>(
        2 * c.numLayers, Tensor::zeros(model_.activationType, {batch, c.numKVHeads, 0, c.headDim}));
  }
  const ImportedModel& model() const { return model_; }
  const Graph& planned() const { return *model_.graph; }
  size_t kernelCount() const { return kernels_.groups.size(); }

private:
  ImportedModel model_;
  std::unique_ptr<Graph> reference_;
  std::string dir_;
  KernelSet kernels_;
  std::unique_ptr<SafetensorsFile> weightsFile_;
  void* library_ = nullptr;
  Entry forward_ = nullptr;
  std::vector<uint8_t> arena_, cache_;
};

double worstRelative(const Tensor& a, const Tensor& b) {
  double w = 0, scale = 0;
  for (int64_t i = 0; i < b.numElements(); ++i) {
    w = std::max(w, std::fabs(a.data[i] - b.data[i]));
    scale = std::max(scale, std::fabs(b.data[i]));
  }
  return w / scale;
}

TEST(CompiledModel, LogitsEqualTheInterpreterForPrefillAndDecode) {
  CompiledFixture compiled("mqa_f32", 2, 32);
  const GemmaConfig& c = compiled.model().config;
  std::vector<Tensor> inputs = testing::fixtureBatch(testing::loadHFReference("mqa_f32"));
  int64_t seq = inputs[0].shape[1];
  std::vector<Tensor> past = compiled.emptyPast(2);
  inputs.insert(inputs.end(), past.begin(), past.end());
  auto run = [&](const std::vector<Tensor>& in, int64_t batch, int64_t newTokens,
                 int64_t pastLength, int64_t lastRows = 0) {
    return compiled.run(in, batch, newTokens, pastLength, lastRows);
  };
  auto worst = worstRelative;
  std::vector<Tensor> expected = compiled.interpret(inputs);
  double prefill = worst(run(inputs, 2, seq, 0), expected[0]);
  EXPECT_LE(prefill, 1e-4);
  // last_rows = 1 (generation): the last position's logits, as the interpreter's (the other rows
  // are not computed; the arena there holds whatever other ops left).
  {
    Tensor last = run(inputs, 2, seq, 0, 1);
    double w = 0, scale = 0;
    for (int64_t b = 0; b < 2; ++b)
      for (int64_t v = 0; v < c.vocabSize; ++v) {
        auto at = static_cast<size_t>((b * seq + seq - 1) * c.vocabSize + v);
        w = std::max(w, std::fabs(last.data[at] - expected[0].data[at]));
        scale = std::max(scale, std::fabs(expected[0].data[at]));
      }
    EXPECT_LE(w / scale, 1e-4);
  }

  std::vector<Tensor> step = {
      Tensor(ElementType::I64, {2, 1}, {7, 9}),
      Tensor(ElementType::I64, {2, seq + 1}, std::vector<double>(2 * (seq + 1), 1.0)),
      Tensor(ElementType::I64, {2, 1}, {12, 19})};
  // The interpreter gets its own presents as the past; the compiled step reads its cache region.
  step.insert(step.end(), expected.begin() + 1, expected.end());
  double decode = worst(run(step, 2, 1, seq), compiled.interpret(step)[0]);
  EXPECT_LE(decode, 1e-4);
  std::printf(
      "compiled mqa_f32 (%zu kernels): worst logit error vs the interpreter %.3g (prefill), "
      "%.3g (decode step), x max|logit|\n",
      compiled.kernelCount(), prefill, decode);
}

// A sliding layer's cache as a ring of its window (Gemma 3, window 5, in a 32-token context): a
// left-padded batch of 2 through a prefill longer than the window, a chunk that straddles it,
// decode steps past it, and another chunk; each call's logits equal the interpreter's on the
// whole sequence so far (which reads full-length caches).
TEST(CompiledModel, SlidingWindowRingBufferEqualsFullCache) {
  CompiledFixture compiled("gemma3_mqa_f32", 2, 32);
  int rings = 0;
  for (const auto& op : compiled.planned().ops)
    if (const int64_t* ring = op->attr<int64_t>("ring_rows");
        op->kind == OpKind::KVCacheAppend && ring) {
      EXPECT_EQ(*ring, 5);
      ++rings;
    }
  EXPECT_EQ(rings, 6); // 3 sliding layers x K and V; the full layer keeps its 32 rows
  std::vector<Tensor> batch = testing::fixtureBatch(testing::loadHFReference("gemma3_mqa_f32"));
  int64_t length = batch[0].shape[1];
  ASSERT_GE(length, 16);
  auto columns = [](const Tensor& t, int64_t begin, int64_t end) {
    Tensor out = Tensor::zeros(t.elementType, {t.shape[0], end - begin});
    for (int64_t r = 0; r < t.shape[0]; ++r)
      for (int64_t i = begin; i < end; ++i)
        out.data[r * (end - begin) + i - begin] = t.data[r * t.shape[1] + i];
    return out;
  };
  std::vector<int64_t> cuts = {0, 7, 10, 11, 12, 13, length};
  double worst = 0;
  for (size_t i = 0; i + 1 < cuts.size(); ++i) {
    int64_t begin = cuts[i], end = cuts[i + 1];
    std::vector<Tensor> step = {columns(batch[0], begin, end), columns(batch[1], 0, end),
                                columns(batch[2], begin, end)};
    std::vector<Tensor> past = compiled.emptyPast(2);
    for (Tensor& t : past)
      t.shape[2] = begin; // shapes only: the compiled cache holds the rows
    for (Tensor& t : past)
      t.data.assign(static_cast<size_t>(t.numElements()), 0.0);
    step.insert(step.end(), past.begin(), past.end());
    Tensor logits = compiled.run(step, 2, end - begin, begin);
    std::vector<Tensor> whole = {columns(batch[0], 0, end), columns(batch[1], 0, end),
                                 columns(batch[2], 0, end)};
    std::vector<Tensor> empty = compiled.emptyPast(2);
    whole.insert(whole.end(), empty.begin(), empty.end());
    Tensor expected = compiled.interpret(whole)[0];
    // The rows [begin, end) of the whole sequence's logits, at the unpadded positions.
    int64_t vocab = expected.shape[2];
    Tensor rows = Tensor::zeros(ElementType::F32, logits.shape);
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t t = begin; t < end; ++t)
        for (int64_t v = 0; v < vocab; ++v)
          rows.data[(r * (end - begin) + t - begin) * vocab + v] =
              expected.data[(r * end + t) * vocab + v];
    for (int64_t r = 0; r < 2; ++r)
      for (int64_t t = begin; t < end; ++t)
        if (batch[1].data[r * length + t] == 0) // padding: not specified
          for (int64_t v = 0; v < vocab; ++v)
            rows.data[(r * (end - begin) + t - begin) * vocab + v] =
                logits.data[(r * (end - begin) + t - begin) * vocab + v];
    double w = worstRelative(logits, rows);
    EXPECT_LE(w, 1e-4) << "tokens [" << begin << ", " << end << ")";
    worst = std::max(worst, w);
  }
  std::printf("compiled gemma3_mqa_f32 with ring caches of 5 rows: worst logit error vs the "
              "interpreter over %zu calls %.3g x max|logit|\n",
              cuts.size() - 1, worst);
}

} // namespace
} // namespace gemma
