#include "frontend/HFImporter.h"

#include "formats/ModelFiles.h"
#include "formats/SentencePieceModel.h"
#include "ir/Builder.h"
#include "ir/Interpreter.h"
#include "ir/ModelRoles.h"
#include "ir/RegularFile.h"
#include "ir/Rotary.h"
#include "ir/Verifier.h"

#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <set>

namespace gemma {

namespace {

struct ExpectedTensor {
  std::string name; // without the base-model prefix for base-model tensors
  std::vector<int64_t> shape;
  bool baseModel;
};

std::vector<ExpectedTensor> baseModelTensors(const GemmaConfig& c) {
  int64_t D = c.hiddenSize, q = c.numHeads * c.headDim, kv = c.numKVHeads * c.headDim,
          I = c.intermediateSize, H = c.headDim;
  std::vector<ExpectedTensor> tensors = {{"embed_tokens.weight", {c.vocabSize, D}, true}};
  for (int64_t i = 0; i < c.numLayers; ++i) {
    std::string layer = "layers." + std::to_string(i) + ".";
    tensors.push_back({layer + "input_layernorm.weight", {D}, true});
    tensors.push_back({layer + "self_attn.q_proj.weight", {q, D}, true});
    tensors.push_back({layer + "self_attn.k_proj.weight", {kv, D}, true});
    tensors.push_back({layer + "self_attn.v_proj.weight", {kv, D}, true});
    tensors.push_back({layer + "self_attn.o_proj.weight", {D, q}, true});
    if (c.attentionBias) {
      tensors.push_back({layer + "self_attn.q_proj.bias", {q}, true});
      tensors.push_back({layer + "self_attn.k_proj.bias", {kv}, true});
      tensors.push_back({layer + "self_attn.v_proj.bias", {kv}, true});
      tensors.push_back({layer + "self_attn.o_proj.bias", {D}, true});
    }
    if (c.queryKeyNorm) {
      tensors.push_back({layer + "self_attn.q_norm.weight", {H}, true});
      tensors.push_back({layer + "self_attn.k_norm.weight", {H}, true});
    }
    tensors.push_back({layer + "post_attention_layernorm.weight", {D}, true});
    if (c.sandwichNorms) {
      tensors.push_back({layer + "pre_feedforward_layernorm.weight", {D}, true});
      tensors.push_back({layer + "post_feedforward_layernorm.weight", {D}, true});
    }
    tensors.push_back({layer + "mlp.gate_proj.weight", {I, D}, true});
    tensors.push_back({layer + "mlp.up_proj.weight", {I, D}, true});
    tensors.push_back({layer + "mlp.down_proj.weight", {D, I}, true});
  }
  tensors.push_back({"norm.weight", {D}, true});
  return tensors;
}

std::vector<ExpectedTensor> headTensors(const GemmaConfig& c, Head head) {
  switch (head) {
  case Head::CausalLM:
    if (c.tieWordEmbeddings)
      return {};
    return {{"lm_head.weight", {c.vocabSize, c.hiddenSize}, false}};
  case Head::Model:
    return {};
  case Head::SequenceClassification:
    return {{"score.weight", {c.numLabels, c.hiddenSize}, false}};
  case Head::TokenClassification:
    if (!c.tokenClassificationBias)
      return {{"score.weight", {c.numLabels, c.hiddenSize}, false}};
    return {{"score.weight", {c.numLabels, c.hiddenSize}, false},
            {"score.bias", {c.numLabels}, false}};
  }
  GEMMA_INTERNAL_ASSERT(false, "unknown head");
}

std::string shapeText(const std::vector<int64_t>& shape) {
  return Tensor(ElementType::F32, shape, {}).shapeString();
}

// The base model's prefix: "model." (a head over GemmaModel), "" (a bare GemmaModel), or a
// multimodal Gemma 3's language model, "model.language_model." (transformers 5) or
// "language_model.model." (4.x, whose lm_head is "language_model.lm_head").
std::string basePrefix(const ImportedModel& model, const std::string& where) {
  for (const char* prefix : {"model.", "", "model.language_model.", "language_model.model."})
    if (model.weights.find(std::string(prefix) + "embed_tokens.weight"))
      return prefix;
  throw UserError(Location::named(where),
                  "missing tensor 'model.embed_tokens.weight' (expected shape " +
                      shapeText({model.config.vocabSize, model.config.hiddenSize}) + ")");
}

// Where the head's tensors live: beside the base model, or under "language_model." in 4.x's
// multimodal layout.
std::string headPrefix(const std::string& basePrefix) {
  return basePrefix == "language_model.model." ? "language_model." : "";
}

// A multimodal Gemma 3's vision tower and projector: present, not compiled.
bool isVisionTensor(const std::string& name) {
  for (const char* prefix : {"model.vision_tower.", "model.multi_modal_projector.", "vision_tower.",
                             "multi_modal_projector."})
    if (name.rfind(prefix, 0) == 0)
      return true;
  return false;
}

// Checks the checkpoint against what the head needs; returns the base-model prefix.
std::string checkTensors(ImportedModel& model) {
  const WeightStore& weights = model.weights;
  std::string where = weights.files().empty() ? "checkpoint" : weights.files().front();
  std::string prefix = basePrefix(model, where);
  std::set<std::string> used;
  auto expected = baseModelTensors(model.config);
  for (auto t : headTensors(model.config, model.head)) {
    t.name = headPrefix(prefix) + t.name;
    expected.push_back(t);
  }
  for (const ExpectedTensor& t : expected) {
    std::string name = (t.baseModel ? prefix : "") + t.name;
    const TensorView* view = weights.find(name);
    if (!view)
      throw UserError(Location::named(where),
                      "missing tensor '" + name + "' (expected shape " + shapeText(t.shape) + ")");
    if (view->shape != t.shape)
      throw UserError(Location::named(view->file), "tensor '" + name + "' has shape " +
                                                       view->shapeString() + ", expected " +
                                                       shapeText(t.shape));
    used.insert(name);
  }
  // Tensors of another head may be present (an lm_head beside a tied embedding, a score layer);
  // anything else is not part of a Gemma checkpoint.
  static const std::set<std::string> otherHeads = {"lm_head.weight", "score.weight", "score.bias",
                                                   "language_model.lm_head.weight"};
  for (const auto& [name, view] : weights.tensors()) {
    if (used.count(name))
      continue;
    if (model.config.multimodal && isVisionTensor(name)) {
      ++model.visionTensors;
      continue;
    }
    if (otherHeads.count(name))
      model.ignoredTensors.push_back(name);
    else
      throw UserError(Location::named(view->file),
                      "unexpected tensor '" + name + "' " + view->shapeString() +
                          ": not part of a Gemma checkpoint with this config");
  }
  return prefix;
}

// Builds the graph of GEMMA_SPEC.md sections 2 and 5 from primitive ops, op for op as
// transformers' modeling_gemma.py, modeling_gemma2.py and modeling_gemma3.py compute it (including
// where they compute in fp32 and cast back).
class GemmaGraphBuilder {
public:
  GemmaGraphBuilder(const ImportedModel& model, Graph& graph)
      : model_(model), c_(model.config), graph_(graph), b_(graph), T_(model.activationType) {}

  void build() {
    declareInputs();
    at("model.embed_tokens");
    Value* embedding = weight(model_.weightPrefix + "embed_tokens.weight");
    Value* h = b_.create(OpKind::Gather, {embedding, inputIds_}, {{"axis", int64_t(0)}});
    // The normalizer is a float32 tensor sqrt(D), cast to the activation dtype.
    double normalizer = static_cast<float>(std::sqrt(static_cast<double>(c_.hiddenSize)));
    h = b_.binary(OpKind::Mul, h, b_.scalar(T_, roundToElementType(normalizer, T_)));

    std::vector<std::pair<Value*, Value*>> presents;
    for (int64_t i = 0; i < c_.numLayers; ++i)
      h = decoderLayer(i, h, presents);

    Value* hidden = rmsNorm(h, "norm");
    buildHead(hidden);
    for (int64_t i = 0; i < c_.numLayers; ++i) {
      graph_.addOutput(presents[i].first, "present." + std::to_string(i) + ".key");
      graph_.addOutput(presents[i].second, "present." + std::to_string(i) + ".value");
    }
    // The signature above: ids, mask, positions, then the past caches; the head, then presents.
    std::vector<InputRole> inputs = {InputRole::Ids, InputRole::Mask, InputRole::Positions};
    inputs.resize(graph_.inputs.size(), InputRole::Past);
    std::vector<OutputRole> outputs(graph_.outputs.size(), OutputRole::Present);
    outputs.front() = OutputRole::Head;
    recordRoles(graph_, inputs, outputs);
  }

private:
  void at(const std::string& modulePath) { b_.setLocation(Location::named(modulePath)); }

  Value* weight(const std::string& name) {
    const TensorView* view = model_.weights.find(name);
    GEMMA_INTERNAL_ASSERT(view, "tensor checked before building: " + name);
    // A block-quantized tensor (a GGUF's) is its dequantized f32 values here: narrow-weights
    // gives the weight its blocks back where the kernels that read it decode them.
    ElementType type = isBlockQuantized(view->elementType) ? ElementType::F32 : view->elementType;
    Value* w = b_.weight(name, tensorType(type, view->shape));
    return type == T_ ? w : b_.cast(w, T_);
  }

  Value* constantI64(int64_t v) { return b_.constant(ElementType::I64, {}, Ints{v}); }

  void declareInputs() {
    Dim batch = Dim::symbol("batch"), seq = Dim::symbol("seq"), past = Dim::symbol("past");
    inputIds_ = graph_.addInput("input_ids", {ElementType::I64, {batch, seq}});
    attentionMask_ = graph_.addInput("attention_mask", {ElementType::I64, {batch, past + seq}});
    positionIds_ = graph_.addInput("position_ids", {ElementType::I64, {batch, seq}});
    TensorType cache{T_, {batch, Dim::constant(c_.numKVHeads), past, Dim::constant(c_.headDim)}};
    for (int64_t i = 0; i < c_.numLayers; ++i) {
      pastKeys_.push_back(graph_.addInput("past." + std::to_string(i) + ".key", cache));
      pastValues_.push_back(graph_.addInput("past." + std::to_string(i) + ".value", cache));
    }
  }

  // cos/sin of the rotary embedding: inv_freq = 1 / theta^(2i/H) in float32 (divided by the
  // factor of linear scaling), freqs = positions * inv_freq, emb = concat(freqs, freqs);
  // [batch,1,seq,H] in T. One pair per distinct RoPE (Gemma 3 has one per layer type).
  std::pair<Value*, Value*> rotaryTables(const RopeParameters& rope) {
    for (const auto& [parameters, tables] : rotaryTables_)
      if (parameters == rope)
        return tables;
    at(model_.weightPrefix + "rotary_emb");
    Floats inverseFrequencies = rotaryInverseFrequencies(rope.theta, c_.headDim, rope.linearFactor);
    Value* invFreq = b_.constant(ElementType::F32, {c_.headDim / 2}, inverseFrequencies);
    Value* positions = b_.cast(positionIds_, ElementType::F32);
    positions = b_.create(OpKind::Unsqueeze, {positions}, {{"axes", Ints{2}}});
    Value* freqs = b_.binary(OpKind::Mul, positions, invFreq);
    Value* emb = b_.create(OpKind::Concat, {freqs, freqs}, {{"axis", int64_t(-1)}});
    auto table = [&](OpKind kind) {
      Value* t = b_.cast(b_.unary(kind, emb), T_);
      return b_.create(OpKind::Unsqueeze, {t}, {{"axes", Ints{1}}});
    };
    std::pair<Value*, Value*> tables = {table(OpKind::Cos), table(OpKind::Sin)};
    rotaryTables_.emplace_back(rope, tables);
    return tables;
  }

  // The additive mask of eager attention: 0 where query q (at absolute index past+q) may see key k
  // (k <= past+q, past+q - k < window if the layer slides, and attention_mask[b,k] != 0), the
  // dtype's lowest value elsewhere. [batch,1,seq,past+seq] in T. One per distinct window.
  Value* attentionBias(int64_t window) {
    if (auto it = attentionBiases_.find(window); it != attentionBiases_.end())
      return it->second;
    at(window > 0 ? "model.sliding_window_mask" : "model.causal_mask");
    Value* one = constantI64(1);
    Value* zero = constantI64(0);
    Value* total = b_.create(OpKind::Gather, {b_.create(OpKind::Shape, {attentionMask_}), one},
                             {{"axis", int64_t(0)}});
    Value* newTokens = b_.create(OpKind::Gather, {b_.create(OpKind::Shape, {inputIds_}), one},
                                 {{"axis", int64_t(0)}});
    Value* pastTokens = b_.binary(OpKind::Sub, total, newTokens);
    Dim seq = Dim::symbol("seq"), past = Dim::symbol("past");
    Value* keyIndex = b_.create(OpKind::Range, {zero, total, one}, {},
                                TensorType{ElementType::I64, {past + seq}});
    Value* queryIndex =
        b_.create(OpKind::Range, {pastTokens, total, one}, {}, TensorType{ElementType::I64, {seq}});
    Value* keys = b_.create(OpKind::Unsqueeze, {keyIndex}, {{"axes", Ints{0}}});
    Value* queries = b_.create(OpKind::Unsqueeze, {queryIndex}, {{"axes", Ints{1}}});
    Value* causal = b_.binary(OpKind::LessEqual, keys, queries);
    if (window > 0) {
      Value* inWindow =
          b_.binary(OpKind::Less, b_.binary(OpKind::Sub, queries, keys), constantI64(window));
      causal = b_.binary(OpKind::And, causal, inWindow);
    }
    Value* notPadding = b_.unary(OpKind::Not, b_.binary(OpKind::Equal, attentionMask_, zero));
    Value* allowed =
        b_.binary(OpKind::And, b_.create(OpKind::Unsqueeze, {notPadding}, {{"axes", Ints{1, 2}}}),
                  b_.create(OpKind::Unsqueeze, {causal}, {{"axes", Ints{0, 1}}}));
    double lowest = lowestFinite(T_);
    Value* bias = b_.create(OpKind::Where, {allowed, b_.scalar(T_, 0.0), b_.scalar(T_, lowest)});
    attentionBiases_[window] = bias;
    return bias;
  }

  // GemmaRMSNorm: in float32, x * rsqrt(mean(x^2) + eps) * (1 + w), cast back to T. `module` is
  // the full module path.
  Value* rmsNormAt(Value* x, const std::string& module) {
    at(module);
    Value* x32 = b_.cast(x, ElementType::F32);
    Value* square = b_.binary(OpKind::Pow, x32, b_.scalar(ElementType::F32, 2.0));
    Value* mean = b_.create(OpKind::ReduceMean, {square}, {{"axes", Ints{-1}}, {"keepdims", true}});
    Value* variance = b_.binary(OpKind::Add, mean, b_.scalar(ElementType::F32, c_.rmsNormEps));
    Value* normed = b_.binary(OpKind::Mul, x32, b_.unary(OpKind::Rsqrt, variance));
    Value* w = b_.cast(weight(module + ".weight"), ElementType::F32);
    Value* scale = b_.binary(OpKind::Add, b_.scalar(ElementType::F32, 1.0), w);
    return b_.cast(b_.binary(OpKind::Mul, normed, scale), T_);
  }

  Value* rmsNorm(Value* x, const std::string& module) {
    return rmsNormAt(x, model_.weightPrefix + module);
  }

  // nn.Linear: x W^T, plus the bias if it has one.
  Value* linear(Value* x, const std::string& module, bool bias = false) {
    at(module);
    Value* y = b_.matmul(x, b_.transpose(weight(module + ".weight"), {1, 0}));
    return bias ? b_.binary(OpKind::Add, y, weight(module + ".bias")) : y;
  }

  // c * tanh(x / c), each step rounded to T as torch computes it on a T tensor.
  Value* softcap(Value* x, double cap) {
    Value* divided = b_.cast(
        b_.binary(OpKind::Div, b_.cast(x, ElementType::F32), b_.scalar(ElementType::F32, cap)), T_);
    Value* squashed = b_.unary(OpKind::Tanh, divided);
    return b_.cast(b_.binary(OpKind::Mul, b_.cast(squashed, ElementType::F32),
                             b_.scalar(ElementType::F32, cap)),
                   T_);
  }

  // [batch,seq,heads*H] -> [batch,heads,seq,H]
  Value* splitHeads(Value* x, int64_t heads) {
    Dim batch = Dim::symbol("batch"), seq = Dim::symbol("seq");
    Value* r = b_.reshape(x, {batch, seq, Dim::constant(heads), Dim::constant(c_.headDim)});
    return b_.transpose(r, {0, 2, 1, 3});
  }

  // q*cos + rotate_half(q)*sin, rotate_half(x) = concat(-x[H/2:], x[:H/2]).
  Value* rotary(Value* x, Value* cos, Value* sin) {
    int64_t half = c_.headDim / 2;
    Value* first = b_.create(OpKind::Slice, {x},
                             {{"starts", Ints{0}}, {"ends", Ints{half}}, {"axes", Ints{-1}}});
    Value* second =
        b_.create(OpKind::Slice, {x},
                  {{"starts", Ints{half}}, {"ends", Ints{c_.headDim}}, {"axes", Ints{-1}}});
    Value* rotated =
        b_.create(OpKind::Concat, {b_.unary(OpKind::Neg, second), first}, {{"axis", int64_t(-1)}});
    return b_.binary(OpKind::Add, b_.binary(OpKind::Mul, x, cos),
                     b_.binary(OpKind::Mul, rotated, sin));
  }

  // repeat_kv: [batch,K,T,H] -> [batch,N,T,H], kv head j serving query heads j*N/K ... .
  Value* repeatKV(Value* x) {
    int64_t groups = c_.numHeads / c_.numKVHeads;
    if (groups == 1)
      return x;
    Dim batch = Dim::symbol("batch"), total = Dim::symbol("past") + Dim::symbol("seq");
    Dim K = Dim::constant(c_.numKVHeads), H = Dim::constant(c_.headDim);
    Value* u = b_.create(OpKind::Unsqueeze, {x}, {{"axes", Ints{2}}});
    Value* e = b_.create(OpKind::Expand, {u}, {},
                         TensorType{T_, {batch, K, Dim::constant(groups), total, H}});
    return b_.reshape(e, {batch, Dim::constant(c_.numHeads), total, H});
  }

  Value* attention(int64_t i, Value* x, std::vector<std::pair<Value*, Value*>>& presents) {
    std::string module = model_.weightPrefix + "layers." + std::to_string(i) + ".self_attn";
    bool bias = c_.attentionBias;
    Value* q = splitHeads(linear(x, module + ".q_proj", bias), c_.numHeads);
    Value* k = splitHeads(linear(x, module + ".k_proj", bias), c_.numKVHeads);
    Value* v = splitHeads(linear(x, module + ".v_proj", bias), c_.numKVHeads);
    if (c_.queryKeyNorm) { // Gemma 3: RMSNorm over head_dim, after the projection, before RoPE
      q = rmsNormAt(q, module + ".q_norm");
      k = rmsNormAt(k, module + ".k_norm");
    }
    auto [cos, sin] = rotaryTables(c_.rope(i));
    Value* mask = attentionBias(c_.windowOf(i));
    at(module);
    q = rotary(q, cos, sin);
    k = rotary(k, cos, sin);
    Value* keys = b_.create(OpKind::Concat, {pastKeys_[i], k}, {{"axis", int64_t(2)}});
    Value* values = b_.create(OpKind::Concat, {pastValues_[i], v}, {{"axis", int64_t(2)}});
    presents.emplace_back(keys, values);

    // scores = q k^T * scale (a Python float: computed in float32, rounded to T), softcapped
    // (Gemma 2), + mask; softmax in float32, cast to T.
    Value* scores = b_.matmul(q, b_.transpose(repeatKV(keys), {0, 1, 3, 2}));
    Value* scaled = b_.cast(b_.binary(OpKind::Mul, b_.cast(scores, ElementType::F32),
                                      b_.scalar(ElementType::F32, c_.attentionScale())),
                            T_);
    if (c_.attnLogitSoftcap)
      scaled = softcap(scaled, *c_.attnLogitSoftcap);
    Value* masked = b_.binary(OpKind::Add, scaled, mask);
    Value* probs =
        b_.create(OpKind::Softmax, {b_.cast(masked, ElementType::F32)}, {{"axis", int64_t(-1)}});
    Value* context = b_.matmul(b_.cast(probs, T_), repeatKV(values));
    Dim batch = Dim::symbol("batch"), seq = Dim::symbol("seq");
    Value* merged = b_.reshape(b_.transpose(context, {0, 2, 1, 3}),
                               {batch, seq, Dim::constant(c_.numHeads * c_.headDim)});
    return linear(merged, module + ".o_proj", bias);
  }

  Value* mlp(int64_t i, Value* x) {
    std::string module = model_.weightPrefix + "layers." + std::to_string(i) + ".mlp";
    Value* gate = linear(x, module + ".gate_proj");
    Value* up = linear(x, module + ".up_proj");
    at(module + ".act_fn");
    std::string approximate = c_.activation == Activation::GeluTanh ? "tanh" : "none";
    Value* activated = b_.create(OpKind::Gelu, {gate}, {{"approximate", approximate}});
    at(module);
    return linear(b_.binary(OpKind::Mul, activated, up), module + ".down_proj");
  }

  // Gemma 1: h + attn(norm(h)), then h + mlp(norm(h)). Gemma 2/3 also normalise each block's
  // output before the residual (post_attention_layernorm has that job there, and
  // pre_feedforward_layernorm the pre-MLP one).
  Value* decoderLayer(int64_t i, Value* h, std::vector<std::pair<Value*, Value*>>& presents) {
    std::string layer = "layers." + std::to_string(i);
    Value* attn = attention(i, rmsNorm(h, layer + ".input_layernorm"), presents);
    if (c_.sandwichNorms)
      attn = rmsNorm(attn, layer + ".post_attention_layernorm");
    at(model_.weightPrefix + layer);
    h = b_.binary(OpKind::Add, h, attn);
    Value* m = mlp(i, rmsNorm(h, layer + (c_.sandwichNorms ? ".pre_feedforward_layernorm"
                                                           : ".post_attention_layernorm")));
    if (c_.sandwichNorms)
      m = rmsNorm(m, layer + ".post_feedforward_layernorm");
    at(model_.weightPrefix + layer);
    return b_.binary(OpKind::Add, h, m);
  }

  void buildHead(Value* hidden) {
    switch (model_.head) {
    case Head::Model:
      graph_.addOutput(hidden, "last_hidden_state");
      return;
    case Head::CausalLM: {
      std::string lmHead = c_.tieWordEmbeddings ? model_.weightPrefix + "embed_tokens"
                                                : headPrefix(model_.weightPrefix) + "lm_head";
      at("lm_head");
      Value* logits = b_.matmul(hidden, b_.transpose(weight(lmHead + ".weight"), {1, 0}));
      if (c_.finalLogitSoftcap) {
        at("final_logit_softcapping");
        logits = softcap(logits, *c_.finalLogitSoftcap);
      }
      graph_.addOutput(logits, "logits");
      return;
    }
    case Head::TokenClassification: {
      Value* logits = linear(hidden, "score");
      if (c_.tokenClassificationBias)
        logits = b_.binary(OpKind::Add, logits, weight("score.bias"));
      graph_.addOutput(logits, "logits");
      return;
    }
    case Head::SequenceClassification:
      graph_.addOutput(poolLastToken(linear(hidden, "score")), "logits");
      return;
    }
  }

  // GenericForSequenceClassification: logits at the rightmost non-pad token of each row,
  // argmax(arange(S) * (input_ids != pad)); the last token if there is no pad id. [batch,labels].
  Value* poolLastToken(Value* logits) {
    at("score.pooling");
    if (!c_.padTokenId) {
      Value* last = b_.create(OpKind::Slice, {logits},
                              {{"starts", Ints{-1}},
                               {"ends", Ints{std::numeric_limits<int64_t>::max()}},
                               {"axes", Ints{1}}});
      return b_.create(OpKind::Squeeze, {last}, {{"axes", Ints{1}}});
    }
    Value* one = constantI64(1);
    Value* newTokens = b_.create(OpKind::Gather, {b_.create(OpKind::Shape, {inputIds_}), one},
                                 {{"axis", int64_t(0)}});
    Value* index = b_.create(OpKind::Range, {constantI64(0), newTokens, one}, {},
                             TensorType{ElementType::I64, {Dim::symbol("seq")}});
    Value* notPad =
        b_.unary(OpKind::Not, b_.binary(OpKind::Equal, inputIds_, constantI64(*c_.padTokenId)));
    Value* weighted = b_.binary(OpKind::Mul, index, b_.cast(notPad, ElementType::I64));
    Value* lastToken =
        b_.create(OpKind::ArgMax, {weighted}, {{"axis", int64_t(-1)}, {"keepdims", true}});
    Value* oneHot =
        b_.cast(b_.binary(OpKind::Equal, b_.create(OpKind::Unsqueeze, {index}, {{"axes", Ints{0}}}),
                          lastToken),
                T_);
    Value* picked =
        b_.binary(OpKind::Mul, logits, b_.create(OpKind::Unsqueeze, {oneHot}, {{"axes", Ints{2}}}));
    return b_.create(OpKind::ReduceSum, {picked}, {{"axes", Ints{1}}, {"keepdims", false}});
  }

  const ImportedModel& model_;
  const GemmaConfig& c_;
  Graph& graph_;
  Builder b_;
  ElementType T_;
  Value* inputIds_ = nullptr;
  Value* attentionMask_ = nullptr;
  Value* positionIds_ = nullptr;
  std::vector<Value*> pastKeys_, pastValues_;
  std::vector<std::pair<RopeParameters, std::pair<Value*, Value*>>> rotaryTables_;
  std::map<int64_t, Value*> attentionBiases_; // by window (0: full attention)
};

} // namespace

ImportedModel importHFCheckpoint(const std::string& folder, std::optional<Head> head) {
  namespace fs = std::filesystem;
  if (!fs::is_directory(folder))
    throw UserError(Location::named(folder), "is not a checkpoint folder");
  ImportedModel model;
  model.config = loadGemmaConfig((fs::path(folder) / "config.json").string());
  std::optional<Head> chosen = head ? head : headFromArchitectures(model.config);
  if (!chosen)
    throw UserError(Location::named((fs::path(folder) / "config.json").string()),
                    "architectures names no Gemma head; choose one with --head "
                    "(causal-lm, model, seq-cls, token-cls)");
  model.head = *chosen;
  model.weights = WeightStore::openFolder(folder);
  buildGemmaGraph(model);
  // A checkpoint with tokenizer.json and no tokenizer.model (what save_pretrained writes for a
  // GemmaTokenizerFast): the program gets a sentencepiece model built from its vocabulary.
  fs::path json = fs::path(folder) / "tokenizer.json";
  if (!fs::exists(fs::path(folder) / "tokenizer.model") && fs::exists(json)) {
    std::string path = resolveModelFile(folder, "tokenizer.json", folder, "the tokenizer");
    std::string text, why;
    if (!readRegularFile(path, uint64_t(1) << 30, text, why))
      throw UserError(Location::named(path), why);
    model.tokenizerModel = serializeSentencePieceModel(sentencePieceFromTokenizerJson(text, path));
    model.tokenizerSource = "tokenizer.json";
  }
  return model;
}

void buildGemmaGraph(ImportedModel& model) {
  model.weightPrefix = checkTensors(model);
  // The activation dtype is the embedding's (f32 for a GGUF's, quantized or not).
  ElementType embedding =
      model.weights.find(model.weightPrefix + "embed_tokens.weight")->elementType;
  model.activationType = isBlockQuantized(embedding) ? ElementType::F32 : embedding;
  model.graph = std::make_unique<Graph>("gemma_" + headName(model.head));
  for (char& ch : model.graph->name)
    if (ch == '-')
      ch = '_';
  GemmaGraphBuilder(model, *model.graph).build();
  verifyGraph(*model.graph);
}

} // namespace gemma
