// A batch of expressions compiled into straight-line register programs. Subexpressions shared by
// several functions of a batch (the 27 unary(x) of the benchmark space, say) are computed once:
// nodes are hash-consed per sub-program. The batch is cut into sub-programs of consecutive
// functions so that threads (or CUDA blocks) can work on different functions of one input block.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "expr/parser.h"

namespace aqf {

// Operand numbering inside a sub-program: 0 is the input x, 1..n_regs are scratch registers,
// n_regs + 1 + k is the output row of function first_fn + k.
struct Instr {
  int32_t op;   // OpCode
  int32_t dst;  // operand written
  int32_t a;    // unary/binary: first operand; n-ary: offset into SubProgram::args
  int32_t b;    // binary: second operand; n-ary: number of arguments; unary: unused
};

struct SubProgram {
  std::vector<Instr> code;
  std::vector<int32_t> args;  // operands of n-ary instructions
  int32_t n_regs = 0;
  int64_t first_fn = 0;
  int32_t n_fns = 0;
};

struct Program {
  std::vector<SubProgram> subs;
  int64_t n_fns = 0;
  int32_t max_regs = 0;
  int32_t max_nary = 0;  // most arguments of any n-ary instruction
  int64_t n_instructions() const;
};

// Consecutive functions per sub-program; <= 0 puts all in one.
Program compile_program(const std::vector<std::vector<Token>>& fns, int64_t fns_per_sub);

}  // namespace aqf
