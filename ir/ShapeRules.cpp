#include "ir/ShapeRules.h"

#include <algorithm>
#include <set>

namespace gemma {

namespace {

// Reads an op's attributes by name and kind, and rejects attributes no rule read.
class AttrReader {
public:
  explicit AttrReader(const Op& op) : op_(op) {}

  int64_t integer(const std::string& name, std::optional<int64_t> fallback = std::nullopt) {
    return get<int64_t>(name, "an integer", fallback);
  }
  double real(const std::string& name, std::optional<double> fallback = std::nullopt) {
    return get<double>(name, "a float", fallback);
  }
  bool boolean(const std::string& name, std::optional<bool> fallback = std::nullopt) {
    return get<bool>(name, "a boolean", fallback);
  }
  std::string string(const std::string& name) { return get<std::string>(name, "a string", {}); }
  Ints ints(const std::string& name, std::optional<Ints> fallback = std::nullopt) {
    return get<Ints>(name, "a list of integers", fallback);
  }
  bool has(const std::string& name) const { return op_.attrs.count(name) != 0; }
  void markRead(const std::string& name) { read_.insert(name); }

  void finish() const {
    for (const auto& [name, value] : op_.attrs) {
      // Any op's result may carry its place in the planned arena (passes/PlanMemory.cpp).
      if (name == "arena_offset" || name == "arena_bytes") {
        const int64_t* v = std::get_if<int64_t>(&value);
        if (!v || *v < 0)
          throw UserError(op_.loc, "'" + std::string(op_.mnemonic()) + "' attribute '" + name +
                                       "' must be a non-negative integer");
        continue;
      }
      if (!read_.count(name))
        throw UserError(op_.loc,
                        "'" + std::string(op_.mnemonic()) + "' has no attribute '" + name + "'");
    }
  }

private:
  template <typename T>
  T get(const std::string& name, const char* kindName, std::optional<T> fallback) {
    read_.insert(name);
    auto it = op_.attrs.find(name);
    if (it == op_.attrs.end()) {
      if (fallback)
        return *fallback;
      throw UserError(op_.loc, "'" + std::string(op_.mnemonic()) + "' needs attribute '" + name +
                                   "' (" + kindName + ")");
    }
    if (const T* value = std::get_if<T>(&it->second))
      return *value;
    throw UserError(op_.loc, "'" + std::string(op_.mnemonic()) + "' attribute '" + name +
                                 "' must be " + kindName);
  }

  const Op& op_;
  std::set<std::string> read_;
};

[[noreturn]] void fail(const Op& op, const std::string& message) {
  throw UserError(op.loc, "'" + std::string(op.mnemonic()) + "' " + message);
}

const TensorType& operandType(const Op& op, size_t i) {
  return op.operands[i]->type;
}
const TensorType& declaredType(const Op& op) {
  return op.results[0]->type;
}

void requireSameElementType(const Op& op) {
  for (size_t i = 1; i < op.operands.size(); ++i)
    if (operandType(op, i).elementType != operandType(op, 0).elementType)
      fail(op, "operands must have one element type, got " + operandType(op, 0).str() + " and " +
                   operandType(op, i).str());
}

// One element type, except that a weight may be stored in a narrower float (bf16 or f16:
// gemmac's --weights-dtype) or in a GGUF's blocks under f32 activations: the kernels widen it as
// they read it.
void requireSameElementTypeOrNarrowWeights(const Op& op) {
  ElementType type = operandType(op, 0).elementType;
  for (size_t i = 1; i < op.operands.size(); ++i) {
    ElementType t = operandType(op, i).elementType;
    const Op* producer = op.operands[i]->definingOp;
    bool narrowWeight = type == ElementType::F32 &&
                        (t == ElementType::BF16 || t == ElementType::F16 || isBlockQuantized(t)) &&
                        producer && producer->kind == OpKind::Weight;
    if (t != type && !narrowWeight)
      fail(op, "operands must have one element type, got " + operandType(op, 0).str() + " and " +
                   operandType(op, i).str());
  }
}

void requireFloat(const Op& op, size_t i) {
  if (!isFloat(operandType(op, i).elementType))
    fail(op, "operand " + std::to_string(i) + " must be a float tensor, got " +
                 operandType(op, i).str());
}

void requireBool(const Op& op, size_t i) {
  if (operandType(op, i).elementType != ElementType::Bool)
    fail(op, "operand " + std::to_string(i) + " must be a bool tensor, got " +
                 operandType(op, i).str());
}

void requireNumeric(const Op& op, size_t i) {
  if (operandType(op, i).elementType == ElementType::Bool)
    fail(op, "operand " + std::to_string(i) + " must be numeric, got " + operandType(op, i).str());
}

// Distinct, in-range axes in increasing order.
std::vector<int64_t> normalizeAxes(const Op& op, const Ints& axes, int64_t rank) {
  std::vector<int64_t> normalized;
  for (int64_t axis : axes)
    normalized.push_back(normalizeAxis(axis, rank, op.loc));
  std::sort(normalized.begin(), normalized.end());
  if (std::adjacent_find(normalized.begin(), normalized.end()) != normalized.end())
    fail(op, "has a repeated axis");
  return normalized;
}

// The constant i64 values of an operand defined by `constant`, if it is one.
std::optional<Ints> constantInts(const Value* value) {
  if (!value->definingOp || value->definingOp->kind != OpKind::Constant)
    return std::nullopt;
  const Ints* ints = value->definingOp->attr<Ints>("value");
  if (!ints || !value->type.staticNumElements() ||
      *value->type.staticNumElements() != static_cast<int64_t>(ints->size()))
    return std::nullopt;
  return *ints;
}

// A shape given as a second operand must be an i64 vector with one entry per result dim.
void checkShapeOperand(const Op& op, int64_t resultRank) {
  const TensorType& shape = operandType(op, 1);
  if (shape.elementType != ElementType::I64 || shape.rank() != 1)
    fail(op, "shape operand must be i64[n], got " + shape.str());
  if (shape.dims[0].isStatic() && shape.dims[0].staticValue() != resultRank)
    fail(op, "shape operand has " + shape.dims[0].str() + " entries but the result has rank " +
                 std::to_string(resultRank));
}

// Splits dims into the product of the static ones and the sorted list of the symbolic ones;
// nullopt if any (other than `skip`) is unknown or the product overflows.
std::optional<std::pair<int64_t, std::vector<std::string>>> factorDims(const std::vector<Dim>& dims,
                                                                       int skip = -1) {
  int64_t product = 1;
  std::vector<std::string> symbolic;
  for (int i = 0; i < static_cast<int>(dims.size()); ++i) {
    if (i == skip)
      continue;
    if (dims[i].isUnknown())
      return std::nullopt;
    if (!dims[i].isStatic())
      symbolic.push_back(dims[i].str());
    else if (__builtin_mul_overflow(product, dims[i].staticValue(), &product))
      return std::nullopt;
  }
  std::sort(symbolic.begin(), symbolic.end());
  return std::make_pair(product, symbolic);
}

// The dim a reshape's -1 stands for: input elements / other target dims, when the symbolic dims
// cancel ([batch,seq,16] -> [batch,seq,4,-1] gives 4).
Dim inferReshapeDim(const std::vector<Dim>& input, const std::vector<Dim>& target, int inferred) {
  auto in = factorDims(input);
  auto out = factorDims(target, inferred);
  if (!in || !out || in->second != out->second || out->first == 0 || in->first % out->first != 0)
    return Dim::unknown();
  return Dim::constant(in->first / out->first);
}

std::vector<Dim> reshapeTarget(const Op& op) {
  std::vector<Dim> dims = declaredType(op).dims;
  const TensorType& input = operandType(op, 0);
  if (op.operands.size() == 2) {
    checkShapeOperand(op, declaredType(op).rank());
    if (auto values = constantInts(op.operands[1])) {
      int inferred = -1;
      for (size_t i = 0; i < values->size(); ++i) {
        int64_t v = (*values)[i];
        if (v == 0 && static_cast<int64_t>(i) < input.rank())
          dims[i] = input.dims[i];
        else if (v == -1 && inferred < 0)
          inferred = static_cast<int>(i);
        else if (v < 0 || v > kMaxDimValue)
          fail(op, "shape operand has an invalid entry " + std::to_string(v));
        else
          dims[i] = Dim::constant(v);
      }
      if (inferred >= 0)
        dims[inferred] = inferReshapeDim(input.dims, dims, inferred);
    }
  }
  // Element counts must agree where they can be compared: the symbolic dims cancel.
  auto in = factorDims(input.dims);
  auto out = factorDims(dims);
  if (in && out && in->second == out->second && in->first != out->first)
    fail(op, "cannot reshape " + input.str() + " to " + TensorType{input.elementType, dims}.str() +
                 ": " + std::to_string(in->first) + " vs " + std::to_string(out->first) +
                 " elements");
  return dims;
}

TensorType inferElementwiseBinary(const Op& op) {
  requireSameElementType(op);
  return {operandType(op, 0).elementType,
          broadcastShapes(operandType(op, 0).dims, operandType(op, 1).dims, op.loc)};
}

TensorType inferReduction(const Op& op, AttrReader& attrs) {
  const TensorType& input = operandType(op, 0);
  requireNumeric(op, 0);
  Ints rawAxes = attrs.ints("axes");
  if (rawAxes.empty())
    fail(op, "needs at least one axis");
  auto axes = normalizeAxes(op, rawAxes, input.rank());
  bool keepdims = attrs.boolean("keepdims", true);
  TensorType result{input.elementType, {}};
  for (int64_t i = 0; i < input.rank(); ++i) {
    bool reduced = std::binary_search(axes.begin(), axes.end(), i);
    if (!reduced)
      result.dims.push_back(input.dims[i]);
    else if (keepdims)
      result.dims.push_back(Dim::constant(1));
  }
  return result;
}

TensorType inferMatMul(const Op& op) {
  requireSameElementTypeOrNarrowWeights(op);
  requireNumeric(op, 0);
  const TensorType& a = operandType(op, 0);
  const TensorType& b = operandType(op, 1);
  if (a.rank() < 2 || b.rank() < 2)
    fail(op, "needs operands of rank >= 2, got " + a.str() + " and " + b.str());
  const Dim& ka = a.dims[a.rank() - 1];
  const Dim& kb = b.dims[b.rank() - 2];
  if (!ka.compatibleWith(kb))
    fail(op, "contraction dims differ: " + a.str() + " x " + b.str());
  std::vector<Dim> batchA(a.dims.begin(), a.dims.end() - 2);
  std::vector<Dim> batchB(b.dims.begin(), b.dims.end() - 2);
  TensorType result{a.elementType, broadcastShapes(batchA, batchB, op.loc)};
  result.dims.push_back(a.dims[a.rank() - 2]);
  result.dims.push_back(b.dims[b.rank() - 1]);
  return result;
}

TensorType inferGather(const Op& op, AttrReader& attrs) {
  const TensorType& data = operandType(op, 0);
  const TensorType& indices = operandType(op, 1);
  if (!isInteger(indices.elementType))
    fail(op, "indices must be an integer tensor, got " + indices.str());
  if (data.rank() < 1)
    fail(op, "data must have rank >= 1");
  int64_t axis = normalizeAxis(attrs.integer("axis", 0), data.rank(), op.loc);
  // A block-quantized table's rows are looked up dequantized, as f32.
  TensorType result{isBlockQuantized(data.elementType) ? ElementType::F32 : data.elementType, {}};
  result.dims.insert(result.dims.end(), data.dims.begin(), data.dims.begin() + axis);
  result.dims.insert(result.dims.end(), indices.dims.begin(), indices.dims.end());
  result.dims.insert(result.dims.end(), data.dims.begin() + axis + 1, data.dims.end());
  return result;
}

// Checks that `perm` permutes 0..rank-1 (transpose's perm, a packed weight's).
void checkPerm(const Op& op, const Ints& perm, int64_t rank) {
  if (static_cast<int64_t>(perm.size()) != rank)
    fail(op,
         "perm has " + std::to_string(perm.size()) + " entries for rank " + std::to_string(rank));
  std::vector<bool> seen(perm.size(), false);
  for (int64_t p : perm) {
    if (p < 0 || p >= rank || seen[p])
      fail(op, "perm is not a permutation of 0.." + std::to_string(rank - 1));
    seen[p] = true;
  }
}

TensorType inferTranspose(const Op& op, AttrReader& attrs) {
  const TensorType& input = operandType(op, 0);
  Ints perm = attrs.ints("perm");
  checkPerm(op, perm, input.rank());
  TensorType result{input.elementType, {}};
  for (int64_t p : perm)
    result.dims.push_back(input.dims[p]);
  return result;
}

TensorType inferConcat(const Op& op, AttrReader& attrs) {
  requireSameElementType(op);
  const TensorType& first = operandType(op, 0);
  int64_t axis = normalizeAxis(attrs.integer("axis"), first.rank(), op.loc);
  TensorType result = first;
  for (size_t i = 1; i < op.operands.size(); ++i) {
    const TensorType& next = operandType(op, i);
    if (next.rank() != first.rank())
      fail(op, "operands have different ranks: " + first.str() + " and " + next.str());
    for (int64_t d = 0; d < first.rank(); ++d) {
      if (d == axis)
        result.dims[d] = result.dims[d] + next.dims[d];
      else if (!result.dims[d].compatibleWith(next.dims[d]))
        fail(op, "operands differ outside the concat axis: " + first.str() + " and " + next.str());
    }
  }
  return result;
}

TensorType inferSlice(const Op& op, AttrReader& attrs) {
  const TensorType& input = operandType(op, 0);
  Ints starts = attrs.ints("starts");
  Ints ends = attrs.ints("ends");
  Ints defaultAxes;
  for (size_t i = 0; i < starts.size(); ++i)
    defaultAxes.push_back(static_cast<int64_t>(i));
  Ints axes = attrs.ints("axes", defaultAxes);
  Ints steps = attrs.ints("steps", Ints(starts.size(), 1));
  if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size())
    fail(op, "starts, ends, axes and steps must have the same length");
  normalizeAxes(op, axes, input.rank()); // range and repeat checks
  TensorType result = input;
  for (size_t i = 0; i < starts.size(); ++i) {
    if (steps[i] == 0)
      fail(op, "has a zero step");
    int64_t axis = normalizeAxis(axes[i], input.rank(), op.loc);
    const Dim& dim = input.dims[axis];
    bool wholeAxis = starts[i] == 0 && steps[i] == 1 && ends[i] >= kMaxDimValue;
    if (dim.isStatic())
      result.dims[axis] =
          Dim::constant(slicedLength(dim.staticValue(), starts[i], ends[i], steps[i]));
    else if (!wholeAxis)
      result.dims[axis] = Dim::unknown();
  }
  return result;
}

TensorType inferSqueeze(const Op& op, AttrReader& attrs) {
  const TensorType& input = operandType(op, 0);
  auto axes = normalizeAxes(op, attrs.ints("axes"), input.rank());
  TensorType result{input.elementType, {}};
  for (int64_t i = 0; i < input.rank(); ++i) {
    if (!std::binary_search(axes.begin(), axes.end(), i)) {
      result.dims.push_back(input.dims[i]);
      continue;
    }
    if (input.dims[i].isStatic() && input.dims[i].staticValue() != 1)
      fail(op, "squeezes dim " + std::to_string(i) + " of " + input.str() + ", which is not 1");
  }
  return result;
}

TensorType inferUnsqueeze(const Op& op, AttrReader& attrs) {
  const TensorType& input = operandType(op, 0);
  Ints rawAxes = attrs.ints("axes");
  int64_t rank = input.rank() + static_cast<int64_t>(rawAxes.size());
  if (rank > kMaxRank)
    fail(op, "result rank " + std::to_string(rank) + " exceeds " + std::to_string(kMaxRank));
  auto axes = normalizeAxes(op, rawAxes, rank);
  TensorType result{input.elementType, {}};
  size_t next = 0;
  for (int64_t i = 0; i < rank; ++i)
    result.dims.push_back(std::binary_search(axes.begin(), axes.end(), i) ? Dim::constant(1)
                                                                          : input.dims[next++]);
  return result;
}

TensorType inferExpand(const Op& op) {
  const TensorType& input = operandType(op, 0);
  std::vector<Dim> target = declaredType(op).dims;
  if (op.operands.size() == 2) {
    checkShapeOperand(op, declaredType(op).rank());
    if (auto values = constantInts(op.operands[1])) {
      for (size_t i = 0; i < values->size(); ++i) {
        if ((*values)[i] < 0 || (*values)[i] > kMaxDimValue)
          fail(op, "shape operand has an invalid entry " + std::to_string((*values)[i]));
        target[i] = Dim::constant((*values)[i]);
      }
    }
  }
  if (static_cast<int64_t>(target.size()) < input.rank())
    fail(op, "cannot expand " + input.str() + " to fewer dims");
  return {input.elementType, broadcastShapes(input.dims, target, op.loc)};
}

TensorType inferRange(const Op& op) {
  requireSameElementType(op);
  requireNumeric(op, 0);
  for (size_t i = 0; i < 3; ++i)
    if (operandType(op, i).rank() != 0)
      fail(op, "operands must be scalars, got " + operandType(op, i).str());
  const TensorType& declared = declaredType(op);
  if (declared.rank() != 1)
    fail(op, "result must have rank 1, got " + declared.str());
  return {operandType(op, 0).elementType, declared.dims};
}

void checkConstant(const Op& op, AttrReader& attrs) {
  const TensorType& type = declaredType(op);
  auto count = type.staticNumElements();
  if (!count)
    fail(op, "needs a static result type, got " + type.str());
  attrs.markRead("value");
  auto it = op.attrs.find("value");
  if (it == op.attrs.end())
    fail(op, "needs attribute 'value' (a list of numbers)");
  size_t size = 0;
  if (const Ints* ints = std::get_if<Ints>(&it->second))
    size = ints->size();
  else if (const Floats* floats = std::get_if<Floats>(&it->second)) {
    if (!isFloat(type.elementType))
      fail(op, "of type " + type.str() + " needs integer values");
    size = floats->size();
  } else
    fail(op, "attribute 'value' must be a list of numbers");
  if (size != 1 && static_cast<int64_t>(size) != *count)
    fail(op, "has " + std::to_string(size) + " values for " + type.str() + " (" +
                 std::to_string(*count) + " elements)");
}

// A static dim must equal an attribute; symbolic and unknown dims are checked at run time.
void requireDim(const Op& op, const TensorType& type, int64_t index, int64_t expected,
                const std::string& what) {
  const Dim& dim = type.dims[index];
  if (dim.isStatic() && dim.staticValue() != expected)
    fail(op, what + " is " + std::to_string(expected) + " but the operand is " + type.str());
}

TensorType inferRmsNorm(const Op& op, AttrReader& attrs) {
  requireFloat(op, 0);
  requireFloat(op, 1);
  const TensorType& x = operandType(op, 0);
  const TensorType& w = operandType(op, 1);
  if (x.rank() < 1 || w.rank() != 1 || !x.dims.back().compatibleWith(w.dims[0]))
    fail(op, "needs x [..., D] and w [D], got " + x.str() + " and " + w.str());
  attrs.boolean("unit_offset");
  if (attrs.real("eps") < 0)
    fail(op, "eps must be >= 0");
  if (!isFloat(declaredType(op).elementType))
    fail(op, "result must be a float tensor, got " + declaredType(op).str());
  return {declaredType(op).elementType, x.dims};
}

TensorType inferRotary(const Op& op, AttrReader& attrs) {
  requireFloat(op, 0);
  const TensorType& x = operandType(op, 0);
  if (x.rank() != 4)
    fail(op, "needs x [batch,heads,seq,head_dim], got " + x.str());
  int64_t headDim = attrs.integer("head_dim");
  if (headDim < 2 || headDim % 2 != 0)
    fail(op, "head_dim must be even and positive");
  requireDim(op, x, 3, headDim, "head_dim");
  if (op.operands.size() == 2) {
    const TensorType& positions = operandType(op, 1);
    if (!isInteger(positions.elementType) || positions.rank() != 2 ||
        !positions.dims[0].compatibleWith(x.dims[0]) ||
        !positions.dims[1].compatibleWith(x.dims[2]))
      fail(op,
           "needs positions [batch,seq] of integers for x " + x.str() + ", got " + positions.str());
    if (!(attrs.real("theta") > 0))
      fail(op, "theta must be positive");
    if (!(attrs.real("factor", 1.0) > 0))
      fail(op, "factor must be positive");
  } else {
    for (size_t i = 1; i < 3; ++i) {
      requireFloat(op, i);
      broadcastShapes(x.dims, operandType(op, i).dims, op.loc);
    }
  }
  return x;
}

TensorType inferAttention(const Op& op, AttrReader& attrs) {
  for (size_t i = 0; i < 3; ++i)
    requireFloat(op, i);
  const TensorType& q = operandType(op, 0);
  // q, k, v (and a bias) in one type; a causal attention's key mask is i64 (checked below).
  const bool* causalAttr = op.attr<bool>("causal");
  size_t sameTyped = causalAttr && *causalAttr ? 3 : op.operands.size();
  for (size_t i = 1; i < sameTyped; ++i)
    if (operandType(op, i).elementType != q.elementType)
      fail(op, "operands must have one element type, got " + q.str() + " and " +
                   operandType(op, i).str());
  const TensorType& k = operandType(op, 1);
  const TensorType& v = operandType(op, 2);
  if (q.rank() != 4 || k.rank() != 4 || v.rank() != 4)
    fail(op, "needs q [batch,heads,seq,H], k and v [batch,kv_heads,total,H]");
  int64_t heads = attrs.integer("num_heads"), kvHeads = attrs.integer("num_kv_heads"),
          headDim = attrs.integer("head_dim");
  if (heads < 1 || kvHeads < 1 || headDim < 1 || heads % kvHeads != 0)
    fail(op, "num_heads must be a positive multiple of num_kv_heads");
  requireDim(op, q, 1, heads, "num_heads");
  requireDim(op, k, 1, kvHeads, "num_kv_heads");
  requireDim(op, v, 1, kvHeads, "num_kv_heads");
  for (const TensorType* t : {&q, &k, &v})
    requireDim(op, *t, 3, headDim, "head_dim");
  if (!k.dims[2].compatibleWith(v.dims[2]) || !q.dims[0].compatibleWith(k.dims[0]))
    fail(op, "k and v must match: " + k.str() + " and " + v.str());
  attrs.real("scale");
  if (attrs.real("softcap", 0.0) < 0)
    fail(op, "softcap must be >= 0");
  if (attrs.integer("window", 0) < 0)
    fail(op, "window must be >= 0");
  attrs.boolean("nan_weights_to_zero", false);
  bool causal = attrs.boolean("causal", false);
  int64_t ringRows = attrs.integer("ring_rows", 0);
  if (ringRows < 0 ||
      (ringRows > 0 && !(causal && op.operands.size() == 4 && attrs.integer("window", 0) > 0 &&
                         attrs.integer("window", 0) <= ringRows)))
    fail(op, "ring_rows needs a causal attention with a key mask and a window of at most "
             "ring_rows");
  if (causal && op.operands.size() == 4) {
    const TensorType& mask = operandType(op, 3);
    if (mask.elementType != ElementType::I64 || mask.rank() != 2 ||
        !mask.dims[0].compatibleWith(q.dims[0]) || !mask.dims[1].compatibleWith(k.dims[2]))
      fail(op, "with causal = true, operand 3 is the key mask i64[batch,total], got " + mask.str());
  } else if (op.operands.size() == 4) {
    requireFloat(op, 3);
    TensorType scores{q.elementType, {q.dims[0], q.dims[1], q.dims[2], k.dims[2]}};
    auto shape = broadcastShapes(scores.dims, operandType(op, 3).dims, op.loc);
    if (static_cast<int64_t>(shape.size()) != 4)
      fail(op, "bias must broadcast to [batch,heads,seq,total]");
  }
  return {q.elementType, {q.dims[0], q.dims[1], q.dims[2], v.dims[3]}};
}

// quantize-activations' {arithmetic = "int8"}: integer dot products for the weights (operands
// 1..) of the block types that have them, at least one (a gated MLP's others stay exact).
void checkArithmetic(const Op& op, AttrReader& attrs) {
  if (!attrs.has("arithmetic"))
    return;
  std::string arithmetic = attrs.string("arithmetic");
  if (arithmetic != "int8")
    fail(op, "arithmetic must be \"int8\", got \"" + arithmetic + "\"");
  std::string types;
  for (size_t i = 1; i < op.operands.size(); ++i) {
    if (hasIntegerDotProduct(operandType(op, i).elementType))
      return;
    types += (i > 1 ? ", " : "") + operandType(op, i).str();
  }
  fail(op, "int8 arithmetic needs a q8_0, q4_0 or q5_0 weight, got " + types);
}

TensorType inferGatedMlp(const Op& op, AttrReader& attrs) {
  checkArithmetic(op, attrs);
  requireSameElementTypeOrNarrowWeights(op);
  requireFloat(op, 0);
  const TensorType& x = operandType(op, 0);
  const TensorType& gate = operandType(op, 1);
  const TensorType& up = operandType(op, 2);
  const TensorType& down = operandType(op, 3);
  if (x.rank() < 1 || gate.rank() != 2 || up.rank() != 2 || down.rank() != 2 ||
      !x.dims.back().compatibleWith(gate.dims[0]) || !gate.dims[0].compatibleWith(up.dims[0]) ||
      !gate.dims[1].compatibleWith(up.dims[1]) || !gate.dims[1].compatibleWith(down.dims[0]))
    fail(op, "needs x [..., D], gate and up [D, I], down [I, D'], got " + x.str() + ", " +
                 gate.str() + ", " + up.str() + ", " + down.str());
  std::string activation = attrs.string("activation");
  if (activation != "gelu_tanh" && activation != "gelu")
    fail(op, "activation must be \"gelu_tanh\" or \"gelu\", got \"" + activation + "\"");
  TensorType result = x;
  result.dims.back() = down.dims[1];
  return result;
}

TensorType inferKVCacheAppend(const Op& op, AttrReader& attrs) {
  requireSameElementType(op);
  requireFloat(op, 0);
  const TensorType& past = operandType(op, 0);
  const TensorType& next = operandType(op, 1);
  if (!op.operands[0]->isGraphInput())
    fail(op, "appends to a cache that is not a graph input");
  if (past.rank() != 4 || next.rank() != 4 || !past.dims[1].isStatic() || !past.dims[3].isStatic())
    fail(op, "needs caches [batch,K,*,H] with static K and H, got " + past.str());
  for (int64_t d : {0, 1, 3})
    if (!past.dims[d].compatibleWith(next.dims[d]))
      fail(op, "new rows " + next.str() + " do not fit the cache " + past.str());
  for (const char* name : {"max_batch", "max_seq_len"})
    if (attrs.integer(name) < 1)
      fail(op, std::string(name) + " must be positive");
  if (attrs.integer("cache_offset") < 0 || attrs.integer("cache_bytes") < 0)
    fail(op, "cache_offset and cache_bytes must be non-negative");
  if (attrs.integer("ring_rows", 0) < 0)
    fail(op, "ring_rows must be non-negative");
  TensorType result = past;
  result.dims[2] = past.dims[2] + next.dims[2];
  return result;
}

} // namespace

int64_t normalizeAxis(int64_t axis, int64_t rank, const Location& loc) {
  if (axis < -rank || axis >= rank)
    throw UserError(loc, "axis " + std::to_string(axis) + " is out of range for rank " +
                             std::to_string(rank));
  return axis < 0 ? axis + rank : axis;
}

int64_t slicedLength(int64_t dim, int64_t start, int64_t end, int64_t step) {
  auto clamp = [](int64_t v, int64_t lo, int64_t hi) { return std::min(std::max(v, lo), hi); };
  if (start < 0)
    start = start < -dim ? 0 : start + dim;
  if (end < 0)
    end = end < -dim ? -1 : end + dim;
  if (step > 0) {
    start = clamp(start, 0, dim);
    end = clamp(end, 0, dim);
    return end > start ? (end - start + step - 1) / step : 0;
  }
  start = clamp(start, 0, dim - 1);
  end = clamp(end, -1, dim - 1);
  return start > end ? (start - end + (-step) - 1) / (-step) : 0;
}

std::vector<Dim> broadcastShapes(const std::vector<Dim>& a, const std::vector<Dim>& b,
                                 const Location& loc) {
  size_t rank = std::max(a.size(), b.size());
  std::vector<Dim> result(rank);
  for (size_t i = 0; i < rank; ++i) {
    // Right-aligned: missing leading dims act as 1.
    Dim da = i < rank - a.size() ? Dim::constant(1) : a[i - (rank - a.size())];
    Dim db = i < rank - b.size() ? Dim::constant(1) : b[i - (rank - b.size())];
    if (da == db || (db.isStatic() && db.staticValue() == 1))
      result[i] = da;
    else if (da.isStatic() && da.staticValue() == 1)
      result[i] = db;
    else if (da.isUnknown())
      result[i] = db.isStatic() ? db : Dim::unknown();
    else if (db.isUnknown())
      result[i] = da.isStatic() ? da : Dim::unknown();
    else
      throw UserError(loc, "cannot broadcast dim " + da.str() + " with " + db.str());
  }
  return result;
}

std::vector<TensorType> inferResultTypes(const Op& op) {
  AttrReader attrs(op);
  TensorType result;
  switch (op.kind) {
  case OpKind::Constant:
    checkConstant(op, attrs);
    result = declaredType(op);
    break;
  case OpKind::Weight:
    if (attrs.string("name").empty())
      fail(op, "needs a non-empty name");
    if (!declaredType(op).staticNumElements())
      fail(op, "needs a static result type, got " + declaredType(op).str());
    if (op.attr<Ints>("perm")) // stored permuted (pack-weights): a permutation of the dims
      checkPerm(op, attrs.ints("perm"), declaredType(op).rank());
    result = declaredType(op);
    break;
  case OpKind::Add:
  case OpKind::Sub:
  case OpKind::Mul:
  case OpKind::Div:
  case OpKind::Max:
  case OpKind::Min:
    requireNumeric(op, 0);
    result = inferElementwiseBinary(op);
    break;
  case OpKind::Pow:
    requireFloat(op, 0);
    result = inferElementwiseBinary(op);
    break;
  case OpKind::Sqrt:
  case OpKind::Rsqrt:
  case OpKind::Reciprocal:
  case OpKind::Exp:
  case OpKind::Tanh:
  case OpKind::Erf:
  case OpKind::Cos:
  case OpKind::Sin:
    requireFloat(op, 0);
    result = operandType(op, 0);
    break;
  case OpKind::Gelu: {
    requireFloat(op, 0);
    std::string approximate = attrs.has("approximate") ? attrs.string("approximate") : "none";
    if (approximate != "none" && approximate != "tanh")
      fail(op, "approximate must be \"none\" or \"tanh\", got \"" + approximate + "\"");
    result = operandType(op, 0);
    break;
  }
  case OpKind::Neg:
    requireNumeric(op, 0);
    result = operandType(op, 0);
    break;
  case OpKind::Cast:
    result = {declaredType(op).elementType, operandType(op, 0).dims};
    break;
  case OpKind::Equal:
  case OpKind::Less:
  case OpKind::LessEqual:
  case OpKind::Greater:
  case OpKind::GreaterEqual:
    result = inferElementwiseBinary(op);
    result.elementType = ElementType::Bool;
    break;
  case OpKind::And:
  case OpKind::Or:
  case OpKind::Xor:
    requireBool(op, 0);
    requireBool(op, 1);
    result = inferElementwiseBinary(op);
    break;
  case OpKind::Not:
    requireBool(op, 0);
    result = operandType(op, 0);
    break;
  case OpKind::IsNan:
    requireFloat(op, 0);
    result = {ElementType::Bool, operandType(op, 0).dims};
    break;
  case OpKind::Where: {
    requireBool(op, 0);
    if (operandType(op, 1).elementType != operandType(op, 2).elementType)
      fail(op, "branches differ in element type: " + operandType(op, 1).str() + " and " +
                   operandType(op, 2).str());
    auto dims = broadcastShapes(operandType(op, 0).dims, operandType(op, 1).dims, op.loc);
    result = {operandType(op, 1).elementType,
              broadcastShapes(dims, operandType(op, 2).dims, op.loc)};
    break;
  }
  case OpKind::MatMul:
    result = inferMatMul(op);
    checkArithmetic(op, attrs);
    if (attrs.real("softcap", 0.0) < 0) // fuse-softcap's
      fail(op, "softcap must be >= 0");
    break;
  case OpKind::ReduceMean:
  case OpKind::ReduceSum:
  case OpKind::ReduceMax:
    result = inferReduction(op, attrs);
    break;
  case OpKind::Softmax:
    requireFloat(op, 0);
    normalizeAxis(attrs.integer("axis"), operandType(op, 0).rank(), op.loc);
    result = operandType(op, 0);
    break;
  case OpKind::CumSum:
    requireNumeric(op, 0);
    normalizeAxis(attrs.integer("axis"), operandType(op, 0).rank(), op.loc);
    result = operandType(op, 0);
    break;
  case OpKind::ArgMax: {
    requireNumeric(op, 0);
    const TensorType& input = operandType(op, 0);
    int64_t axis = normalizeAxis(attrs.integer("axis"), input.rank(), op.loc);
    result = {ElementType::I64, input.dims};
    if (attrs.boolean("keepdims", true))
      result.dims[axis] = Dim::constant(1);
    else
      result.dims.erase(result.dims.begin() + axis);
    break;
  }
  case OpKind::Gather:
    result = inferGather(op, attrs);
    break;
  case OpKind::Reshape:
    result = {operandType(op, 0).elementType, reshapeTarget(op)};
    break;
  case OpKind::Transpose:
    result = inferTranspose(op, attrs);
    break;
  case OpKind::Concat:
    result = inferConcat(op, attrs);
    break;
  case OpKind::Slice:
    result = inferSlice(op, attrs);
    break;
  case OpKind::Squeeze:
    result = inferSqueeze(op, attrs);
    break;
  case OpKind::Unsqueeze:
    result = inferUnsqueeze(op, attrs);
    break;
  case OpKind::Expand:
    result = inferExpand(op);
    break;
  case OpKind::Range:
    result = inferRange(op);
    break;
  case OpKind::Shape:
    result = tensorType(ElementType::I64, {operandType(op, 0).rank()});
    break;
  case OpKind::RmsNorm:
    result = inferRmsNorm(op, attrs);
    break;
  case OpKind::Rotary:
    result = inferRotary(op, attrs);
    break;
  case OpKind::Attention:
    result = inferAttention(op, attrs);
    break;
  case OpKind::GatedMlp:
    result = inferGatedMlp(op, attrs);
    break;
  case OpKind::KVCacheAppend:
    result = inferKVCacheAppend(op, attrs);
    break;
  }
  attrs.finish();
  return {result};
}

} // namespace gemma
