#include "backend/Link.h"

#include "ir/Diagnostics.h"
#include "ir/ModelRoles.h"

#include <cctype>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <spawn.h>
#include <sstream>
#include <sys/wait.h>

extern char** environ;

namespace gemma {

namespace {

namespace fs = std::filesystem;

// $CC, $CXX or $AR as make runs them: split at spaces, so "ccache cc" is a command and its
// argument (quoting is not interpreted).
std::vector<std::string> toolFromEnvironment(const char* variable, const char* fallback) {
  const char* value = std::getenv(variable);
  std::istringstream words(value && *value ? value : fallback);
  std::vector<std::string> command;
  for (std::string word; words >> word;)
    command.push_back(word);
  if (command.empty())
    command.push_back(fallback);
  return command;
}

// A tool's command line: the tool (a command and its own arguments) then these arguments.
std::vector<std::string> with(std::vector<std::string> tool, std::vector<std::string> arguments) {
  tool.insert(tool.end(), arguments.begin(), arguments.end());
  return tool;
}

// Runs a tool (no shell: paths need no quoting); its own messages go to our stderr.
void runTool(const std::vector<std::string>& command, const std::string& what) {
  std::vector<char*> argv;
  std::string line;
  for (const std::string& word : command) {
    argv.push_back(const_cast<char*>(word.c_str()));
    line += (line.empty() ? "" : " ") + word;
  }
  argv.push_back(nullptr);
  pid_t child;
  if (posix_spawnp(&child, argv[0], nullptr, nullptr, argv.data(), environ) != 0)
    throw UserError(what + ": cannot run '" + command[0] + "' (is it installed?)");
  int status = 0;
  while (waitpid(child, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
    throw UserError(what + " failed: " + line);
}

void writeText(const fs::path& path, const std::string& text) {
  std::ofstream out(path);
  if (!(out << text))
    throw UserError(Location::named(path.string()), "cannot be written");
}

std::string readText(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  if (!(text << in.rdbuf()))
    throw UserError(Location::named(path.string()),
                    "cannot be read (gemmac's runtime is not where it was built)");
  return text.str();
}

std::string cString(const std::string& text) {
  std::string quoted = "\"";
  for (char c : text) {
    if (c == '"' || c == '\\')
      quoted += '\\';
    quoted += c;
  }
  return quoted + "\"";
}

int headCode(Head head) {
  switch (head) {
  case Head::CausalLM:
    return 0;
  case Head::Model:
    return 1;
  case Head::SequenceClassification:
    return 2;
  case Head::TokenClassification:
    return 3;
  }
  return 0;
}

// A fact the planning passes record on every planned graph.
int64_t graphInteger(const Graph& graph, const char* name) {
  if (!graph.attrs.count(name))
    throw InternalError(std::string("the planned graph has no '") + name + "' attribute");
  return graph.integerAttr(name);
}

// The model's description (runtime/gemma_model.h) as C: what the plan fixed, in one constant.
std::string describeModel(const Graph& graph, const ProgramFacts& facts, const std::string& model,
                          const std::string& entry) {
  std::ostringstream c;
  c << "/* Written by gemmac for model " << facts.name << ". */\n"
    << "#include \"runtime/gemma_model.h\"\n\n"
    << "gemma_entry " << entry << ";\n\n";
  c << "static const int32_t eos_ids[] = {";
  for (int64_t id : facts.generation.eosTokenIds)
    c << id << ", ";
  c << "-1};\n";
  c << "static const int32_t input_roles[] = {";
  for (size_t i = 0; i < graph.inputs.size(); ++i) {
    std::optional<InputRole> role = inputRole(graph, i);
    if (!role || *role == InputRole::Unknown)
      throw UserError("graph input '" + graph.inputs[i]->name +
                      "' is not one the runtime knows how to feed");
    c << static_cast<int64_t>(*role) << ", ";
  }
  c << "-1};\n\n";
  const TensorType& output = graph.outputs.at(0).value->type;
  const char* outputType = output.elementType == ElementType::F32    ? "GEMMA_OUTPUT_F32"
                           : output.elementType == ElementType::BF16 ? "GEMMA_OUTPUT_BF16"
                           : output.elementType == ElementType::F16  ? "GEMMA_OUTPUT_F16"
                                                                     : nullptr;
  if (!outputType)
    throw UserError("the model's output is " + std::string(elementTypeName(output.elementType)) +
                    "; the runtime reads float32, bfloat16 or float16");
  c << "const gemma_model_desc " << model << " = {\n"
    << "    .abi = GEMMA_MODEL_ABI,\n"
    << "    .name = " << cString(facts.name) << ",\n"
    << "    .model_hash = " << cString(facts.modelHash) << ",\n"
    << "    .forward = " << entry << ",\n"
    << "    .weights_file_bytes = " << facts.weightsFileBytes << ",\n"
    << "    .arena_bytes = " << graphInteger(graph, "arena_bytes") << ",\n"
    << "    .kv_cache_bytes = "
    << (graph.attrs.count("kv_cache_bytes") ? graphInteger(graph, "kv_cache_bytes") : 0) << ",\n"
    << "    .max_batch = " << graphInteger(graph, "max_batch") << ",\n"
    << "    .max_seq_len = " << graphInteger(graph, "max_seq_len") << ",\n"
    << "    .head = " << headCode(facts.head) << ",\n"
    << "    .vocab_size = " << facts.vocabSize << ",\n"
    << "    .output_width = " << output.dims.back().staticValue() << ",\n"
    << "    .output_type = " << outputType << ",\n"
    << "    .pad_id = " << facts.padId.value_or(-1) << ",\n"
    << "    .bos_id = " << facts.bosId.value_or(-1) << ",\n"
    << "    .num_eos = " << facts.generation.eosTokenIds.size() << ",\n"
    << "    .eos_ids = eos_ids,\n"
    << "    .default_max_length = " << facts.generation.maxLength << ",\n"
    << "    .num_inputs = " << graph.inputs.size() << ",\n"
    << "    .input_roles = input_roles,\n"
    << "    .num_outputs = " << graph.outputs.size() << ",\n"
    << "};\n";
  return c.str();
}

std::string describeHeader(const Graph& graph, const ProgramFacts& facts, const std::string& model,
                           const std::string& api) {
  std::ostringstream h;
  // Not GEMMA_MODEL_H (runtime/gemma_model.h's, which the API text below includes).
  std::string guard = "GEMMAC_OUT_" + model;
  for (char& ch : guard)
    ch = static_cast<char>(std::toupper(static_cast<unsigned char>(ch)));
  h << "/* " << facts.name << ": a Gemma model (" << headName(facts.head)
    << ") compiled by gemmac, for batches of up to " << graphInteger(graph, "max_batch")
    << " and sequences of up to " << graphInteger(graph, "max_seq_len")
    << " tokens. Weights: " << facts.name << ".weights (model " << facts.modelHash << ").\n"
    << " * Open it with gemma_open(&" << model << ", ...); link with lib" << facts.name
    << ".a -lsentencepiece -lstdc++ -lpthread -ldl -lm. */\n"
    << "#ifndef " << guard << "_H\n#define " << guard << "_H\n\n"
    << api << "\n"
    << "#ifdef __cplusplus\nextern \"C\" {\n#endif\n\n"
    << "extern const gemma_model_desc " << model << ";\n\n"
    << "#ifdef __cplusplus\n}\n#endif\n\n#endif\n";
  return h.str();
}

} // namespace

std::string programModelSymbol(const std::string& name) {
  std::string prefix;
  for (char c : name)
    prefix += std::isalnum(static_cast<unsigned char>(c)) ? c : '_';
  if (prefix.empty() || std::isdigit(static_cast<unsigned char>(prefix[0])))
    prefix = "m_" + prefix;
  if (prefix + "_model" == "gemma_main_model") // the executable's glue (runtime/main.cpp)
    throw UserError("--name: '" + name + "' would clash with the runtime's gemma_main_model");
  return prefix + "_model";
}

std::string programEntrySymbol(const std::string& name) {
  return programModelSymbol(name) + "_forward";
}

LinkedProgram linkProgram(const Graph& graph, const ProgramFacts& facts, const KernelSet& kernels,
                          const std::string& entryObject, const std::string& buildDir,
                          const std::string& outputDir) {
  std::string model = programModelSymbol(facts.name), entry = programEntrySymbol(facts.name);
  fs::path build(buildDir), out(outputDir);
  std::vector<std::string> cc = toolFromEnvironment("CC", "cc"),
                           cxx = toolFromEnvironment("CXX", "c++"),
                           ar = toolFromEnvironment("AR", "ar");
  fs::path runtimeSource = GEMMAC_RUNTIME_INCLUDE;

  writeText(build / "model.c", describeModel(graph, facts, model, entry));
  // -Werror: the entry point is declared with the runtime's gemma_entry type, and any mismatch
  // (a model ABI change made on one side only) must stop the build, not call it wrongly.
  runTool(with(cc, {"-c", "-O2", "-fPIC", "-Werror", "-I", runtimeSource.string(),
                    (build / "model.c").string(), "-o", (build / "model.o").string()}),
          "compiling the model description");
  writeText(build / "main_model.c",
            "#include \"runtime/gemma_model.h\"\nextern const gemma_model_desc " + model +
                ";\nconst gemma_model_desc* const gemma_main_model = &" + model + ";\n");
  runTool(with(cc, {"-c", "-O2", "-fPIC", "-I", runtimeSource.string(),
                    (build / "main_model.c").string(), "-o", (build / "main_model.o").string()}),
          "compiling the program's glue");

  LinkedProgram program;
  program.header = (out / (facts.name + ".h")).string();
  writeText(program.header, describeHeader(graph, facts, model,
                                           readText(runtimeSource / "runtime" / "gemma_api.h")));

  // The library holds everything a C program needs but sentencepiece: the runtime's objects are
  // copied in from gemmac's own build.
  fs::path runtimeObjects = build / "runtime";
  fs::remove_all(runtimeObjects);
  fs::create_directories(runtimeObjects);
  runTool(with(ar, {"x", "--output", runtimeObjects.string(), GEMMAC_RUNTIME_LIBRARY}),
          "unpacking gemmac's runtime");
  program.library = (out / ("lib" + facts.name + ".a")).string();
  fs::remove(program.library);
  std::vector<std::string> archive =
      with(ar, {"rcs", program.library, entryObject, (build / "model.o").string()});
  for (const KernelGroup& group : kernels.groups)
    archive.push_back(group.objectPath);
  archive.push_back(kernels.runtimeObjectPath);
  for (const auto& entry : fs::directory_iterator(runtimeObjects))
    archive.push_back(entry.path().string());
  runTool(archive, "archiving lib" + facts.name + ".a");

  program.executable = (out / facts.name).string();
  runTool(with(cxx, {"-o", program.executable, (build / "main_model.o").string(),
                     GEMMAC_RUNTIME_MAIN_LIBRARY, program.library, "-lsentencepiece", "-lpthread",
                     "-ldl", "-lm"}),
          "linking " + program.executable);
  return program;
}

} // namespace gemma
