// Loads the weights file the compiler wrote (backend/WeightsFile.h) and refuses any other: the size
// must be the compiled one and the safetensors metadata must name this model's hash.
#include "ir/RegularFile.h"
#include "runtime/Session.h"

#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
// Header-only: the runtime links no xxhash library.
#define XXH_INLINE_ALL
#include <xxhash.h>

namespace gemma::rt {

LoadedWeights::LoadedWeights(const gemma_model_desc& model, const std::string& path) {
  auto fail = [&](const std::string& what) {
    return std::runtime_error("weights file '" + path + "': " + what);
  };
  uint64_t fileSize = 0;
  std::string why;
  int fd = gemma::openRegularFile(path, fileSize, why);
  if (fd < 0)
    throw fail(why);
  size_t expected = static_cast<size_t>(model.weights_file_bytes);
  if (static_cast<size_t>(fileSize) != expected) {
    close(fd);
    throw fail("has " + std::to_string(fileSize) + " bytes, model '" + model.name +
               "' was compiled with " + std::to_string(expected) +
               " (truncated, or another model's)");
  }
  // Reads bytes [offset, offset + count) of the file into dest.
  auto readAt = [&](uint8_t* dest, size_t count, size_t offset) {
    size_t done = gemma::readFully(fd, dest, count, offset);
    if (done < count)
      throw fail("reading byte " + std::to_string(offset + done) +
                 " failed: " + (errno ? std::strerror(errno) : "it ended early"));
  };
  try {
    // The header first: another model's file of the same size is refused before it is read.
    uint64_t headerBytes = 0;
    if (expected < 8)
      throw fail("too short for a safetensors header");
    readAt(reinterpret_cast<uint8_t*>(&headerBytes), 8, 0);
    if (headerBytes > expected - 8)
      throw fail("its header length " + std::to_string(headerBytes) + " runs past the end");
    std::string text(static_cast<size_t>(headerBytes), '\0');
    readAt(reinterpret_cast<uint8_t*>(text.data()), text.size(), 8);
    nlohmann::json header;
    try {
      header = nlohmann::json::parse(text);
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
    if (field("format") != GEMMA_WEIGHTS_FORMAT)
      throw fail("not a gemmac weights file (metadata format is not " GEMMA_WEIGHTS_FORMAT ")");
    if (field("model_hash") != model.model_hash)
      throw fail("written for model " + field("model_hash") + ", this program is model " +
                 model.model_hash + " (recompile, or use the weights compiled with it)");

    // Read into anonymous memory in transparent huge pages rather than mapped from the page
    // cache: decode streams every weight once per token, and with 2 MiB pages it read them about
    // 20% faster (bf16 gemma-2b shapes: 3.34-3.41 -> 4.01-4.17 tokens/s). Read, not copied from
    // a mapping: the file's pages never count in the program's resident memory beside the copy.
    constexpr size_t kHugePage = size_t(2) << 20;
    regionBytes_ = (expected + kHugePage - 1) / kHugePage * kHugePage + kHugePage;
    void* region =
        mmap(nullptr, regionBytes_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (region == MAP_FAILED)
      throw fail("cannot allocate " + std::to_string(expected) +
                 " bytes for it: " + std::strerror(errno));
    region_ = region;
    auto* aligned = reinterpret_cast<uint8_t*>(
        (reinterpret_cast<uintptr_t>(region) + kHugePage - 1) / kHugePage * kHugePage);
    madvise(aligned, regionBytes_ - kHugePage, MADV_HUGEPAGE); // a hint: 4 KiB pages also work
    readAt(aligned, expected, 0);
    // The data as written (a flipped bit, zeros or NaNs inside the file would otherwise be
    // computed with): its xxh3 against the header's; memory-speed next to reading the file.
    char checksum[17];
    snprintf(checksum, sizeof checksum, "%016llx",
             static_cast<unsigned long long>(
                 XXH3_64bits(aligned + 8 + headerBytes, expected - 8 - headerBytes)));
    if (field("data_xxh3") != checksum)
      throw fail("its data is corrupted: checksum " + std::string(checksum) + ", the header says " +
                 field("data_xxh3"));
    mprotect(region_, regionBytes_, PROT_READ); // the kernels only read the weights
    base_ = aligned;
    size_ = expected;
  } catch (...) {
    close(fd);
    if (region_)
      munmap(region_, regionBytes_);
    throw;
  }
  close(fd);
}

LoadedWeights::~LoadedWeights() {
  munmap(region_, regionBytes_);
}

} // namespace gemma::rt
