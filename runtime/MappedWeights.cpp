// Loads the weights file the compiler wrote (backend/WeightsFile.h) and refuses any other: the size
// must be the compiled one and the safetensors metadata must name this model's hash.
#include "runtime/Session.h"

#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

namespace gemma::rt {

MappedWeights::MappedWeights(const gemma_model_desc& model, const std::string& path) {
  auto fail = [&](const std::string& what) {
    return std::runtime_error("weights file '" + path + "': " + what);
  };
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0)
    throw fail(std::strerror(errno));
  struct stat info;
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    close(fd);
    throw fail("not a regular file");
  }
  size_t expected = static_cast<size_t>(model.weights_file_bytes);
  if (static_cast<size_t>(info.st_size) != expected) {
    close(fd);
    throw fail("has " + std::to_string(info.st_size) + " bytes, model '" + model.name +
               "' was compiled with " + std::to_string(expected) +
               " (truncated, or another model's)");
  }
  // Read into anonymous memory in transparent huge pages rather than mapped from the page cache:
  // decode streams every weight once per token, and with 2 MiB pages it reads them 5-13% faster
  // (bench.sh, bf16 gemma-2b shapes). Read, not copied from a mapping: the file's pages never
  // count in the program's resident memory beside the copy.
  constexpr size_t kHugePage = size_t(2) << 20;
  regionBytes_ = (expected + kHugePage - 1) / kHugePage * kHugePage + kHugePage;
  void* region =
      mmap(nullptr, regionBytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (region == MAP_FAILED) {
    close(fd);
    throw fail("cannot allocate " + std::to_string(expected) +
               " bytes for it: " + std::strerror(errno));
  }
  region_ = region;
  auto* aligned = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(region) + kHugePage - 1) /
                                             kHugePage * kHugePage);
  madvise(aligned, regionBytes_ - kHugePage, MADV_HUGEPAGE); // a hint: 4 KiB pages also work
  size_t done = 0;
  while (done < expected) {
    ssize_t got = pread(fd, aligned + done, expected - done, static_cast<off_t>(done));
    if (got < 0 && errno == EINTR)
      continue;
    if (got <= 0) {
      std::string why = got < 0 ? std::strerror(errno) : "it ended early";
      close(fd);
      munmap(region_, regionBytes_);
      throw fail("reading byte " + std::to_string(done) + " failed: " + why);
    }
    done += static_cast<size_t>(got);
  }
  close(fd);
  mprotect(region_, regionBytes_, PROT_READ); // the kernels only read the weights
  base_ = aligned;
  size_ = expected;
  try {
    uint64_t headerBytes = 0;
    if (size_ < 8)
      throw fail("too short for a safetensors header");
    std::memcpy(&headerBytes, base_, 8);
    if (headerBytes > size_ - 8)
      throw fail("its header length " + std::to_string(headerBytes) + " runs past the end");
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(base_ + 8, base_ + 8 + headerBytes);
    } catch (const nlohmann::json::exception& error) {
      throw fail(std::string("its header is not JSON: ") + error.what());
    }
    const auto metadata = header.find("__metadata__");
    auto field = [&](const char* key) -> std::string {
      if (!header.is_object() || metadata == header.end() || !metadata->is_object())
        return "";
      auto it = metadata->find(key);
      return it != metadata->end() && it->is_string() ? it->get<std::string>() : "";
    };
    if (field("format") != "gemmac-weights/1")
      throw fail("not a gemmac weights file (metadata format is not gemmac-weights/1)");
    if (field("model_hash") != model.model_hash)
      throw fail("written for model " + field("model_hash") + ", this program is model " +
                 model.model_hash + " (recompile, or use the weights compiled with it)");
  } catch (...) {
    munmap(region_, regionBytes_);
    throw;
  }
}

MappedWeights::~MappedWeights() {
  munmap(region_, regionBytes_);
}

} // namespace gemma::rt
