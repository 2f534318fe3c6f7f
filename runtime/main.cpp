// The compiled model's command line: a thin main over the C API (gemma_api.h). The compiler links
// it with the model's library and a one-line glue object that names the model
// (gemma_main_model). Errors print as `error: <what>` and exit 1.
#include "runtime/gemma_model.h"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <malloc.h>
#include <memory>
#include <sstream>
#include <string>
#include <sys/resource.h>
#include <vector>

extern "C" const gemma_model_desc* const gemma_main_model;

namespace {

struct Failure {
  std::string message;
};

std::string besideExecutable(const std::string& file) {
  std::error_code error;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", error);
  return error ? file : (self.parent_path() / file).string();
}

std::vector<int32_t> parseIds(const std::string& text) {
  std::vector<int32_t> ids;
  std::stringstream stream(text);
  std::string item;
  while (std::getline(stream, item, ',')) {
    size_t end = 0;
    long long id = -1;
    try {
      id = std::stoll(item, &end);
    } catch (const std::exception&) {
      end = 0;
    }
    if (end == 0 || end != item.size() || id < 0 || id > INT32_MAX)
      throw Failure{"--input-ids: '" + item + "' is not a token id"};
    ids.push_back(static_cast<int32_t>(id));
  }
  if (ids.empty())
    throw Failure{"--input-ids: no ids"};
  return ids;
}

// Streams the text as tokens arrive: whatever the decoded sequence adds to what is printed,
// holding back an unfinished UTF-8 character (decoded as U+FFFD until its last byte arrives).
struct TextStream {
  gemma_session* session;
  std::string printed;

  std::string decode(const int32_t* ids, int32_t count) {
    int64_t size = gemma_detokenize(session, ids, count, nullptr, 0);
    if (size < 0)
      throw Failure{gemma_error(session)};
    std::string text(static_cast<size_t>(size) + 1, '\0');
    gemma_detokenize(session, ids, count, text.data(), text.size());
    text.pop_back();
    return text;
  }
  void update(const int32_t* ids, int32_t count, bool final) {
    std::string text = decode(ids, count);
    static const std::string replacement = "\xEF\xBF\xBD";
    if (!final && text.size() >= 3 && text.compare(text.size() - 3, 3, replacement) == 0)
      return;
    size_t common = 0;
    while (common < text.size() && common < printed.size() && text[common] == printed[common])
      ++common;
    std::fwrite(text.data() + common, 1, text.size() - common, stdout);
    std::fflush(stdout);
    printed = text;
  }
};

struct Run {
  TextStream* stream = nullptr;
  std::ofstream* logits = nullptr;
};

int32_t onToken(void* user, const int32_t* ids, int32_t length) {
  auto* run = static_cast<Run*>(user);
  if (run->stream)
    run->stream->update(ids, length, false);
  return 0;
}

// Passed only with --dump-logits (a logits callback makes every row's logits be computed).
void onLogits(void* user, const float* rows, int64_t count, int64_t width) {
  static_cast<Run*>(user)->logits->write(
      reinterpret_cast<const char*>(rows),
      static_cast<std::streamsize>(count * width * sizeof(float)));
}

// --dump-logits' file, flushed and checked: a write error (a full disk) is an error, not exit 0.
int finishOutputs(std::ofstream& logits, const std::string& path) {
  if (logits.is_open()) {
    logits.close();
    if (!logits)
      throw Failure{"--dump-logits: cannot write '" + path + "'"};
  }
  return 0;
}

int run(int argc, char** argv) {
  const gemma_model_desc* model = gemma_main_model;
  CLI::App app{"A Gemma model compiled by gemmac"};
  std::string prompt, inputIds, weightsPath, tokenizerPath, logitsPath;
  int32_t maxLength = 0, maxNewTokens = 0, topK = -1, prefillTokens = 0;
  float temperature = -1, topP = -1;
  std::string seedText = "0";
  bool chat = false, printIds = false, bench = false, doSample = false;
  app.add_option("--prompt", prompt, "The text to continue (or classify)");
  app.add_option("--input-ids", inputIds, "Token ids instead of a prompt: 2,651,1234");
  app.add_option("--max-length", maxLength, "Tokens in all, prompt included (transformers')")
      ->check(CLI::PositiveNumber);
  app.add_option("--max-new-tokens", maxNewTokens, "Tokens to generate (wins over --max-length)")
      ->check(CLI::PositiveNumber);
  app.add_flag("--do-sample", doSample, "Sample (implied by --temperature, --top-k, --top-p)");
  app.add_option("--temperature", temperature, "Divide the logits by T (> 0) before sampling");
  app.add_option("--top-k", topK, "Sample among the K most likely (default 50, 0: all)")
      ->check(CLI::NonNegativeNumber);
  app.add_option("--top-p", topP, "Sample among the most likely with this much probability");
  app.add_option("--seed", seedText, "Random seed for sampling (0 to 2^64 - 1)");
  app.add_flag("--chat", chat, "Wrap the prompt in Gemma's chat template, stop at <end_of_turn>");
  app.add_flag("--ids", printIds, "Print the token ids instead of the text");
  app.add_option("--dump-logits", logitsPath,
                 "Write every forward call's output rows (float32, row-major) to FILE");
  app.add_flag("--bench", bench,
               "Ignore eos; print prefill and decode tokens/s and peak memory to stderr");
  app.add_option("--weights", weightsPath,
                 std::string("The weights file (default: ") + model->name +
                     ".weights beside this program)");
  app.add_option("--tokenizer", tokenizerPath,
                 "The sentencepiece model (default: tokenizer.model beside this program)");
  app.add_option("--prefill-tokens", prefillTokens,
                 "Prefill only N prompt tokens, then feed the rest one at a time (testing)")
      ->check(CLI::PositiveNumber);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error) == 0 ? 0 : 1;
  }
  // An empty --prompt is a prompt: transformers tokenizes '' to [<bos>] and generates from there.
  bool hasPrompt = app.count("--prompt") > 0;
  if (hasPrompt == (app.count("--input-ids") > 0))
    throw Failure{"give one of --prompt TEXT or --input-ids IDS"};

  if (weightsPath.empty())
    weightsPath = besideExecutable(std::string(model->name) + ".weights");
  bool needTokenizer = hasPrompt || !printIds;
  if (tokenizerPath.empty())
    tokenizerPath = besideExecutable("tokenizer.model");
  char error[1024];
  std::unique_ptr<gemma_session, void (*)(gemma_session*)> session(
      gemma_open(model, weightsPath.c_str(), needTokenizer ? tokenizerPath.c_str() : nullptr, error,
                 sizeof error),
      gemma_close);
  if (!session)
    throw Failure{error};
  gemma_session* s = session.get();
  auto check = [&](auto result) {
    if (result < 0)
      throw Failure{gemma_error(s)};
    return result;
  };

  std::vector<int32_t> ids;
  if (hasPrompt) {
    ids.resize(static_cast<size_t>(check(chat ? gemma_tokenize_chat(s, prompt.c_str(), nullptr, 0)
                                              : gemma_tokenize(s, prompt.c_str(), 1, nullptr, 0))));
    chat ? gemma_tokenize_chat(s, prompt.c_str(), ids.data(), int32_t(ids.size()))
         : gemma_tokenize(s, prompt.c_str(), 1, ids.data(), int32_t(ids.size()));
  } else {
    ids = parseIds(inputIds);
  }
  std::ofstream logits;
  if (!logitsPath.empty()) {
    logits.open(logitsPath, std::ios::binary);
    if (!logits)
      throw Failure{"--dump-logits: cannot write '" + logitsPath + "'"};
  }
  auto printIdList = [](const int32_t* list, size_t count) {
    for (size_t i = 0; i < count; ++i)
      std::printf(i ? " %d" : "%d", list[i]);
    std::printf("\n");
  };

  int64_t width = gemma_output_width(s);
  if (gemma_head_kind(s) != GEMMA_HEAD_CAUSAL_LM) {
    // One forward over the prompt: scores per label (or hidden states) to print.
    auto n = static_cast<int64_t>(ids.size());
    std::vector<int64_t> tokens(ids.begin(), ids.end()), mask(ids.size(), 1), positions;
    for (int64_t i = 0; i < n; ++i)
      positions.push_back(i);
    bool pooled = gemma_head_kind(s) == GEMMA_HEAD_SEQ_CLS;
    std::vector<float> out(static_cast<size_t>((pooled ? 1 : n) * width));
    check(gemma_forward(s, 1, n, 0, tokens.data(), mask.data(), positions.data(), out.data()));
    if (logits.is_open())
      logits.write(reinterpret_cast<const char*>(out.data()),
                   static_cast<std::streamsize>(out.size() * sizeof(float)));
    if (printIds)
      printIdList(ids.data(), ids.size());
    if (gemma_head_kind(s) == GEMMA_HEAD_MODEL) {
      std::printf("last_hidden_state [1, %lld, %lld]; last token:", static_cast<long long>(n),
                  static_cast<long long>(width));
      for (int64_t j = 0; j < std::min<int64_t>(width, 8); ++j)
        std::printf(" %.6g", out[static_cast<size_t>((n - 1) * width + j)]);
      std::printf("%s\n", width > 8 ? " ..." : "");
      return finishOutputs(logits, logitsPath);
    }
    for (int64_t row = 0; row < (pooled ? 1 : n); ++row) {
      if (!pooled)
        std::printf("token %lld (id %d):", static_cast<long long>(row), ids[size_t(row)]);
      for (int64_t label = 0; label < width; ++label) {
        float score = out[static_cast<size_t>(row * width + label)];
        if (pooled)
          std::printf("label %lld: %.6g\n", static_cast<long long>(label), score);
        else
          std::printf(" %.6g", score);
      }
      if (!pooled)
        std::printf("\n");
    }
    return finishOutputs(logits, logitsPath);
  }

  gemma_generation_config config;
  gemma_generation_config_default(s, &config);
  if (maxLength)
    config.max_length = maxLength;
  config.max_new_tokens = maxNewTokens;
  // Given values are checked as transformers does (NaN and infinities too: NaN fails every
  // comparison, so a range check alone would let it through to a silent greedy run).
  bool temperatureGiven = app.count("--temperature") > 0, topPGiven = app.count("--top-p") > 0;
  if (temperatureGiven && !(std::isfinite(temperature) && temperature > 0))
    throw Failure{"--temperature: '" + std::to_string(temperature) +
                  "' is not a strictly positive number (omit it for greedy decoding)"};
  if (topPGiven && !(topP >= 0 && topP <= 1))
    throw Failure{"--top-p: '" + std::to_string(topP) + "' is outside [0, 1]"};
  uint64_t seed = 0;
  auto [end, parsed] = std::from_chars(seedText.data(), seedText.data() + seedText.size(), seed);
  if (parsed != std::errc() || end != seedText.data() + seedText.size())
    throw Failure{"--seed: '" + seedText + "' is not a number from 0 to 2^64 - 1"};
  config.do_sample = doSample || temperatureGiven || topK >= 0 || topPGiven;
  if (temperatureGiven)
    config.temperature = temperature;
  if (topK >= 0)
    config.top_k = topK;
  if (topPGiven)
    config.top_p = topP;
  config.seed = seed;
  config.prefill_tokens = prefillTokens;
  if (chat) {
    int32_t endOfTurn = gemma_piece_id(s, "<end_of_turn>");
    if (endOfTurn >= 0 && config.num_stop_ids < GEMMA_MAX_STOP_IDS)
      config.stop_ids[config.num_stop_ids++] = endOfTurn;
  }
  if (bench)
    config.num_stop_ids = 0;

  TextStream stream{s, {}};
  Run sink{printIds ? nullptr : &stream, logits.is_open() ? &logits : nullptr};
  if (!printIds)
    stream.update(ids.data(), int32_t(ids.size()), false);
  // A logits callback makes every forward call compute every row's logits: only --dump-logits.
  gemma_generation_callbacks callbacks{onToken, sink.logits ? onLogits : nullptr, &sink};
  int64_t limit = std::max<int64_t>(gemma_max_seq_len(s), 1);
  std::vector<int32_t> output(static_cast<size_t>(limit) + ids.size());
  int32_t length = check(gemma_generate(s, ids.data(), int32_t(ids.size()), &config, output.data(),
                                        int32_t(output.size()), &callbacks));
  if (printIds) {
    printIdList(output.data(), size_t(length));
  } else {
    stream.update(output.data(), length, true);
    std::printf("\n");
  }
  if (bench) {
    gemma_generation_stats stats;
    gemma_last_stats(s, &stats);
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    auto rate = [](int64_t tokens, double seconds) { return seconds > 0 ? tokens / seconds : 0; };
    std::fprintf(stderr,
                 "prefill: %lld tokens in %.4f s, %.2f tokens/s\n"
                 "decode: %lld tokens in %.4f s, %.2f tokens/s\n"
                 "peak memory: %.1f MiB (planned %.1f MiB)\n",
                 static_cast<long long>(stats.prefill_tokens), stats.prefill_seconds,
                 rate(stats.prefill_tokens, stats.prefill_seconds),
                 static_cast<long long>(stats.decode_tokens), stats.decode_seconds,
                 rate(stats.decode_tokens, stats.decode_seconds), usage.ru_maxrss / 1024.0,
                 gemma_planned_bytes(s) / 1048576.0);
  }
  return finishOutputs(logits, logitsPath);
}

} // namespace

int main(int argc, char** argv) {
  // Every allocation of 256 KiB or more gets pages of its own, returned when freed. glibc's default
  // raises that threshold to the size of each large block freed, after which the kernels'
  // per-call temporaries (a prefill's gated activations, attention's scores) come from the
  // threads' heaps and stay resident: the planned memory must be the peak.
  mallopt(M_MMAP_THRESHOLD, 256 * 1024);
  try {
    int status = run(argc, argv);
    // The text or ids went to standard output: a write error (a full disk) is an error.
    if (std::fflush(stdout) != 0 || std::ferror(stdout))
      throw Failure{std::string("cannot write the output: ") + std::strerror(errno)};
    return status;
  } catch (const Failure& failure) {
    std::fprintf(stderr, "error: %s\n", failure.message.c_str());
  } catch (const std::exception& failure) {
    std::fprintf(stderr, "error: %s\n", failure.what());
  }
  return 1;
}
