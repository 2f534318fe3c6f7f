// gemma-opt: reads a text IR file (or stdin), verifies it, runs the named passes in the order they
// are given, and prints the result. For lit tests and for research on passes:
//   gemma-opt model.ir --canonicalize --cse --dce --print-after-all
// Errors print as `file:line:col: error: message` and exit 1; internal errors exit 2.

#include "ir/DotPrinter.h"
#include "ir/Parser.h"
#include "ir/Printer.h"
#include "ir/Verifier.h"
#include "passes/Pass.h"

#include <CLI/CLI.hpp>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

namespace {

using namespace gemma;

struct Chunk {
  std::string text;
  int firstLine;
};

// Splits on lines that are exactly `// -----`, remembering where each chunk starts.
std::vector<Chunk> splitInput(const std::string& text, bool split) {
  if (!split)
    return {{text, 1}};
  std::vector<Chunk> chunks{{"", 1}};
  std::istringstream lines(text);
  std::string line;
  int lineNumber = 0;
  while (std::getline(lines, line)) {
    ++lineNumber;
    if (line.rfind("// -----", 0) == 0 && line.find_first_not_of("/- \r") == std::string::npos) {
      chunks.push_back({"", lineNumber + 1});
      continue;
    }
    chunks.back().text += line + "\n";
  }
  return chunks;
}

std::string readInput(const std::string& path) {
  if (path != "-")
    return readFileOrThrow(path);
  std::ostringstream contents;
  contents << std::cin.rdbuf();
  return contents.str();
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"gemma-opt: run passes over a text IR file and print the result"};
  std::string inputPath = "-";
  std::string outputPath = "-";
  bool splitInputFile = false, printAfterAll = false, timePasses = false, printLocations = false;
  bool noVerifyEach = false;
  std::vector<std::string> disabledPasses;
  std::string emit = "ir";
  PassOptions passOptions;
  app.add_option("input", inputPath, "Text IR file ('-' or nothing: standard input)");
  app.add_option("-o,--output", outputPath, "Where to write the result ('-': standard output)");
  app.add_flag("--split-input-file", splitInputFile,
               "Treat each '// -----'-separated part of the input as its own graph");
  app.add_flag("--print-after-all", printAfterAll, "Print the IR after each pass (to stderr)");
  app.add_flag("--time-passes", timePasses, "Report the time taken by each pass (to stderr)");
  app.add_flag("--print-loc", printLocations, "Print each op's location");
  app.add_flag("--no-verify-each", noVerifyEach, "Do not verify the graph after each pass");
  app.add_option("--disable-pass", disabledPasses, "Leave this pass out of -O (repeatable)");
  app.add_option("--max-batch", passOptions.maxBatch, "Largest batch the plans allow (default 1)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
  app.add_option("--max-seq-len", passOptions.maxSeqLen,
                 "Longest sequence (past + new tokens) the plans allow (default 256)")
      ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
  std::string weightsDtype = "checkpoint";
  app.add_option("--weights-dtype", weightsDtype,
                 "narrow-weights: store the matrices as bf16, f16, or q8_0, q4_0 or q4_k blocks "
                 "(default: leave them)")
      ->check(CLI::IsMember({"checkpoint", "bf16", "f16", "q8_0", "q4_0", "q4_k"}));
  std::string arithmetic = "exact";
  app.add_option("--arithmetic", arithmetic,
                 "quantize-activations: exact (default: mark nothing) or fast (int8 activations "
                 "for Q8_0/Q4_0-weight matmuls and gated MLPs)")
      ->check(CLI::IsMember({"exact", "fast"}));
  app.add_option("--emit", emit, "What to print: ir (text IR) or dot (Graphviz, fused ops filled)")
      ->check(CLI::IsMember({"ir", "dot"}));
  CLI::Option* defaultPipeline =
      app.add_flag("-O")
          ->description("Run the default pipeline: shape-inference, canonicalize, constant-fold, "
                        "canonicalize, cse, dce, fuse-rmsnorm, fuse-rotary, fuse-attention, "
                        "fuse-mlp, cse, dce")
          ->group("Passes")
          ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  std::map<CLI::Option*, std::string> passFlags;
  for (const PassInfo& info : allPasses()) {
    CLI::Option* option = app.add_flag("--" + std::string(info.flag))
                              ->description(std::string(info.summary))
                              ->group("Passes")
                              ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
    passFlags[option] = std::string(info.flag);
  }
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error);
    return code == 0 ? 0 : 1;
  }

  PassManagerOptions options;
  options.printAfterAll = printAfterAll;
  options.timePasses = timePasses;
  options.verifyEach = !noVerifyEach;
  options.printOptions.printLocations = printLocations;
  options.passOptions = passOptions;
  if (weightsDtype != "checkpoint")
    options.passOptions.weightsType = *parseElementType(weightsDtype);
  if (arithmetic == "fast")
    options.passOptions.arithmetic = Arithmetic::Fast;

  return runReportingErrors([&] {
    std::string text = readInput(inputPath);
    std::ofstream outputFile;
    if (outputPath != "-") {
      outputFile.open(outputPath);
      if (!outputFile)
        throw UserError("cannot write '" + outputPath + "': " + std::strerror(errno));
    }
    std::ostream& out = outputPath == "-" ? std::cout : outputFile;
    std::string fileName = inputPath == "-" ? "<stdin>" : inputPath;
    bool failed = false;
    auto chunks = splitInput(text, splitInputFile);
    for (size_t i = 0; i < chunks.size(); ++i) {
      if (i)
        out << "// -----\n";
      try {
        auto graph = parseGraph(chunks[i].text, fileName, chunks[i].firstLine);
        verifyGraph(*graph);
        PassManager passes(options);
        for (CLI::Option* option : app.parse_order()) {
          if (option == defaultPipeline)
            passes.addDefaultPipeline(disabledPasses);
          else if (passFlags.count(option))
            passes.add(passFlags[option]);
        }
        passes.run(*graph);
        if (emit == "dot")
          printGraphAsDot(*graph, out);
        else
          printGraph(*graph, out, options.printOptions);
      } catch (const UserError& error) {
        std::cerr << error.formatted() << "\n";
        failed = true;
      }
    }
    out.flush();
    if (!out)
      throw UserError(Location::named(outputPath == "-" ? "<stdout>" : outputPath),
                      "cannot be written");
    return failed ? 1 : 0;
  });
}
