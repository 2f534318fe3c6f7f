// Helpers for the tests that run the Hugging Face fixtures (test/fixtures/hf) and for those that
// hold tensors as the compiled program does, in raw bytes.
#pragma once

#include "ir/ElementCodec.h"
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
inline nlohmann::json loadHFReference(const std::string& name,
                                      const std::string& file = "reference.json") {
  std::ifstream stream(hfFixtureDir(name) + "/" + file);
  return nlohmann::json::parse(stream);
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
  int64_t width = elementSize(t.elementType);
  for (size_t i = 0; i < t.data.size(); ++i)
    codec::encodeElement(t.elementType, t.data[i], out + static_cast<int64_t>(i) * width);
}

inline Tensor decodeTensor(const uint8_t* in, ElementType type, const std::vector<int64_t>& shape) {
  Tensor t = Tensor::zeros(type, shape);
  t.data = codec::decodeElements(type, in, t.data.size() * static_cast<size_t>(elementSize(type)));
  return t;
}

} // namespace gemma::testing
