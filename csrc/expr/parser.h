// The expression language of SPEC section 2, parsed without recursion (an explicit stack), so
// hostile input can only produce an error: never a stack overflow, never evaluation of text.
#pragma once
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace aqf {

// Placeholder codes of schemas, beyond the operator codes of common/ops.h.
enum PlaceholderCode : int32_t { PH_UNARY = 1000, PH_BINARY = 1001, PH_NARY = 1002 };
constexpr int32_t kInputX = -1;  // the leaf "x"

constexpr size_t kMaxExprLength = 100000;  // characters
constexpr int kMaxExprDepth = 256;         // nesting levels

// A parse error: the position (0-based character offset) and what was wrong there.
class ParseError : public std::invalid_argument {
 public:
  ParseError(const std::string& text, size_t position, const std::string& problem);
  // The same error, its message prefixed (e.g. with which name of a batch it came from).
  ParseError(const ParseError& inner, const std::string& prefix);
};

struct Token {
  int32_t code;    // operator code, PlaceholderCode, or kInputX
  int32_t n_args;  // 0 for x
  int32_t pos;     // offset of the token's name in the text
};

// Postfix (children before parents) form of one expression; tokens.back() is the root.
std::vector<Token> parse_postfix(const std::string& text, bool allow_placeholders);

// Operator table lookups.
const char* op_name(int32_t code);  // includes placeholders and "x"
int32_t op_code(const std::string& name, bool allow_placeholders);  // -2 when unknown
int op_kind(int32_t code);  // 0 leaf, 1 unary, 2 binary, 3 n-ary

// Canonical text of a postfix expression (no whitespace).
std::string canonical_name(const std::vector<Token>& postfix);

}  // namespace aqf
