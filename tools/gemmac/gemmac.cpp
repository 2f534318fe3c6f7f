// gemmac: the compiler driver.
//   gemmac inspect MODEL [--head H] [--tensors]    config, parameters, tensors, graph op counts
// (MODEL: a checkpoint folder, a .gguf file, or an ONNX model)
//   gemmac import FOLDER [--head H] [-o FILE]      the model as text IR
//   gemmac compile FOLDER -o OUT [--emit STAGE]    the model as a native program
// inspect, import and compile share the pipeline's flags (--max-batch, --max-seq-len,
// --weights-dtype, --disable-pass, --print-after-all, --time-passes) and run it one way
// (runPipeline).
// Errors print as `error: <where>: <what>` and exit 1; internal errors exit 2.

#include "backend/Link.h"
#include "backend/WeightsFile.h"
#include "backend/halide/KernelSet.h"
#include "backend/llvm/EntryPoint.h"
#include "formats/ModelFiles.h"
#include "frontend/ImportedModel.h"
#include "frontend/OnnxImporter.h"
#include "ir/Printer.h"
#include "passes/MemoryPlanPicture.h"
#include "passes/Pass.h"
#include "runtime/gemma_api.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <set>
#include <sstream>
#include <unistd.h>

namespace {

using namespace gemma;

std::string withCommas(int64_t n) {
  std::string digits = std::to_string(n), out;
  for (size_t i = 0; i < digits.size(); ++i) {
    if (i && (digits.size() - i) % 3 == 0)
      out += ',';
    out += digits[i];
  }
  return out;
}

std::string attentionKind(const GemmaConfig& c) {
  if (c.numKVHeads == 1)
    return "MQA";
  return c.numKVHeads == c.numHeads ? "MHA" : "GQA";
}

// What the compiler's pass pipeline is told, from the flags every subcommand shares.
struct PipelineFlags {
  PassOptions bounds;                // --max-batch, --max-seq-len, --weights-dtype
  std::vector<std::string> disabled; // --disable-pass
  bool printAfterAll = false, timePasses = false;
};

// The pipeline, as every subcommand runs it: -O (the default pipeline less the disabled passes)
// when `optimize`, then the KV-cache and arena planning when `plan`, verifying after each pass.
// The config's attention softcap must be in the graph: an ONNX export through SDPA drops it
// (torch's scaled_dot_product_attention has no softcap) and would answer wrong, silently.
void checkSoftcapsKept(const Graph& graph, const GemmaConfig& config) {
  if (!config.attnLogitSoftcap)
    return;
  for (const auto& op : graph.ops) {
    if (op->kind != OpKind::Attention)
      continue;
    const double* softcap = op->attr<double>("softcap");
    if (!softcap ||
        std::fabs(*softcap - *config.attnLogitSoftcap) > 1e-6 * *config.attnLogitSoftcap)
      throw UserError(op->loc, "this attention has no logit softcap, but config.json sets "
                               "attn_logit_softcapping = " +
                                   formatFloat(*config.attnLogitSoftcap) +
                                   ": the model was exported without it (an SDPA export drops "
                                   "it); export it with attn_implementation=\"eager\"");
  }
}

void runPipeline(Graph& graph, const PipelineFlags& flags, bool optimize, bool plan,
                 const ImportedModel& model) {
  PassManagerOptions options;
  options.passOptions = flags.bounds;
  for (const auto& [name, view] : model.weights.tensors())
    if (isBlockQuantized(view->elementType))
      options.passOptions.checkpointBlockTypes[name] = view->elementType;
  options.printAfterAll = flags.printAfterAll;
  options.timePasses = flags.timePasses;
  PassManager passes(options);
  if (optimize)
    passes.addDefaultPipeline(flags.disabled);
  if (plan)
    passes.addPlanningPipeline();
  passes.run(graph);
  if (optimize)
    checkSoftcapsKept(graph, model.config);
}

void printInspection(const ImportedModel& model, bool listTensors, std::ostream& out) {
  const GemmaConfig& c = model.config;
  for (const std::string& line : model.sourceFacts)
    out << line << "\n";
  out << "model: " << familyName(c.family) << " (" << c.modelType << "), head "
      << headName(model.head);
  if (!c.architectures.empty())
    out << " (architectures: " << c.architectures.front() << ")";
  out << "\n";
  out << "  vocab " << c.vocabSize << ", hidden " << c.hiddenSize << ", intermediate "
      << c.intermediateSize << ", layers " << c.numLayers << "\n";
  out << "  heads " << c.numHeads << ", kv heads " << c.numKVHeads << " (" << attentionKind(c)
      << "), head_dim " << c.headDim
      << (c.numHeads * c.headDim != c.hiddenSize ? " (N*H != D)" : "") << "\n";
  auto ropeText = [](const RopeParameters& rope) {
    return formatFloat(rope.theta) +
           (rope.linearFactor != 1.0 ? " (linear scaling x" + formatFloat(rope.linearFactor) + ")"
                                     : std::string());
  };
  out << "  rms_norm_eps " << formatFloat(c.rmsNormEps) << ", rope_theta " << ropeText(c.ropeFull)
      << ", max_position_embeddings " << c.maxPositionEmbeddings << "\n";
  if (c.family != Family::Gemma1) {
    int64_t sliding = std::count(c.layerTypes.begin(), c.layerTypes.end(), LayerType::Sliding);
    out << "  layers: " << c.numLayers - sliding << " full attention, " << sliding
        << " sliding (window " << (c.slidingWindow ? std::to_string(*c.slidingWindow) : "none")
        << ", rope_theta " << ropeText(c.ropeSliding) << "):";
    for (LayerType type : c.layerTypes)
      out << (type == LayerType::Sliding ? " S" : " F");
    out << "\n";
    out << "  attention scale query_pre_attn_scalar^-0.5 = " << formatFloat(c.attentionScale())
        << ", softcaps: attention "
        << (c.attnLogitSoftcap ? formatFloat(*c.attnLogitSoftcap) : "none") << ", final "
        << (c.finalLogitSoftcap ? formatFloat(*c.finalLogitSoftcap) : "none")
        << (c.queryKeyNorm ? ", QK-norm" : "") << "\n";
  }
  if (c.attentionBias)
    out << "  attention_bias: q/k/v/o projections have biases\n";
  if (c.multimodal)
    out << "  multimodal checkpoint: its language model only (images are not supported; "
        << model.visionTensors << " vision tensors not compiled)\n";
  out << "  activation " << activationName(c.activation) << ": " << c.activationNote << "\n";
  out << "  tie_word_embeddings " << (c.tieWordEmbeddings ? "true" : "false") << ", pad "
      << (c.padTokenId ? std::to_string(*c.padTokenId) : "none") << ", bos "
      << (c.bosTokenId ? std::to_string(*c.bosTokenId) : "none") << ", eos";
  for (int64_t id : c.eosTokenIds)
    out << " " << id;
  if (model.head == Head::SequenceClassification || model.head == Head::TokenClassification)
    out << ", labels " << c.numLabels;
  out << "\n";

  std::map<ElementType, std::pair<int64_t, int64_t>> byType; // tensors, parameters
  int64_t parameters = 0, bytes = 0;
  for (const auto& [name, view] : model.weights.tensors()) {
    int64_t count = 1;
    for (int64_t d : view->shape)
      count *= d;
    parameters += count;
    bytes += static_cast<int64_t>(view->bytes);
    byType[view->elementType].first += 1;
    byType[view->elementType].second += count;
  }
  out << "weights: " << model.weights.tensors().size() << " tensors in "
      << model.weights.files().size() << " file(s), " << withCommas(parameters) << " parameters, "
      << withCommas(bytes) << " bytes; activations in " << elementTypeName(model.activationType)
      << "\n";
  for (const auto& [type, counts] : byType)
    out << "  " << elementTypeName(type) << ": " << counts.first << " tensors, "
        << withCommas(counts.second) << " parameters\n";
  for (const std::string& name : model.ignoredTensors)
    out << "  ignored (another head's): " << name << "\n";
  if (listTensors)
    for (const auto& [name, view] : model.weights.tensors())
      out << "  " << name << " " << elementTypeName(view->elementType) << view->shapeString()
          << "\n";

  std::map<std::string_view, int> opCounts;
  for (const auto& op : model.graph->ops)
    ++opCounts[op->mnemonic()];
  out << "graph @" << model.graph->name << ": " << model.graph->inputs.size() << " inputs, "
      << model.graph->ops.size() << " ops, " << model.graph->outputs.size() << " outputs\n  ops:";
  for (const auto& [mnemonic, count] : opCounts)
    out << " " << mnemonic << "=" << count;
  out << "\n";
}

// -O and the planning passes on a copy of the graph, then what the compiled program will hold.
void printMemoryPlan(const ImportedModel& model, const PipelineFlags& flags,
                     const std::string& picturePath, bool listBuffers, std::ostream& out) {
  auto graph = model.graph->clone();
  runPipeline(*graph, flags, true, true, model);
  const PassOptions& bounds = flags.bounds;
  std::map<std::string_view, int> fused;
  for (const auto& op : graph->ops)
    if (OpCategory category = opCategory(op->kind);
        category == OpCategory::Fused || category == OpCategory::Cache)
      ++fused[op->mnemonic()];
  out << "after -O: " << graph->ops.size() << " ops;";
  for (const auto& [mnemonic, count] : fused)
    out << " " << mnemonic << "=" << count;
  out << "\n";
  // Which dot products are exact (f32) and which integer (quantize-activations' marks).
  int integer = 0, blocks = 0;
  for (const auto& op : graph->ops)
    if ((op->kind == OpKind::MatMul || op->kind == OpKind::GatedMlp) && op->operands.size() > 1 &&
        isBlockQuantized(op->operands[1]->type.elementType)) {
      ++blocks;
      integer += op->hasAttr("arithmetic");
    }
  out << "arithmetic: "
      << (bounds.arithmetic == Arithmetic::Fast ? "fast (int8 activations, VNNI dot products)"
                                                : "exact (f32)")
      << "; " << integer << " of " << blocks
      << " block-weight matmuls and gated MLPs in int8, the rest exact\n";
  const GemmaConfig& c = model.config;
  int64_t weights = graph->integerAttr("weights_bytes"),
          cache = graph->integerAttr("kv_cache_bytes"), arena = graph->integerAttr("arena_bytes");
  out << "memory plan (max batch " << bounds.maxBatch << ", max sequence " << bounds.maxSeqLen
      << " tokens):\n";
  out << "  weights      " << withCommas(weights) << " bytes (read into memory, read-only)\n";
  // Regions by rows: the whole context for full-attention layers, a ring of the window for
  // sliding ones (two regions a layer, K and V).
  std::map<int64_t, int64_t> regionsByRows;
  for (const auto& op : graph->ops)
    if (op->kind == OpKind::KVCacheAppend) {
      const int64_t* ring = op->attr<int64_t>("ring_rows");
      ++regionsByRows[ring && *ring > 0 ? *ring : bounds.maxSeqLen];
    }
  out << "  kv cache     " << withCommas(cache) << " bytes (";
  const char* separator = "";
  for (auto it = regionsByRows.rbegin(); it != regionsByRows.rend(); ++it) {
    bool ring = it->first != bounds.maxSeqLen;
    out << separator << it->second / 2 << (ring ? " sliding" : "") << " layers x K and V, ["
        << bounds.maxBatch << "," << c.numKVHeads << "," << it->first << "," << c.headDim << "] "
        << elementTypeName(model.activationType) << (ring ? " rings of the window" : " each");
    separator = "; ";
  }
  if (regionsByRows.size() > 1 ||
      (regionsByRows.size() == 1 && regionsByRows.begin()->first != bounds.maxSeqLen)) {
    int64_t full = 2 * c.numLayers * bounds.maxBatch * c.numKVHeads * bounds.maxSeqLen * c.headDim *
                   elementSize(model.activationType);
    out << "; " << std::fixed << std::setprecision(1) << 100.0 * double(cache) / double(full)
        << "% of a full-length cache";
    out.unsetf(std::ios::fixed);
  }
  out << ")\n";
  out << "  activations  " << withCommas(arena) << " bytes in "
      << graph->integerAttr("arena_buffers") << " buffers (lower bound "
      << withCommas(graph->integerAttr("arena_lower_bound")) << ")\n";
  out << "  total        " << withCommas(weights + cache + arena) << " bytes\n";
  if (listBuffers) {
    // One line per activation, in execution order: where it lives and from when to when.
    std::vector<const Op*> ops;
    for (const auto& op : graph->ops)
      ops.push_back(op.get());
    std::map<const Value*, size_t> lastRead;
    for (size_t i = 0; i < ops.size(); ++i)
      for (const Value* operand : ops[i]->operands)
        lastRead[operand] = i;
    for (const Graph::Output& output : graph->outputs)
      lastRead[output.value] = ops.size();
    out << "  buffers (offset, bytes, live ops, op):\n";
    for (size_t i = 0; i < ops.size(); ++i) {
      const int64_t* offset = ops[i]->attr<int64_t>("arena_offset");
      if (!offset)
        continue;
      size_t last = lastRead.count(ops[i]->result()) ? lastRead[ops[i]->result()] : i;
      out << "    " << withCommas(*offset) << " +"
          << withCommas(*ops[i]->attr<int64_t>("arena_bytes")) << "  [" << i << ", " << last
          << "]  %" << i << " = " << ops[i]->mnemonic() << " : " << ops[i]->result()->type.str()
          << "\n";
    }
  }
  if (picturePath.empty())
    return;
  std::ostringstream dot;
  printMemoryPlanAsDot(*graph, dot);
  bool svg = picturePath.size() > 4 && picturePath.substr(picturePath.size() - 4) == ".svg";
  if (!svg) {
    std::ofstream file(picturePath);
    if (!(file << dot.str()))
      throw UserError("--memory-plan: cannot write '" + picturePath + "'");
    return;
  }
  std::string command = "neato -n2 -Tsvg -o '" + picturePath + "'";
  if (picturePath.find('\'') != std::string::npos)
    throw UserError("--memory-plan: the path may not contain a quote");
  FILE* pipe = popen(command.c_str(), "w");
  if (!pipe)
    throw UserError("--memory-plan: cannot run neato (install graphviz)");
  fwrite(dot.str().data(), 1, dot.str().size(), pipe);
  if (pclose(pipe) != 0)
    throw UserError("--memory-plan: neato failed to write '" + picturePath +
                    "' (is graphviz installed?)");
}

// Refuses, before any work, outputs that would clobber an input or each other: a `--name` that is
// not a plain file name (or is the build folder's, or the tokenizer copy's), an `-o` that looks
// like a flag, and any output path that is one of the model's files (`-o` the checkpoint folder
// itself writes the tokenizer copy over the tokenizer; `--name model.safetensors` there writes the
// program over the weights).
void checkOutputs(const std::string& model, const std::string& outputDir, const std::string& name) {
  namespace fs = std::filesystem;
  if (outputDir.empty() || outputDir[0] == '-')
    throw UserError("-o: '" + outputDir + "' is not a folder name (it may not start with '-')");
  bool plain = !name.empty() && name != "." && name != ".." && name[0] != '-' && name[0] != '.';
  for (char c : name)
    plain &= std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '.';
  if (!plain)
    throw UserError("--name: '" + name +
                    "' must be letters, digits, '_', '-' and '.', not starting with '.' or '-' "
                    "(it names files and symbols)");
  if (name == "build" || name == "tokenizer.model")
    throw UserError("--name: '" + name + "' is the name of another output in the folder (OUT/" +
                    name + ")");
  std::error_code error;
  if (fs::exists(outputDir, error) && !fs::is_directory(outputDir, error))
    throw UserError("-o: '" + outputDir + "' exists and is not a folder");
  // The model's files: the folder's (a checkpoint), or the .onnx file's folder's.
  fs::path modelFolder =
      fs::is_directory(model, error) ? fs::path(model) : fs::path(model).parent_path();
  std::set<fs::path> inputs;
  for (const auto& entry : fs::directory_iterator(modelFolder.empty() ? "." : modelFolder, error))
    if (entry.is_regular_file(error))
      inputs.insert(fs::weakly_canonical(entry.path(), error));
  fs::path out(outputDir);
  for (const fs::path& output :
       {out / name, out / (name + ".weights"), out / ("lib" + name + ".a"), out / (name + ".h"),
        out / (name + ".ir"), out / (name + ".opt.ir"), out / (name + ".ll"),
        out / "tokenizer.model", out / "build"}) {
    fs::path real = fs::weakly_canonical(fs::absolute(output), error);
    if (inputs.count(real))
      throw UserError("-o " + outputDir + " --name " + name + ": the output '" + output.string() +
                      "' would overwrite the model's file '" + real.string() + "'");
  }
}

// gemmac compile: each stage timed on stderr, stopping where --emit says:
// ir -> ir-opt -> llvm (the entry point) -> obj (kernels and entry objects) -> exe.
int compileModel(const std::string& folder, std::optional<Head> head, const std::string& outputDir,
                 std::string name, const std::string& emit, TargetKind target,
                 const PipelineFlags& flags) {
  namespace fs = std::filesystem;
  using Clock = std::chrono::steady_clock;
  auto started = Clock::now();
  auto elapsed = [&] {
    double seconds = std::chrono::duration<double>(Clock::now() - started).count();
    started = Clock::now();
    char text[32];
    snprintf(text, sizeof text, "%.2f s", seconds);
    return std::string(text);
  };
  if (name.empty()) { // the folder's name, or the model file's without its extension
    fs::path path(folder);
    name = fs::is_regular_file(path) ? path.stem().string() : path.filename().string();
    if (name.empty())
      name = path.parent_path().filename().string();
  }
  checkOutputs(folder, outputDir, name);
  std::error_code error;
  fs::path out(outputDir), build = fs::path(outputDir) / "build";
  fs::create_directories(build, error);
  if (error)
    throw UserError("-o: cannot create '" + build.string() + "': " + error.message());
  auto writeGraph = [&](const Graph& graph, const std::string& file) {
    std::ofstream stream(out / file);
    printGraph(graph, stream, {true});
    if (!stream)
      throw UserError("cannot write '" + (out / file).string() + "'");
    std::cerr << "  wrote " << (out / file).string() << "\n";
  };

  // The tokenizer is copied into OUT at the end: refuse one that leaves the folder before any work.
  if (fs::is_directory(folder) && fs::exists(fs::path(folder) / "tokenizer.model"))
    resolveModelFile(folder, "tokenizer.model", folder, "the tokenizer");
  ImportedModel model = importModel(folder, head);
  GenerationConfig generation = loadGenerationConfig(folder, model.config);
  if (generation.eosTokenIds.size() > GEMMA_MAX_STOP_IDS)
    throw UserError(Location::named(folder),
                    std::to_string(generation.eosTokenIds.size()) +
                        " eos token ids; a compiled program stops on at most " +
                        std::to_string(GEMMA_MAX_STOP_IDS));
  std::cerr << "[import] " << familyName(model.config.family) << ", " << model.graph->ops.size()
            << " ops, head " << headName(model.head) << ", " << elapsed() << "\n";
  if (model.config.multimodal)
    std::cerr << "[import] a multimodal Gemma 3: its language model is compiled, text only "
                 "(images are not supported)\n";
  if (emit == "ir") {
    writeGraph(*model.graph, name + ".ir");
    return 0;
  }
  runPipeline(*model.graph, flags, true, true, model);
  int64_t weights = model.graph->integerAttr("weights_bytes"),
          cache = model.graph->integerAttr("kv_cache_bytes"),
          arena = model.graph->integerAttr("arena_bytes");
  std::cerr << "[passes] -O and planning: " << model.graph->ops.size() << " ops, " << elapsed()
            << "; planned memory " << withCommas(weights + cache + arena) << " bytes (weights "
            << withCommas(weights) << ", kv cache " << withCommas(cache) << ", activations "
            << withCommas(arena) << ")\n";
  if (emit == "ir-opt") {
    writeGraph(*model.graph, name + ".opt.ir");
    return 0;
  }

  fs::path weightsPath = out / (name + ".weights");
  int64_t written = writeWeightsFile(*model.graph, model.weights, weightsPath.string());
  std::string hash = modelHash(*model.graph);
  std::cerr << "[weights] " << withCommas(written) << " bytes to " << weightsPath.string()
            << " (model " << hash << "), " << elapsed() << "\n";
  // The tensors by the type they are stored in: what --weights-dtype did (a matrix whose rows
  // are not whole blocks of its type stays f32).
  std::map<std::string, std::string> storedTypes;
  for (const auto& op : model.graph->ops)
    if (op->kind == OpKind::Weight)
      storedTypes[*op->attr<std::string>("name")] = elementTypeName(op->result()->type.elementType);
  std::map<std::string, int> byType;
  for (const auto& [tensor, type] : storedTypes)
    ++byType[type];
  std::cerr << "[weights] stored as";
  for (const auto& [type, count] : byType)
    std::cerr << " " << type << " " << count;
  std::cerr << " (tensors)\n";
  std::map<std::string, int64_t> offsets;
  {
    auto file = openWeightsFile(*model.graph, weightsPath.string());
    for (const auto& [tensor, view] : file->tensors())
      offsets[tensor] = view.data - file->base();
  }
  KernelSet kernels = collectKernels(*model.graph, programModelSymbol(name));
  if (emit == "llvm") {
    fs::path llvmPath = out / (name + ".ll");
    emitEntryPointObject(*model.graph, kernels, offsets, programEntrySymbol(name),
                         llvmPath.string(), EntryPointFormat::LLVMAssembly);
    std::cerr << "[llvm] entry point " << programEntrySymbol(name) << " to " << llvmPath.string()
              << "\n";
    return 0;
  }
  fs::path entryPath = build / "entry.o";
  emitEntryPointObject(*model.graph, kernels, offsets, programEntrySymbol(name),
                       entryPath.string());
  std::cerr << "[llvm] entry point " << programEntrySymbol(name) << ", " << elapsed() << "\n";

  fs::path kernelDir = build / "kernels";
  fs::create_directories(kernelDir);
  std::cerr << "[kernels] " << kernels.groups.size() << " distinct kernels for "
            << model.graph->ops.size() - kernels.withoutKernel.size() << " ops, target "
            << targetKindName(target) << "\n";
  // Progress on a terminal is one line rewritten; in a log, just the end.
  bool terminal = isatty(STDERR_FILENO);
  compileKernels(kernels, kernelDir.string(), target, [&](size_t done, size_t total) {
    if (terminal || done == total)
      std::cerr << (terminal ? "\r" : "") << "  kernels " << done << " of " << total << std::flush;
  });
  std::cerr << "\n[kernels] compiled, " << elapsed() << "; objects in " << build.string() << "\n";
  if (emit == "obj")
    return 0;

  ProgramFacts facts;
  facts.name = name;
  facts.modelHash = hash;
  facts.weightsFileBytes = static_cast<int64_t>(fs::file_size(weightsPath));
  facts.head = model.head;
  facts.vocabSize = model.config.vocabSize;
  facts.padId = model.config.padTokenId;
  facts.bosId = model.config.bosTokenId;
  facts.generation = generation;
  LinkedProgram program =
      linkProgram(*model.graph, facts, kernels, entryPath.string(), build.string(), outputDir);
  fs::path tokenizer = fs::path(folder) / "tokenizer.model";
  bool haveTokenizer = !model.tokenizerModel.empty();
  if (haveTokenizer) { // built from the model's vocabulary (a GGUF's, or tokenizer.json's)
    std::ofstream file(out / "tokenizer.model", std::ios::binary | std::ios::trunc);
    file.write(model.tokenizerModel.data(),
               static_cast<std::streamsize>(model.tokenizerModel.size()));
    if (!file.flush())
      throw UserError("cannot write '" + (out / "tokenizer.model").string() + "'");
  } else if (fs::is_directory(folder) && fs::exists(tokenizer)) {
    haveTokenizer = true;
    fs::copy_file(tokenizer, out / "tokenizer.model", fs::copy_options::overwrite_existing, error);
    if (error)
      throw UserError("cannot copy '" + tokenizer.string() + "' to '" + outputDir +
                      "': " + error.message());
  }
  std::cerr << "[link] " << program.executable << ", " << program.library << ", " << program.header
            << ", " << elapsed() << "\n";
  if (haveTokenizer && !model.tokenizerModel.empty())
    std::cerr << "  tokenizer: " << (out / "tokenizer.model").string()
              << ", a sentencepiece model built from the " << model.tokenizerSource
              << " vocabulary\n";
  if (!haveTokenizer)
    std::cerr << "  note: " << folder
              << " has no tokenizer.model; the program takes --input-ids only\n";
  return 0;
}

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"gemmac: an ahead-of-time compiler for Gemma models"};
  app.require_subcommand(1);
  std::string folder, headFlag, outputPath = "-";
  bool listTensors = false, printLocations = false;

  PipelineFlags pipeline;
  std::string memoryPlanPath;
  CLI::App* inspect =
      app.add_subcommand("inspect", "Print the model's config, weights, graph and planned memory");
  inspect->add_option("model", folder, "Hugging Face checkpoint folder, GGUF file or ONNX model")
      ->required();
  inspect->add_option("--head", headFlag, "causal-lm, model, seq-cls or token-cls");
  inspect->add_flag("--tensors", listTensors, "List every tensor");
  inspect->add_option("--memory-plan", memoryPlanPath,
                      "Draw the activation arena over time: FILE.svg (rendered with Graphviz's "
                      "neato) or FILE.dot");
  bool listBuffers = false;
  inspect->add_flag("--buffers", listBuffers,
                    "List every planned activation: offset, bytes, live range, op");
  CLI::App* import = app.add_subcommand("import", "Print the model as text IR of primitive ops");
  import->add_option("model", folder, "Hugging Face checkpoint folder, GGUF file or ONNX model")
      ->required();
  import->add_option("--head", headFlag, "causal-lm, model, seq-cls or token-cls");
  import->add_option("-o,--output", outputPath, "Where to write the IR ('-': standard output)");
  import->add_flag("--print-loc", printLocations, "Print each op's location (HF module path)");
  bool optimize = false;
  import->add_flag("-O", optimize, "Run the default pipeline (fusions included) on the graph");
  bool plan = false;
  import->add_flag("--plan", plan,
                   "After -O, plan the KV cache and the arena (offsets recorded on the ops)");

  std::string outputDir, emit = "exe", targetName = "host", programName;
  CLI::App* compile = app.add_subcommand(
      "compile", "Compile the model into a program: OUT/<name> (executable), OUT/<name>.weights, "
                 "OUT/tokenizer.model, OUT/lib<name>.a and OUT/<name>.h");
  compile->add_option("model", folder, "Hugging Face checkpoint folder, GGUF file or ONNX model")
      ->required();
  compile->add_option("-o,--output", outputDir, "Output folder")->required();
  compile->add_option("--head", headFlag, "causal-lm, model, seq-cls or token-cls");
  compile->add_option("--name", programName, "The program's name (default: the folder's)");
  compile->add_option("--emit", emit, "Stop after: ir, ir-opt, llvm, obj, exe (the default)")
      ->check(CLI::IsMember({"ir", "ir-opt", "obj", "llvm", "exe"}));
  compile
      ->add_option("--target", targetName,
                   "host, avx2, avx512 or avx512-vnni (AVX-512 with VNNI and BF16: Zen 4, "
                   "Sapphire Rapids and later; what --arithmetic fast needs)")
      ->check(CLI::IsMember({"host", "avx2", "avx512", "avx512-vnni"}));

  // The pipeline's flags, the same on every subcommand that runs it.
  std::string weightsDtype = "checkpoint", arithmetic = "exact";
  for (CLI::App* command : {inspect, import, compile}) {
    command
        ->add_option("--max-batch", pipeline.bounds.maxBatch,
                     "Largest batch to plan for (default 1)")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 20));
    command
        ->add_option("--max-seq-len", pipeline.bounds.maxSeqLen,
                     "Longest sequence, past + new tokens, to plan for (default 256)")
        ->check(CLI::Range(int64_t(1), int64_t(1) << 24));
    command
        ->add_option("--weights-dtype", weightsDtype,
                     "Store the matrices as bf16 or f16 under f32 activations, as GGUF blocks "
                     "(q8_0, q4_0, q4_k: quantized as llama-quantize does; a matrix whose rows "
                     "are not whole blocks stays f32), or as f32 (a GGUF's blocks dequantized) "
                     "(default: as the checkpoint has them, a GGUF's quantized blocks included)")
        ->check(CLI::IsMember({"checkpoint", "f32", "bf16", "f16", "q8_0", "q4_0", "q4_k"}));
    command
        ->add_option("--arithmetic", arithmetic,
                     "exact (default: block weights decoded to f32, f32 sums) or fast (Q8_0, "
                     "Q4_0, Q5_0, Q4_K and Q6_K weights' dot products with the activations "
                     "quantized to int8 per block of 32, as llama.cpp computes them; needs "
                     "AVX512-VNNI)")
        ->check(CLI::IsMember({"exact", "fast"}));
    command->add_option("--disable-pass", pipeline.disabled,
                        "Leave this pass out of -O (repeatable)");
    command->add_flag("--print-after-all", pipeline.printAfterAll,
                      "Print the IR after each pass (to stderr)");
    command->add_flag("--time-passes", pipeline.timePasses,
                      "Report the time taken by each pass (to stderr)");
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error);
    return code == 0 ? 0 : 1;
  }

  if (weightsDtype != "checkpoint")
    pipeline.bounds.weightsType = *parseElementType(weightsDtype);
  if (arithmetic == "fast")
    pipeline.bounds.arithmetic = Arithmetic::Fast;
  return runReportingErrors([&] {
    std::optional<Head> head;
    if (!headFlag.empty()) {
      head = parseHeadName(headFlag);
      if (!head)
        throw UserError("--head: '" + headFlag +
                        "' is not one of causal-lm, model, seq-cls, token-cls");
    }
    if (compile->parsed() && compile->count("--name") && programName.empty())
      throw UserError("--name: '' is not a file name");
    if (compile->parsed())
      return compileModel(folder, head, outputDir, programName, emit, *parseTargetKind(targetName),
                          pipeline);
    ImportedModel model = importModel(folder, head);
    if (inspect->parsed()) {
      printInspection(model, listTensors, std::cout);
      printMemoryPlan(model, pipeline, memoryPlanPath, listBuffers, std::cout);
      return 0;
    }
    if (optimize || plan)
      runPipeline(*model.graph, pipeline, true, plan, model);
    std::ofstream file;
    if (outputPath != "-") {
      file.open(outputPath);
      if (!file)
        throw UserError("cannot write '" + outputPath + "'");
    }
    std::ostream& out = outputPath == "-" ? std::cout : file;
    printGraph(*model.graph, out, {printLocations});
    out.flush();
    if (!out)
      throw UserError(Location::named(outputPath == "-" ? "<stdout>" : outputPath),
                      "cannot be written");
    return 0;
  });
}
