// ONNX values onnxruntime refuses are refused here too, with a located error: a Range whose delta
// is 0 or whose bounds are not finite (the length's inf-to-int cast was undefined behaviour), and
// external-data fields that are not whole numbers ("12abc" was read as 12).
#include "frontend/OnnxImporter.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <limits>
#include <onnx/defs/parser.h>
#include <onnx/onnx_pb.h>
#include <sys/resource.h>

namespace gemma {
namespace {

namespace fs = std::filesystem;

std::string writeModel(const onnx::ModelProto& model, const std::string& name) {
  fs::path folder = fs::path(::testing::TempDir()) / name;
  fs::create_directories(folder);
  std::string path = (folder / "model.onnx").string();
  std::ofstream file(path, std::ios::binary);
  model.SerializeToOstream(&file);
  return path;
}

onnx::ModelProto parse(const char* text) {
  onnx::ModelProto model;
  auto status = onnx::OnnxParser::Parse(model, text);
  EXPECT_TRUE(status.IsOK()) << status.ErrorMessage();
  return model;
}

void expectRefused(const std::string& path, const std::string& expected) {
  try {
    importOnnxModel(path);
    ADD_FAILURE() << path << " was imported";
  } catch (const UserError& error) {
    EXPECT_NE(std::string(error.what()).find(expected), std::string::npos) << error.what();
  }
}

TEST(OnnxBadInput, RangeWithAZeroDeltaOrInfiniteBounds) {
  expectRefused(writeModel(parse(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    zero_delta (float[1] x) => (int64[?] y) {
      s = Constant <value = int64 {0}> ()
      l = Constant <value = int64 {10}> ()
      d = Constant <value = int64 {0}> ()
      y = Range(s, l, d)
    })"),
                           "zero_delta"),
                "not supported (a delta of 0, or a start, limit or delta that is not finite)");
  onnx::ModelProto infinite = parse(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    infinite (float[1] x) => (float[?] y) {
      s = Constant <value = float {0}> ()
      l = Constant <value = float {1}> ()
      d = Constant <value = float {1}> ()
      y = Range(s, l, d)
    })");
  // (The text form cannot write inf: the limit's value is set here.)
  infinite.mutable_graph()->mutable_node(1)->mutable_attribute(0)->mutable_t()->set_float_data(
      0, std::numeric_limits<float>::infinity());
  expectRefused(writeModel(infinite, "infinite"),
                "not supported (a delta of 0, or a start, limit or delta that is not finite)");
  expectRefused(writeModel(parse(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    too_long (float[1] x) => (float[?] y) {
      s = Constant <value = float {0}> ()
      l = Constant <value = float {1e30}> ()
      d = Constant <value = float {1}> ()
      y = Range(s, l, d)
    })"),
                           "too_long"),
                "is too large");
}

// Sizes are checked before memory is taken: an initializer that declares [2^28, 4] floats and holds
// none is refused without allocating its 4 GiB (it reached 4 GB RSS first), and a Range of 2^40
// values imports without holding 2^40 known values (it allocated until bad_alloc).
TEST(OnnxBadInput, DeclaredSizesAreCheckedBeforeAllocating) {
  onnx::ModelProto model = parse(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    empty_initializer (float[4] x) => (float[4] y) { y = Add(x, x) })");
  onnx::TensorProto* w = model.mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(int64_t(1) << 28);
  w->add_dims(4);
  expectRefused(writeModel(model, "empty_initializer"),
                "holds 0 values, its shape needs 1073741824");
  importOnnxModel(writeModel(parse(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    long_range (float[1] x) => (int64[?] y) {
      s = Constant <value = int64 {0}> ()
      l = Constant <value = int64 {1099511627776}> ()
      d = Constant <value = int64 {1}> ()
      y = Range(s, l, d)
    })"),
                             "long_range"));
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  EXPECT_LT(usage.ru_maxrss, 1024 * 1024) << "peak RSS in KiB"; // well below the 4 GiB
}

TEST(OnnxBadInput, ExternalDataFieldsAreWholeNumbers) {
  onnx::ModelProto model = parse(R"(
    <ir_version: 8, opset_import: ["" : 17]>
    external (float[4] x) => (float[4] y) { y = Add(x, w) })");
  onnx::TensorProto* w = model.mutable_graph()->add_initializer();
  w->set_name("w");
  w->set_data_type(onnx::TensorProto::FLOAT);
  w->add_dims(4);
  w->set_data_location(onnx::TensorProto::EXTERNAL);
  auto field = [&](const char* key, const char* value) {
    onnx::StringStringEntryProto* entry = w->add_external_data();
    entry->set_key(key);
    entry->set_value(value);
  };
  field("location", "w.bin");
  field("offset", "12abc");
  std::string path = writeModel(model, "external");
  std::ofstream(fs::path(path).parent_path() / "w.bin", std::ios::binary) << std::string(64, '\0');
  expectRefused(path, "external data field 'offset' is not a number");
  w->mutable_external_data(1)->set_value("12"); // the same model with a whole number imports
  importOnnxModel(writeModel(model, "external"));
}

} // namespace
} // namespace gemma
