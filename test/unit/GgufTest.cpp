// The GGUF reader: every block type decoded value for value as the gguf Python package decodes
// it (test/fixtures/gguf/block_types.gguf, made by make_gguf_refs.py), metadata of every value
// type read back, and malformed files, each refused with an error that says what is wrong. The
// GGUF frontend: tiny Gemma 1/2/3 files written as llama.cpp's converter writes them, imported and
// run by the interpreter, against transformers' logits from the same files.
#include "formats/Gguf.h"

#include "formats/SentencePieceModel.h"
#include "frontend/GgufImporter.h"
#include "ir/Diagnostics.h"
#include "ir/Interpreter.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>
#include <sstream>

namespace gemma {
namespace {

namespace fs = std::filesystem;
const fs::path kFixtures = GEMMAC_FIXTURES_DIR;

TEST(Gguf, EveryBlockTypeDecodesAsTheGgufPackage) {
  auto file = GgufFile::open((kFixtures / "gguf" / "block_types.gguf").string());
  int checked = 0;
  for (const char* type : {"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q2_K",
                           "Q3_K", "Q4_K", "Q5_K", "Q6_K"}) {
    SCOPED_TRACE(type);
    const GgufTensor* tensor = file->tensor(type);
    const GgufTensor* expected = file->tensor(std::string(type) + ".expected");
    ASSERT_TRUE(tensor && expected);
    EXPECT_EQ(ggmlTypeName(tensor->type), type);
    ASSERT_EQ(expected->type, uint32_t(GgmlType::F32));
    ASSERT_EQ(tensor->dims, expected->dims);
    std::vector<float> decoded = dequantizeTensor(*tensor, file->path());
    ASSERT_EQ(decoded.size(), size_t(expected->elements()));
    std::vector<float> reference(decoded.size());
    std::memcpy(reference.data(), expected->data, reference.size() * 4);
    int64_t different = 0;
    for (size_t i = 0; i < decoded.size(); ++i)
      different += std::memcmp(&decoded[i], &reference[i], 4) != 0;
    EXPECT_EQ(different, 0) << "of " << decoded.size() << " values; first: " << decoded[0] << " vs "
                            << reference[0];
    ++checked;
  }
  EXPECT_EQ(checked, 13);
}

// --weights-dtype q8_0|q4_0|q4_k: f32 rows (random at several scales, zeros, a constant row, an
// outlier, one sign, f16-subnormal and near-overflow scales) quantized to the bytes llama.cpp's
// quantizer (ggml_quantize_chunk, test/fixtures/make_quantize_refs.py) writes for them.
TEST(Gguf, QuantizedBlocksEqualLlamaCppsQuantizer) {
  auto file = GgufFile::open((kFixtures / "gguf" / "quantize_refs.gguf").string());
  int checked = 0;
  for (const GgufTensor& rows : file->tensors()) {
    if (rows.type != uint32_t(GgmlType::F32))
      continue;
    std::vector<float> values(static_cast<size_t>(rows.elements()));
    std::memcpy(values.data(), rows.data, values.size() * 4);
    for (const char* type : {"q8_0", "q4_0", "q4_k"}) {
      SCOPED_TRACE(rows.name + "." + type);
      const GgufTensor* reference = file->tensor(rows.name + "." + type);
      ASSERT_TRUE(reference);
      ASSERT_TRUE(quantizes(reference->type));
      std::vector<uint8_t> blocks(reference->bytes);
      ASSERT_TRUE(quantizeBlocks(reference->type, values.data(), rows.elements(), blocks.data()));
      int64_t different = 0;
      for (size_t i = 0; i < blocks.size(); ++i)
        different += blocks[i] != reference->data[i];
      EXPECT_EQ(different, 0) << "of " << blocks.size() << " bytes";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 12 * 3);
}

// Values a block cannot hold: not finite, or a scale past f16's range.
TEST(Gguf, QuantizingRefusesWhatABlockCannotHold) {
  for (GgmlType type : {GgmlType::Q8_0, GgmlType::Q4_0, GgmlType::Q4_K}) {
    std::vector<float> values(256, 0.5f);
    std::vector<uint8_t> blocks(256 * 2);
    EXPECT_TRUE(quantizeBlocks(uint32_t(type), values.data(), 256, blocks.data()));
    values[7] = std::nanf("");
    EXPECT_FALSE(quantizeBlocks(uint32_t(type), values.data(), 256, blocks.data()));
    values[7] = INFINITY;
    EXPECT_FALSE(quantizeBlocks(uint32_t(type), values.data(), 256, blocks.data()));
    values[7] = 1e30f;
    EXPECT_FALSE(quantizeBlocks(uint32_t(type), values.data(), 256, blocks.data()));
  }
}

// A GGUF image written field by field, for the malformed-file tests.
class Image {
public:
  Image& u32(uint32_t v) { return raw(&v, 4); }
  Image& u64(uint64_t v) { return raw(&v, 8); }
  Image& str(const std::string& s) {
    u64(s.size());
    bytes_ += s;
    return *this;
  }
  Image& raw(const void* p, size_t n) {
    bytes_.append(static_cast<const char*>(p), n);
    return *this;
  }
  Image& pad(size_t alignment) {
    while (bytes_.size() % alignment)
      bytes_ += '\0';
    return *this;
  }
  const std::string& bytes() const { return bytes_; }

private:
  std::string bytes_;
};

std::unique_ptr<GgufFile> parse(const std::string& bytes) {
  return GgufFile::parse(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size(), "bad.gguf");
}

std::string errorOf(const std::string& bytes) {
  try {
    parse(bytes);
  } catch (const UserError& error) {
    return error.what();
  }
  return "(read without error)";
}

// A valid file: metadata of several types (an array of arrays among them), and two f32 tensors.
Image validHeader(uint64_t tensors = 2) {
  Image image;
  image.raw("GGUF", 4).u32(3).u64(tensors).u64(4);
  image.str("general.architecture").u32(8).str("gemma3");
  image.str("general.alignment").u32(4).u32(32);
  image.str("x.flag").u32(7);
  uint8_t yes = 1;
  image.raw(&yes, 1);
  image.str("x.nested").u32(9).u32(9).u64(2); // [[1, 2], []] of i32
  image.u32(5).u64(2).u32(1).u32(2);
  image.u32(5).u64(0);
  return image;
}

std::string validFile() {
  Image image = validHeader();
  image.str("a").u32(1).u64(8).u32(0).u64(0);         // f32[8] at 0
  image.str("b").u32(2).u64(4).u64(2).u32(0).u64(32); // f32[2][4] at 32
  image.pad(32);
  float values[16];
  for (int i = 0; i < 16; ++i)
    values[i] = float(i);
  image.raw(values, sizeof values);
  return image.bytes();
}

TEST(Gguf, ReadsAValidFile) {
  const std::string bytes = validFile(); // the file's tensors point into it
  auto file = parse(bytes);
  EXPECT_EQ(file->version(), 3u);
  EXPECT_EQ(file->string("general.architecture"), "gemma3");
  EXPECT_EQ(file->boolean("x.flag"), true);
  const GgufValue* nested = file->find("x.nested");
  ASSERT_TRUE(nested);
  ASSERT_EQ(nested->items.size(), 2u);
  EXPECT_EQ(nested->items[0].items[1].integer, 2);
  EXPECT_TRUE(nested->items[1].items.empty());
  const GgufTensor* b = file->tensor("b");
  ASSERT_TRUE(b);
  EXPECT_EQ(b->rowMajorShape(), (std::vector<int64_t>{2, 4}));
  EXPECT_EQ(dequantizeTensor(*b, "bad.gguf")[3], 11.0f);
  EXPECT_THROW(file->integer("general.architecture"), UserError); // a string, not a number
}

TEST(Gguf, EveryTruncationIsRefused) {
  std::string bytes = validFile();
  for (size_t size = 0; size < bytes.size(); ++size)
    EXPECT_THROW(parse(bytes.substr(0, size)), UserError) << "truncated to " << size;
}

TEST(Gguf, MalformedFilesAreRefusedSayingWhy) {
  std::string good = validFile();
  auto patched = [&](size_t at, const void* value, size_t n) {
    std::string bytes = good;
    std::memcpy(bytes.data() + at, value, n);
    return bytes;
  };
  uint32_t two = 2;
  EXPECT_NE(errorOf("GGML" + good.substr(4)).find("not a GGUF file"), std::string::npos);
  EXPECT_NE(errorOf(patched(4, &two, 4)).find("version 2"), std::string::npos);
  uint64_t huge = uint64_t(1) << 60;
  EXPECT_NE(errorOf(patched(8, &huge, 8)).find("tensors, more than"), std::string::npos);
  EXPECT_NE(errorOf(patched(16, &huge, 8)).find("metadata entries, more than"), std::string::npos);

  auto withMetadata = [](const std::function<void(Image&)>& write) {
    Image image;
    image.raw("GGUF", 4).u32(3).u64(0).u64(1);
    write(image);
    return image.bytes();
  };
  EXPECT_NE(errorOf(withMetadata([](Image& i) {
              i.str("k").u32(13).u32(0);
            })).find("unknown value type 13"),
            std::string::npos);
  EXPECT_NE(errorOf(withMetadata([](Image& i) {
              uint8_t b = 2;
              i.str("k").u32(7).raw(&b, 1);
            })).find("neither 0 nor 1"),
            std::string::npos);
  EXPECT_NE(errorOf(withMetadata([](Image& i) {
              i.str("k").u32(8).u64(uint64_t(1) << 40);
            })).find("past the end of the file"),
            std::string::npos);
  EXPECT_NE(errorOf(withMetadata([](Image& i) {
              i.str("k").u32(9).u32(4).u64(1000000);
            })).find("cannot fit"),
            std::string::npos);
  EXPECT_NE(errorOf(withMetadata([](Image& i) {
              i.str("k").u32(9).u32(99).u64(0);
            })).find("unknown array item type"),
            std::string::npos);
  EXPECT_NE(errorOf(withMetadata([](Image& i) {
              i.str("k").u32(9); // an array of arrays of arrays ...
              for (int depth = 0; depth < 10; ++depth)
                i.u32(9).u64(1);
            })).find("nested deeper"),
            std::string::npos);
  EXPECT_NE(errorOf(withMetadata([](Image& i) {
              i.str("general.alignment").u32(4).u32(24);
            })).find("not a power of two"),
            std::string::npos);
  EXPECT_NE(errorOf(withMetadata([](Image& i) {
              i.str("general.alignment").u32(10).u64(32);
            })).find("not a u32"),
            std::string::npos);
  EXPECT_NE(errorOf(withMetadata([](Image& i) { i.str("").u32(4).u32(0); })).find("empty key"),
            std::string::npos);
  {
    Image twice;
    twice.raw("GGUF", 4).u32(3).u64(0).u64(2).str("k").u32(4).u32(0).str("k").u32(4).u32(0);
    EXPECT_NE(errorOf(twice.bytes()).find("appears twice"), std::string::npos);
  }

  auto withTensor = [](const std::function<void(Image&)>& write, size_t dataBytes = 64) {
    Image image = validHeader(1);
    write(image);
    image.pad(32);
    std::string zeros(dataBytes, '\0');
    image.raw(zeros.data(), zeros.size());
    return image.bytes();
  };
  EXPECT_NE(errorOf(withTensor([](Image& i) { i.str("t").u32(5); })).find("5 dimensions"),
            std::string::npos);
  EXPECT_NE(errorOf(withTensor([](Image& i) { i.str("t").u32(1).u64(0); })).find("dimension 0"),
            std::string::npos);
  EXPECT_NE(errorOf(withTensor([](Image& i) {
              i.str("t").u32(2).u64(1u << 30).u64(1u << 30);
            })).find("not a tensor size"),
            std::string::npos);
  EXPECT_NE(errorOf(withTensor([](Image& i) {
              i.str("t").u32(1).u64(256).u32(17).u64(0);
            })).find("IQ2_XS, which gemmac does not read"),
            std::string::npos);
  EXPECT_NE(errorOf(withTensor([](Image& i) {
              i.str("t").u32(1).u64(48).u32(8).u64(0);
            })).find("not a whole number"),
            std::string::npos);
  EXPECT_NE(errorOf(withTensor([](Image& i) {
              i.str("t").u32(1).u64(4).u32(0).u64(8);
            })).find("not a multiple of the 32-byte alignment"),
            std::string::npos);
  EXPECT_NE(errorOf(withTensor([](Image& i) {
              i.str("t").u32(1).u64(32).u32(0).u64(0);
            })).find("runs past the end of the file"),
            std::string::npos);
  {
    Image image = validHeader(2);
    image.str("a").u32(1).u64(16).u32(0).u64(0);
    image.str("b").u32(1).u64(16).u32(0).u64(32); // a's 64 bytes overlap b
    image.pad(32);
    std::string zeros(128, '\0');
    image.raw(zeros.data(), zeros.size());
    EXPECT_NE(errorOf(image.bytes()).find("overlap"), std::string::npos);
  }
  {
    Image image = validHeader(2);
    image.str("a").u32(1).u64(4).u32(0).u64(0);
    image.str("a").u32(1).u64(4).u32(0).u64(32);
    image.pad(32);
    std::string zeros(64, '\0');
    image.raw(zeros.data(), zeros.size());
    EXPECT_NE(errorOf(image.bytes()).find("appears twice"), std::string::npos);
  }
}

class TinyGguf : public ::testing::TestWithParam<std::string> {};

TEST_P(TinyGguf, LogitsMatchTransformersFromTheSameFile) {
  std::ifstream file(kFixtures / "gguf" / "tiny_reference.json");
  const nlohmann::json reference = nlohmann::json::parse(file)[GetParam()];
  ImportedModel model =
      importGgufModel((kFixtures / "gguf" / ("tiny_" + GetParam() + ".gguf")).string());
  std::vector<double> ids = reference["input_ids"].get<std::vector<double>>();
  auto seq = static_cast<int64_t>(ids.size());
  std::vector<double> positions(ids.size()), ones(ids.size(), 1.0);
  for (int64_t i = 0; i < seq; ++i)
    positions[i] = static_cast<double>(i);
  std::vector<Tensor> inputs = {Tensor(ElementType::I64, {1, seq}, ids),
                                Tensor(ElementType::I64, {1, seq}, ones),
                                Tensor(ElementType::I64, {1, seq}, positions)};
  Tensor empty =
      Tensor::zeros(ElementType::F32, {1, model.config.numKVHeads, 0, model.config.headDim});
  for (int64_t i = 0; i < 2 * model.config.numLayers; ++i)
    inputs.push_back(empty);
  auto weights = [&](const std::string& name, const TensorType&) {
    return model.weights.load(name);
  };
  Tensor logits = interpret(*model.graph, inputs, weights)[0];
  ASSERT_EQ(logits.shape, (std::vector<int64_t>{1, seq, model.config.vocabSize}));
  double worst = 0, scale = 0;
  for (int64_t t = 0; t < seq; ++t)
    for (int64_t v = 0; v < model.config.vocabSize; ++v) {
      double expected = reference["logits"][t][v].get<double>();
      worst = std::max(worst, std::fabs(logits.data[t * model.config.vocabSize + v] - expected));
      scale = std::max(scale, std::fabs(expected));
    }
  std::printf("tiny %s GGUF: max |error| / max|logit| = %.3g\n", GetParam().c_str(), worst / scale);
  EXPECT_LE(worst / scale, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Architectures, TinyGguf, ::testing::Values("gemma", "gemma2", "gemma3"));

TEST(Gguf, OpenRefusesWhatIsNotARegularFile) {
  EXPECT_THROW(GgufFile::open("/dev/zero"), UserError);
  EXPECT_THROW(GgufFile::open((kFixtures / "gguf").string()), UserError);
  EXPECT_THROW(GgufFile::open((kFixtures / "gguf" / "no-such.gguf").string()), UserError);
}

// The ModelProto bytes: what sentencepiece would read back (checked in the runtime's tests);
// here, that the encoding is protobuf's (field 1 pieces, each piece's text, score and type).
TEST(SentencePieceModel, SerializesPiecesAsProtobuf) {
  SentencePieceModelSpec spec;
  spec.pieces = {{"<unk>", 0, SentencePieceModelSpec::PieceType::Unknown},
                 {"a", -1, SentencePieceModelSpec::PieceType::Normal}};
  spec.unkId = 0;
  std::string bytes = serializeSentencePieceModel(spec);
  // pieces[0]: tag 0x0a, length, then piece (0x0a, 5, "<unk>"), score (0x15, 4 bytes), type
  // (0x18, 2).
  ASSERT_GT(bytes.size(), 16u);
  EXPECT_EQ(uint8_t(bytes[0]), 0x0a);
  EXPECT_EQ(bytes.substr(2, 7), std::string("\x0a\x05<unk>", 7));
  EXPECT_EQ(uint8_t(bytes[9]), 0x15);
  EXPECT_EQ(bytes.substr(14, 2), std::string("\x18\x02", 2));
}

TEST(SentencePieceModel, MalformedTokenizerJsonIsRefused) {
  for (const char* text :
       {"", "[]", R"({"model": {"type": "Unigram"}})", R"({"model": {"type": "BPE", "vocab": []}})",
        R"({"model": {"type": "BPE", "vocab": {"a": 5}}})",
        R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 0}}})",
        R"({"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}})",
        R"({"model": {"type": "BPE", "vocab": {"<unk>": 0}, "merges": [3]}})",
        R"({"model": {"type": 7}})", R"({"model": {"type": "BPE", "vocab": {"a": 0}}})"}) {
    SCOPED_TRACE(text);
    EXPECT_THROW(sentencePieceFromTokenizerJson(text, "tokenizer.json"), UserError);
  }
}

} // namespace
} // namespace gemma
