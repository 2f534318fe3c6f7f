// A kernel compiled ahead of time, as gemmac compiles it (compileKernelToObject, the Halide
// runtime object), linked into a shared library and loaded: for kernels that must not be JIT
// compiled, the fast arithmetic's (their JIT target would be Halide's Sapphire Rapids CPU, whose
// instructions Zen 4 lacks), and to run exactly the object a program links.
#pragma once

#include "backend/halide/Kernels.h"

#include <Halide.h>
#include <dlfcn.h>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

namespace gemma::testing {

class AheadOfTimeKernel {
public:
  AheadOfTimeKernel(const Kernel& kernel, const std::string& name, TargetKind target)
      : objectPath_(std::filesystem::temp_directory_path() / (name + ".o")) {
    std::string dir = std::filesystem::temp_directory_path();
    std::string library = dir + "/" + name + ".so", runtime = dir + "/" + name + "_runtime.o";
    compileKernelToObject(kernel, objectPath_, name, target);
    compileHalideRuntime(runtime, target);
    std::string command = "cc -shared -Wl,-Bsymbolic -o '" + library + "' '" + objectPath_ + "' '" +
                          runtime + "' -lpthread -ldl -lm";
    if (std::system(command.c_str()) != 0)
      throw std::runtime_error("cannot link: " + command);
    handle_ = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (!handle_)
      throw std::runtime_error(dlerror());
    entry_ = reinterpret_cast<int (*)(void**)>(dlsym(handle_, (name + "_argv").c_str()));
    if (!entry_)
      throw std::runtime_error("no " + name + "_argv in " + library);
  }
  ~AheadOfTimeKernel() {
    if (handle_)
      dlclose(handle_);
  }
  AheadOfTimeKernel(const AheadOfTimeKernel&) = delete;
  AheadOfTimeKernel& operator=(const AheadOfTimeKernel&) = delete;

  // Runs the kernel on its operands' buffers and the result's; returns Halide's error code.
  int run(std::vector<Halide::Buffer<>> operands, Halide::Buffer<> result) {
    std::vector<void*> args;
    for (Halide::Buffer<>& b : operands)
      args.push_back(b.raw_buffer());
    args.push_back(result.raw_buffer());
    return entry_(args.data());
  }
  const std::string& objectPath() const { return objectPath_; }

private:
  std::string objectPath_;
  void* handle_ = nullptr;
  int (*entry_)(void**) = nullptr;
};

} // namespace gemma::testing
