// Small helpers shared by the unit tests.
#pragma once

#include "ir/Diagnostics.h"
#include "ir/Interpreter.h"
#include "ir/Parser.h"
#include "ir/Verifier.h"

#include <gtest/gtest.h>
#include <string>

namespace gemma::testing {

// The formatted message of the UserError that `f` throws, or "" if it throws none.
template <typename F> std::string userErrorOf(F f) {
  try {
    f();
  } catch (const UserError& error) {
    return error.formatted();
  }
  return "";
}

// Parses and verifies; returns the first error message ("" if the text is valid).
inline std::string errorOfText(const std::string& text) {
  return userErrorOf([&] { verifyGraph(*parseGraph(text, "t.ir")); });
}

// Equal element for element; NaNs compare equal to NaNs.
inline ::testing::AssertionResult sameTensor(const Tensor& a, const Tensor& b) {
  if (a.elementType != b.elementType || a.shape != b.shape)
    return ::testing::AssertionFailure()
           << "shape " << a.shapeString() << " vs " << b.shapeString();
  for (size_t i = 0; i < a.data.size(); ++i) {
    bool bothNan = a.data[i] != a.data[i] && b.data[i] != b.data[i];
    if (!bothNan && a.data[i] != b.data[i])
      return ::testing::AssertionFailure()
             << "element " << i << ": " << a.data[i] << " vs " << b.data[i];
  }
  return ::testing::AssertionSuccess();
}

} // namespace gemma::testing
