// ONNX's own backend node tests (Debian's libonnx-testdata: one single-node model per test, with
// inputs and expected outputs as TensorProto files): every model the importer accepts runs, and its
// outputs must equal ONNX's at the backend tests' tolerance (rtol 1e-3, atol 1e-7). The models
// the importer refuses are counted and listed by reason; an op the importer accepts for one test
// must pass every test of it that it accepts. Runs through the reference interpreter and through
// the Halide kernels of the imported ops (JIT-compiled for the compiler's target).
#include "../unit/HalideTestUtil.h"
#include "backend/halide/Kernels.h"
#include "frontend/OnnxImporter.h"
#include "passes/Pass.h"

#include <cmath>
#include <filesystem>
#include <gtest/gtest.h>
#include <map>

namespace gemma {
namespace {

namespace fs = std::filesystem;

const char* kNodeTests = "/usr/share/libonnx-testdata/data/node";

// Worst violation of |actual - expected| <= atol + rtol |expected| (<= 0: within).
double violation(const Tensor& actual, const Tensor& expected) {
  if (actual.shape != expected.shape)
    return INFINITY;
  double worst = -INFINITY;
  for (int64_t i = 0; i < expected.numElements(); ++i) {
    double a = actual.data[static_cast<size_t>(i)], e = expected.data[static_cast<size_t>(i)];
    if (std::isnan(e) && std::isnan(a))
      continue;
    worst = std::max(worst, std::fabs(a - e) - (1e-7 + 1e-3 * std::fabs(e)));
  }
  return expected.numElements() ? worst : 0;
}

struct Outcome {
  std::string test, op, reason; // reason empty: ran
  bool passed = false, kernelsPassed = false;
  std::string detail;
};

// The graph through Halide kernels, op by op as a compiled program runs them (constants,
// weights and views need no kernel: their values are the data or their operand's).
std::vector<Tensor> runKernels(const Graph& graph, const std::vector<Tensor>& inputs,
                               const WeightProvider& weights) {
  std::map<const Value*, Tensor> values;
  for (size_t i = 0; i < graph.inputs.size(); ++i)
    values.emplace(graph.inputs[i].get(), inputs[i]);
  TargetKind target = hostTargetKind();
  for (const auto& op : graph.ops) {
    std::vector<const Tensor*> operands;
    for (const Value* operand : op->operands)
      operands.push_back(&values.at(operand));
    if (!hasKernel(*op)) {
      std::vector<int64_t> shape;
      for (const Dim& d : op->result()->type.dims)
        shape.push_back(d.staticValue());
      values.emplace(op->result(), evaluateOp(*op, operands, shape, weights));
      continue;
    }
    Kernel kernel = buildKernel(*op, target);
    std::vector<Halide::Buffer<>> buffers;
    for (size_t i = 0; i < operands.size(); ++i) {
      buffers.push_back(testing::typedBuffer(*operands[i]));
      kernel.inputs[i].set(buffers.back());
    }
    std::vector<int64_t> shape;
    for (const Dim& d : op->result()->type.dims)
      shape.push_back(d.staticValue());
    Tensor result = Tensor::zeros(op->result()->type.elementType, shape);
    Halide::Buffer<> out = testing::typedBuffer(result);
    kernel.output.realize(out, halideTarget(target));
    for (int64_t i = 0; i < result.numElements(); ++i)
      result.data[static_cast<size_t>(i)] = testing::element(out, i, result.elementType);
    values.emplace(op->result(), result);
  }
  std::vector<Tensor> outputs;
  for (const Graph::Output& output : graph.outputs)
    outputs.push_back(values.at(output.value));
  return outputs;
}

Outcome runNodeTest(const fs::path& dir) {
  Outcome outcome;
  outcome.test = dir.filename().string();
  ImportedModel model;
  try {
    model = importOnnxModel((dir / "model.onnx").string());
  } catch (const UserError& error) {
    outcome.reason = error.what();
    return outcome;
  }
  for (const auto& op : model.graph->ops)
    if (op->kind != OpKind::Constant && op->kind != OpKind::Weight)
      outcome.op = std::string(op->mnemonic());
  std::vector<Tensor> inputs, expected;
  try {
    for (const char* kind : {"input_", "output_"})
      for (size_t i = 0;; ++i) {
        fs::path file = dir / "test_data_set_0" / (kind + std::to_string(i) + ".pb");
        if (!fs::exists(file))
          break;
        (kind[0] == 'i' ? inputs : expected).push_back(readOnnxTensorFile(file.string()));
      }
  } catch (const UserError& error) {
    outcome.reason = std::string("test data: ") + error.what();
    return outcome;
  }
  if (inputs.size() != model.graph->inputs.size()) {
    outcome.reason = "test data has " + std::to_string(inputs.size()) + " inputs, the model " +
                     std::to_string(model.graph->inputs.size());
    return outcome;
  }
  try {
    auto weights = [&](const std::string& name, const TensorType&) {
      return model.weights.load(name);
    };
    std::vector<Tensor> actual = interpret(*model.graph, inputs, weights);
    if (actual.size() != expected.size()) {
      outcome.detail = "output count differs";
      return outcome;
    }
    double worst = -INFINITY;
    for (size_t i = 0; i < actual.size(); ++i)
      worst = std::max(worst, violation(actual[i], expected[i]));
    outcome.passed = worst <= 0;
    if (!outcome.passed) {
      outcome.detail = "interpreter: worst excess over tolerance " + std::to_string(worst);
      return outcome;
    }
    std::vector<Tensor> compiled = runKernels(*model.graph, inputs, weights);
    worst = -INFINITY;
    for (size_t i = 0; i < compiled.size(); ++i)
      worst = std::max(worst, violation(compiled[i], expected[i]));
    outcome.kernelsPassed = worst <= 0;
    if (!outcome.kernelsPassed)
      outcome.detail = "kernels: worst excess over tolerance " + std::to_string(worst);
  } catch (const std::exception& error) {
    outcome.detail = std::string("run failed: ") + error.what();
  }
  return outcome;
}

TEST(OnnxNodeTests, EveryAcceptedModelMatchesOnnx) {
  ASSERT_TRUE(fs::exists(kNodeTests)) << "install libonnx-testdata";
  std::vector<fs::path> dirs;
  for (const auto& entry : fs::directory_iterator(kNodeTests))
    if (fs::exists(entry.path() / "model.onnx"))
      dirs.push_back(entry.path());
  std::sort(dirs.begin(), dirs.end());
  int ran = 0, passed = 0;
  std::map<std::string, int> reasons;
  std::vector<Outcome> failures;
  for (const fs::path& dir : dirs) {
    Outcome outcome = runNodeTest(dir);
    if (!outcome.reason.empty()) {
      // Group by what follows the node's name: "(OpType, opset N): why".
      std::string reason = outcome.reason;
      size_t at = reason.find("' (");
      reasons[at == std::string::npos ? reason : reason.substr(at + 2)]++;
      continue;
    }
    ++ran;
    if (outcome.passed && outcome.kernelsPassed)
      ++passed;
    else
      failures.push_back(outcome);
  }
  std::printf("ONNX node tests: %zu models, %d imported and run (interpreter and Halide kernels), "
              "%d pass, %zu fail, %zu refused\n",
              dirs.size(), ran, passed, failures.size(), dirs.size() - ran);
  for (const Outcome& f : failures)
    std::printf("  FAIL %s (%s): %s\n", f.test.c_str(), f.op.c_str(), f.detail.c_str());
  for (const auto& [reason, count] : reasons)
    std::printf("  refused x%d: %s\n", count, reason.c_str());
  EXPECT_TRUE(failures.empty());
  EXPECT_GE(passed, 100);
}

// onnxruntime's fused norms (SimplifiedLayerNormalization, com.microsoft's
// SkipSimplifiedLayerNormalization with its input+skip sum output), in the node-test layout, with
// onnxruntime's outputs (test/fixtures/make_onnx_fixtures.py).
TEST(OnnxRuntimeOps, FusedNormsMatchOnnxRuntime) {
  Outcome outcome = runNodeTest(fs::path(GEMMAC_FIXTURES_DIR) / "onnx" / "ort_norms");
  EXPECT_TRUE(outcome.reason.empty()) << outcome.reason;
  EXPECT_TRUE(outcome.passed && outcome.kernelsPassed) << outcome.detail;
  EXPECT_EQ(outcome.op, "rms_norm");
}

// com.microsoft RotaryEmbedding (half-split, [batch, seq, hidden] input) onto the IR's rotary.
TEST(OnnxRuntimeOps, RotaryEmbeddingMatchesOnnxRuntime) {
  Outcome outcome = runNodeTest(fs::path(GEMMAC_FIXTURES_DIR) / "onnx" / "ort_rotary");
  EXPECT_TRUE(outcome.reason.empty()) << outcome.reason;
  EXPECT_TRUE(outcome.passed && outcome.kernelsPassed) << outcome.detail;
}

} // namespace
} // namespace gemma
