// Malformed config.json, safetensors files, GGUF files and shard indexes never crash their readers:
// the fixtures (the committed seed corpus) are mutated at random (bytes flipped, deleted,
// duplicated, truncated) and every mutant must be read or refused with a UserError, nothing else.
// Runs in the sanitized build too, so out-of-bounds reads show there.
#include "Mutate.h"
#include "formats/GemmaConfig.h"
#include "formats/Gguf.h"
#include "formats/Safetensors.h"

#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <random>
#include <sstream>

namespace gemma {
namespace {

namespace fs = std::filesystem;

std::string readBytes(const fs::path& path) {
  std::ifstream file(path, std::ios::binary);
  std::stringstream bytes;
  bytes << file.rdbuf();
  return bytes.str();
}

const fs::path kFixtures = GEMMAC_FIXTURES_DIR;

TEST(FuzzFormats, MutatedConfigsNeverCrash) {
  std::vector<std::string> seeds;
  for (const char* fixture : {"mqa_f32", "seq_cls_f32", "gqa_exact_sharded_f32"})
    seeds.push_back(readBytes(kFixtures / "hf" / fixture / "config.json"));
  std::mt19937_64 rng(2026);
  int read = 0, refused = 0;
  for (int round = 0; round < 3000; ++round) {
    try {
      parseGemmaConfig(testing::mutateBytes(seeds[rng() % seeds.size()], rng, 4096), "config.json");
      ++read;
    } catch (const UserError&) {
      ++refused;
    }
  }
  std::printf("mutated config.json: %d read, %d refused with an error, none crashed\n", read,
              refused);
  EXPECT_GT(refused, 1000);
}

TEST(FuzzFormats, MutatedSafetensorsNeverCrash) {
  std::string seed = readBytes(kFixtures / "hf" / "mqa_f32" / "model.safetensors");
  ASSERT_GT(seed.size(), 1000u);
  std::mt19937_64 rng(2027);
  int read = 0, refused = 0;
  for (int round = 0; round < 3000; ++round) {
    // Mostly the length and the JSON header; sometimes anywhere.
    std::string bytes = testing::mutateBytes(seed, rng, rng() % 4 ? 4096 : seed.size());
    try {
      SafetensorsFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                             "model.safetensors");
      ++read;
    } catch (const UserError&) {
      ++refused;
    }
  }
  std::printf("mutated safetensors: %d read, %d refused with an error, none crashed\n", read,
              refused);
  EXPECT_GT(refused, 1000);
}

TEST(FuzzFormats, MutatedGgufNeverCrash) {
  std::string seed = readBytes(kFixtures / "gguf" / "block_types.gguf");
  ASSERT_GT(seed.size(), 10000u);
  std::mt19937_64 rng(2029);
  int read = 0, refused = 0;
  for (int round = 0; round < 2000; ++round) {
    // Mostly the header and tensor infos; sometimes anywhere. What is read is decoded too.
    std::string bytes = testing::mutateBytes(seed, rng, rng() % 4 ? 2048 : seed.size());
    try {
      auto file = GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(),
                                  "fuzz.gguf");
      for (const GgufTensor& tensor : file->tensors())
        dequantizeTensor(tensor, "fuzz.gguf");
      ++read;
    } catch (const UserError&) {
      ++refused;
    }
  }
  std::printf("mutated GGUF: %d read, %d refused with an error, none crashed\n", read, refused);
  EXPECT_GT(refused, 500);
}

TEST(FuzzFormats, MutatedShardIndexesNeverCrash) {
  fs::path folder = fs::path(::testing::TempDir()) / "fuzz-index";
  fs::remove_all(folder);
  fs::copy(kFixtures / "hf" / "gqa_exact_sharded_f32", folder);
  std::string seed = readBytes(folder / "model.safetensors.index.json");
  std::mt19937_64 rng(2028);
  int read = 0, refused = 0;
  for (int round = 0; round < 500; ++round) {
    std::ofstream(folder / "model.safetensors.index.json", std::ios::binary | std::ios::trunc)
        << testing::mutateBytes(seed, rng, seed.size());
    try {
      WeightStore::openFolder(folder.string());
      ++read;
    } catch (const UserError&) {
      ++refused;
    }
  }
  std::printf("mutated shard indexes: %d read, %d refused with an error, none crashed\n", read,
              refused);
  EXPECT_GT(refused, 100);
  fs::remove_all(folder);
}

} // namespace
} // namespace gemma
