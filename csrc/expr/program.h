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

  // For gradients every node keeps its value: grad_code[i] computes node i + 1 into operand
  // i + 1 (operand 0 is x), and each function's backward sweep visits the instructions of its
  // own subgraph from the root down (tape_offsets[k] .. tape_offsets[k + 1] of tapes).
  std::vector<Instr> grad_code;
  std::vector<int32_t> grad_args;
  std::vector<int32_t> roots;  // [n_fns] node of each function (0 when it is x itself)
  std::vector<int32_t> tape_offsets;
  std::vector<int32_t> tapes;
  int32_t n_nodes = 1;
};

struct Program {
  std::vector<SubProgram> subs;
  int64_t n_fns = 0;
  int32_t max_regs = 0;
  int32_t max_nodes = 1;
  bool with_grad = false;  // whether the gradient code was built
  int64_t n_instructions() const;
};

// Consecutive functions per sub-program; <= 0 puts all in one. with_grad also builds the code
// that gradients need.
Program compile_program(const std::vector<std::vector<Token>>& fns, int64_t fns_per_sub, bool with_grad);

}  // namespace aqf
