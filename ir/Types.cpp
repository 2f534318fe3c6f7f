#include "ir/Types.h"

#include "ir/Diagnostics.h"

#include <algorithm>
#include <limits>

namespace gemma {

namespace {

struct ElementTypeInfo {
  ElementType type;
  std::string_view name;
  int64_t size;
};
constexpr ElementTypeInfo kElementTypes[] = {
    {ElementType::F32, "f32", 4},   {ElementType::BF16, "bf16", 2}, {ElementType::F16, "f16", 2},
    {ElementType::I64, "i64", 8},   {ElementType::I32, "i32", 4},   {ElementType::I8, "i8", 1},
    {ElementType::Bool, "bool", 1}, {ElementType::Q4_0, "q4_0", 0}, {ElementType::Q4_1, "q4_1", 0},
    {ElementType::Q5_0, "q5_0", 0}, {ElementType::Q5_1, "q5_1", 0}, {ElementType::Q8_0, "q8_0", 0},
    {ElementType::Q4_K, "q4_k", 0}, {ElementType::Q5_K, "q5_k", 0}, {ElementType::Q6_K, "q6_k", 0}};

const ElementTypeInfo& info(ElementType type) {
  for (const auto& entry : kElementTypes)
    if (entry.type == type)
      return entry;
  GEMMA_INTERNAL_ASSERT(false, "unknown element type");
}

bool withinBounds(int64_t value) {
  return value >= -kMaxDimValue && value <= kMaxDimValue;
}

} // namespace

double lowestFinite(ElementType type) {
  return type == ElementType::BF16  ? -3.3895313892515355e38
         : type == ElementType::F16 ? -65504.0
                                    : static_cast<double>(std::numeric_limits<float>::lowest());
}

std::string_view elementTypeName(ElementType type) {
  return info(type).name;
}
int64_t elementSize(ElementType type) {
  GEMMA_INTERNAL_ASSERT(!isBlockQuantized(type), "a block-quantized type has no element size");
  return info(type).size;
}

std::optional<ElementType> parseElementType(std::string_view name) {
  for (const auto& entry : kElementTypes)
    if (entry.name == name)
      return entry.type;
  return std::nullopt;
}

bool isFloat(ElementType type) {
  return type == ElementType::F32 || type == ElementType::BF16 || type == ElementType::F16;
}
bool hasIntegerDotProduct(ElementType type) {
  return type == ElementType::Q8_0 || type == ElementType::Q4_0 || type == ElementType::Q5_0 ||
         type == ElementType::Q4_K || type == ElementType::Q6_K;
}

bool isBlockQuantized(ElementType type) {
  return info(type).size == 0;
}
bool isInteger(ElementType type) {
  return type == ElementType::I64 || type == ElementType::I32 || type == ElementType::I8;
}

Dim Dim::constant(int64_t value) {
  Dim dim;
  dim.constant_ = value;
  return dim;
}

Dim Dim::symbol(std::string name) {
  Dim dim;
  dim.terms_.emplace_back(std::move(name), 1);
  return dim;
}

Dim Dim::unknown() {
  Dim dim;
  dim.unknown_ = true;
  return dim;
}

int64_t Dim::staticValue() const {
  GEMMA_INTERNAL_ASSERT(isStatic(), "staticValue() of a symbolic dim");
  return constant_;
}

Dim Dim::operator+(const Dim& other) const {
  if (unknown_ || other.unknown_)
    return unknown();
  Dim sum;
  sum.constant_ = constant_ + other.constant_;
  std::map<std::string, int64_t> coefficients(terms_.begin(), terms_.end());
  for (const auto& [name, coefficient] : other.terms_)
    coefficients[name] += coefficient;
  for (const auto& [name, coefficient] : coefficients) {
    if (!withinBounds(coefficient))
      return unknown();
    if (coefficient != 0)
      sum.terms_.emplace_back(name, coefficient);
  }
  return withinBounds(sum.constant_) ? sum : unknown();
}

Dim Dim::scaled(int64_t factor) const {
  if (unknown_ || !withinBounds(factor))
    return unknown();
  if (factor == 0)
    return Dim::constant(0);
  Dim product;
  if (__builtin_mul_overflow(constant_, factor, &product.constant_))
    return unknown();
  for (const auto& [name, coefficient] : terms_) {
    int64_t scaledCoefficient = 0;
    if (__builtin_mul_overflow(coefficient, factor, &scaledCoefficient) ||
        !withinBounds(scaledCoefficient))
      return unknown();
    product.terms_.emplace_back(name, scaledCoefficient);
  }
  return withinBounds(product.constant_) ? product : unknown();
}

Dim Dim::operator-(const Dim& other) const {
  return *this + other.scaled(-1);
}

std::optional<int64_t> Dim::evaluate(const SymbolBindings& bindings) const {
  if (unknown_)
    return std::nullopt;
  int64_t value = constant_;
  for (const auto& [name, coefficient] : terms_) {
    auto it = bindings.find(name);
    if (it == bindings.end())
      return std::nullopt;
    int64_t term = 0;
    if (__builtin_mul_overflow(coefficient, it->second, &term) ||
        __builtin_add_overflow(value, term, &value))
      return std::nullopt;
  }
  return value;
}

bool Dim::compatibleWith(const Dim& other) const {
  return unknown_ || other.unknown_ || *this == other;
}

std::string Dim::str() const {
  if (unknown_)
    return "?";
  std::string out;
  for (const auto& [name, coefficient] : terms_) {
    if (coefficient < 0)
      out += "-";
    else if (!out.empty())
      out += "+";
    int64_t magnitude = coefficient < 0 ? -coefficient : coefficient;
    if (magnitude != 1)
      out += std::to_string(magnitude) + "*";
    out += name;
  }
  if (out.empty())
    return std::to_string(constant_);
  if (constant_ > 0)
    out += "+" + std::to_string(constant_);
  else if (constant_ < 0)
    out += std::to_string(constant_);
  return out;
}

bool TensorType::isStatic() const {
  return std::all_of(dims.begin(), dims.end(), [](const Dim& d) { return d.isStatic(); });
}

std::optional<int64_t> TensorType::staticNumElements() const {
  int64_t count = 1;
  for (const Dim& dim : dims) {
    if (!dim.isStatic() || dim.staticValue() < 0 ||
        __builtin_mul_overflow(count, dim.staticValue(), &count))
      return std::nullopt;
  }
  return count;
}

bool TensorType::compatibleWith(const TensorType& other) const {
  if (elementType != other.elementType || dims.size() != other.dims.size())
    return false;
  for (size_t i = 0; i < dims.size(); ++i)
    if (!dims[i].compatibleWith(other.dims[i]))
      return false;
  return true;
}

std::string TensorType::str() const {
  std::string out(elementTypeName(elementType));
  out += "[";
  for (size_t i = 0; i < dims.size(); ++i)
    out += (i ? "," : "") + dims[i].str();
  return out + "]";
}

TensorType tensorType(ElementType elementType, const std::vector<int64_t>& dims) {
  TensorType type{elementType, {}};
  for (int64_t d : dims)
    type.dims.push_back(Dim::constant(d));
  return type;
}

} // namespace gemma
