// The imported graphs, run by the reference interpreter, against what transformers computed on
// the same checkpoints (test/fixtures/make_hf_fixtures.py): logits of a left-padded batch, last
// hidden states, greedy generate() ids, and prefill-then-decode through the KV cache.
#include "FixtureUtil.h"
#include "TestUtil.h"
#include "frontend/HFImporter.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>

namespace gemma {
namespace {

using Json = nlohmann::json;

using testing::hfFixtureDir;
using testing::loadHFReference;
using testing::rowsTensor;

Tensor floatTensor(const Json& j) {
  return Tensor(ElementType::F32, j.at("shape").get<std::vector<int64_t>>(),
                j.at("data").get<std::vector<double>>());
}

// Runs the model on new tokens with the cache `past` (one key and one value per layer);
// returns the head's output and replaces `past` with the presents.
class Session {
public:
  explicit Session(const ImportedModel& model) : model_(model) {}

  Tensor step(const Tensor& ids, const Tensor& mask, const Tensor& positions,
              std::vector<Tensor>& past) {
    std::vector<Tensor> inputs = {ids, mask, positions};
    if (past.empty()) {
      Tensor empty = Tensor::zeros(model_.activationType, {ids.shape[0], model_.config.numKVHeads,
                                                           0, model_.config.headDim});
      past.assign(2 * model_.config.numLayers, empty);
    }
    inputs.insert(inputs.end(), past.begin(), past.end());
    auto weights = [&](const std::string& name, const TensorType&) {
      return model_.weights.load(name);
    };
    std::vector<Tensor> outputs = interpret(*model_.graph, inputs, weights);
    past.assign(outputs.begin() + 1, outputs.end());
    return outputs[0];
  }

private:
  const ImportedModel& model_;
};

struct Comparison {
  double worst = 0; // max |ours - reference| over the compared elements
  double scale = 0; // max |reference|
  int64_t compared = 0;
  double relative() const { return scale > 0 ? worst / scale : worst; }
};

// Compares [rows, positions, features] tensors at the positions where mask is 1 (outputs at
// padding positions are not specified).
Comparison compareUnpadded(const Tensor& ours, const Tensor& reference, const Tensor& mask) {
  EXPECT_EQ(ours.shape, reference.shape);
  Comparison c;
  int64_t features = ours.shape.back();
  for (int64_t token = 0; token < mask.numElements(); ++token) {
    if (mask.data[token] == 0)
      continue;
    for (int64_t f = 0; f < features; ++f) {
      double a = ours.data[token * features + f], b = reference.data[token * features + f];
      c.worst = std::max(c.worst, std::fabs(a - b));
      c.scale = std::max(c.scale, std::fabs(b));
      ++c.compared;
    }
  }
  return c;
}

// fp32: 1e-4 x max|logit|, as the issue asks; the interpreter computes in double and rounds each
// op to f32 while torch accumulates in f32, which leaves differences of a few f32 ulps (measured:
// about 3e-7 x max|logit|). bf16: every op rounds to 8 significant bits, in transformers and in the
// interpreter alike; where an intermediate lands next to a rounding boundary, the two can round it
// to neighbouring bf16 values, and such a flip reaching the logits moves them by one bf16 ulp,
// 2^-8 relative. The bound is two such ulps of the largest logit, 2^-7 (measured: about 3e-6).
double toleranceFor(ElementType type) {
  return type == ElementType::BF16 ? 0x1p-7 : type == ElementType::F16 ? 0x1p-10 : 1e-4;
}

void report(const std::string& fixture, const std::string& what, const Comparison& c) {
  std::printf("parity %-22s %-18s worst |diff| %.3g = %.3g x max|ref| (%lld values)\n",
              fixture.c_str(), what.c_str(), c.worst, c.relative(),
              static_cast<long long>(c.compared));
}

// Greedy decoding as generate() does it: stop at max_length or when every row has produced an
// eos; rows that finished are padded with pad_token_id.
std::vector<std::vector<int64_t>> greedyGenerate(const ImportedModel& model, const Json& ids,
                                                 int64_t maxLength) {
  Tensor input = rowsTensor(ids);
  int64_t batch = input.shape[0];
  Tensor mask = input;
  for (int64_t i = 0; i < mask.numElements(); ++i)
    mask.data[i] = input.data[i] != *model.config.padTokenId ? 1 : 0;
  // A left-padded row's leading pads are padding; a pad id inside the text would not be.
  for (int64_t r = 0; r < batch; ++r) {
    bool seenToken = false;
    for (int64_t t = 0; t < input.shape[1]; ++t) {
      double& m = mask.data[r * input.shape[1] + t];
      seenToken |= m != 0;
      if (seenToken)
        m = 1;
    }
  }
  std::vector<std::vector<int64_t>> sequences(batch);
  std::vector<int64_t> nextPosition(batch, 0);
  Tensor positions = Tensor::zeros(ElementType::I64, input.shape);
  for (int64_t r = 0; r < batch; ++r) {
    int64_t count = 0;
    for (int64_t t = 0; t < input.shape[1]; ++t) {
      sequences[r].push_back(static_cast<int64_t>(input.data[r * input.shape[1] + t]));
      bool real = mask.data[r * input.shape[1] + t] != 0;
      positions.data[r * input.shape[1] + t] = real ? static_cast<double>(count) : 0;
      count += real;
    }
    nextPosition[r] = count;
  }
  Session session(model);
  std::vector<Tensor> past;
  std::vector<bool> finished(batch, false);
  Tensor stepIds = input, stepPositions = positions;
  while (static_cast<int64_t>(sequences[0].size()) < maxLength) {
    Tensor logits = session.step(stepIds, mask, stepPositions, past);
    int64_t seq = logits.shape[1], vocab = logits.shape[2];
    stepIds = Tensor::zeros(ElementType::I64, {batch, 1});
    stepPositions = Tensor::zeros(ElementType::I64, {batch, 1});
    Tensor newMask = Tensor::zeros(ElementType::I64, {batch, mask.shape[1] + 1});
    for (int64_t r = 0; r < batch; ++r) {
      const double* last = logits.data.data() + ((r * seq) + seq - 1) * vocab;
      int64_t best = std::max_element(last, last + vocab) - last;
      if (finished[r])
        best = *model.config.padTokenId;
      sequences[r].push_back(best);
      for (int64_t eos : model.config.eosTokenIds)
        finished[r] = finished[r] || best == eos;
      stepIds.data[r] = static_cast<double>(best);
      stepPositions.data[r] = static_cast<double>(nextPosition[r]++);
      for (int64_t t = 0; t < mask.shape[1]; ++t)
        newMask.data[r * (mask.shape[1] + 1) + t] = mask.data[r * mask.shape[1] + t];
      newMask.data[r * (mask.shape[1] + 1) + mask.shape[1]] = 1;
    }
    mask = newMask;
    if (std::all_of(finished.begin(), finished.end(), [](bool f) { return f; }))
      break;
  }
  return sequences;
}

class HFParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HFParity, BatchOutputsMatchTransformers) {
  const std::string name = GetParam();
  Json ref = loadHFReference(name);
  ImportedModel model = importHFCheckpoint(hfFixtureDir(name));
  Tensor ids = rowsTensor(ref.at("input_ids")), mask = rowsTensor(ref.at("attention_mask")),
         positions = rowsTensor(ref.at("position_ids"));
  std::vector<Tensor> past;
  Tensor ours = Session(model).step(ids, mask, positions, past);
  Tensor expected = floatTensor(ref.at("logits"));
  double tolerance = toleranceFor(model.activationType);

  if (model.head == Head::SequenceClassification) {
    ASSERT_EQ(ours.shape, expected.shape);
    Comparison c;
    for (int64_t i = 0; i < expected.numElements(); ++i) {
      c.worst = std::max(c.worst, std::fabs(ours.data[i] - expected.data[i]));
      c.scale = std::max(c.scale, std::fabs(expected.data[i]));
      ++c.compared;
    }
    report(name, "pooled logits", c);
    EXPECT_LE(c.relative(), tolerance);
  } else {
    Comparison c = compareUnpadded(ours, expected, mask);
    report(name, "logits", c);
    EXPECT_LE(c.relative(), tolerance);
    EXPECT_GT(c.compared, 100);
  }

  // The same checkpoint as a GemmaModel: the last hidden state after the final norm.
  ImportedModel base = importHFCheckpoint(hfFixtureDir(name), Head::Model);
  std::vector<Tensor> basePast;
  Tensor hidden = Session(base).step(ids, mask, positions, basePast);
  Comparison h = compareUnpadded(hidden, floatTensor(ref.at("last_hidden_state")), mask);
  report(name, "last_hidden_state", h);
  EXPECT_LE(h.relative(), tolerance);
}

// Generation and the cache, on the causal-LM fixtures.
class HFCausalParity : public ::testing::TestWithParam<std::string> {};

TEST_P(HFCausalParity, GreedyGenerateMatchesTransformers) {
  const std::string name = GetParam();
  Json ref = loadHFReference(name);
  ImportedModel model = importHFCheckpoint(hfFixtureDir(name));
  for (const char* which : {"generate_batch", "generate_single"}) {
    const Json& g = ref.at(which);
    const Json& prompt = g.contains("input_ids") ? g.at("input_ids") : ref.at("input_ids");
    auto ours = greedyGenerate(model, prompt, g.at("max_length").get<int64_t>());
    auto expected = g.at("output_ids").get<std::vector<std::vector<int64_t>>>();
    EXPECT_EQ(ours, expected) << which;
    std::printf("parity %-22s %-18s %zu rows x %zu ids identical: %s\n", name.c_str(), which,
                expected.size(), expected[0].size(), ours == expected ? "yes" : "NO");
  }
}

TEST_P(HFCausalParity, DecodeThroughTheCacheMatchesFullSequence) {
  const std::string name = GetParam();
  Json ref = loadHFReference(name);
  ImportedModel model = importHFCheckpoint(hfFixtureDir(name));
  int64_t row = ref.at("decode").at("row").get<int64_t>();
  int64_t prefix = ref.at("decode").at("prefix").get<int64_t>();
  Tensor ids = rowsTensor(Json::array({ref.at("input_ids")[row]}));
  Tensor positions = rowsTensor(Json::array({ref.at("position_ids")[row]}));
  int64_t length = ids.shape[1], vocab = model.config.vocabSize;
  auto columns = [](const Tensor& t, int64_t begin, int64_t end) {
    Tensor out = Tensor::zeros(t.elementType, {1, end - begin});
    std::copy(t.data.begin() + begin, t.data.begin() + end, out.data.begin());
    return out;
  };
  auto ones = [](int64_t n) {
    return Tensor(ElementType::I64, {1, n}, std::vector<double>(n, 1.0));
  };
  Session session(model);
  std::vector<Tensor> past;
  Tensor prefill =
      session.step(columns(ids, 0, prefix), ones(prefix), columns(positions, 0, prefix), past);
  std::vector<double> stepLogits(prefill.data.end() - vocab, prefill.data.end());
  for (int64_t t = prefix; t < length; ++t) {
    Tensor logits =
        session.step(columns(ids, t, t + 1), ones(t + 1), columns(positions, t, t + 1), past);
    stepLogits.insert(stepLogits.end(), logits.data.begin(), logits.data.end());
  }
  // Against transformers' own cached decode, and against the full-sequence logits.
  Tensor reference = floatTensor(ref.at("decode").at("step_logits"));
  std::vector<Tensor> fullPast;
  Tensor full = Session(model).step(ids, ones(length), positions, fullPast);
  Comparison vsTransformers, vsFull;
  for (size_t i = 0; i < stepLogits.size(); ++i) {
    double expected = reference.data[i];
    double fullValue = full.data[(prefix - 1) * vocab + i];
    vsTransformers.worst = std::max(vsTransformers.worst, std::fabs(stepLogits[i] - expected));
    vsTransformers.scale = std::max(vsTransformers.scale, std::fabs(expected));
    vsFull.worst = std::max(vsFull.worst, std::fabs(stepLogits[i] - fullValue));
    vsFull.scale = std::max(vsFull.scale, std::fabs(fullValue));
    ++vsTransformers.compared;
    ++vsFull.compared;
  }
  report(name, "decode vs HF", vsTransformers);
  report(name, "decode vs full seq", vsFull);
  double tolerance = toleranceFor(model.activationType);
  EXPECT_LE(vsTransformers.relative(), tolerance);
  EXPECT_LE(vsFull.relative(), tolerance);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, HFParity,
                         ::testing::Values("mqa_f32", "mha_untied_f32", "gqa_exact_sharded_f32",
                                           "mqa_bf16", "mqa_f16", "seq_cls_f32", "token_cls_f32",
                                           "attention_bias_f32"));
INSTANTIATE_TEST_SUITE_P(Fixtures, HFCausalParity,
                         ::testing::Values("mqa_f32", "mha_untied_f32", "gqa_exact_sharded_f32",
                                           "mqa_bf16", "mqa_f16", "attention_bias_f32"));
INSTANTIATE_TEST_SUITE_P(Gemma2And3, HFParity,
                         ::testing::Values("gemma2_gqa_f32", "gemma2_mha_f32", "gemma2_seq_cls_f32",
                                           "gemma2_token_cls_f32", "gemma3_mqa_f32",
                                           "gemma3_mqa_bf16", "gemma3_linear_rope_f32",
                                           "gemma3_seq_cls_f32", "gemma3_multimodal_f32"));
INSTANTIATE_TEST_SUITE_P(Gemma2And3, HFCausalParity,
                         ::testing::Values("gemma2_gqa_f32", "gemma2_mha_f32", "gemma3_mqa_f32",
                                           "gemma3_mqa_bf16", "gemma3_linear_rope_f32",
                                           "gemma3_multimodal_f32"));

} // namespace
} // namespace gemma
