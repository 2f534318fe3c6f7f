#include "ir/Verifier.h"
#include "passes/Pass.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>

namespace gemma {

const std::vector<PassInfo>& allPasses() {
  static const std::vector<PassInfo> table = {
#define GEMMA_PASS(Name, flag, summary) {flag, summary, &create##Name##Pass},
#include "passes/Passes.def"
  };
  return table;
}

const PassInfo* lookupPass(std::string_view flag) {
  for (const PassInfo& info : allPasses())
    if (info.flag == flag)
      return &info;
  return nullptr;
}

void PassManager::add(std::string_view flag) {
  const PassInfo* info = lookupPass(flag);
  if (!info)
    throw UserError("unknown pass '" + std::string(flag) + "'");
  add(info->create());
}

void PassManager::addDefaultPipeline(const std::vector<std::string>& disabled) {
  for (const std::string& name : disabled)
    if (!lookupPass(name))
      throw UserError("--disable-pass: '" + name + "' is not a pass (gemma-opt --help lists them)");
  auto stage = [&](const char* name) {
    if (std::find(disabled.begin(), disabled.end(), name) == disabled.end())
      add(name);
  };
  // Straight-line: make types precise, simplify, fold what became constant, share what is
  // computed twice (so a norm's input is one value), fuse Gemma's blocks, then share and drop
  // what the fusions left.
  stage("shape-inference");
  stage("canonicalize");
  stage("constant-fold");
  stage("canonicalize");
  stage("cse");
  stage("dce");
  stage("fuse-rmsnorm");
  stage("fuse-rotary");
  stage("fuse-attention");
  stage("fuse-mlp");
  stage("fuse-softcap");
  stage("cse");
  stage("dce");
}

void PassManager::addPlanningPipeline(const std::vector<std::string>& disabled) {
  for (const char* name : {"plan-kv-cache", "fold-weight-transposes", "narrow-weights",
                           "quantize-activations", "plan-memory"})
    if (std::find(disabled.begin(), disabled.end(), name) == disabled.end())
      add(name);
}

void PassManager::run(Graph& graph) {
  std::ostream& log = options_.log ? *options_.log : std::cerr;
  using Clock = std::chrono::steady_clock;
  std::vector<std::pair<std::string, double>> timings;
  double total = 0;
  for (const auto& pass : passes_) {
    auto start = Clock::now();
    pass->setOptions(options_.passOptions);
    pass->run(graph);
    double seconds = std::chrono::duration<double>(Clock::now() - start).count();
    timings.emplace_back(std::string(pass->name()), seconds);
    total += seconds;
    if (options_.verifyEach) {
      try {
        verifyGraph(graph);
      } catch (const UserError& error) {
        throw InternalError("the graph does not verify after pass '" + std::string(pass->name()) +
                            "': " + error.formatted());
      }
    }
    if (options_.printAfterAll) {
      log << "// ----- IR after " << pass->name() << " -----\n";
      printGraph(graph, log, options_.printOptions);
    }
  }
  if (options_.timePasses) {
    log << "===-------------------------------------------------------------------------===\n"
        << "                          Pass execution timing report\n"
        << "===-------------------------------------------------------------------------===\n";
    char line[160];
    for (const auto& [name, seconds] : timings) {
      snprintf(line, sizeof line, "  %10.6f s (%5.1f%%)  %s\n", seconds,
               total > 0 ? 100.0 * seconds / total : 0.0, name.c_str());
      log << line;
    }
    snprintf(line, sizeof line, "  %10.6f s (100.0%%)  total\n", total);
    log << line;
  }
}

} // namespace gemma
