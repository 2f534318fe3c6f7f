// gemmac: the compiler driver.
//   gemmac inspect FOLDER [--head H] [--tensors]   config, parameters, tensors, graph op counts
//   gemmac import FOLDER [--head H] [-o FILE]      the model as text IR
// Errors print as `error: <where>: <what>` and exit 1; internal errors exit 2.

#include "frontend/HFImporter.h"
#include "ir/Printer.h"
#include "passes/Pass.h"

#include <CLI/CLI.hpp>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>

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

void printInspection(const ImportedModel& model, bool listTensors, std::ostream& out) {
  const GemmaConfig& c = model.config;
  out << "model: Gemma (" << c.modelType << "), head " << headName(model.head);
  if (!c.architectures.empty())
    out << " (architectures: " << c.architectures.front() << ")";
  out << "\n";
  out << "  vocab " << c.vocabSize << ", hidden " << c.hiddenSize << ", intermediate "
      << c.intermediateSize << ", layers " << c.numLayers << "\n";
  out << "  heads " << c.numHeads << ", kv heads " << c.numKVHeads << " (" << attentionKind(c)
      << "), head_dim " << c.headDim
      << (c.numHeads * c.headDim != c.hiddenSize ? " (N*H != D)" : "") << "\n";
  out << "  rms_norm_eps " << formatFloat(c.rmsNormEps) << ", rope_theta "
      << formatFloat(c.ropeTheta) << ", max_position_embeddings " << c.maxPositionEmbeddings
      << "\n";
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

} // namespace

int main(int argc, char** argv) {
  CLI::App app{"gemmac: an ahead-of-time compiler for Gemma models"};
  app.require_subcommand(1);
  std::string folder, headFlag, outputPath = "-";
  bool listTensors = false, printLocations = false;

  CLI::App* inspect = app.add_subcommand("inspect", "Print the model's config, weights and graph");
  inspect->add_option("model", folder, "Hugging Face checkpoint folder")->required();
  inspect->add_option("--head", headFlag, "causal-lm, model, seq-cls or token-cls");
  inspect->add_flag("--tensors", listTensors, "List every tensor");

  CLI::App* import = app.add_subcommand("import", "Print the model as text IR of primitive ops");
  import->add_option("model", folder, "Hugging Face checkpoint folder")->required();
  import->add_option("--head", headFlag, "causal-lm, model, seq-cls or token-cls");
  import->add_option("-o,--output", outputPath, "Where to write the IR ('-': standard output)");
  import->add_flag("--print-loc", printLocations, "Print each op's location (HF module path)");
  bool optimize = false;
  std::vector<std::string> disabledPasses;
  import->add_flag("-O", optimize, "Run the default pipeline (fusions included) on the graph");
  import->add_option("--disable-pass", disabledPasses, "Leave this pass out of -O (repeatable)");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    int code = app.exit(error);
    return code == 0 ? 0 : 1;
  }

  try {
    std::optional<Head> head;
    if (!headFlag.empty()) {
      head = parseHeadName(headFlag);
      if (!head)
        throw UserError("--head: '" + headFlag +
                        "' is not one of causal-lm, model, seq-cls, token-cls");
    }
    ImportedModel model = importHFCheckpoint(folder, head);
    if (inspect->parsed()) {
      printInspection(model, listTensors, std::cout);
      return 0;
    }
    if (optimize) {
      PassManager passes;
      passes.addDefaultPipeline(disabledPasses);
      passes.run(*model.graph);
    }
    std::ofstream file;
    if (outputPath != "-") {
      file.open(outputPath);
      if (!file)
        throw UserError("cannot write '" + outputPath + "'");
    }
    printGraph(*model.graph, outputPath == "-" ? std::cout : file, {printLocations});
    return 0;
  } catch (const UserError& error) {
    std::cerr << error.formatted() << "\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "internal error: " << error.what() << "\n";
    return 2;
  }
}
