#include "RandomGraph.h"

#include "ir/Builder.h"

#include <algorithm>
#include <cmath>

namespace gemma::testing {

namespace {

class RandomGraphMaker {
public:
  explicit RandomGraphMaker(std::mt19937_64& rng) : rng_(rng) {}

  std::unique_ptr<Graph> make() {
    auto graph = std::make_unique<Graph>("random" + std::to_string(pick(1000)));
    Builder b(*graph);
    int64_t width = 2 + pick(3);
    std::vector<std::vector<Dim>> shapes = {
        {Dim::symbol("batch"), Dim::symbol("seq"), Dim::constant(width)},
        {Dim::symbol("seq"), Dim::constant(width)},
        {Dim::constant(width)},
        {Dim::constant(3), Dim::constant(width)}};
    int numInputs = 1 + static_cast<int>(pick(3));
    for (int i = 0; i < numInputs; ++i)
      floats_.push_back(graph->addInput("in" + std::to_string(i) + (pick(2) ? ".x" : ""),
                                        TensorType{ElementType::F32, shapes[pick(shapes.size())]}));
    if (pick(2))
      ints_.push_back(graph->addInput(
          "ids", TensorType{ElementType::I64, {Dim::symbol("batch"), Dim::symbol("seq")}}));

    int numOps = 3 + static_cast<int>(pick(25));
    for (int attempts = 0; static_cast<int>(graph->ops.size()) < numOps && attempts < 400;
         ++attempts) {
      b.setLocation(randomLocation());
      try {
        addRandomOp(b);
      } catch (const UserError&) {
        // The random choice broke an op's rules; the builder inserted nothing. Try another.
      }
    }
    int numOutputs = 1 + static_cast<int>(pick(3));
    graph->addOutput(floats_.back(), pick(2) ? "out" : "");
    for (int i = 1; i < numOutputs; ++i) {
      Value* value = pick(4) == 0 && !ints_.empty() ? ints_[pick(ints_.size())] : anyFloat();
      graph->addOutput(value, pick(2) ? "out" + std::to_string(i) : "");
    }
    forgetSomeDims(*graph);
    return graph;
  }

private:
  uint64_t pick(uint64_t n) { return std::uniform_int_distribution<uint64_t>(0, n - 1)(rng_); }
  double uniform(double lo, double hi) {
    return std::uniform_real_distribution<double>(lo, hi)(rng_);
  }
  Value* anyFloat() { return floats_[pick(floats_.size())]; }

  Location randomLocation() {
    static const char* origins[] = {"model.layers.0.self_attn.q_proj", "/model/layers.1/mlp/Mul",
                                    "node \"quoted\" \\ back", "\xe5\xb1\x82 \xf0\x9f\x98\x80",
                                    "tab\there"};
    switch (pick(3)) {
    case 0:
      return {};
    case 1:
      return Location::named(origins[pick(5)]);
    default:
      return Location::inFile("gen.ir", 1 + static_cast<int>(pick(500)),
                              1 + static_cast<int>(pick(80)));
    }
  }

  double randomScalar() {
    static const double special[] = {0.0, 1.0, -0.0, 1e-6, 0.1, 3.0e38, 1e-300, 0.5, 2.0};
    return pick(2) ? special[pick(9)] : uniform(-3, 3);
  }

  Value* floatConstant(const std::vector<int64_t>& dims) {
    int64_t count = 1;
    for (int64_t d : dims)
      count *= d;
    Floats values;
    if (pick(3) == 0)
      values.push_back(randomScalar()); // splat
    else
      for (int64_t i = 0; i < count; ++i)
        values.push_back(uniform(-2, 2));
    return b_->constant(ElementType::F32, dims, values);
  }

  int64_t lastStaticDim(const Value* v) {
    if (v->type.rank() == 0 || !v->type.dims.back().isStatic())
      return -1;
    return v->type.dims.back().staticValue();
  }

  // Now and then forget a dim ('?'), as an importer that cannot infer it would, so that shape
  // inference has something to do. Done once the graph is built, so every type built from a
  // forgotten dim still holds; not where the declared type is the op's target shape.
  void forgetSomeDims(Graph& graph) {
    static const OpKind targets[] = {OpKind::Reshape, OpKind::Expand, OpKind::Range,
                                     OpKind::Constant, OpKind::Weight};
    for (auto& op : graph.ops) {
      TensorType& type = op->result()->type;
      if (type.rank() > 0 && pick(4) == 0 &&
          std::find(std::begin(targets), std::end(targets), op->kind) == std::end(targets))
        type.dims[pick(type.rank())] = Dim::unknown();
    }
  }

  void remember(Value* v) {
    if (v->type.elementType == ElementType::F32)
      floats_.push_back(v);
    else if (v->type.elementType == ElementType::I64)
      ints_.push_back(v);
  }

  void addRandomOp(Builder& b) {
    b_ = &b;
    Value* x = anyFloat();
    int64_t rank = x->type.rank();
    switch (pick(18)) {
    case 0: {
      static const OpKind kinds[] = {OpKind::Exp,  OpKind::Tanh,       OpKind::Sin,
                                     OpKind::Cos,  OpKind::Neg,        OpKind::Erf,
                                     OpKind::Sqrt, OpKind::Reciprocal, OpKind::Rsqrt};
      remember(b.unary(kinds[pick(9)], x));
      break;
    }
    case 1: {
      static const OpKind kinds[] = {OpKind::Add, OpKind::Sub, OpKind::Mul,
                                     OpKind::Div, OpKind::Max, OpKind::Min};
      Value* y;
      switch (pick(3)) {
      case 0:
        y = anyFloat();
        break;
      case 1:
        y = floatConstant({});
        break;
      default:
        y = floatConstant({std::max<int64_t>(lastStaticDim(x), 1)});
      }
      remember(pick(2) ? b.binary(kinds[pick(6)], x, y) : b.binary(kinds[pick(6)], y, x));
      break;
    }
    case 2: {
      static const OpKind kinds[] = {OpKind::ReduceMean, OpKind::ReduceSum, OpKind::ReduceMax};
      Ints axes = {static_cast<int64_t>(pick(rank)) - (pick(2) ? rank : 0)};
      remember(b.create(kinds[pick(3)], {x}, {{"axes", axes}, {"keepdims", pick(2) == 0}}));
      break;
    }
    case 3:
      remember(b.create(OpKind::Softmax, {x}, {{"axis", int64_t(-1)}}));
      break;
    case 4: {
      Ints perm(rank);
      for (int64_t i = 0; i < rank; ++i)
        perm[i] = i;
      std::shuffle(perm.begin(), perm.end(), rng_);
      Value* t = b.transpose(x, perm);
      std::shuffle(perm.begin(), perm.end(), rng_);
      remember(pick(2) ? b.transpose(t, perm) : t);
      break;
    }
    case 5: {
      Ints axes = {static_cast<int64_t>(pick(rank + 1))};
      Value* u = b.create(OpKind::Unsqueeze, {x}, {{"axes", axes}});
      remember(pick(2) ? b.create(OpKind::Squeeze, {u}, {{"axes", axes}}) : u);
      break;
    }
    case 6:
      remember(b.create(OpKind::Concat, {x, pick(2) ? x : anyFloat()},
                        {{"axis", static_cast<int64_t>(pick(rank))}}));
      break;
    case 7: {
      int64_t dim = lastStaticDim(x);
      Ints starts = {static_cast<int64_t>(pick(std::max<int64_t>(dim, 1)))};
      Ints ends = {pick(2) ? int64_t(9223372036854775807) : dim};
      std::map<std::string, Attribute> attrs = {
          {"starts", starts}, {"ends", ends}, {"axes", Ints{-1}}};
      if (pick(2))
        attrs["steps"] = Ints{1 + static_cast<int64_t>(pick(2))};
      remember(b.create(OpKind::Slice, {x}, attrs));
      break;
    }
    case 8: {
      int64_t k = lastStaticDim(x);
      if (k < 1 || rank < 2)
        return;
      remember(b.matmul(x, floatConstant({k, 1 + static_cast<int64_t>(pick(4))})));
      break;
    }
    case 9: {
      ElementType narrow = pick(2) ? ElementType::BF16 : ElementType::F16;
      Value* c = b.cast(pick(3) ? b.cast(x, narrow) : x, ElementType::F32);
      remember(c);
      break;
    }
    case 10: {
      Value* cond = b.binary(pick(2) ? OpKind::Less : OpKind::GreaterEqual, x, floatConstant({}));
      remember(b.create(OpKind::Where, {cond, x, pick(2) ? anyFloat() : floatConstant({})}));
      break;
    }
    case 11: {
      if (rank >= 2 && x->type.dims[rank - 1].isStatic() && x->type.dims[rank - 2].isStatic()) {
        std::vector<Dim> dims(x->type.dims.begin(), x->type.dims.end() - 2);
        dims.push_back(x->type.dims[rank - 2].scaled(x->type.dims[rank - 1].staticValue()));
        remember(b.reshape(b.reshape(x, dims), x->type.dims));
      } else {
        remember(b.reshape(x, x->type.dims));
      }
      break;
    }
    case 12: {
      Value* index = b.create(OpKind::ArgMax, {x}, {{"axis", int64_t(-1)}, {"keepdims", true}});
      remember(index);
      remember(b.cast(b.create(OpKind::CumSum, {index}, {{"axis", int64_t(0)}}), ElementType::F32));
      break;
    }
    case 13: {
      int64_t width = std::max<int64_t>(lastStaticDim(x), 2);
      Value* table = floatConstant({5, width});
      Value* ids = !ints_.empty() && pick(2)
                       ? b.create(OpKind::Min, {ints_[pick(ints_.size())],
                                                b.constant(ElementType::I64, {}, Ints{4})})
                       : b.constant(ElementType::I64, {3}, Ints{0, 4, -1});
      remember(b.create(OpKind::Gather, {table, ids}, {{"axis", int64_t(0)}}));
      break;
    }
    case 14: { // a duplicate of an existing op, for cse
      const Op* source = x->definingOp;
      if (!source)
        return;
      std::vector<TensorType> types;
      for (const auto& r : source->results)
        types.push_back(r->type);
      remember(b.graph()
                   .append(source->kind, source->operands, types, source->attrs, source->loc)
                   ->result());
      break;
    }
    case 15:
      remember(b.cast(b.create(OpKind::Shape, {x}), ElementType::F32));
      break;
    case 16: {
      int64_t start = static_cast<int64_t>(pick(3));
      double delta = 0.5 + static_cast<double>(pick(2));
      Value* range = b.create(OpKind::Range,
                              {b.scalar(ElementType::F32, static_cast<double>(start)),
                               b.scalar(ElementType::F32, 4.5), b.scalar(ElementType::F32, delta)},
                              {}, TensorType{ElementType::F32, {Dim::unknown()}});
      // A length the graph does not know must not meet other dims; a declared one may.
      if (pick(2)) {
        b.graph().addOutput(range);
        break;
      }
      auto length = static_cast<int64_t>(std::ceil((4.5 - static_cast<double>(start)) / delta));
      range->type.dims[0] = Dim::constant(length);
      remember(range);
      break;
    }
    default: {
      if (rank < 1)
        return;
      std::vector<Dim> target = x->type.dims;
      target.insert(target.begin(), Dim::constant(2));
      Value* e = b.create(OpKind::Expand, {x}, {}, TensorType{ElementType::F32, target});
      remember(
          b.create(OpKind::Gelu, {e}, {{"approximate", std::string(pick(2) ? "tanh" : "none")}}));
    }
    }
  }

  std::mt19937_64& rng_;
  Builder* b_ = nullptr;
  std::vector<Value*> floats_;
  std::vector<Value*> ints_;
};

} // namespace

std::unique_ptr<Graph> makeRandomGraph(std::mt19937_64& rng) {
  return RandomGraphMaker(rng).make();
}

std::vector<Tensor> makeRandomInputs(const Graph& graph, const SymbolBindings& bindings,
                                     std::mt19937_64& rng) {
  std::vector<Tensor> inputs;
  for (const auto& input : graph.inputs) {
    std::vector<int64_t> shape;
    for (const Dim& dim : input->type.dims)
      shape.push_back(*dim.evaluate(bindings));
    Tensor tensor = Tensor::zeros(input->type.elementType, shape);
    for (double& v : tensor.data)
      v = isFloat(input->type.elementType)
              ? roundToElementType(std::uniform_real_distribution<double>(-2, 2)(rng),
                                   input->type.elementType)
              : static_cast<double>(std::uniform_int_distribution<int>(0, 4)(rng));
    inputs.push_back(tensor);
  }
  return inputs;
}

} // namespace gemma::testing
