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
  // Tied: no lm_head tensor, but the embedding twice: as stored (gathered) and transposed (the
  // logits' matmul reads it so, packed by pack-weights).
  EXPECT_EQ(file->tensors().size(), model.weights.tensors().size() + 1);
  int packed = 0;
  for (const auto& [key, view] : file->tensors()) {
    std::string name = key.substr(0, key.find('@'));
    const TensorView* original = model.weights.find(name);
    ASSERT_NE(original, nullptr) << key;
    ASSERT_EQ(view.bytes, original->bytes);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(view.data) % 8, 0u) << "data section aligned";
    if (key == name) {
      EXPECT_EQ(std::memcmp(view.data, original->data, view.bytes), 0) << key;
      continue;
    }
    ASSERT_EQ(key, name + "@perm(1,0)");
    ++packed;
    int64_t rows = original->shape[0], columns = original->shape[1];
    ASSERT_EQ(view.shape, (std::vector<int64_t>{columns, rows}));
    const auto* stored = reinterpret_cast<const float*>(original->data);
    const auto* transposed = reinterpret_cast<const float*>(view.data);
    for (int64_t r = 0; r < rows; ++r)
      for (int64_t c = 0; c < columns; ++c)
        ASSERT_EQ(transposed[c * rows + r], stored[r * columns + c]) << key;
  }
  EXPECT_GT(packed, 10); // every projection's weight, and the tied embedding

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
