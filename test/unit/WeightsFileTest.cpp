// The compiled model's weights file: written once with the model's hash, read back only by the
// model it was written for, with every tensor intact.
#include "backend/WeightsFile.h"

#include "TestUtil.h"
#include "frontend/HFImporter.h"
#include "passes/Pass.h"

#include <Halide.h>
#include <cstring>
#include <filesystem>
#include <fstream>

namespace gemma {
namespace {

ImportedModel compiled(const std::string& fixture, std::optional<ElementType> weightsType = {}) {
  ImportedModel model = importHFCheckpoint(std::string(GEMMAC_FIXTURES_DIR) + "/hf/" + fixture);
  PassManagerOptions options;
  options.passOptions.weightsType = weightsType;
  PassManager passes(options);
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

// --weights-dtype bf16|f16: the matrices are written narrowed, each value rounded to nearest even
// (as Halide's bfloat16_t and float16_t round), the norms as the checkpoint has them.
TEST(WeightsFile, NarrowsMatricesWhenWritten) {
  for (ElementType narrow : {ElementType::BF16, ElementType::F16}) {
    std::string path = ::testing::TempDir() + "/mqa-narrow.weights";
    ImportedModel model = compiled("mqa_f32", narrow);
    writeWeightsFile(*model.graph, model.weights, path);
    auto file = openWeightsFile(*model.graph, path);
    int narrowed = 0;
    for (const auto& [name, view] : file->tensors()) {
      const TensorView* original = model.weights.find(name);
      ASSERT_NE(original, nullptr) << name;
      if (view.elementType == ElementType::F32) {
        EXPECT_EQ(view.shape.size(), 1u) << name << ": only norm weights stay f32";
        continue;
      }
      ASSERT_EQ(view.elementType, narrow) << name;
      ++narrowed;
      size_t count = original->bytes / 4;
      ASSERT_EQ(view.bytes, count * 2) << name;
      for (size_t i = 0; i < count; ++i) {
        float value;
        uint16_t bits;
        std::memcpy(&value, original->data + 4 * i, 4);
        std::memcpy(&bits, view.data + 2 * i, 2);
        uint16_t expected = narrow == ElementType::BF16 ? Halide::bfloat16_t(value).to_bits()
                                                        : Halide::float16_t(value).to_bits();
        ASSERT_EQ(bits, expected) << name << "[" << i << "] = " << value;
      }
    }
    EXPECT_EQ(narrowed, 1 + 2 * 7) << "the embedding and 7 matrices per layer";
  }
}

} // namespace
} // namespace gemma
