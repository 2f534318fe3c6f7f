// Helpers for the tests that run the Hugging Face fixtures (test/fixtures/hf) and for those that
// hold tensors as the compiled program does, in raw bytes.
#pragma once

#include "ir/Interpreter.h"

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace gemma::testing {

inline std::string hfFixtureDir(const std::string& name) {
  return std::string(GEMMAC_FIXTURES_DIR) + "/hf/" + name;
}

// The fixture's reference.json, written by make_hf_fixtures.py.
inline nlohmann::json loadHFReference(const std::string& name) {
  std::ifstream file(hfFixtureDir(name) + "/reference.json");
  return nlohmann::json::parse(file);
}

// Rows of token ids (or mask, positions) as an i64 [rows, columns] tensor.
inline Tensor rowsTensor(const nlohmann::json& rows) {
  std::vector<double> data;
  for (const nlohmann::json& row : rows)
    for (const nlohmann::json& v : row)
      data.push_back(v.get<double>());
  return Tensor(ElementType::I64,
                {static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, data);
}

// The left-padded batch transformers ran: input_ids, attention_mask, position_ids.
inline std::vector<Tensor> fixtureBatch(const nlohmann::json& reference) {
  return {rowsTensor(reference.at("input_ids")), rowsTensor(reference.at("attention_mask")),
          rowsTensor(reference.at("position_ids"))};
}

// A tensor's elements in its element type's bytes (row-major), and back.
inline void encodeTensor(const Tensor& t, uint8_t* out) {
  for (size_t i = 0; i < t.data.size(); ++i) {
    double v = t.data[i];
    switch (t.elementType) {
    case ElementType::F32: {
      float f = static_cast<float>(v);
      std::memcpy(out + 4 * i, &f, 4);
      break;
    }
    case ElementType::BF16: {
      float f = static_cast<float>(v);
      uint32_t bits;
      std::memcpy(&bits, &f, 4);
      uint16_t half = static_cast<uint16_t>(bits >> 16); // already a bf16 value: exact
      std::memcpy(out + 2 * i, &half, 2);
      break;
    }
    case ElementType::F16: {
      _Float16 h = static_cast<_Float16>(v);
      std::memcpy(out + 2 * i, &h, 2);
      break;
    }
    case ElementType::I64: {
      int64_t x = static_cast<int64_t>(v);
      std::memcpy(out + 8 * i, &x, 8);
      break;
    }
    case ElementType::I32: {
      int32_t x = static_cast<int32_t>(v);
      std::memcpy(out + 4 * i, &x, 4);
      break;
    }
    case ElementType::I8:
    case ElementType::Bool:
      out[i] = static_cast<uint8_t>(static_cast<int8_t>(v));
      break;
    }
  }
}

inline Tensor decodeTensor(const uint8_t* in, ElementType type, const std::vector<int64_t>& shape) {
  Tensor t = Tensor::zeros(type, shape);
  for (size_t i = 0; i < t.data.size(); ++i) {
    switch (type) {
    case ElementType::F32: {
      float f;
      std::memcpy(&f, in + 4 * i, 4);
      t.data[i] = f;
      break;
    }
    case ElementType::BF16: {
      uint16_t half;
      std::memcpy(&half, in + 2 * i, 2);
      uint32_t bits = static_cast<uint32_t>(half) << 16;
      float f;
      std::memcpy(&f, &bits, 4);
      t.data[i] = f;
      break;
    }
    case ElementType::F16: {
      _Float16 h;
      std::memcpy(&h, in + 2 * i, 2);
      t.data[i] = static_cast<double>(h);
      break;
    }
    case ElementType::I64: {
      int64_t x;
      std::memcpy(&x, in + 8 * i, 8);
      t.data[i] = static_cast<double>(x);
      break;
    }
    case ElementType::I32: {
      int32_t x;
      std::memcpy(&x, in + 4 * i, 4);
      t.data[i] = x;
      break;
    }
    case ElementType::I8:
      t.data[i] = static_cast<int8_t>(in[i]);
      break;
    case ElementType::Bool:
      t.data[i] = in[i] != 0;
      break;
    }
  }
  return t;
}

} // namespace gemma::testing
