// Malformed input never crashes gemma-opt: valid IR files are mutated at random (bytes deleted,
// duplicated, flipped, inserted, truncated) and gemma-opt must exit 0 or 1, never by a signal, and
// within a time bound, on every mutant.
#include <chrono>
#include <csignal>
#include <fcntl.h>
#include <filesystem>
#include <fstream>
#include <gtest/gtest.h>
#include <random>
#include <sstream>
#include <sys/wait.h>
#include <thread>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;

struct RunResult {
  bool exited = false;
  int exitCode = -1;
  int signal = 0;
  bool timedOut = false;
};

RunResult runWithTimeout(const std::vector<std::string>& args, std::chrono::milliseconds limit) {
  pid_t pid = fork();
  if (pid == 0) {
    int devNull = open("/dev/null", O_WRONLY);
    dup2(devNull, STDOUT_FILENO);
    dup2(devNull, STDERR_FILENO);
    std::vector<char*> argv;
    for (const std::string& arg : args)
      argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  RunResult result;
  auto deadline = std::chrono::steady_clock::now() + limit;
  int status = 0;
  while (waitpid(pid, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      result.timedOut = true;
      return result;
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exitCode = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signal = WTERMSIG(status);
  }
  return result;
}

std::vector<std::string> seedFiles() {
  std::vector<std::string> texts;
  for (const char* dir : {GEMMAC_LIT_DIR, GEMMAC_EXAMPLES_DIR})
    for (const auto& entry : fs::recursive_directory_iterator(dir))
      if (entry.path().extension() == ".ir") {
        std::ifstream file(entry.path(), std::ios::binary);
        std::stringstream contents;
        contents << file.rdbuf();
        texts.push_back(contents.str());
      }
  return texts;
}

std::string mutate(std::string text, std::mt19937_64& rng) {
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  int mutations = 1 + static_cast<int>(pick(4));
  for (int m = 0; m < mutations && !text.empty(); ++m) {
    size_t at = pick(text.size());
    size_t length = 1 + pick(std::min<size_t>(40, text.size() - at));
    switch (pick(6)) {
    case 0: // delete a range
      text.erase(at, length);
      break;
    case 1: // duplicate a range
      text.insert(at, text.substr(at, length));
      break;
    case 2: // flip bits
      for (size_t i = at; i < at + length && i < text.size(); i += 1 + pick(8))
        text[i] = static_cast<char>(text[i] ^ (1 << pick(8)));
      break;
    case 3: { // insert junk bytes or tokens of the syntax
      static const char* tokens[] = {
          "%",     "@",     "[",      "]",    "{",    "}",        "(",  ")",
          ",",     ":",     "=",      "?",    "-",    "*",        "\"", "99999999999999999999",
          "1e400", "graph", "return", "loc(", "f32[", "\xff\xfe", "\n"};
      text.insert(at, pick(2) ? std::string(tokens[pick(23)])
                              : std::string(1, static_cast<char>(pick(256))));
      break;
    }
    case 4: // truncate
      text.resize(at);
      break;
    default: { // swap a number for an absurd one
      size_t digit = text.find_first_of("0123456789", at);
      if (digit != std::string::npos) {
        static const char* absurd[] = {"0",          "1099511627776", "-1",
                                       "4294967296", "65536",         "9223372036854775807"};
        text.replace(digit, 1, absurd[pick(6)]);
      }
    }
    }
  }
  return text;
}

TEST(GemmaOptFuzz, MutatedFilesExitCleanly) {
  std::vector<std::string> seeds = seedFiles();
  ASSERT_GE(seeds.size(), 5u);
  fs::path dir = fs::temp_directory_path() / ("gemma-opt-fuzz-" + std::to_string(getpid()));
  fs::create_directories(dir);
  std::mt19937_64 rng(20261128);
  const std::vector<std::vector<std::string>> passLists = {
      {"-O"},
      {"--canonicalize", "--cse"},
      {"--shape-inference", "--constant-fold", "--dce"},
      {"--split-input-file", "-O", "--print-loc"}};
  int accepted = 0, rejected = 0;
  const int runs = 1000;
  for (int i = 0; i < runs; ++i) {
    std::string mutant = mutate(seeds[i % seeds.size()], rng);
    fs::path path = dir / "mutant.ir";
    std::ofstream(path, std::ios::binary) << mutant;
    std::vector<std::string> args = {GEMMA_OPT_PATH, path.string()};
    const auto& passes = passLists[i % passLists.size()];
    args.insert(args.end(), passes.begin(), passes.end());
    RunResult result = runWithTimeout(args, std::chrono::seconds(10));
    if (!result.exited || (result.exitCode != 0 && result.exitCode != 1)) {
      fs::path kept = dir / ("failure-" + std::to_string(i) + ".ir");
      fs::copy_file(path, kept, fs::copy_options::overwrite_existing);
      FAIL() << "gemma-opt "
             << (result.timedOut ? "timed out"
                 : result.signal ? "died by signal " + std::to_string(result.signal)
                                 : "exited " + std::to_string(result.exitCode))
             << " on mutant " << i << ", kept at " << kept;
    }
    (result.exitCode == 0 ? accepted : rejected)++;
  }
  fs::remove_all(dir);
  // The mutants exercise both paths: some stay valid, most are rejected with an error.
  EXPECT_GT(accepted, 20);
  EXPECT_GT(rejected, 500);
  std::printf("gemma-opt fuzz: %d mutants, %d accepted, %d rejected with an error\n", runs,
              accepted, rejected);
}

} // namespace
