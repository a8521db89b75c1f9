#include "expr/parser.h"

#include <algorithm>
#include <cctype>
#include <unordered_map>

#include "common/ops.h"

namespace aqf {
namespace {

const char* const kOpNames[] = {
#define AQF_NAME(E, C, S) S,
    AQF_UNARY_OPS(AQF_NAME) AQF_BINARY_OPS(AQF_NAME) AQF_NARY_OPS(AQF_NAME)
#undef AQF_NAME
};

std::string excerpt(const std::string& text) {
  return text.size() <= 80 ? text : text.substr(0, 77) + "...";
}

}  // namespace

ParseError::ParseError(const std::string& text, size_t position, const std::string& problem)
    : std::invalid_argument(problem + " at position " + std::to_string(position) + " in '" + excerpt(text) + "'") {}

ParseError::ParseError(const ParseError& inner, const std::string& prefix)
    : std::invalid_argument(prefix + inner.what()) {}

const char* op_name(int32_t code) {
  if (code == kInputX) return "x";
  if (code == PH_UNARY) return "unary";
  if (code == PH_BINARY) return "binary";
  if (code == PH_NARY) return "n-ary";
  if (code >= 0 && code < OP_COUNT) return kOpNames[code];
  return "?";
}

int32_t op_code(const std::string& name, bool allow_placeholders) {
  static const std::unordered_map<std::string, int32_t> codes = [] {
    std::unordered_map<std::string, int32_t> m{{"x", kInputX}};
    for (int32_t c = 0; c < OP_COUNT; ++c) m.emplace(kOpNames[c], c);
    return m;
  }();
  const auto it = codes.find(name);
  if (it != codes.end()) return it->second;
  if (allow_placeholders) {
    if (name == "unary") return PH_UNARY;
    if (name == "binary") return PH_BINARY;
    if (name == "n-ary") return PH_NARY;
  }
  return -2;
}

int op_kind(int32_t code) {
  if (code == kInputX) return 0;
  if (code == PH_UNARY || (code >= 0 && code < kFirstBinary)) return 1;
  if (code == PH_BINARY || (code >= kFirstBinary && code < kFirstNary)) return 2;
  return 3;
}

std::vector<Token> parse_postfix(const std::string& text, bool allow_placeholders) {
  if (text.size() > kMaxExprLength) {
    throw ParseError(text, kMaxExprLength, "expression longer than " + std::to_string(kMaxExprLength) + " characters");
  }
  struct Open {  // an operator whose argument list is being read
    int32_t code;
    int32_t pos;
    int32_t n_args;
  };
  std::vector<Open> open;
  std::vector<Token> out;
  size_t i = 0;
  const size_t n = text.size();
  auto skip_space = [&] {
    while (i < n && std::isspace(static_cast<unsigned char>(text[i]))) ++i;
  };
  auto fail = [&](size_t pos, const std::string& problem) -> void { throw ParseError(text, pos, problem); };
  auto close_args = [&](const Open& o, size_t pos) {
    const int kind = op_kind(o.code);
    const char* name = op_name(o.code);
    if (kind == 1 && o.n_args != 1) fail(pos, std::string("'") + name + "' takes 1 argument, got " + std::to_string(o.n_args));
    if (kind == 2 && o.n_args != 2) fail(pos, std::string("'") + name + "' takes 2 arguments, got " + std::to_string(o.n_args));
    if (kind == 3 && o.n_args < 2) fail(pos, std::string("'") + name + "' takes 2 or more arguments, got " + std::to_string(o.n_args));
  };

  bool expect_operand = true;
  skip_space();
  if (i == n) fail(0, "empty expression");
  while (true) {
    skip_space();
    if (expect_operand) {
      if (i == n) fail(i, "expression ends where an argument was expected");
      const size_t start = i;
      while (i < n && (std::isalnum(static_cast<unsigned char>(text[i])) || text[i] == '_' || text[i] == '-')) ++i;
      if (i == start) fail(start, std::string("expected an operator name or 'x', found '") + text[start] + "'");
      const std::string name = text.substr(start, i - start);
      const int32_t code = op_code(name, allow_placeholders);
      if (code == -2) {
        const bool is_placeholder = name == "unary" || name == "binary" || name == "n-ary";
        fail(start, is_placeholder ? "placeholder '" + name + "' is only allowed in schemas"
                                   : "unknown operator '" + name + "'");
      }
      skip_space();
      if (code == kInputX) {
        if (i < n && text[i] == '(') fail(i, "'x' is the input and takes no arguments");
        out.push_back({kInputX, 0, static_cast<int32_t>(start)});
        expect_operand = false;
        continue;
      }
      if (i == n || text[i] != '(') fail(i, "expected '(' after '" + name + "'");
      if (static_cast<int>(open.size()) >= kMaxExprDepth) {
        fail(start, "nesting deeper than " + std::to_string(kMaxExprDepth) + " levels");
      }
      open.push_back({code, static_cast<int32_t>(start), 0});
      ++i;  // '('
      continue;
    }
    // After an operand: ',' ')' or the end.
    if (i == n) {
      if (!open.empty()) fail(i, "missing ')' to close '" + std::string(op_name(open.back().code)) + "'");
      break;
    }
    if (open.empty()) fail(i, std::string("unexpected '") + text[i] + "' after a complete expression");
    if (text[i] == ',') {
      open.back().n_args += 1;
      ++i;
      expect_operand = true;
    } else if (text[i] == ')') {
      Open o = open.back();
      open.pop_back();
      o.n_args += 1;
      close_args(o, i);
      out.push_back({o.code, o.n_args, o.pos});
      ++i;
    } else {
      fail(i, std::string("expected ',' or ')', found '") + text[i] + "'");
    }
  }
  return out;
}

std::string canonical_name(const std::vector<Token>& postfix) {
  std::vector<std::string> stack;
  for (const Token& t : postfix) {
    if (t.code == kInputX) {
      stack.emplace_back("x");
      continue;
    }
    std::string s = std::string(op_name(t.code)) + "(";
    const size_t first = stack.size() - t.n_args;
    for (size_t k = first; k < stack.size(); ++k) s += (k > first ? "," : "") + stack[k];
    stack.resize(first);
    stack.push_back(s + ")");
  }
  return stack.back();
}

}  // namespace aqf
