// Malformed ONNX never crashes the importer: ONNX's node-test models and a real Gemma export are
// mutated at random (bytes flipped, deleted, duplicated, truncated) and every
// mutant must import or fail with a UserError, nothing else. Runs in the sanitized build too.
#include "Mutate.h"
#include "frontend/OnnxImporter.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <random>
#include <sstream>

namespace gemma {
namespace {

namespace fs = std::filesystem;

TEST(FuzzOnnxImport, MutatedModelsNeverCrash) {
  const fs::path tests = "/usr/share/libonnx-testdata/data/node";
  std::vector<std::string> seeds;
  for (const char* name :
       {"test_add", "test_matmul_3d", "test_reshape_reduced_dims", "test_slice", "test_gather_0",
        "test_concat_3d_axis_1", "test_reduce_mean_keepdims_example", "test_softmax_axis_1",
        "test_constantofshape_int_zeros", "test_range_float_type_positive_delta"}) {
    std::ifstream file(tests / name / "model.onnx", std::ios::binary);
    std::stringstream bytes;
    bytes << file.rdbuf();
    if (!bytes.str().empty())
      seeds.push_back(bytes.str());
  }
  ASSERT_GE(seeds.size(), 8u) << "install libonnx-testdata";
  // A real export too: shape arithmetic, past/present, a few hundred nodes.
  std::ifstream exported(std::string(GEMMAC_FIXTURES_DIR) +
                             "/onnx/mqa_f32_torchscript_past/model.onnx",
                         std::ios::binary);
  std::stringstream exportedBytes;
  exportedBytes << exported.rdbuf();
  ASSERT_FALSE(exportedBytes.str().empty());
  seeds.push_back(exportedBytes.str());
  std::string path = ::testing::TempDir() + "/fuzz.onnx";
  std::mt19937_64 rng(2026);
  int imported = 0, refused = 0;
  for (int round = 0; round < 3000; ++round) {
    std::string bytes = testing::mutateBytes(seeds[rng() % seeds.size()], rng, SIZE_MAX);
    std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
    try {
      importOnnxModel(path);
      ++imported;
    } catch (const UserError&) {
      ++refused;
    }
  }
  std::printf("mutated ONNX models: %d imported, %d refused with an error, none crashed\n",
              imported, refused);
  EXPECT_GT(refused, 100);
}

} // namespace
} // namespace gemma
