// The C API (gemma_api.h): sessions, the forward call over the KV cache, and transformers'
// generation loop. Errors never escape as exceptions: each entry point catches and records them.
#include "runtime/Session.h"

#include "ir/ElementCodec.h"
#include "runtime/ParallelFor.h"

#include <HalideRuntime.h>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <stdexcept>

namespace {

using gemma::rt::Sampler;

// Runs `body`, turning an exception into the session's error and `failed`.
template <typename T, typename Body> T guarded(gemma_session* session, T failed, Body&& body) {
  if (!session)
    return failed;
  try {
    session->error.clear();
    return body();
  } catch (const std::exception& error) {
    session->error = error.what();
  } catch (...) {
    session->error = "unknown error";
  }
  return failed;
}

uint8_t* allocateZeroed(int64_t bytes, const char* what) {
  // 64-byte aligned (a vector's width), at least one line so an empty plan is still an address.
  constexpr size_t kAlignment = GEMMA_BUFFER_ALIGNMENT;
  size_t size =
      (static_cast<size_t>(std::max<int64_t>(bytes, 1)) + kAlignment - 1) / kAlignment * kAlignment;
  void* memory = aligned_alloc(kAlignment, size);
  if (!memory)
    throw std::runtime_error(std::string("cannot allocate the ") + what + " (" +
                             std::to_string(bytes) + " bytes)");
  std::memset(memory, 0, size);
  return static_cast<uint8_t*>(memory);
}

// Halide's default error handler prints and calls abort(), which would kill the program (or the C
// program embedding the model) on any kernel failure, out of memory included. Ours keeps the
// message for the forward call that failed, which then returns the kernel's error code.
thread_local std::string lastKernelError;

extern "C" void recordKernelError(void*, const char* message) {
  lastKernelError = message ? message : "";
}

void installKernelErrorHandler() {
  static const bool installed = [] {
    halide_set_error_handler(recordKernelError);
    return true;
  }();
  (void)installed;
  gemma::rt::installParallelFor();
}

void requireTokenizer(const gemma_session* session) {
  if (!session->tokenizer)
    throw std::runtime_error("no tokenizer was loaded (give a tokenizer.model)");
}

int64_t rowsOf(const gemma_model_desc& model, int64_t batch, int64_t seq) {
  return model.head == GEMMA_HEAD_SEQ_CLS ? batch : batch * seq;
}

// Runs the model; s->rows then holds its first output's rows: every row, or with lastRowOnly
// (generation: the next token needs the last position's logits) only the last one, which is all
// the program computes then.
void forward(gemma_session* s, int64_t batch, int64_t seq, int64_t past, const int64_t* ids,
             const int64_t* mask, const int64_t* positions, bool lastRowOnly = false) {
  const gemma_model_desc& m = *s->model;
  if (batch < 1 || batch > m.max_batch)
    throw std::runtime_error("batch " + std::to_string(batch) + " is outside the compiled 1.." +
                             std::to_string(m.max_batch) + " (compile with --max-batch)");
  // (Compared so that no sum overflows: past may be anything a caller passes.)
  if (seq < 1 || seq > m.max_seq_len || past < 0 || past > m.max_seq_len - seq)
    throw std::runtime_error(std::to_string(past) + " cached + " + std::to_string(seq) +
                             " new tokens exceed the compiled context of " +
                             std::to_string(m.max_seq_len) + " (compile with --max-seq-len)");
  for (int64_t i = 0; i < batch * seq; ++i)
    if (ids[i] < 0 || ids[i] >= m.vocab_size)
      throw std::runtime_error("token id " + std::to_string(ids[i]) + " is outside the vocabulary");
  static const int64_t emptyPast[8] = {};
  std::vector<void*> inputs(static_cast<size_t>(m.num_inputs));
  for (int32_t i = 0; i < m.num_inputs; ++i) {
    const void* data = emptyPast;
    switch (m.input_roles[i]) {
    case GEMMA_INPUT_IDS:
      data = ids;
      break;
    case GEMMA_INPUT_MASK:
      data = mask;
      break;
    case GEMMA_INPUT_POSITIONS:
      data = positions;
      break;
    default:
      break;
    }
    inputs[static_cast<size_t>(i)] = const_cast<void*>(data);
  }
  std::vector<void*> outputs(static_cast<size_t>(m.num_outputs), nullptr);
  bool lastRow = lastRowOnly && batch == 1 && m.head != GEMMA_HEAD_SEQ_CLS;
  installKernelErrorHandler();
  lastKernelError.clear();
  int32_t status = m.forward(s->weights->base(), s->arena.get(), s->kvCache.get(), inputs.data(),
                             outputs.data(), batch, seq, past, lastRow ? 1 : 0);
  if (status != 0) {
    std::string message = lastKernelError;
    while (!message.empty() && (message.back() == '\n' || message.back() == ' '))
      message.pop_back();
    throw std::runtime_error("a kernel failed (Halide error " + std::to_string(status) +
                             (message.empty() ? ")" : "): " + message));
  }
  size_t count = static_cast<size_t>(rowsOf(m, batch, seq) * m.output_width);
  if (lastRow) { // the last row alone was computed
    outputs[0] =
        static_cast<uint8_t*>(outputs[0]) +
        (count - static_cast<size_t>(m.output_width)) * (m.output_type == GEMMA_OUTPUT_F32 ? 4 : 2);
    count = static_cast<size_t>(m.output_width);
  }
  s->rows.resize(count);
  if (m.output_type == GEMMA_OUTPUT_BF16) {
    const auto* half = static_cast<const uint16_t*>(outputs[0]);
    for (size_t i = 0; i < count; ++i)
      s->rows[i] = gemma::codec::bf16BitsToFloat(half[i]);
  } else if (m.output_type == GEMMA_OUTPUT_F16) {
    const auto* half = static_cast<const uint16_t*>(outputs[0]);
    for (size_t i = 0; i < count; ++i)
      s->rows[i] = gemma::codec::f16BitsToFloat(half[i]);
  } else {
    std::memcpy(s->rows.data(), outputs[0], count * sizeof(float));
  }
}

} // namespace

extern "C" {

gemma_session* gemma_open(const gemma_model_desc* model, const char* weights_path,
                          const char* tokenizer_path, char* error, size_t error_size) {
  auto report = [&](const std::string& message) -> gemma_session* {
    if (error && error_size)
      snprintf(error, error_size, "%s", message.c_str());
    return nullptr;
  };
  if (!model || model->abi != GEMMA_MODEL_ABI)
    return report("the model description is missing or from another gemmac version");
  if (!weights_path)
    return report("no weights file given");
  try {
    auto session = std::make_unique<gemma_session>();
    session->model = model;
    session->weights = std::make_unique<gemma::rt::LoadedWeights>(*model, weights_path);
    session->arena.reset(allocateZeroed(model->arena_bytes, "activation arena"));
    session->kvCache.reset(allocateZeroed(model->kv_cache_bytes, "KV cache"));
    if (tokenizer_path)
      session->tokenizer = std::make_unique<gemma::rt::Tokenizer>(tokenizer_path, model->bos_id);
    return session.release();
  } catch (const std::exception& failure) {
    return report(failure.what());
  }
}

void gemma_close(gemma_session* session) {
  delete session;
}

const char* gemma_error(const gemma_session* session) {
  return session ? session->error.c_str() : "no session";
}

// The getters answer "" or -1 for a null session.
const char* gemma_model_name(const gemma_session* s) {
  return s ? s->model->name : "";
}
int32_t gemma_head_kind(const gemma_session* s) {
  return s ? s->model->head : -1;
}
int64_t gemma_max_batch(const gemma_session* s) {
  return s ? s->model->max_batch : -1;
}
int64_t gemma_max_seq_len(const gemma_session* s) {
  return s ? s->model->max_seq_len : -1;
}
int64_t gemma_output_width(const gemma_session* s) {
  return s ? s->model->output_width : -1;
}
int64_t gemma_planned_bytes(const gemma_session* s) {
  return s ? s->model->weights_file_bytes + s->model->kv_cache_bytes + s->model->arena_bytes : -1;
}

static int32_t copyIds(const std::vector<int32_t>& ids, int32_t* out, int32_t capacity) {
  if (capacity < 0 || (capacity > 0 && !out))
    throw std::runtime_error("the id array is null or its capacity (" + std::to_string(capacity) +
                             ") negative");
  if (capacity > 0)
    std::copy_n(ids.begin(), std::min<size_t>(ids.size(), static_cast<size_t>(capacity)), out);
  return static_cast<int32_t>(ids.size());
}

int32_t gemma_tokenize(gemma_session* session, const char* text, int32_t add_bos, int32_t* ids,
                       int32_t capacity) {
  return guarded(session, -1, [&] {
    requireTokenizer(session);
    if (!text)
      throw std::runtime_error("gemma_tokenize: the text is null");
    return copyIds(session->tokenizer->encode(text, add_bos != 0), ids, capacity);
  });
}

int32_t gemma_tokenize_chat(gemma_session* session, const char* user_message, int32_t* ids,
                            int32_t capacity) {
  return guarded(session, -1, [&] {
    requireTokenizer(session);
    if (!user_message)
      throw std::runtime_error("gemma_tokenize_chat: the message is null");
    std::string text = std::string("<start_of_turn>user\n") + user_message +
                       "<end_of_turn>\n<start_of_turn>model\n";
    return copyIds(session->tokenizer->encode(text, true), ids, capacity);
  });
}

int64_t gemma_detokenize(gemma_session* session, const int32_t* ids, int32_t count, char* text,
                         size_t capacity) {
  return guarded(session, int64_t(-1), [&] {
    requireTokenizer(session);
    if (count < 0 || (count > 0 && !ids))
      throw std::runtime_error("gemma_detokenize: " + std::to_string(count) +
                               " ids from a null array, or a negative count");
    std::string decoded = session->tokenizer->decode(ids, size_t(count));
    if (text && capacity > 0)
      snprintf(text, capacity, "%s", decoded.c_str());
    return static_cast<int64_t>(decoded.size());
  });
}

int32_t gemma_piece_id(gemma_session* session, const char* piece) {
  return guarded(session, -1, [&] {
    requireTokenizer(session);
    if (!piece)
      throw std::runtime_error("gemma_piece_id: the piece is null");
    return session->tokenizer->pieceId(piece);
  });
}

int32_t gemma_forward(gemma_session* session, int64_t batch, int64_t seq, int64_t past,
                      const int64_t* input_ids, const int64_t* attention_mask,
                      const int64_t* position_ids, float* output) {
  return guarded(session, -1, [&] {
    if (!input_ids || !attention_mask || !position_ids || !output)
      throw std::runtime_error("gemma_forward: a null array");
    forward(session, batch, seq, past, input_ids, attention_mask, position_ids);
    std::copy(session->rows.begin(), session->rows.end(), output);
    return 0;
  });
}

void gemma_generation_config_default(const gemma_session* session,
                                     gemma_generation_config* config) {
  if (!config)
    return;
  *config = gemma_generation_config{};
  if (!session) { // transformers' defaults, without a checkpoint's
    config->max_length = 20;
    config->temperature = 1;
    config->top_k = 50;
    config->top_p = 1;
    return;
  }
  // The checkpoint's default, within what the program was compiled for.
  config->max_length = static_cast<int32_t>(
      std::min<int64_t>(session->model->default_max_length, session->model->max_seq_len));
  config->temperature = 1;
  config->top_k = 50;
  config->top_p = 1;
  // gemmac refuses a checkpoint with more eos ids than the config holds: none is dropped here.
  config->num_stop_ids = std::min(session->model->num_eos, GEMMA_MAX_STOP_IDS);
  for (int32_t i = 0; i < config->num_stop_ids; ++i)
    config->stop_ids[i] = session->model->eos_ids[i];
}

int32_t gemma_generate(gemma_session* session, const int32_t* prompt, int32_t prompt_length,
                       const gemma_generation_config* config, int32_t* output, int32_t capacity,
                       const gemma_generation_callbacks* callbacks) {
  return guarded(session, -1, [&] {
    const gemma_model_desc& m = *session->model;
    if (m.head != GEMMA_HEAD_CAUSAL_LM)
      throw std::runtime_error("generation needs a causal-lm model; this one is a classifier "
                               "or a bare GemmaModel (use gemma_forward)");
    if (!prompt || prompt_length < 1 || !config || !output)
      throw std::runtime_error("gemma_generate: an empty prompt or a null argument");
    // As transformers' generation config: a temperature that is a strictly positive number, a
    // top_p in [0, 1], a top_k of at least 0 (0: off).
    if (config->do_sample && !(std::isfinite(config->temperature) && config->temperature > 0))
      throw std::runtime_error("gemma_generate: temperature " +
                               std::to_string(config->temperature) +
                               " is not a strictly positive number");
    if (config->do_sample && !(config->top_p >= 0 && config->top_p <= 1))
      throw std::runtime_error("gemma_generate: top_p " + std::to_string(config->top_p) +
                               " is outside [0, 1]");
    if (config->do_sample && config->top_k < 0)
      throw std::runtime_error("gemma_generate: top_k " + std::to_string(config->top_k) +
                               " is negative");
    if (config->num_stop_ids < 0 || config->num_stop_ids > GEMMA_MAX_STOP_IDS)
      throw std::runtime_error("gemma_generate: num_stop_ids " +
                               std::to_string(config->num_stop_ids) + " is outside 0.." +
                               std::to_string(GEMMA_MAX_STOP_IDS));
    int64_t total = config->max_new_tokens > 0 ? int64_t(prompt_length) + config->max_new_tokens
                                               : int64_t(config->max_length);
    if (prompt_length > m.max_seq_len)
      throw std::runtime_error("the prompt has " + std::to_string(prompt_length) +
                               " tokens, more than the compiled context of " +
                               std::to_string(m.max_seq_len) + " (compile with --max-seq-len)");
    if (total <= prompt_length)
      throw std::runtime_error("max_length " + std::to_string(total) +
                               " leaves no room after the " + std::to_string(prompt_length) +
                               "-token prompt");
    if (total > m.max_seq_len)
      throw std::runtime_error("max_length " + std::to_string(total) +
                               " exceeds the compiled context of " + std::to_string(m.max_seq_len) +
                               " (compile with --max-seq-len)");
    if (total > capacity)
      throw std::runtime_error("the output array holds " + std::to_string(capacity) +
                               " ids, generation may need " + std::to_string(total));
    std::copy_n(prompt, prompt_length, output);
    Sampler sampler(*config);
    gemma_generation_stats stats{};
    using Clock = std::chrono::steady_clock;
    std::vector<int64_t> ids, mask, positions;
    int64_t length = 0; // tokens already in the cache
    // A model without past inputs (an ONNX export without cache) recomputes the whole sequence.
    bool cached = std::any_of(m.input_roles, m.input_roles + m.num_inputs,
                              [](int32_t role) { return role == GEMMA_INPUT_PAST; });
    // One forward call over output[length, length + count).
    auto step = [&](int64_t count, bool inPrompt) {
      auto started = Clock::now();
      if (!cached) {
        count += length;
        length = 0;
      }
      ids.assign(output + length, output + length + count);
      mask.assign(static_cast<size_t>(length + count), 1);
      positions.resize(static_cast<size_t>(count));
      for (int64_t i = 0; i < count; ++i)
        positions[static_cast<size_t>(i)] = length + i;
      // Only a logits callback (--dump-logits) wants more than the last row.
      forward(session, 1, count, length, ids.data(), mask.data(), positions.data(),
              !(callbacks && callbacks->on_logits));
      double seconds = std::chrono::duration<double>(Clock::now() - started).count();
      (inPrompt ? stats.prefill_seconds : stats.decode_seconds) += seconds;
      (inPrompt ? stats.prefill_tokens : stats.decode_tokens) += count;
      if (callbacks && callbacks->on_logits) {
        int64_t fresh = cached ? count : std::min<int64_t>(count, inPrompt ? count : 1);
        callbacks->on_logits(callbacks->user,
                             session->rows.data() + (count - fresh) * m.output_width, fresh,
                             m.output_width);
      }
      length += count;
    };
    int64_t first = config->prefill_tokens > 0
                        ? std::min<int64_t>(config->prefill_tokens, prompt_length)
                        : prompt_length;
    step(first, true);
    while (length < prompt_length)
      step(1, true);
    int64_t sequence = prompt_length;
    while (true) {
      const float* last = session->rows.data() + session->rows.size() - m.output_width;
      int32_t token = sampler.next(last, m.output_width);
      output[sequence++] = token;
      bool stop = std::find(config->stop_ids, config->stop_ids + config->num_stop_ids, token) !=
                  config->stop_ids + config->num_stop_ids;
      if (callbacks && callbacks->on_token &&
          callbacks->on_token(callbacks->user, output, static_cast<int32_t>(sequence)) != 0)
        stop = true;
      if (stop || sequence >= total)
        break;
      step(1, false);
    }
    session->stats = stats;
    return static_cast<int32_t>(sequence);
  });
}

void gemma_last_stats(const gemma_session* session, gemma_generation_stats* stats) {
  if (stats)
    *stats = session ? session->stats : gemma_generation_stats{};
}

} // extern "C"
