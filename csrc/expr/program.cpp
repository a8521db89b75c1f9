#include "expr/program.h"

#include <algorithm>
#include <map>
#include <stdexcept>
#include <unordered_map>

#include "common/ops.h"

namespace aqf {
namespace {

struct Node {
  int32_t op;
  std::vector<int32_t> children;  // node ids
};

void build_gradient_code(const std::vector<Node>& nodes, const std::vector<int32_t>& roots, SubProgram& sub) {
  const int32_t n_nodes = static_cast<int32_t>(nodes.size());
  sub.n_nodes = n_nodes;
  for (int32_t id = 1; id < n_nodes; ++id) {
    const Node& node = nodes[id];
    Instr ins{node.op, id, 0, 0};
    if (op_kind(node.op) == 3) {
      ins.a = static_cast<int32_t>(sub.grad_args.size());
      ins.b = static_cast<int32_t>(node.children.size());
      sub.grad_args.insert(sub.grad_args.end(), node.children.begin(), node.children.end());
    } else {
      ins.a = node.children[0];
      ins.b = node.children.size() > 1 ? node.children[1] : 0;
    }
    sub.grad_code.push_back(ins);
  }
  sub.roots = roots;
  // Each function's sweep visits its nodes in the reverse of the order torch creates them when it
  // evaluates the expression: post-order, arguments left to right. Torch runs backward nodes
  // latest-created first, so gradients reach each value in the same order and sum to the same bits.
  std::vector<int32_t> stamp(n_nodes, -1);  // stamp[id] == k: already placed for function k
  std::vector<std::pair<int32_t, size_t>> stack;  // (node, next child to visit)
  sub.tape_offsets.push_back(0);
  for (int32_t k = 0; k < static_cast<int32_t>(roots.size()); ++k) {
    const size_t begin = sub.tapes.size();
    if (roots[k] != 0) stack.emplace_back(roots[k], 0);
    while (!stack.empty()) {
      auto& [id, next] = stack.back();
      const Node& node = nodes[id];
      // zero(.) and one(.) are constants: like torch's zeros_like they end the gradient's path
      const bool constant = node.op == OP_ZERO || node.op == OP_ONE;
      if (!constant && next < node.children.size()) {
        const int32_t child = node.children[next++];
        if (child != 0 && stamp[child] != k) stack.emplace_back(child, 0);
        continue;
      }
      if (stamp[id] != k && !constant) sub.tapes.push_back(id - 1);
      stamp[id] = k;
      stack.pop_back();
    }
    std::reverse(sub.tapes.begin() + begin, sub.tapes.end());
    sub.tape_offsets.push_back(static_cast<int32_t>(sub.tapes.size()));
  }
}

// The expressions of one sub-program as a DAG: node 0 is x, every other node an operator applied
// to earlier nodes; roots[k] is function k's node.
struct Graph {
  std::vector<Node> nodes{{kInputX, {}}};
  std::vector<int32_t> roots;
};

// Hash-consing: an operator applied to the same nodes is one node. Unary and binary nodes intern
// by one packed word; n-ary ones by their full argument list.
class NodeInterner {
 public:
  explicit NodeInterner(Graph& graph) : graph_(graph) {}

  int32_t intern(int32_t code, std::vector<int32_t> children) {
    const auto next_id = static_cast<int32_t>(graph_.nodes.size());
    int32_t id;
    if (children.size() <= 2) {
      const uint64_t c0 = static_cast<uint32_t>(children[0]);
      const uint64_t c1 = children.size() == 2 ? static_cast<uint32_t>(children[1]) + 1 : 0;
      const uint64_t key = (uint64_t(code) << 58) | (c0 << 29) | c1;  // ids < 2^28
      id = small_.emplace(key, next_id).first->second;
    } else {
      id = nary_.emplace(std::make_pair(code, children), next_id).first->second;
    }
    if (id == next_id) graph_.nodes.push_back({code, std::move(children)});
    return id;
  }

 private:
  Graph& graph_;
  std::unordered_map<uint64_t, int32_t> small_;
  std::map<std::pair<int32_t, std::vector<int32_t>>, int32_t> nary_;
};

// Functions first .. first + count - 1 of fns (tokens in postfix order) as one DAG.
Graph build_graph(const std::vector<std::vector<Token>>& fns, int64_t first, int32_t count) {
  Graph graph;
  graph.roots.resize(count);
  NodeInterner interner(graph);
  std::vector<int32_t> stack;
  for (int32_t k = 0; k < count; ++k) {
    stack.clear();
    for (const Token& t : fns[first + k]) {
      if (t.code == kInputX) {
        stack.push_back(0);
        continue;
      }
      if (t.code >= OP_COUNT) throw std::invalid_argument("schema placeholders cannot be evaluated; enumerate the schema first");
      // identity(e) is e itself, as in torch, where it adds no node to the autograd graph (and so
      // changes neither values nor the order in which gradients are summed)
      if (t.code == OP_IDENTITY) continue;
      std::vector<int32_t> children(stack.end() - t.n_args, stack.end());
      stack.resize(stack.size() - t.n_args);
      stack.push_back(interner.intern(t.code, std::move(children)));
    }
    graph.roots[k] = stack.back();
  }
  return graph;
}

// last_use[c]: the last node that reads node c (-1 for none).
std::vector<int32_t> last_uses(const std::vector<Node>& nodes) {
  std::vector<int32_t> last_use(nodes.size(), -1);
  for (int32_t id = 1; id < static_cast<int32_t>(nodes.size()); ++id) {
    for (int32_t c : nodes[id].children) last_use[c] = id;
  }
  return last_use;
}

// output_of[id]: the first function rooted at node id (it receives the node directly in its
// output row), or -1.
std::vector<int32_t> output_functions(const Graph& graph) {
  std::vector<int32_t> output_of(graph.nodes.size(), -1);
  for (int32_t k = 0; k < static_cast<int32_t>(graph.roots.size()); ++k) {
    const int32_t root = graph.roots[k];
    if (root != 0 && output_of[root] < 0) output_of[root] = k;
  }
  return output_of;
}

// The forward code: one instruction per node, in node order, each writing a scratch register
// (reused once its last reader has run) or, for a function's root, that function's output row,
// numbered -1 - k until the number of registers is known (resolve_outputs). Then a copy for every
// function that repeats an earlier one or is x itself. Fills sub.code, sub.args and sub.n_regs.
void emit_forward_code(const Graph& graph, SubProgram& sub) {
  const std::vector<Node>& nodes = graph.nodes;
  const int32_t n_nodes = static_cast<int32_t>(nodes.size());
  const std::vector<int32_t> last_use = last_uses(nodes);
  const std::vector<int32_t> output_of = output_functions(graph);
  std::vector<int32_t> operand(n_nodes, 0);  // where each node's value lives
  std::vector<int32_t> free_regs;
  int32_t n_regs = 0;
  for (int32_t id = 1; id < n_nodes; ++id) {
    const Node& node = nodes[id];
    int32_t dst;
    if (output_of[id] >= 0) {
      dst = -1 - output_of[id];
    } else if (!free_regs.empty()) {
      dst = free_regs.back();
      free_regs.pop_back();
    } else {
      dst = ++n_regs;
    }
    Instr ins{node.op, dst, 0, 0};
    const int kind = op_kind(node.op);
    if (kind == 1) {
      ins.a = operand[node.children[0]];
    } else if (kind == 2) {
      ins.a = operand[node.children[0]];
      ins.b = operand[node.children[1]];
    } else {
      ins.a = static_cast<int32_t>(sub.args.size());
      ins.b = static_cast<int32_t>(node.children.size());
      for (int32_t c : node.children) sub.args.push_back(operand[c]);
    }
    sub.code.push_back(ins);
    operand[id] = dst;
    for (int32_t c : node.children) {
      if (last_use[c] == id && operand[c] > 0) {
        // a child used twice by this node is freed once
        if (std::find(free_regs.begin(), free_regs.end(), operand[c]) == free_regs.end()) free_regs.push_back(operand[c]);
      }
    }
  }
  for (int32_t k = 0; k < static_cast<int32_t>(graph.roots.size()); ++k) {
    const int32_t root = graph.roots[k];
    if (root == 0 || output_of[root] != k) sub.code.push_back({OP_IDENTITY, -1 - k, operand[root], 0});
  }
  sub.n_regs = n_regs;
}

// Output rows numbered -1 - k by emit_forward_code become operand n_regs + 1 + k.
void resolve_outputs(SubProgram& sub) {
  auto resolve = [&](int32_t v) { return v < 0 ? sub.n_regs + 1 + (-1 - v) : v; };
  for (Instr& ins : sub.code) {
    ins.dst = resolve(ins.dst);
    if (op_kind(ins.op) != 3) {
      ins.a = resolve(ins.a);
      ins.b = resolve(ins.b);
    }
  }
  for (int32_t& a : sub.args) a = resolve(a);
}

SubProgram compile_sub(const std::vector<std::vector<Token>>& fns, int64_t first, int32_t count, bool with_grad) {
  const Graph graph = build_graph(fns, first, count);
  SubProgram sub;
  sub.first_fn = first;
  sub.n_fns = count;
  if (with_grad) build_gradient_code(graph.nodes, graph.roots, sub);
  emit_forward_code(graph, sub);
  resolve_outputs(sub);
  return sub;
}

}  // namespace

int64_t Program::n_instructions() const {
  int64_t n = 0;
  for (const auto& s : subs) n += static_cast<int64_t>(s.code.size());
  return n;
}

Program compile_program(const std::vector<std::vector<Token>>& fns, int64_t fns_per_sub, bool with_grad) {
  if (fns.size() >= (size_t(1) << 28)) throw std::invalid_argument("at most 2^28 functions per program");
  Program p;
  p.with_grad = with_grad;
  p.n_fns = static_cast<int64_t>(fns.size());
  if (fns_per_sub <= 0) fns_per_sub = std::max<int64_t>(1, p.n_fns);
  for (int64_t first = 0; first < p.n_fns; first += fns_per_sub) {
    const int32_t count = static_cast<int32_t>(std::min(fns_per_sub, p.n_fns - first));
    p.subs.push_back(compile_sub(fns, first, count, with_grad));
    p.max_regs = std::max(p.max_regs, p.subs.back().n_regs);
    p.max_nodes = std::max(p.max_nodes, p.subs.back().n_nodes);
  }
  return p;
}

}  // namespace aqf
