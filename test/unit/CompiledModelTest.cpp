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

TEST(CompiledModel, LogitsEqualTheInterpreterForPrefillAndDecode) {
  namespace fs = std::filesystem;
  std::string dir = ::testing::TempDir() + "/compiled_mqa";
  fs::remove_all(dir);
  fs::create_directories(dir);
  ImportedModel model = importHFCheckpoint(testing::hfFixtureDir("mqa_f32"));
  auto reference = model.graph->clone();
  PassManagerOptions options;
  options.passOptions.maxBatch = 2;
  options.passOptions.maxSeqLen = 32;
  PassManager passes(options);
  passes.addDefaultPipeline();
  passes.addPlanningPipeline();
  passes.run(*model.graph);

  KernelSet kernels = collectKernels(*model.graph, "test_model");
  compileKernels(kernels, dir, hostTargetKind());
  std::string weightsPath = dir + "/model.weights";
  writeWeightsFile(*model.graph, model.weights, weightsPath);
  auto weightsFile = openWeightsFile(*model.graph, weightsPath);
  std::map<std::string, int64_t> offsets;
  for (const auto& [name, view] : weightsFile->tensors())
    offsets[name] = view.data - weightsFile->base();
  emitEntryPointObject(*model.graph, kernels, offsets, "gemma_forward", dir + "/entry.o");

  std::string command = "c++ -shared -o " + dir + "/model.so " + dir + "/entry.o";
  for (const KernelGroup& group : kernels.groups)
    command += " " + group.objectPath;
  command += " " + kernels.runtimeObjectPath + " " + GEMMA_RT_LIBRARY + " -lpthread -ldl -lm";
  ASSERT_EQ(std::system(command.c_str()), 0) << command;
  void* library = dlopen((dir + "/model.so").c_str(), RTLD_NOW | RTLD_LOCAL);
  ASSERT_NE(library, nullptr) << dlerror();
  auto forward = reinterpret_cast<Entry>(dlsym(library, "gemma_forward"));
  ASSERT_NE(forward, nullptr);

  std::vector<Tensor> inputs = testing::fixtureBatch(testing::loadHFReference("mqa_f32"));
  int64_t seq = inputs[0].shape[1];
  const GemmaConfig& c = model.config;
  inputs.insert(inputs.end(), 2 * c.numLayers,
                Tensor::zeros(ElementType::F32, {2, c.numKVHeads, 0, c.headDim}));
  auto weights = [&](const std::string& name, const TensorType&) {
    return model.weights.load(name);
  };
  std::vector<uint8_t> arena(
      static_cast<size_t>(*std::get_if<int64_t>(&model.graph->attrs.at("arena_bytes"))));
  // The KV cache lives across calls: prefill writes rows [0, seq), the decode step row seq.
  std::vector<uint8_t> cache(
      static_cast<size_t>(*std::get_if<int64_t>(&model.graph->attrs.at("kv_cache_bytes"))));

  auto run = [&](const std::vector<Tensor>& in, int64_t batch, int64_t newTokens, int64_t past,
                 int64_t lastRows = 0) {
    std::vector<std::vector<uint8_t>> storage;
    std::vector<void*> pointers;
    for (const Tensor& t : in) {
      // (+8: an empty past still gets a valid pointer)
      storage.emplace_back(t.numElements() * elementSize(t.elementType) + 8);
      testing::encodeTensor(t, storage.back().data());
      pointers.push_back(storage.back().data());
    }
    std::vector<void*> outputs(model.graph->outputs.size(), nullptr);
    EXPECT_EQ(forward(weightsFile->base(), arena.data(), cache.data(), pointers.data(),
                      outputs.data(), batch, newTokens, past, lastRows),
              0);
    return testing::decodeTensor(static_cast<const uint8_t*>(outputs[0]), ElementType::F32,
                                 {batch, newTokens, c.vocabSize});
  };
  auto worst = [](const Tensor& a, const Tensor& b) {
    double w = 0, scale = 0;
    for (int64_t i = 0; i < b.numElements(); ++i) {
      w = std::max(w, std::fabs(a.data[i] - b.data[i]));
      scale = std::max(scale, std::fabs(b.data[i]));
    }
    return w / scale;
  };

  std::vector<Tensor> expected = interpret(*reference, inputs, weights);
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
  double decode = worst(run(step, 2, 1, seq), interpret(*reference, step, weights)[0]);
  EXPECT_LE(decode, 1e-4);
  std::printf(
      "compiled mqa_f32 (%zu kernels): worst logit error vs the interpreter %.3g (prefill), "
      "%.3g (decode step), x max|logit|\n",
      kernels.groups.size(), prefill, decode);
  dlclose(library);
}

} // namespace
} // namespace gemma
