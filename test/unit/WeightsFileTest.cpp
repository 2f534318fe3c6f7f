// The compiled model's weights file: written once with the model's hash, read back only by the
// model it was written for, with every tensor intact.
#include "backend/WeightsFile.h"

#include "TestUtil.h"
#include "frontend/HFImporter.h"
#include "ir/ElementCodec.h"
#include "passes/Pass.h"

#include <Halide.h>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

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

// The one codec rounds as Halide's bfloat16_t and float16_t do (the kernels' types), ties, the
// largest values, subnormals, infinities and NaNs included, and reads back what it wrote.
TEST(ElementCodec, RoundsAsHalidesTypesAndRoundTrips) {
  std::vector<float> values = {0.0f,
                               -0.0f,
                               1.0f,
                               -1.5f,
                               3.14159265f,
                               1e-3f,
                               65504.0f,
                               65520.0f,
                               1e-8f,
                               6e-5f,
                               3.3895313892515355e38f,
                               std::numeric_limits<float>::max(),
                               std::numeric_limits<float>::denorm_min(),
                               std::numeric_limits<float>::infinity(),
                               -std::numeric_limits<float>::infinity()};
  for (uint32_t bits : {0x3f808000u, 0x3f818000u, 0x3f80ffffu, 0x00008000u, 0x7f7f8000u}) {
    float tie; // bf16 ties (round to even) and near-ties
    std::memcpy(&tie, &bits, 4);
    values.push_back(tie);
  }
  for (int i = 0; i < 2000; ++i)
    values.push_back(std::ldexp(std::sin(i * 12.9898f) * 1.7f, (i % 60) - 30));
  for (float value : values) {
    EXPECT_EQ(codec::floatToBf16Bits(value), Halide::bfloat16_t(value).to_bits()) << value;
    EXPECT_EQ(codec::doubleToF16Bits(value), Halide::float16_t(value).to_bits()) << value;
    EXPECT_EQ(codec::bf16BitsToFloat(codec::floatToBf16Bits(value)),
              static_cast<float>(Halide::bfloat16_t(value)))
        << value;
    EXPECT_EQ(codec::f16BitsToFloat(codec::doubleToF16Bits(value)),
              static_cast<float>(Halide::float16_t(value)))
        << value;
  }
  float nan = std::numeric_limits<float>::quiet_NaN();
  EXPECT_TRUE(std::isnan(codec::bf16BitsToFloat(codec::floatToBf16Bits(nan))));
  uint32_t signalingBits = 0x7f800001u; // a NaN whose payload is below bf16's bits: still a NaN
  float signaling;
  std::memcpy(&signaling, &signalingBits, 4);
  EXPECT_TRUE(std::isnan(codec::bf16BitsToFloat(codec::floatToBf16Bits(signaling))));
  // Integers and bool, exactly, through their bytes.
  uint8_t bytes[8];
  for (ElementType type : {ElementType::I64, ElementType::I32, ElementType::I8, ElementType::Bool})
    for (double value : {0.0, 1.0, -1.0, 100.0, -128.0}) {
      if (type == ElementType::Bool && value != 0.0 && value != 1.0)
        continue;
      codec::encodeElement(type, value, bytes);
      EXPECT_EQ(codec::decodeElement(type, bytes), value) << elementTypeName(type);
      EXPECT_EQ(codec::decodeInteger(type, bytes), static_cast<int64_t>(value));
    }
  int64_t toTheEnd = std::numeric_limits<int64_t>::max(); // Slice's "to the end": exact
  std::memcpy(bytes, &toTheEnd, 8);
  EXPECT_EQ(codec::decodeInteger(ElementType::I64, bytes), toTheEnd);
  codec::encodeElement(ElementType::I64, static_cast<double>(toTheEnd), bytes); // 2^63: saturates
  EXPECT_EQ(codec::decodeInteger(ElementType::I64, bytes), toTheEnd);
  for (ElementType type : {ElementType::F32, ElementType::BF16, ElementType::F16})
    EXPECT_EQ(codec::storageBytes(type, 10), 10 * elementSize(type));
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
