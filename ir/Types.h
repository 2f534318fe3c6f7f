// Tensor types: an element type and a shape whose dims are static integers, affine expressions of
// named symbols (`batch`, `seq`, `past+seq`), or unknown (`?`, to be filled in by shape inference).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace gemma {

// The block-quantized types are GGUF's (ggml's) block formats, byte for byte: a tensor of one is
// stored row by row, each row a whole number of blocks along its innermost dim, and only a weight
// holds one (the kernels dequantize it as they read it; ElementCodec.h gives each block's size).
enum class ElementType {
  F32,
  BF16,
  F16,
  I64,
  I32,
  I8,
  Bool,
  Q4_0,
  Q4_1,
  Q5_0,
  Q5_1,
  Q8_0,
  Q4_K,
  Q5_K,
  Q6_K
};

std::string_view elementTypeName(ElementType type);
std::optional<ElementType> parseElementType(std::string_view name);
bool isFloat(ElementType type);
bool isInteger(ElementType type); // i64, i32, i8 (not bool)
bool isBlockQuantized(ElementType type);
// The block types the fast arithmetic has integer dot products for (the backend's
// IntegerDotKernels.cpp): Q8_0, Q4_0, Q5_0, Q4_K and Q6_K.
bool hasIntegerDotProduct(ElementType type);
// Bytes per element of a per-element type (a block-quantized type has none: ElementCodec.h's
// storageBytes counts its blocks).
int64_t elementSize(ElementType type);
// The most negative finite value of a float type: the additive mask of a hidden key, as
// transformers' torch.finfo(dtype).min.
double lowestFinite(ElementType type);

// Bounds that keep every shape computation inside int64 (checked by the parser and the verifier).
constexpr int64_t kMaxDimValue = int64_t(1) << 40;
constexpr int kMaxRank = 16;

// Concrete values of the symbols, known when a graph runs on real inputs.
using SymbolBindings = std::map<std::string, int64_t>;

// One dimension: constant + sum(coefficient * symbol), or unknown.
class Dim {
public:
  Dim() = default; // the constant 0
  static Dim constant(int64_t value);
  static Dim symbol(std::string name);
  static Dim unknown();

  bool isUnknown() const { return unknown_; }
  bool isStatic() const { return !unknown_ && terms_.empty(); }
  // Precondition: isStatic().
  int64_t staticValue() const;
  int64_t constantPart() const { return constant_; }
  const std::vector<std::pair<std::string, int64_t>>& terms() const { return terms_; }

  // Arithmetic gives unknown if an operand is unknown or the result would leave kMaxDimValue.
  Dim operator+(const Dim& other) const;
  Dim operator-(const Dim& other) const;
  Dim scaled(int64_t factor) const;

  std::optional<int64_t> evaluate(const SymbolBindings& bindings) const;
  bool operator==(const Dim& other) const = default;
  // Same value under every binding, or one side unknown.
  bool compatibleWith(const Dim& other) const;
  std::string str() const;

private:
  bool unknown_ = false;
  int64_t constant_ = 0;
  std::vector<std::pair<std::string, int64_t>> terms_; // sorted by name, no zero coefficients
};

struct TensorType {
  ElementType elementType = ElementType::F32;
  std::vector<Dim> dims;

  int64_t rank() const { return static_cast<int64_t>(dims.size()); }
  bool isStatic() const;
  // Number of elements when static and representable; nullopt otherwise.
  std::optional<int64_t> staticNumElements() const;
  bool operator==(const TensorType& other) const = default;
  bool compatibleWith(const TensorType& other) const;
  std::string str() const;
};

TensorType tensorType(ElementType elementType, const std::vector<int64_t>& dims);

} // namespace gemma
