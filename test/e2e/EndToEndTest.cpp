// The compiled programs (made by compile-fixtures.sh, a ctest fixture) against transformers:
// logits within 1e-4 x max|logit| (bf16: one bf16 step, as HFParityTest explains), greedy ids
// and decoded text equal to generate(), tokenization equal to the HF ids, classification scores,
// and prefill + decode through the KV cache equal to full recompute. Every fixture runs as
// compiled with -O and with every fusion disabled. The programs run as child processes: this
// process links neither sentencepiece nor the compiler.
#include "../unit/FixtureUtil.h"
#include "ProgramRun.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <gtest/gtest.h>
#include <sstream>
#include <sys/wait.h>

namespace gemma {
namespace {

using nlohmann::json;

// Row r of a reference batch without its left padding.
std::vector<int64_t> unpadded(const json& reference, size_t r) {
  std::vector<int64_t> ids;
  for (size_t i = 0; i < reference["input_ids"][r].size(); ++i)
    if (reference["attention_mask"][r][i].get<int>() == 1)
      ids.push_back(reference["input_ids"][r][i].get<int64_t>());
  return ids;
}

bool endsWith(const std::string& text, const std::string& suffix) {
  return text.size() >= suffix.size() &&
         text.compare(text.size() - suffix.size(), suffix.size(), suffix) == 0;
}

// The worst |compiled - reference| over the reference's max |value|, accumulated.
struct Worst {
  double error = 0, scale = 0;
  void add(double compiled, double expected) {
    error = std::max(error, std::fabs(compiled - expected));
    scale = std::max(scale, std::fabs(expected));
  }
  double relative() const { return scale > 0 ? error / scale : error; }
};

struct Variant {
  std::string fixture, directory;
};

void PrintTo(const Variant& variant, std::ostream* out) {
  *out << variant.directory;
}

class EndToEnd : public ::testing::TestWithParam<Variant> {
protected:
  void SetUp() override {
    reference_ = testing::loadHFReference(GetParam().fixture);
    program_ = std::string(GEMMAC_E2E_DIR) + "/" + GetParam().directory + "/" + GetParam().fixture;
    ASSERT_TRUE(std::filesystem::exists(program_)) << program_ << " was not compiled";
    dump_ = ::testing::TempDir() + "/" + GetParam().directory + "-" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name() + ".f32";
    std::replace(dump_.begin() + static_cast<long>(::testing::TempDir().size()), dump_.end(), '/',
                 '_');
  }
  bool causal() const {
    return endsWith(reference_["model_class"], "ForCausalLM") ||
           endsWith(reference_["model_class"], "ForConditionalGeneration");
  }
  bool model() const { return GetParam().directory.find("-model") != std::string::npos; }
  // bf16 and f16 round every op in transformers and once per kernel here: one step of the type
  // (HFParityTest explains); f32: 1e-4, as the issue asks.
  double tolerance() const {
    return reference_["dtype"] == "bfloat16"  ? 0x1p-7
           : reference_["dtype"] == "float16" ? 0x1p-10
                                              : 1e-4;
  }
  Output program(const std::string& flags, bool withErrors = false) {
    return run(program_ + " " + flags, withErrors);
  }

  json reference_;
  std::string program_, dump_;
};

TEST_P(EndToEnd, OutputsMatchTransformers) {
  const json& expected = reference_[model() ? "last_hidden_state" : "logits"];
  bool pooled = endsWith(reference_["model_class"], "ForSequenceClassification");
  int64_t width = expected["shape"].back().get<int64_t>();
  int64_t columns = pooled ? 1 : expected["shape"][1].get<int64_t>();
  Worst worst;
  for (size_t r = 0; r < reference_["input_ids"].size(); ++r) {
    std::vector<int64_t> ids = unpadded(reference_, r);
    Output out = program("--input-ids " + idList(ids) + " --dump-logits " + dump_ +
                             (causal() && !model() ? " --max-new-tokens 1" : ""),
                         true);
    ASSERT_EQ(out.status, 0) << out.text;
    std::vector<float> rows = readFloats(dump_);
    int64_t count = pooled ? 1 : static_cast<int64_t>(ids.size());
    ASSERT_EQ(static_cast<int64_t>(rows.size()), count * width);
    // The reference row is left-padded: its last `count` positions are the unpadded tokens.
    int64_t start = r * columns * width + (columns - count) * width;
    for (int64_t i = 0; i < count * width; ++i)
      worst.add(rows[static_cast<size_t>(i)],
                expected["data"][static_cast<size_t>(start + i)].get<double>());
  }
  std::printf("%s (%s): worst output error vs transformers %.3g x max|value| (max %.3g)\n",
              GetParam().fixture.c_str(), GetParam().directory.c_str(), worst.relative(),
              worst.scale);
  EXPECT_LE(worst.relative(), tolerance());
}

TEST_P(EndToEnd, TokenizationMatchesTransformers) {
  // The accents prompt (generate_single's) or, for the classifiers, the batch's first text; the
  // reference ids were made by GemmaTokenizer. --ids prints the prompt's ids on the first line
  // (a causal-lm program adds the one token it generated).
  const json& single = reference_["generate_single"];
  std::string text = single.is_null() ? "The quick brown fox jumps over the lazy dog."
                                      : "Café, naïve, résumé: déjà vu in São Paulo.";
  std::vector<int64_t> expected = single.is_null()
                                      ? unpadded(reference_, 0)
                                      : single["input_ids"][0].get<std::vector<int64_t>>();
  bool generates = causal() && !model();
  Output out = program(
      "--prompt " + quote(text) + " --ids" + (generates ? " --max-new-tokens 1" : ""), true);
  ASSERT_EQ(out.status, 0) << out.text;
  std::vector<int64_t> ids = parseIds(out.text.substr(0, out.text.find('\n')));
  ASSERT_EQ(ids.size(), expected.size() + (generates ? 1 : 0));
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.begin() + static_cast<long>(expected.size())),
            expected);
}

// --chat wraps the prompt in Gemma's chat template: the ids GemmaTokenizer gives the template.
TEST(ChatTemplate, PromptIdsMatchTransformers) {
  std::ifstream file(GEMMAC_FIXTURES_DIR "/tokenizer/reference.json");
  std::vector<int64_t> expected =
      json::parse(file)["prompts"]["chat"]["hf_ids"].get<std::vector<int64_t>>();
  Output out = run(std::string(GEMMAC_E2E_DIR) +
                       "/mqa_f32/mqa_f32 --chat --prompt Hello --ids --max-new-tokens 1",
                   true);
  ASSERT_EQ(out.status, 0) << out.text;
  std::vector<int64_t> ids = parseIds(out.text);
  ASSERT_EQ(ids.size(), expected.size() + 1);
  EXPECT_EQ(std::vector<int64_t>(ids.begin(), ids.end() - 1), expected);
}

// Generation and the KV cache: the causal-lm programs only.
class Generation : public EndToEnd {};

TEST_P(Generation, GreedyIdsAndTextMatchGenerate) {
  const json& single = reference_["generate_single"];
  Output out = program("--input-ids " + idList(single["input_ids"][0]) + " --max-length " +
                           std::to_string(single["max_length"].get<int>()) + " --ids",
                       true);
  ASSERT_EQ(out.status, 0) << out.text;
  EXPECT_EQ(parseIds(out.text), single["output_ids"][0].get<std::vector<int64_t>>());

  // Row 1 of the batch has no padding: generate() continued it to max_length 24.
  const json& batch = reference_["generate_batch"];
  out = program("--input-ids " + idList(unpadded(reference_, 1)) + " --max-length " +
                    std::to_string(batch["max_length"].get<int>()) + " --ids",
                true);
  ASSERT_EQ(out.status, 0) << out.text;
  EXPECT_EQ(parseIds(out.text), batch["output_ids"][1].get<std::vector<int64_t>>());

  // The README's example: the text, as tokenizer.decode(generate(...)[0]) prints it.
  const json& text = reference_["generate_text"];
  std::string prompt = " --prompt " + quote(text["prompt"]) + " --max-length " +
                       std::to_string(text["max_length"].get<int>());
  out = program(prompt);
  ASSERT_EQ(out.status, 0);
  EXPECT_EQ(out.text, text["decoded"].get<std::string>() + "\n");
  out = program(prompt + " --ids");
  EXPECT_EQ(parseIds(out.text), text["output_ids"].get<std::vector<int64_t>>());
}

TEST_P(Generation, DecodeThroughTheCacheEqualsRecompute) {
  // Row 1: prefill 5 tokens, then one token at a time; every row of logits must equal the full
  // sequence's (transformers' single forward), and the steps transformers' own cached steps.
  const json& decode = reference_["decode"];
  size_t row = decode["row"].get<size_t>();
  int64_t prefix = decode["prefix"].get<int64_t>();
  std::vector<int64_t> ids = unpadded(reference_, row);
  Output out = program("--input-ids " + idList(ids) + " --prefill-tokens " +
                           std::to_string(prefix) + " --max-new-tokens 1 --dump-logits " + dump_,
                       true);
  ASSERT_EQ(out.status, 0) << out.text;
  std::vector<float> rows = readFloats(dump_);
  const json& logits = reference_["logits"];
  int64_t columns = logits["shape"][1].get<int64_t>(), vocab = logits["shape"][2].get<int64_t>();
  auto n = static_cast<int64_t>(ids.size());
  ASSERT_EQ(static_cast<int64_t>(rows.size()), n * vocab);
  Worst full, steps;
  for (int64_t i = 0; i < n * vocab; ++i)
    full.add(rows[static_cast<size_t>(i)],
             logits["data"][static_cast<size_t>(int64_t(row) * columns * vocab + i)]);
  // step_logits [1, n - prefix + 1, vocab]: the prefill's last row, then each step's.
  const json& stepLogits = decode["step_logits"]["data"];
  for (int64_t s = 0; s <= n - prefix; ++s)
    for (int64_t v = 0; v < vocab; ++v)
      steps.add(rows[static_cast<size_t>((prefix - 1 + s) * vocab + v)],
                stepLogits[static_cast<size_t>(s * vocab + v)]);
  std::printf("%s (%s): prefill %lld + %lld decode steps vs full recompute %.3g, vs "
              "transformers' cached steps %.3g (x max|logit|)\n",
              GetParam().fixture.c_str(), GetParam().directory.c_str(),
              static_cast<long long>(prefix), static_cast<long long>(n - prefix), full.relative(),
              steps.relative());
  EXPECT_LE(full.relative(), tolerance());
  EXPECT_LE(steps.relative(), tolerance());
}

// A program's last-row-and-prompt logits on each unpadded row of a reference's batch, against the
// reference's (worst error), and how many of its greedy ids on the reference's prompt agree.
struct NarrowedRun {
  Worst worst;
  size_t agree = 0, generated = 0;
  std::vector<int64_t> ids, want;
};

NarrowedRun runAgainst(const std::string& program, const json& reference, const std::string& tag) {
  NarrowedRun result;
  std::string dump = ::testing::TempDir() + "/" + tag + ".f32";
  const json& expected = reference["logits"];
  int64_t columns = expected["shape"][1].get<int64_t>(),
          vocab = expected["shape"][2].get<int64_t>();
  for (size_t r = 0; r < reference["input_ids"].size(); ++r) {
    std::vector<int64_t> ids = unpadded(reference, r);
    Output out =
        run(program + " --input-ids " + idList(ids) + " --max-new-tokens 1 --dump-logits " + dump,
            true);
    EXPECT_EQ(out.status, 0) << out.text;
    std::vector<float> rows = readFloats(dump);
    auto count = static_cast<int64_t>(ids.size());
    EXPECT_EQ(static_cast<int64_t>(rows.size()), count * vocab);
    if (static_cast<int64_t>(rows.size()) != count * vocab)
      return result;
    int64_t start = static_cast<int64_t>(r) * columns * vocab + (columns - count) * vocab;
    for (int64_t i = 0; i < count * vocab; ++i)
      result.worst.add(rows[static_cast<size_t>(i)],
                       expected["data"][static_cast<size_t>(start + i)].get<double>());
  }
  const json& text = reference["generate_text"];
  Output out = run(program + " --prompt " + quote(text["prompt"]) + " --max-length " +
                       std::to_string(text["max_length"].get<int>()) + " --ids",
                   true);
  EXPECT_EQ(out.status, 0) << out.text;
  result.ids = parseIds(out.text);
  result.want = text["output_ids"].get<std::vector<int64_t>>();
  while (result.agree < result.ids.size() && result.agree < result.want.size() &&
         result.ids[result.agree] == result.want[result.agree])
    ++result.agree;
  result.generated = result.want.size();
  return result;
}

// f32 checkpoints compiled with --weights-dtype bf16 (matrices stored bf16, activations f32):
// logits within a bf16 step of transformers' f32 ones, and how many greedy ids agree.
class NarrowWeights : public ::testing::TestWithParam<std::string> {};

TEST_P(NarrowWeights, Bf16WeightsStayWithinABf16StepOfTransformers) {
  json reference = testing::loadHFReference(GetParam());
  std::string program = std::string(GEMMAC_E2E_DIR) + "/" + GetParam() + "-bf16w/" + GetParam();
  NarrowedRun bf16 = runAgainst(program, reference, GetParam() + "-bf16w");
  std::printf("%s (bf16 weights): worst logit error vs transformers f32 %.3g x max|logit|; "
              "greedy ids agree for %zu of %zu\n",
              GetParam().c_str(), bf16.worst.relative(), bf16.agree, bf16.generated);
  EXPECT_LE(bf16.worst.relative(), 0x1p-7);
}

// --weights-dtype q8_0 and q4_0 on gqa_h16_f32 (every matrix's rows are whole blocks): the
// program, decoding the blocks in registers with f32 products and sums (exact arithmetic), gives
// transformers' logits on the same blocks decoded to f32 (make_quantized_weights_refs.py) within
// 1e-4 x max|logit|, and its greedy ids; beside it, how far quantizing moved the logits from the
// f32 model's.
class QuantizedWeights : public ::testing::TestWithParam<std::string> {};

TEST_P(QuantizedWeights, ExactArithmeticEqualsTransformersOnTheDequantizedModel) {
  const std::string fixture = "gqa_h16_f32";
  std::string program =
      std::string(GEMMAC_E2E_DIR) + "/" + fixture + "-" + GetParam() + "w/" + fixture;
  json reference = testing::loadHFReference(fixture, "reference_" + GetParam() + ".json");
  NarrowedRun quantized = runAgainst(program, reference, fixture + "-" + GetParam());
  NarrowedRun f32 = runAgainst(program, testing::loadHFReference(fixture), fixture + "-f32");
  std::printf("%s (--weights-dtype %s): worst logit error vs transformers on the dequantized "
              "blocks %.3g x max|logit|, greedy ids agree for %zu of %zu; vs the f32 model "
              "%.3g x max|logit|, %zu of %zu ids\n",
              fixture.c_str(), GetParam().c_str(), quantized.worst.relative(), quantized.agree,
              quantized.generated, f32.worst.relative(), f32.agree, f32.generated);
  EXPECT_LE(quantized.worst.relative(), 1e-4);
  EXPECT_EQ(quantized.ids, quantized.want);
  // Quantizing moved the logits (the weights file holds blocks, not the f32 weights).
  EXPECT_GT(f32.worst.relative(), 1e-4);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, QuantizedWeights, ::testing::Values("q8_0", "q4_0"));

// The same blocks with --arithmetic fast (compile-fixtures.sh compiles them where the CPU has
// AVX512-VNNI). Its integer dot products compute every row: one row (decode, and a one-token
// prompt) in one row's dot product, a prompt's many rows in integer tiles, two kernels. So: the
// prompts' logits, and each row's first token's alone (transformers' logits at that position:
// attention is causal), are within the stated bound of transformers' on the dequantized blocks,
// 1e-2 x max|logit| (measured: prompts 2.94e-3 / 3.34e-3, first tokens 2.85e-3 / 2.94e-3 for
// q8_0 / q4_0), and not within exact arithmetic's; the greedy ids that agree are printed.
class FastArithmetic : public ::testing::TestWithParam<std::string> {};

TEST_P(FastArithmetic, WithinTheStatedBoundOfTransformersOnTheDequantizedModel) {
  const std::string fixture = "gqa_h16_f32";
  std::string dir = std::string(GEMMAC_E2E_DIR) + "/" + fixture + "-" + GetParam() + "w-fast";
  if (!std::filesystem::exists(dir) && !__builtin_cpu_supports("avx512vnni"))
    GTEST_SKIP() << "no AVX512-VNNI on this CPU: the fast arithmetic cannot run here";
  std::string program = dir + "/" + fixture;
  json reference = testing::loadHFReference(fixture, "reference_" + GetParam() + ".json");
  NarrowedRun prompts = runAgainst(program, reference, fixture + "-fast-" + GetParam());
  EXPECT_LE(prompts.worst.relative(), 1e-2);
  EXPECT_GT(prompts.worst.relative(), 1e-4); // the integer tiles, not the exact arithmetic
  const json& expected = reference["logits"];
  int64_t columns = expected["shape"][1].get<int64_t>(),
          vocab = expected["shape"][2].get<int64_t>();
  std::string dump = ::testing::TempDir() + "/" + fixture + "-fast-one-" + GetParam() + ".f32";
  Worst oneRow;
  for (size_t r = 0; r < reference["input_ids"].size(); ++r) {
    std::vector<int64_t> ids = unpadded(reference, r);
    Output out = run(program + " --input-ids " + std::to_string(ids[0]) +
                         " --max-new-tokens 1 --dump-logits " + dump,
                     true);
    ASSERT_EQ(out.status, 0) << out.text;
    std::vector<float> row = readFloats(dump);
    ASSERT_EQ(static_cast<int64_t>(row.size()), vocab);
    int64_t start =
        (static_cast<int64_t>(r) * columns + columns - static_cast<int64_t>(ids.size())) * vocab;
    for (int64_t i = 0; i < vocab; ++i)
      oneRow.add(row[static_cast<size_t>(i)],
                 expected["data"][static_cast<size_t>(start + i)].get<double>());
  }
  std::printf("%s (--weights-dtype %s --arithmetic fast): prompts' logits (integer tiles) %.3g, "
              "first tokens' (one row) %.3g x max|logit| from transformers on the dequantized "
              "blocks; greedy ids agree for %zu of %zu\n",
              fixture.c_str(), GetParam().c_str(), prompts.worst.relative(), oneRow.relative(),
              prompts.agree, prompts.generated);
  EXPECT_LE(oneRow.relative(), 1e-2);
  EXPECT_GT(oneRow.relative(), 1e-4); // it is not the exact arithmetic
}

INSTANTIATE_TEST_SUITE_P(Fixtures, FastArithmetic, ::testing::Values("q8_0", "q4_0"));

INSTANTIATE_TEST_SUITE_P(Fixtures, NarrowWeights,
                         ::testing::Values("mqa_f32", "mha_untied_f32", "gqa_exact_sharded_f32"));

// A C program built against OUT/mqa_f32.h and OUT/libmqa_f32.a gives generate()'s ids and text.
// A checkpoint with tokenizer.json and no tokenizer.model (compile-fixtures.sh puts the fixture
// tokenizer's tokenizer.json beside gemma3_mqa_f32's weights): the program's tokenizer, built from
// it, gives the ids transformers gives loading that tokenizer.json alone, and writes the text
// gemma3_mqa_f32 writes.
TEST(TokenizerJsonCheckpoint, IdsAndTextEqualTransformers) {
  std::string program =
      std::string(GEMMAC_E2E_DIR) + "/gemma3_tokenizer_json/gemma3_tokenizer_json";
  std::ifstream file(std::string(GEMMAC_FIXTURES_DIR) + "/tokenizer/tokenizer_json_reference.json");
  json reference = json::parse(file);
  int checked = 0;
  for (const json& sample : reference["texts"]) {
    Output out =
        run(program + " --prompt " + quote(sample["text"]) + " --ids --max-new-tokens 1", true);
    ASSERT_EQ(out.status, 0) << out.text;
    std::vector<int64_t> ids = parseIds(out.text.substr(0, out.text.find('\n')));
    ASSERT_FALSE(ids.empty());
    ids.pop_back(); // the token generated
    EXPECT_EQ(ids, sample["ids"].get<std::vector<int64_t>>()) << sample["text"];
    ++checked;
  }
  EXPECT_GE(checked, 20);
  const json text = testing::loadHFReference("gemma3_mqa_f32")["generate_text"];
  Output out = run(program + " --prompt " + quote(text["prompt"]) + " --max-length " +
                   std::to_string(text["max_length"].get<int>()));
  ASSERT_EQ(out.status, 0);
  EXPECT_EQ(out.text, text["decoded"].get<std::string>() + "\n");
}

// The tiny GGUF models of each architecture, compiled: transformers' greedy ids from the same file.
TEST(TinyGgufProgram, GreedyIdsEqualTransformers) {
  std::ifstream file(std::string(GEMMAC_FIXTURES_DIR) + "/gguf/tiny_reference.json");
  json reference = json::parse(file);
  for (const char* arch : {"gemma", "gemma2", "gemma3"}) {
    const json& tiny = reference[arch];
    std::string program = std::string(GEMMAC_E2E_DIR) + "/gguf-tiny_" + arch + "/tiny_" + arch;
    Output out =
        run(program + " --input-ids " + idList(tiny["input_ids"].get<std::vector<int64_t>>()) +
                " --max-length " + std::to_string(tiny["generated_ids"].size()) + " --ids",
            true);
    ASSERT_EQ(out.status, 0) << out.text;
    EXPECT_EQ(parseIds(out.text), tiny["generated_ids"].get<std::vector<int64_t>>()) << arch;
  }
}

TEST(CProgram, EmbedsTheStaticLibrary) {
  std::string out = std::string(GEMMAC_E2E_DIR) + "/mqa_f32",
              program = ::testing::TempDir() + "/embed_mqa_f32";
  Output build = run(std::string("cc -std=c11 -Wall -Wextra -Werror -I ") + out +
                         " -DMODEL_HEADER='\"mqa_f32.h\"' -DMODEL=mqa_f32_model " +
                         GEMMAC_E2E_SOURCE_DIR + "/embed.c " + out +
                         "/libmqa_f32.a -lsentencepiece -lstdc++ -lpthread -ldl -lm -o " + program,
                     true);
  ASSERT_EQ(build.status, 0) << build.text;
  const json text = testing::loadHFReference("mqa_f32")["generate_text"];
  Output result =
      run(program + " " + out + "/mqa_f32.weights " + out + "/tokenizer.model " +
              quote(text["prompt"]) + " " + std::to_string(text["max_length"].get<int>()),
          true);
  ASSERT_EQ(result.status, 0) << result.text;
  size_t newline = result.text.find('\n');
  EXPECT_EQ(parseIds(result.text.substr(0, newline)),
            text["output_ids"].get<std::vector<int64_t>>());
  EXPECT_EQ(result.text.substr(newline + 1), text["decoded"].get<std::string>() + "\n");
}

// ONNX exports (test/fixtures/onnx, made by make_onnx_fixtures.py and make_optimum_fixtures.py)
// compiled by gemmac: logits and
// greedy ids as onnxruntime computes them, and the same ids and text as the program compiled from
// the checkpoint folder the export was made from.
class OnnxExport : public ::testing::TestWithParam<std::string> {
protected:
  // The checkpoint the export was made from: "mqa_f32" for "mqa_f32_torchscript_past".
  std::string fixture() const {
    size_t exporter = std::min({GetParam().find("_torchscript"), GetParam().find("_dynamo"),
                                GetParam().find("_optimum"), GetParam().find("_genai")});
    return GetParam().substr(0, exporter);
  }
  std::string program() const {
    return std::string(GEMMAC_E2E_DIR) + "/onnx-" + GetParam() + "/" + GetParam();
  }
  json reference() const {
    std::ifstream file(std::string(GEMMAC_FIXTURES_DIR) + "/onnx/" + GetParam() +
                       "/reference.json");
    return json::parse(file);
  }
  double logitError(const std::string& flags) {
    json ref = reference();
    std::string dump = ::testing::TempDir() + "/onnx-" + GetParam() + ".f32";
    Output out = run(program() + " --input-ids " +
                         idList(ref["logits_input_ids"].get<std::vector<int64_t>>()) +
                         " --max-new-tokens 1 --dump-logits " + dump + flags,
                     true);
    EXPECT_EQ(out.status, 0) << out.text;
    std::vector<float> rows = readFloats(dump);
    const json& expected = ref["logits"]["data"];
    EXPECT_EQ(rows.size(), expected.size());
    Worst worst;
    for (size_t i = 0; i < std::min(rows.size(), expected.size()); ++i)
      worst.add(rows[i], expected[i].get<double>());
    return worst.relative();
  }
};

TEST_P(OnnxExport, LogitsMatchOnnxRuntime) {
  double worst = logitError("");
  std::printf("%s: worst logit error vs onnxruntime %.3g x max|logit|\n", GetParam().c_str(),
              worst);
  EXPECT_LE(worst, 1e-4);
  if (reference()["with_past"].get<bool>()) {
    // past and present are the in-place KV cache: 3 tokens prefilled, the rest one at a time.
    double cached = logitError(" --prefill-tokens 3");
    std::printf("%s: prefill 3 + cached steps vs onnxruntime's full forward %.3g x max|logit|\n",
                GetParam().c_str(), cached);
    EXPECT_LE(cached, 1e-4);
  }
}

TEST_P(OnnxExport, GreedyIdsMatchOnnxRuntimeAndTheCheckpointProgram) {
  json ref = reference();
  const json& text = ref["generate_text"];
  std::string flags = " --prompt " + quote(text["prompt"]) + " --max-length " +
                      std::to_string(text["max_length"].get<int>());
  Output onnxIds = run(program() + flags + " --ids", true);
  ASSERT_EQ(onnxIds.status, 0) << onnxIds.text;
  EXPECT_EQ(parseIds(onnxIds.text), text["output_ids"].get<std::vector<int64_t>>());
  std::string checkpoint = std::string(GEMMAC_E2E_DIR) + "/" + fixture() + "/" + fixture();
  EXPECT_EQ(run(checkpoint + flags + " --ids").text, onnxIds.text);
  EXPECT_EQ(run(checkpoint + flags).text, run(program() + flags).text);
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, OnnxExport,
    ::testing::Values("mqa_f32_torchscript", "gqa_exact_sharded_f32_torchscript",
                      "mqa_f32_torchscript_past", "mqa_f32_torchscript_external", "mqa_f32_dynamo",
                      "gemma3_mqa_f32_torchscript", "mqa_f32_optimum_past",
                      "gqa_exact_sharded_f32_optimum_past", "gqa_h16_f32_genai"));

// Each fixture as compile-fixtures.sh compiled it: with -O, and with every fusion disabled.
std::vector<Variant> variants(bool causalOnly) {
  std::vector<Variant> all;
  for (const char* fixture :
       {"mqa_f32", "mha_untied_f32", "gqa_exact_sharded_f32", "mqa_bf16", "mqa_f16", "seq_cls_f32",
        "token_cls_f32", "gemma2_gqa_f32", "gemma3_mqa_f32", "gemma3_mqa_bf16"}) {
    if (causalOnly && std::string(fixture).find("cls") != std::string::npos)
      continue;
    all.push_back({fixture, fixture});
    all.push_back({fixture, std::string(fixture) + "-unfused"});
  }
  // Compiled with -O only (compile-fixtures.sh).
  for (const char* fixture :
       {"attention_bias_f32", "gemma2_mha_f32", "gemma2_seq_cls_f32", "gemma2_token_cls_f32",
        "gemma3_linear_rope_f32", "gemma3_seq_cls_f32", "gemma3_multimodal_f32"}) {
    if (causalOnly && std::string(fixture).find("cls") != std::string::npos)
      continue;
    all.push_back({fixture, fixture});
  }
  if (!causalOnly)
    all.push_back({"mqa_f32", "mqa_f32-model"}); // compiled with --head model
  return all;
}

std::string variantName(const ::testing::TestParamInfo<Variant>& info) {
  std::string name = info.param.directory;
  std::replace(name.begin(), name.end(), '-', '_');
  return name;
}

INSTANTIATE_TEST_SUITE_P(Fixtures, EndToEnd, ::testing::ValuesIn(variants(false)), variantName);
INSTANTIATE_TEST_SUITE_P(Fixtures, Generation, ::testing::ValuesIn(variants(true)), variantName);

} // namespace
} // namespace gemma
