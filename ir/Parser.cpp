#include "ir/Parser.h"

#include "ir/Verifier.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <map>

namespace gemma {

namespace {

enum class TokenKind {
  End,
  Identifier,  // bare word: mnemonic, type, keyword, symbol
  ValueName,   // %name
  GraphName,   // @name
  Integer,     // digits
  Float,       // digits with '.' or exponent
  String,      // "..." (text holds the unescaped bytes)
  Punctuation, // one of ( ) { } [ ] , : = + - * ?
};

struct Token {
  TokenKind kind = TokenKind::End;
  std::string text;
  int line = 0;
  int col = 0;
};

bool isIdentifierStart(char c) {
  return std::isalpha(static_cast<unsigned char>(c)) || c == '_';
}
bool isIdentifierChar(char c) {
  return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.';
}

class Lexer {
public:
  Lexer(std::string_view text, std::string fileName, int firstLine)
      : text_(text), file_(std::move(fileName)), line_(firstLine) {}

  Token next() {
    skipWhitespaceAndComments();
    Token token;
    token.line = line_;
    token.col = col_;
    if (pos_ >= text_.size())
      return token;
    char c = text_[pos_];
    if (c == '%' || c == '@') {
      advance();
      std::string name = readWhile(isIdentifierChar);
      if (name.empty())
        error(token, std::string("expected a name after '") + c + "'");
      token.kind = c == '%' ? TokenKind::ValueName : TokenKind::GraphName;
      token.text = name;
    } else if (isIdentifierStart(c)) {
      token.kind = TokenKind::Identifier;
      token.text = readWhile(
          [](char ch) { return std::isalnum(static_cast<unsigned char>(ch)) || ch == '_'; });
    } else if (std::isdigit(static_cast<unsigned char>(c))) {
      lexNumber(token);
    } else if (c == '"') {
      lexString(token);
    } else if (std::string_view("(){}[],:=+-*?").find(c) != std::string_view::npos) {
      advance();
      token.kind = TokenKind::Punctuation;
      token.text = std::string(1, c);
    } else {
      unsigned char byte = static_cast<unsigned char>(c);
      char hex[8];
      snprintf(hex, sizeof hex, "0x%02x", byte);
      error(token, std::isprint(byte) ? std::string("unexpected character '") + c + "'"
                                      : std::string("unexpected byte ") + hex);
    }
    return token;
  }

  [[noreturn]] void error(const Token& at, const std::string& message) const {
    throw UserError(Location::inFile(file_, at.line, at.col), message);
  }
  const std::string& file() const { return file_; }

private:
  void advance() {
    if (text_[pos_] == '\n') {
      ++line_;
      col_ = 1;
    } else {
      ++col_;
    }
    ++pos_;
  }

  template <typename Pred> std::string readWhile(Pred pred) {
    size_t start = pos_;
    while (pos_ < text_.size() && pred(text_[pos_]))
      advance();
    return std::string(text_.substr(start, pos_ - start));
  }

  void skipWhitespaceAndComments() {
    while (pos_ < text_.size()) {
      char c = text_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
        advance();
      else if (c == '/' && pos_ + 1 < text_.size() && text_[pos_ + 1] == '/')
        while (pos_ < text_.size() && text_[pos_] != '\n')
          advance();
      else
        break;
    }
  }

  void lexNumber(Token& token) {
    auto isDigit = [](char ch) { return std::isdigit(static_cast<unsigned char>(ch)) != 0; };
    std::string text = readWhile(isDigit);
    bool isFloatNumber = false;
    if (pos_ < text_.size() && text_[pos_] == '.') {
      isFloatNumber = true;
      advance();
      text += "." + readWhile(isDigit);
    }
    if (pos_ < text_.size() && (text_[pos_] == 'e' || text_[pos_] == 'E')) {
      isFloatNumber = true;
      advance();
      text += "e";
      if (pos_ < text_.size() && (text_[pos_] == '+' || text_[pos_] == '-')) {
        text += text_[pos_];
        advance();
      }
      std::string exponent = readWhile(isDigit);
      if (exponent.empty())
        error(token, "malformed number '" + text + "'");
      text += exponent;
    }
    if (pos_ < text_.size() && isIdentifierStart(text_[pos_]))
      error(token, "malformed number '" + text + text_[pos_] + "'");
    token.kind = isFloatNumber ? TokenKind::Float : TokenKind::Integer;
    token.text = text;
  }

  void lexString(Token& token) {
    advance(); // opening quote
    std::string value;
    while (true) {
      if (pos_ >= text_.size() || text_[pos_] == '\n')
        error(token, "unterminated string");
      char c = text_[pos_];
      advance();
      if (c == '"')
        break;
      if (c != '\\') {
        value += c;
        continue;
      }
      if (pos_ >= text_.size())
        error(token, "unterminated string");
      char escaped = text_[pos_];
      advance();
      if (escaped == '"' || escaped == '\\') {
        value += escaped;
      } else if (escaped == 'x') {
        int byte = 0;
        for (int i = 0; i < 2; ++i) {
          if (pos_ >= text_.size() || !std::isxdigit(static_cast<unsigned char>(text_[pos_])))
            error(token, "malformed \\x escape in string");
          char h = static_cast<char>(std::tolower(static_cast<unsigned char>(text_[pos_])));
          byte = byte * 16 + (std::isdigit(static_cast<unsigned char>(h)) ? h - '0' : h - 'a' + 10);
          advance();
        }
        value += static_cast<char>(byte);
      } else {
        error(token, std::string("unknown escape '\\") + escaped + "' in string");
      }
    }
    token.kind = TokenKind::String;
    token.text = value;
  }

  std::string_view text_;
  std::string file_;
  size_t pos_ = 0;
  int line_;
  int col_ = 1;
};

class Parser {
public:
  Parser(std::string_view text, std::string fileName, int firstLine)
      : lexer_(text, std::move(fileName), firstLine) {
    current_ = lexer_.next();
  }

  std::unique_ptr<Graph> parseFile() {
    expectKeyword("graph");
    if (current_.kind != TokenKind::GraphName)
      error("expected '@name' after 'graph'");
    auto graph = std::make_unique<Graph>(take().text);
    graph_ = graph.get();
    parseSignature();
    if (isKeyword("attributes")) {
      take();
      if (!isPunctuation("{"))
        error("expected '{' after 'attributes'" + found());
      graph->attrs = parseAttributes();
    }
    expectPunctuation("{");
    while (!isKeyword("return"))
      parseOp();
    take();
    parseReturn();
    expectPunctuation("}");
    if (current_.kind != TokenKind::End)
      error("expected end of input after the graph");
    return graph;
  }

private:
  [[noreturn]] void error(const std::string& message) const { lexer_.error(current_, message); }

  Token take() {
    Token token = current_;
    current_ = lexer_.next();
    return token;
  }
  bool isPunctuation(const char* p) const {
    return current_.kind == TokenKind::Punctuation && current_.text == p;
  }
  bool isKeyword(const char* word) const {
    return current_.kind == TokenKind::Identifier && current_.text == word;
  }
  bool consumePunctuation(const char* p) {
    if (!isPunctuation(p))
      return false;
    take();
    return true;
  }
  void expectPunctuation(const char* p) {
    if (!consumePunctuation(p))
      error(std::string("expected '") + p + "'" + found());
  }
  void expectKeyword(const char* word) {
    if (!isKeyword(word))
      error(std::string("expected '") + word + "'" + found());
    take();
  }
  std::string found() const {
    switch (current_.kind) {
    case TokenKind::End:
      return " but the input ended";
    case TokenKind::String:
      return " but found a string";
    case TokenKind::ValueName:
      return " but found '%" + current_.text + "'";
    case TokenKind::GraphName:
      return " but found '@" + current_.text + "'";
    default:
      return " but found '" + current_.text + "'";
    }
  }

  Location here() const { return Location::inFile(lexer_.file(), current_.line, current_.col); }

  void parseSignature() {
    expectPunctuation("(");
    if (consumePunctuation(")"))
      return;
    do {
      if (current_.kind != TokenKind::ValueName)
        error("expected an input '%name'" + found());
      Location loc = here();
      Token name = take();
      if (values_.count(name.text))
        lexer_.error(name, "value %" + name.text + " is already defined");
      if (!isValidValueName(name.text))
        lexer_.error(name, "input name %" + name.text + " must start with a letter or '_'");
      expectPunctuation(":");
      values_[name.text] = graph_->addInput(name.text, parseType(), loc);
    } while (consumePunctuation(","));
    expectPunctuation(")");
  }

  // An integer, its '-' consumed here or already by the caller (`negated`): the magnitude is read
  // unsigned so that INT64_MIN, which the printer writes, parses back.
  int64_t parseInteger(bool negated = false) {
    bool negative = negated || consumePunctuation("-");
    if (current_.kind != TokenKind::Integer)
      error("expected an integer" + found());
    uint64_t magnitude = 0;
    const std::string& text = current_.text;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), magnitude);
    uint64_t limit = negative ? uint64_t(1) << 63 : (uint64_t(1) << 63) - 1;
    if (ec != std::errc() || ptr != text.data() + text.size() || magnitude > limit)
      error("integer '" + std::string(negative ? "-" : "") + text + "' is out of range");
    take();
    return negative ? static_cast<int64_t>(0 - magnitude) : static_cast<int64_t>(magnitude);
  }

  int64_t parseDimNumber() {
    Token at = current_;
    int64_t value = parseInteger();
    if (value > kMaxDimValue)
      lexer_.error(at, "dim " + std::to_string(value) + " is larger than 2^40");
    return value;
  }

  // dim := term (('+' | '-') term)*;  term := INT | INT '*' SYMBOL | SYMBOL | '?'
  Dim parseDim() {
    if (consumePunctuation("?"))
      return Dim::unknown();
    Dim dim;
    bool negate = consumePunctuation("-");
    while (true) {
      Token at = current_;
      Dim term;
      if (current_.kind == TokenKind::Identifier) {
        term = Dim::symbol(take().text);
      } else {
        int64_t value = parseDimNumber();
        term = consumePunctuation("*") ? symbolTerm(value) : Dim::constant(value);
      }
      dim = negate ? dim - term : dim + term;
      if (dim.isUnknown())
        lexer_.error(at, "dim expression is out of range");
      if (consumePunctuation("+"))
        negate = false;
      else if (consumePunctuation("-"))
        negate = true;
      else
        return dim;
    }
  }

  Dim symbolTerm(int64_t coefficient) {
    if (current_.kind != TokenKind::Identifier)
      error("expected a symbol after '*'" + found());
    return Dim::symbol(take().text).scaled(coefficient);
  }

  TensorType parseType() {
    if (current_.kind != TokenKind::Identifier)
      error("expected a tensor type such as f32[2,seq]" + found());
    Token at = take();
    auto elementType = parseElementType(at.text);
    if (!elementType)
      lexer_.error(at, "unknown element type '" + at.text + "'");
    TensorType type{*elementType, {}};
    expectPunctuation("[");
    if (consumePunctuation("]"))
      return type;
    do {
      if (type.rank() >= kMaxRank)
        error("type has rank above " + std::to_string(kMaxRank));
      type.dims.push_back(parseDim());
    } while (consumePunctuation(","));
    expectPunctuation("]");
    return type;
  }

  Value* parseValueUse() {
    if (current_.kind != TokenKind::ValueName)
      error("expected a value '%name'" + found());
    Token name = take();
    auto it = values_.find(name.text);
    if (it == values_.end())
      lexer_.error(name, "use of undefined value %" + name.text);
    return it->second;
  }

  double parseFloatNumber() {
    bool negative = consumePunctuation("-");
    double value = 0;
    if (isKeyword("inf")) {
      value = INFINITY;
    } else if (isKeyword("nan")) {
      value = NAN;
    } else if (current_.kind == TokenKind::Float || current_.kind == TokenKind::Integer) {
      const std::string& text = current_.text;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || ptr != text.data() + text.size())
        error("number '" + text + "' is out of range");
    } else {
      error("expected a number" + found());
    }
    take();
    return negative ? -value : value;
  }

  bool atFloat() const {
    return current_.kind == TokenKind::Float || isKeyword("inf") || isKeyword("nan");
  }

  Attribute parseAttributeValue() {
    if (current_.kind == TokenKind::String)
      return take().text;
    if (isKeyword("true") || isKeyword("false"))
      return take().text == "true";
    if (consumePunctuation("[")) {
      if (consumePunctuation("]"))
        return Ints{};
      // The list is floats if its first element is; a later float in an int list is an error.
      bool negative = isPunctuation("-");
      if (negative)
        take();
      bool floats = atFloat();
      Ints ints;
      Floats floatValues;
      bool first = true;
      do {
        if (floats) {
          double v = parseFloatNumber();
          floatValues.push_back(first && negative ? -v : v);
        } else {
          if (atFloat())
            error("list mixes integers and floats");
          ints.push_back(parseInteger(first && negative));
        }
        first = false;
      } while (consumePunctuation(","));
      expectPunctuation("]");
      if (floats)
        return floatValues;
      return ints;
    }
    bool negative = consumePunctuation("-");
    if (atFloat()) {
      double v = parseFloatNumber();
      return negative ? -v : v;
    }
    if (current_.kind == TokenKind::Integer)
      return parseInteger(negative);
    error("expected an attribute value" + found());
  }

  std::map<std::string, Attribute> parseAttributes() {
    std::map<std::string, Attribute> attrs;
    if (!consumePunctuation("{"))
      return attrs;
    if (consumePunctuation("}"))
      return attrs;
    do {
      if (current_.kind != TokenKind::Identifier)
        error("expected an attribute name" + found());
      Token name = take();
      if (attrs.count(name.text))
        lexer_.error(name, "attribute '" + name.text + "' is given twice");
      expectPunctuation("=");
      attrs[name.text] = parseAttributeValue();
    } while (consumePunctuation(","));
    expectPunctuation("}");
    return attrs;
  }

  // loc("origin"), loc("file":line:col) or loc(unknown). An origin keeps the op's place in this
  // file for diagnostics; the other two replace it.
  void parseLocation(Location& loc) {
    if (!isKeyword("loc"))
      return;
    take();
    expectPunctuation("(");
    if (isKeyword("unknown")) {
      take();
      loc = Location{};
      expectPunctuation(")");
      return;
    }
    if (current_.kind != TokenKind::String)
      error("expected a string in loc(...)" + found());
    std::string text = take().text;
    if (consumePunctuation(":")) {
      int64_t line = parseInteger();
      expectPunctuation(":");
      int64_t col = parseInteger();
      if (line < 1 || col < 1 || line > 1 << 30 || col > 1 << 30)
        error("loc line and column must be positive");
      loc = Location::inFile(text, static_cast<int>(line), static_cast<int>(col));
    } else {
      loc.origin = text;
    }
    expectPunctuation(")");
  }

  void parseOp() {
    Location loc = here();
    std::vector<Token> resultNames;
    do {
      if (current_.kind != TokenKind::ValueName)
        error("expected a result '%name' or 'return'" + found());
      resultNames.push_back(take());
    } while (consumePunctuation(","));
    expectPunctuation("=");
    if (current_.kind != TokenKind::Identifier)
      error("expected an op name" + found());
    Token mnemonic = take();
    auto kind = lookupOp(mnemonic.text);
    if (!kind)
      lexer_.error(mnemonic, "unknown op '" + mnemonic.text + "'");

    std::vector<Value*> operands;
    expectPunctuation("(");
    if (!consumePunctuation(")")) {
      do
        operands.push_back(parseValueUse());
      while (consumePunctuation(","));
      expectPunctuation(")");
    }
    auto attrs = parseAttributes();
    expectPunctuation(":");
    std::vector<TensorType> types;
    do
      types.push_back(parseType());
    while (consumePunctuation(","));
    if (types.size() != resultNames.size())
      lexer_.error(mnemonic, std::to_string(resultNames.size()) + " result(s) but " +
                                 std::to_string(types.size()) + " type(s)");
    parseLocation(loc);

    Op* op = graph_->append(*kind, std::move(operands), types, std::move(attrs), loc);
    for (size_t i = 0; i < resultNames.size(); ++i) {
      if (!values_.emplace(resultNames[i].text, op->result(i)).second)
        lexer_.error(resultNames[i], "value %" + resultNames[i].text + " is already defined");
    }
  }

  void parseReturn() {
    if (isPunctuation("}"))
      return;
    do {
      Location loc = here();
      Value* value = parseValueUse();
      std::string name;
      if (isKeyword("as")) {
        take();
        if (current_.kind != TokenKind::String)
          error("expected an output name string after 'as'" + found());
        name = take().text;
      }
      graph_->addOutput(value, name, loc);
    } while (consumePunctuation(","));
  }

  Lexer lexer_;
  Token current_;
  Graph* graph_ = nullptr;
  std::map<std::string, Value*> values_;
};

} // namespace

std::unique_ptr<Graph> parseGraph(std::string_view text, const std::string& fileName,
                                  int firstLine) {
  return Parser(text, fileName, firstLine).parseFile();
}

} // namespace gemma
