// Proves the runtime-side dependency works alone in its process, as generated executables will
// use it: sentencepiece trains a tiny BPE model with Gemma's settings (GEMMA_SPEC.md section 4)
// and round-trips text through it. No protobuf or ONNX here (TOOLCHAIN.md, gotcha 7).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>
#include <unistd.h>

int main() {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("gemmac-spm-probe-" + std::to_string(getpid()));
  fs::create_directories(dir);
  {
    std::ofstream corpus(dir / "corpus.txt");
    for (int i = 0; i < 50; ++i)
      corpus << "the quick brown fox jumps over the lazy dog " << i << "\n"
             << "gemma compiles ahead of time into native code\n";
  }
  auto status = sentencepiece::SentencePieceTrainer::Train(
      "--input=" + (dir / "corpus.txt").string() + " --model_prefix=" + (dir / "tok").string() +
      " --model_type=bpe --vocab_size=300 --hard_vocab_limit=false --byte_fallback=true "
      "--split_digits=true"
      " --add_dummy_prefix=false --remove_extra_whitespaces=false --pad_id=0 --eos_id=1"
      " --bos_id=2 --unk_id=3 --minloglevel=2");
  if (!status.ok())
    std::fprintf(stderr, "sentencepiece training: %s\n", status.ToString().c_str());
  sentencepiece::SentencePieceProcessor processor;
  bool ok = status.ok() && processor.Load((dir / "tok.model").string()).ok();
  std::string text = "the lazy fox 42 \xc3\xa9";
  std::vector<int> ids;
  std::string decoded;
  ok = ok && processor.Encode(text, &ids).ok() && processor.Decode(ids, &decoded).ok() &&
       decoded == text;
  fs::remove_all(dir);
  std::printf("sentencepiece %s (%zu ids)\n", ok ? "ok" : "FAILED", ids.size());
  return ok ? 0 : 1;
}
