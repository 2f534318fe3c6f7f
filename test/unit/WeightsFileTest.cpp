// The compiled model's weights file: written once with the model's hash, read back only by the
// model it was written for, with every tensor intact.
#include "backend/WeightsFile.h"

#include "TestUtil.h"
#include "frontend/HFImporter.h"
#include "passes/Pass.h"

#include <cstring>
#include <filesystem>
#include <fstream>

namespace gemma {
namespace {

ImportedModel compiled(const std::string& fixture) {
  ImportedModel model = importHFCheckpoint(std::string(GEMMAC_FIXTURES_DIR) + "/hf/" + fixture);
  PassManager passes;
  passes.addDefaultPipeline();
  passes.addPlanningPipeline();
  passes.run(*model.graph);
  return model;
}

TEST(WeightsFile, RoundTripsForItsModelOnly) {
  std::string path = ::testing::TempDir() + "/mqa.weights";
  ImportedModel model = compiled("mqa_f32");
  int64_t bytes = writeWeightsFile(*model.graph, model.weights, path);
  EXPECT_EQ(bytes, static_cast<int64_t>(std::filesystem::file_size(path)));
  auto file = openWeightsFile(*model.graph, path);
  // Each tensor once, as the checkpoint stores it (tied: no lm_head; transposed weights are read
  // through strides, not stored transposed).
  EXPECT_EQ(file->tensors().size(), model.weights.tensors().size());
  for (const auto& [name, view] : file->tensors()) {
    const TensorView* original = model.weights.find(name);
    ASSERT_NE(original, nullptr) << name;
    ASSERT_EQ(view.bytes, original->bytes);
    EXPECT_EQ(std::memcmp(view.data, original->data, view.bytes), 0) << name;
    EXPECT_EQ(reinterpret_cast<uintptr_t>(view.data) % 8, 0u) << "data section aligned";
  }

  ImportedModel other = compiled("mha_untied_f32");
  std::string error = testing::userErrorOf([&] { openWeightsFile(*other.graph, path); });
  EXPECT_NE(error.find("was written for another model"), std::string::npos) << error;

  std::string checkpoint = std::string(GEMMAC_FIXTURES_DIR) + "/hf/mqa_f32/model.safetensors";
  error = testing::userErrorOf([&] { openWeightsFile(*model.graph, checkpoint); });
  EXPECT_NE(error.find("is not a gemmac weights file"), std::string::npos) << error;

  std::filesystem::resize_file(path, bytes - 100);
  error = testing::userErrorOf([&] { openWeightsFile(*model.graph, path); });
  EXPECT_NE(error.find("lie outside the data section"), std::string::npos) << error;
}

} // namespace
} // namespace gemma
