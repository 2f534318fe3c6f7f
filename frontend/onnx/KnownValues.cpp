// The ONNX importer's symbolic dims tracking (KnownValues.h).
#include "frontend/onnx/KnownValues.h"

#include <algorithm>
#include <set>
#include <string>

namespace gemma::onnx_import {

std::optional<std::vector<Dim>> KnownValues::dims(const Value* v) const {
  auto it = known_.find(v);
  if (it == known_.end())
    return std::nullopt;
  return it->second;
}

std::optional<Ints> KnownValues::ints(const Value* v) const {
  auto values = dims(v);
  if (!values)
    return std::nullopt;
  Ints ints;
  for (const Dim& d : *values) {
    if (!d.isStatic())
      return std::nullopt;
    ints.push_back(d.staticValue());
  }
  return ints;
}

void KnownValues::propagateArithmetic(OpKind kind, const Value* a, const Value* b, const Value* r) {
  auto x = dims(a), y = dims(b);
  if (!x || !y || r->type.rank() > 1)
    return;
  size_t n = std::max(x->size(), y->size());
  if ((x->size() != n && x->size() != 1) || (y->size() != n && y->size() != 1))
    return;
  std::vector<Dim> out;
  for (size_t i = 0; i < n; ++i) {
    const Dim& p = (*x)[x->size() == 1 ? 0 : i];
    const Dim& q = (*y)[y->size() == 1 ? 0 : i];
    if (kind == OpKind::Add)
      out.push_back(p + q);
    else if (kind == OpKind::Sub)
      out.push_back(p - q);
    else if (kind == OpKind::Mul && q.isStatic())
      out.push_back(p.scaled(q.staticValue()));
    else if (kind == OpKind::Mul && p.isStatic())
      out.push_back(q.scaled(p.staticValue()));
    else if (kind == OpKind::Div && p.isStatic() && q.isStatic() && q.staticValue() != 0)
      out.push_back(Dim::constant(p.staticValue() / q.staticValue()));
    else
      return;
    if (out.back().isUnknown())
      return;
  }
  known_[r] = out;
}

// Decidable because a dim is never negative.
void KnownValues::propagateEqual(const Value* a, const Value* b, const Value* r) {
  auto x = dims(a), y = dims(b);
  if (!x || !y || r->type.rank() > 1)
    return;
  size_t n = std::max(x->size(), y->size());
  std::vector<Dim> out;
  for (size_t i = 0; i < n; ++i) {
    const Dim& p = (*x)[x->size() == 1 ? 0 : i];
    const Dim& q = (*y)[y->size() == 1 ? 0 : i];
    if (p == q)
      out.push_back(Dim::constant(1));
    else if (p.isStatic() && q.isStatic())
      out.push_back(Dim::constant(0));
    else if ((p.isStatic() && p.staticValue() < 0) || (q.isStatic() && q.staticValue() < 0))
      out.push_back(Dim::constant(0));
    else
      return;
  }
  known_[r] = out;
}

void KnownValues::propagateWhere(const Value* cond, const Value* x, const Value* y,
                                 const Value* r) {
  auto c = dims(cond), p = dims(x), q = dims(y);
  if (!c || !p || !q || r->type.rank() > 1)
    return;
  size_t n = std::max({c->size(), p->size(), q->size()});
  std::vector<Dim> out;
  for (size_t i = 0; i < n; ++i) {
    const Dim& pick = (*c)[c->size() == 1 ? 0 : i];
    out.push_back(pick.isStatic() && pick.staticValue() ? (*p)[p->size() == 1 ? 0 : i]
                                                        : (*q)[q->size() == 1 ? 0 : i]);
  }
  known_[r] = out;
}

std::optional<double> constantScalar(const Value* v) {
  const Op* op = v->definingOp;
  if (!op || op->kind != OpKind::Constant || v->type.staticNumElements() != 1)
    return std::nullopt;
  if (const Floats* f = op->attr<Floats>("value"))
    return (*f)[0];
  if (const Ints* i = op->attr<Ints>("value"))
    return static_cast<double>((*i)[0]);
  return std::nullopt;
}

Dim affineProduct(std::vector<Dim>::const_iterator begin, std::vector<Dim>::const_iterator end) {
  Dim product = Dim::constant(1);
  for (auto it = begin; it != end; ++it)
    product = product.isStatic() ? it->scaled(product.staticValue())
              : it->isStatic()   ? product.scaled(it->staticValue())
                                 : Dim::unknown();
  return product;
}

Dim remainingDim(const std::vector<Dim>& in, const std::vector<Dim>& target) {
  std::multiset<std::string> symbols;
  int64_t staticIn = 1, staticOut = 1;
  for (const Dim& d : in) {
    if (d.isStatic())
      staticIn *= d.staticValue();
    else if (d.terms().size() == 1 && d.constantPart() == 0 && d.terms()[0].second == 1)
      symbols.insert(d.terms()[0].first);
    else
      symbols.insert(d.str());
  }
  for (const Dim& d : target) {
    if (d.isUnknown())
      continue;
    std::string key = d.isStatic() ? ""
                      : d.terms().size() == 1 && d.constantPart() == 0 && d.terms()[0].second == 1
                          ? d.terms()[0].first
                          : d.str();
    if (d.isStatic())
      staticOut *= d.staticValue();
    else if (auto it = symbols.find(key); it != symbols.end())
      symbols.erase(it);
    else
      throw UserError("cannot infer the -1 of its target shape");
  }
  if (staticOut == 0 || staticIn % staticOut != 0)
    throw UserError("its target shape does not divide the input's elements");
  Dim result = Dim::constant(staticIn / staticOut);
  if (symbols.size() > 1 || (symbols.size() == 1 && staticIn / staticOut != 1))
    throw UserError("cannot infer the -1 of its target shape");
  if (symbols.size() == 1)
    result = Dim::symbol(*symbols.begin());
  return result;
}

} // namespace gemma::onnx_import
