// A fixture model compiled end to end as far as the backend goes: -O and planning, Halide kernel
// objects, the weights file, and the LLVM entry point, linked by the system compiler into a
// shared library that the test loads and calls. Its logits must equal the interpreter's (and so
// transformers'), for prefill and for a decode step through the returned cache.
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
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

namespace gemma {
namespace {

using Entry = int32_t (*)(const uint8_t*, uint8_t*, void* const*, void**, int64_t, int64_t,
                          int64_t);

std::vector<uint8_t> bytesOf(const Tensor& t) {
  std::vector<uint8_t> out(static_cast<size_t>(t.numElements()) * elementSize(t.elementType) + 8);
  for (int64_t i = 0; i < t.numElements(); ++i) {
    if (t.elementType == ElementType::I64) {
      int64_t v = static_cast<int64_t>(t.data[i]);
      std::memcpy(out.data() + 8 * i, &v, 8);
    } else {
      float v = static_cast<float>(t.data[i]);
      std::memcpy(out.data() + 4 * i, &v, 4);
    }
  }
  return out;
}

Tensor readF32(const void* data, std::vector<int64_t> shape) {
  Tensor t = Tensor::zeros(ElementType::F32, std::move(shape));
  for (int64_t i = 0; i < t.numElements(); ++i)
    t.data[i] = static_cast<const float*>(data)[i];
  return t;
}

TEST(CompiledModel, LogitsEqualTheInterpreterForPrefillAndDecode) {
  namespace fs = std::filesystem;
  std::string dir = ::testing::TempDir() + "/compiled_mqa";
  fs::remove_all(dir);
  fs::create_directories(dir);
  ImportedModel model = importHFCheckpoint(std::string(GEMMAC_FIXTURES_DIR) + "/hf/mqa_f32");
  auto reference = model.graph->clone();
  PassManagerOptions options;
  options.passOptions.maxBatch = 2;
  options.passOptions.maxSeqLen = 32;
  PassManager passes(options);
  passes.addDefaultPipeline();
  passes.add("plan-memory"); // the cache as dense inputs and outputs for now
  passes.run(*model.graph);

  KernelSet kernels = collectKernels(*model.graph);
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

  std::ifstream file(std::string(GEMMAC_FIXTURES_DIR) + "/hf/mqa_f32/reference.json");
  nlohmann::json ref = nlohmann::json::parse(file);
  std::vector<Tensor> inputs;
  for (const char* key : {"input_ids", "attention_mask", "position_ids"}) {
    auto rows = ref.at(key).get<std::vector<std::vector<double>>>();
    std::vector<double> data;
    for (const auto& row : rows)
      data.insert(data.end(), row.begin(), row.end());
    inputs.emplace_back(ElementType::I64,
                        std::vector<int64_t>{2, static_cast<int64_t>(rows[0].size())}, data);
  }
  int64_t seq = inputs[0].shape[1];
  const GemmaConfig& c = model.config;
  // A cache of one masked-out position rather than an empty one: Halide wants every input it
  // reads from to hold at least the rows a kernel could touch, and the concat reading an empty
  // past is what kv_cache_append (writing into the fixed cache region) replaces. The interpreter
  // runs on the same inputs.
  Tensor mask = Tensor::zeros(ElementType::I64, {2, seq + 1});
  for (int64_t r = 0; r < 2; ++r)
    for (int64_t t = 0; t < seq; ++t)
      mask.data[r * (seq + 1) + 1 + t] = inputs[1].data[r * seq + t];
  inputs[1] = mask;
  std::mt19937_64 rng(3);
  for (int64_t i = 0; i < 2 * c.numLayers; ++i) {
    Tensor past = Tensor::zeros(ElementType::F32, {2, c.numKVHeads, 1, c.headDim});
    for (double& v : past.data)
      v = static_cast<float>(std::uniform_real_distribution<double>(-1, 1)(rng));
    inputs.push_back(past);
  }
  auto weights = [&](const std::string& name, const TensorType&) {
    return model.weights.load(name);
  };
  std::vector<uint8_t> arena(
      static_cast<size_t>(*std::get_if<int64_t>(&model.graph->attrs.at("arena_bytes"))) + 64);

  auto run = [&](const std::vector<Tensor>& in, int64_t batch, int64_t newTokens, int64_t past) {
    std::vector<std::vector<uint8_t>> storage;
    std::vector<void*> pointers;
    for (const Tensor& t : in) {
      storage.push_back(bytesOf(t));
      pointers.push_back(storage.back().data());
    }
    std::vector<void*> outputs(model.graph->outputs.size(), nullptr);
    EXPECT_EQ(forward(weightsFile->base(), arena.data(), pointers.data(), outputs.data(), batch,
                      newTokens, past),
              0);
    std::vector<Tensor> result;
    result.push_back(readF32(outputs[0], {batch, newTokens, c.vocabSize}));
    for (size_t i = 1; i < outputs.size(); ++i)
      result.push_back(readF32(outputs[i], {batch, c.numKVHeads, past + newTokens, c.headDim}));
    return result;
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
  std::vector<Tensor> actual = run(inputs, 2, seq, 1);
  double prefill = worst(actual[0], expected[0]);
  EXPECT_LE(prefill, 1e-4);
  for (size_t i = 1; i < expected.size(); ++i)
    EXPECT_LE(worst(actual[i], expected[i]), 1e-4) << "present " << i;

  std::vector<Tensor> step = {
      Tensor(ElementType::I64, {2, 1}, {7, 9}),
      Tensor(ElementType::I64, {2, seq + 2}, std::vector<double>(2 * (seq + 2), 1.0)),
      Tensor(ElementType::I64, {2, 1}, {12, 19})};
  step.insert(step.end(), actual.begin() + 1, actual.end());
  double decode = worst(run(step, 2, 1, seq + 1)[0], interpret(*reference, step, weights)[0]);
  EXPECT_LE(decode, 1e-4);
  std::printf(
      "compiled mqa_f32 (%zu kernels): worst logit error vs the interpreter %.3g (prefill), "
      "%.3g (decode step), x max|logit|\n",
      kernels.groups.size(), prefill, decode);
  dlclose(library);
}

} // namespace
} // namespace gemma
