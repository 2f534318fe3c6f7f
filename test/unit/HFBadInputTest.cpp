// Bad checkpoints: every defect gives a UserError that names the file (and tensor) at fault, and
// nothing crashes, also under AddressSanitizer and UBSan (scripts/test.sh runs this suite in both
// builds). Each case starts from a copy of a valid fixture and breaks one thing.
#include "TestUtil.h"
#include "frontend/HFImporter.h"

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>
#include <unistd.h>

namespace gemma {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using testing::userErrorOf;

struct RawTensor {
  std::string name, dtype;
  std::vector<int64_t> shape;
  std::string bytes;
  std::optional<std::pair<uint64_t, uint64_t>> offsets; // default: packed in order
};

std::string readFile(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

void writeFile(const fs::path& path, const std::string& bytes) {
  std::ofstream(path, std::ios::binary | std::ios::trunc) << bytes;
}

std::string safetensorsImage(const std::string& header, const std::string& data) {
  std::string image(8, '\0');
  uint64_t length = header.size();
  for (int i = 0; i < 8; ++i)
    image[i] = static_cast<char>((length >> (8 * i)) & 0xff);
  return image + header + data;
}

std::string safetensorsImage(const std::vector<RawTensor>& tensors) {
  Json header = Json::object();
  std::string data;
  for (const RawTensor& t : tensors) {
    uint64_t begin = data.size();
    data += t.bytes;
    auto offsets = t.offsets.value_or(std::make_pair(begin, static_cast<uint64_t>(data.size())));
    header[t.name] = {
        {"dtype", t.dtype}, {"shape", t.shape}, {"data_offsets", {offsets.first, offsets.second}}};
  }
  return safetensorsImage(header.dump(), data);
}

class BadCheckpoint : public ::testing::Test {
protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gemmac-bad-" + std::to_string(getpid()) + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::copy(std::string(GEMMAC_FIXTURES_DIR) + "/hf/mqa_f32", dir_);
    auto file = SafetensorsFile::open((dir_ / "model.safetensors").string());
    for (const auto& [name, view] : file->tensors())
      tensors_.push_back({name,
                          "F32",
                          view.shape,
                          std::string(reinterpret_cast<const char*>(view.data), view.bytes),
                          {}});
  }
  void TearDown() override { fs::remove_all(dir_); }

  void writeTensors() { writeFile(dir_ / "model.safetensors", safetensorsImage(tensors_)); }
  RawTensor& tensor(const std::string& name) {
    for (RawTensor& t : tensors_)
      if (t.name == name)
        return t;
    throw std::logic_error("no fixture tensor " + name);
  }
  void editConfig(const std::function<void(Json&)>& edit) {
    Json config = Json::parse(readFile(dir_ / "config.json"));
    edit(config);
    writeFile(dir_ / "config.json", config.dump(2));
  }
  std::string importError() {
    return userErrorOf([&] { importHFCheckpoint(dir_.string()); });
  }
  void expectError(const std::string& fragment) {
    std::string error = importError();
    EXPECT_NE(error.find(fragment), std::string::npos) << "error was: " << error;
  }

  fs::path dir_;
  std::vector<RawTensor> tensors_;
};

TEST_F(BadCheckpoint, TheUntouchedCopyImports) {
  EXPECT_EQ(importError(), "");
}

TEST_F(BadCheckpoint, TruncatedFile) {
  std::string bytes = readFile(dir_ / "model.safetensors");
  writeFile(dir_ / "model.safetensors", bytes.substr(0, bytes.size() / 2));
  expectError("model.safetensors: tensor '");
  expectError("lie outside the data section");
  writeFile(dir_ / "model.safetensors", bytes.substr(0, 5));
  expectError("is truncated: 5 bytes");
}

TEST_F(BadCheckpoint, HeaderLengthPastTheEnd) {
  std::string bytes = readFile(dir_ / "model.safetensors");
  bytes[6] = '\x01'; // header length += 2^48
  writeFile(dir_ / "model.safetensors", bytes);
  expectError("runs past the end of the file");
}

TEST_F(BadCheckpoint, HeaderIsNotJson) {
  writeFile(dir_ / "model.safetensors", safetensorsImage("{\"a\": [1, 2", ""));
  expectError("header is not valid JSON");
  writeFile(dir_ / "model.safetensors", safetensorsImage("[1, 2]", ""));
  expectError("header must be a JSON object");
  writeFile(dir_ / "model.safetensors", safetensorsImage("{\"t\": 5}", ""));
  expectError("tensor 't': needs dtype, shape and data_offsets");
}

TEST_F(BadCheckpoint, OverlappingRanges) {
  // Two norms of the same size made to share one byte range.
  const RawTensor& norm = tensor("model.norm.weight");
  const RawTensor& layerNorm = tensor("model.layers.0.input_layernorm.weight");
  Json header;
  std::string data;
  for (const RawTensor& t : tensors_) {
    uint64_t begin = data.size();
    data += t.bytes;
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {begin, static_cast<uint64_t>(data.size())}}};
  }
  header[layerNorm.name]["data_offsets"] = header[norm.name]["data_offsets"]; // same size
  writeFile(dir_ / "model.safetensors", safetensorsImage(header.dump(), data));
  expectError("overlap in the data section");
}

// The tensors fill the data section exactly, as the safetensors library requires: no gap before
// the first, none between, nothing after the last (each was accepted).
TEST_F(BadCheckpoint, DataSectionWithUnusedBytes) {
  std::string image = safetensorsImage(tensors_);
  writeFile(dir_ / "model.safetensors", image + std::string(8, '\0'));
  expectError("the data section has 8 bytes after the last tensor");
  Json header = Json::object();
  std::string data(16, '\0'); // a gap of 16 bytes, then every tensor
  for (const RawTensor& t : tensors_) {
    header[t.name] = {{"dtype", t.dtype},
                      {"shape", t.shape},
                      {"data_offsets", {data.size(), data.size() + t.bytes.size()}}};
    data += t.bytes;
  }
  writeFile(dir_ / "model.safetensors", safetensorsImage(header.dump(), data));
  expectError("the data section has unused bytes [0, 16) before tensor '");
}

TEST_F(BadCheckpoint, ShardNameWithANul) {
  Json index = {{"weight_map", {{"model.norm.weight", std::string("model\0.safetensors", 18)}}}};
  writeFile(dir_ / "model.safetensors.index.json", index.dump());
  expectError("names 'model\\x00.safetensors', which is not a file in the checkpoint folder");
}

TEST_F(BadCheckpoint, UnknownAndUnsupportedDtypes) {
  tensor("model.norm.weight").dtype = "Q4";
  writeTensors();
  expectError("tensor 'model.norm.weight': unknown dtype 'Q4'");
  tensor("model.norm.weight").dtype = "F64";
  writeTensors();
  expectError("tensor 'model.norm.weight': dtype F64 is not supported");
}

TEST_F(BadCheckpoint, ShapeDisagreesWithByteRange) {
  tensor("model.norm.weight").shape = {41};
  writeTensors();
  expectError("tensor 'model.norm.weight': shape [41] of F32 needs 41 x 4 bytes, but "
              "data_offsets give 160");
  tensor("model.norm.weight").shape = {-40};
  writeTensors();
  expectError("shape has an invalid dim -40");
}

TEST_F(BadCheckpoint, MissingTensor) {
  std::erase_if(tensors_,
                [](const RawTensor& t) { return t.name == "model.layers.1.mlp.up_proj.weight"; });
  writeTensors();
  expectError("missing tensor 'model.layers.1.mlp.up_proj.weight' (expected shape [88,40])");
}

TEST_F(BadCheckpoint, WrongShape) {
  RawTensor& k = tensor("model.layers.0.self_attn.k_proj.weight");
  k.shape = {40, 10};
  writeTensors();
  expectError("model.safetensors: tensor 'model.layers.0.self_attn.k_proj.weight' has shape "
              "[40,10], expected [10,40]");
}

TEST_F(BadCheckpoint, ExtraTensor) {
  tensors_.push_back({"model.layers.7.mlp.gate_proj.weight", "F32", {1}, std::string(4, '\0'), {}});
  writeTensors();
  expectError("unexpected tensor 'model.layers.7.mlp.gate_proj.weight' [1]");
  // Another head's tensor is tolerated and reported.
  tensors_.back() = {"score.weight", "F32", {1}, std::string(4, '\0'), {}};
  writeTensors();
  EXPECT_EQ(importError(), "");
  EXPECT_EQ(importHFCheckpoint(dir_.string()).ignoredTensors,
            std::vector<std::string>{"score.weight"});
}

TEST_F(BadCheckpoint, BrokenConfigJson) {
  writeFile(dir_ / "config.json", "{\"model_type\": \"gemma\", ");
  expectError("error: " + (dir_ / "config.json").string() + ": is not valid JSON");
  writeFile(dir_ / "config.json", "[]");
  expectError("must hold a JSON object");
}

TEST_F(BadCheckpoint, MissingOrMistypedConfigFields) {
  editConfig([](Json& c) { c.erase("hidden_size"); });
  expectError("missing field 'hidden_size'");
  editConfig([](Json& c) { c["hidden_size"] = "forty"; });
  expectError("field 'hidden_size' must be an integer, got \"forty\"");
  editConfig([](Json& c) {
    c["hidden_size"] = 40;
    c["num_key_value_heads"] = 3;
  });
  expectError("num_attention_heads (4) must be a multiple of num_key_value_heads (3)");
  editConfig([](Json& c) {
    c["num_key_value_heads"] = 1;
    c["num_hidden_layers"] = -2;
  });
  expectError("field 'num_hidden_layers' = -2 is outside [1, 1024]");
  editConfig([](Json& c) {
    c["num_hidden_layers"] = 2;
    c["hidden_act"] = "relu";
  });
  expectError("hidden_act \"relu\" is not supported");
  editConfig([](Json& c) {
    c["hidden_act"] = "gelu";
    c["rms_norm_eps"] = "small";
  });
  expectError("field 'rms_norm_eps' must be a number");
}

TEST_F(BadCheckpoint, OtherModelsAreRefusedByName) {
  // A Gemma 1 checkpoint relabelled as Gemma 2 lacks the Gemma 2 norms.
  editConfig([](Json& c) { c["model_type"] = "gemma2"; });
  expectError("missing tensor 'model.layers.0.pre_feedforward_layernorm.weight'");
  editConfig([](Json& c) { c["model_type"] = "llama"; });
  expectError("model_type 'llama' is not a Gemma model");
  editConfig([](Json& c) {
    c["model_type"] = "gemma";
    c["architectures"] = {"GemmaForQA"};
  });
  expectError("architectures names no Gemma head; choose one with --head");
}

TEST_F(BadCheckpoint, ConfigMismatchesWeights) {
  editConfig([](Json& c) { c["intermediate_size"] = 90; });
  expectError("tensor 'model.layers.0.mlp.gate_proj.weight' has shape [88,40], expected [90,40]");
}

TEST_F(BadCheckpoint, BrokenShardIndex) {
  fs::remove(dir_ / "model.safetensors");
  expectError("has neither model.safetensors nor model.safetensors.index.json");
  Json index = {{"weight_map", {{"model.norm.weight", "../outside.safetensors"}}}};
  writeFile(dir_ / "model.safetensors.index.json", index.dump());
  expectError("names '../outside.safetensors', which is not a file in the checkpoint folder");
  index = {{"weight_map", {{"model.norm.weight", "shard-1.safetensors"}}}};
  writeFile(dir_ / "model.safetensors.index.json", index.dump());
  expectError("shard-1.safetensors: cannot be opened: No such file or directory");
  writeFile(dir_ / "shard-1.safetensors", safetensorsImage({tensors_[0]}));
  expectError("tensor 'model.norm.weight' is missing, but");
  writeFile(dir_ / "model.safetensors.index.json", "{\"weight_map\": 3}");
  expectError("needs a 'weight_map' object");
}

// Random damage to the header and the data: the parser reports an error or accepts the file,
// and never reads out of bounds (the sanitized build checks that).
TEST_F(BadCheckpoint, RandomlyDamagedFilesNeverCrash) {
  std::string original = readFile(dir_ / "model.safetensors");
  uint64_t headerLength = 0;
  for (int i = 7; i >= 0; --i)
    headerLength = (headerLength << 8) | static_cast<unsigned char>(original[i]);
  std::mt19937_64 rng(7);
  int rejected = 0;
  const int runs = 400;
  for (int i = 0; i < runs; ++i) {
    std::string bytes = original;
    auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
    int edits = 1 + static_cast<int>(pick(4));
    for (int e = 0; e < edits; ++e) {
      size_t at = pick(8 + headerLength); // mostly in the length and the header
      switch (pick(4)) {
      case 0:
        bytes[at] = static_cast<char>(pick(256));
        break;
      case 1:
        bytes.erase(at, 1 + pick(16));
        break;
      case 2:
        bytes.insert(at, std::string(1 + pick(4), "0123456789,[]{}\":-e"[pick(19)]));
        break;
      default:
        bytes.resize(pick(bytes.size()));
      }
    }
    std::string error = userErrorOf([&] {
      SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                             "mutant.safetensors");
    });
    rejected += !error.empty();
  }
  EXPECT_GT(rejected, runs / 2);
}

} // namespace
} // namespace gemma
