#include "cpu/schema_cpu.h"
#include "cpu/kernels.h"

#include <algorithm>
#include <memory>
#include <stdexcept>
#include <string>

#include "common/ops.h"
#include "cpu/evaluate_cpu.h"
#include "cpu/hash_cpu.h"
#include "cpu/thread_pool.h"

namespace aqf {
namespace AQF_CPU_KERNELS_NS {  // compiled once per CPU level: cpu/kernels.h
namespace {

constexpr int64_t kMaxMaterializedBytes = int64_t(2) << 30;
constexpr int64_t kRootChunk = int64_t(1) << 16;  // names fingerprinted per streaming step

struct SchemaNode {
  std::vector<int32_t> options;  // operator codes; empty for x
  std::vector<std::unique_ptr<SchemaNode>> children;
  int64_t count = 1;             // names of this subtree
};

const std::vector<int32_t>& options_for(int32_t code, const SchemaChoices& choices, std::vector<int32_t>& single) {
  if (code == PH_UNARY) return choices.unary;
  if (code == PH_BINARY) return choices.binary;
  if (code == PH_NARY) return choices.nary;
  single.assign(1, code);
  return single;
}

std::unique_ptr<SchemaNode> build_tree(const std::vector<Token>& schema, const SchemaChoices& choices) {
  std::vector<std::unique_ptr<SchemaNode>> stack;
  constexpr int64_t kLimit = int64_t(1) << 62;
  for (const Token& t : schema) {
    auto node = std::make_unique<SchemaNode>();
    if (t.code != kInputX) {
      std::vector<int32_t> single;
      node->options = options_for(t.code, choices, single);
      if (node->options.empty()) {
        throw std::invalid_argument(std::string("no operators given for placeholder '") + op_name(t.code) + "'");
      }
      node->count = static_cast<int64_t>(node->options.size());
      for (auto it = stack.end() - t.n_args; it != stack.end(); ++it) {
        if (node->count > kLimit / (*it)->count) throw std::invalid_argument("schema space has more than 2^62 names");
        node->count *= (*it)->count;
        node->children.push_back(std::move(*it));
      }
      stack.resize(stack.size() - t.n_args);
    }
    stack.push_back(std::move(node));
  }
  return std::move(stack.back());
}

// Computes row `index` of `node` into y, given its children's materialized rows.
void compute_row(const SchemaNode& node, const std::vector<std::vector<float>>& child_rows, int64_t index,
                 int64_t n, std::vector<const float*>& args, float* y) {
  const size_t k = node.children.size();
  args.resize(k);
  for (size_t c = k; c-- > 0;) {  // the last child varies fastest
    const int64_t cc = node.children[c]->count;
    args[c] = child_rows[c].data() + (index % cc) * n;
    index /= cc;
  }
  apply_op_cpu<float>(node.options[index], args.data(), static_cast<int>(k), y, n);
}

std::vector<float> materialize(const SchemaNode& node, const float* probe, int64_t n) {
  if (node.options.empty()) return std::vector<float>(probe, probe + n);
  if (node.count > kMaxMaterializedBytes / int64_t(sizeof(float)) / std::max<int64_t>(n, 1)) {
    throw std::invalid_argument("a subtree of the schema has " + std::to_string(node.count) +
                                " names, too many to hold in memory; put the larger part at the root");
  }
  std::vector<std::vector<float>> child_rows;
  for (const auto& c : node.children) child_rows.push_back(materialize(*c, probe, n));
  std::vector<float> rows(node.count * n);
  const int64_t chunk = 256;
  parallel_for((node.count + chunk - 1) / chunk, [&](int64_t c, int) {
    std::vector<const float*> args;
    for (int64_t r = c * chunk; r < std::min(node.count, (c + 1) * chunk); ++r) {
      compute_row(node, child_rows, r, n, args, rows.data() + r * n);
    }
  });
  return rows;
}

}  // namespace

int64_t schema_size(const std::vector<Token>& schema, const SchemaChoices& choices) {
  return build_tree(schema, choices)->count;
}

SchemaClasses schema_classes_cpu(const std::vector<Token>& schema, const SchemaChoices& choices, const float* probe,
                                 int64_t n) {
  const std::unique_ptr<SchemaNode> root = build_tree(schema, choices);
  SchemaClasses out;
  out.class_of.resize(root->count);
  std::vector<std::vector<float>> child_rows;
  for (const auto& c : root->children) child_rows.push_back(materialize(*c, probe, n));

  ClassIndex index;
  std::vector<RowHash> hashes(std::min(root->count, kRootChunk));
  std::vector<uint8_t> finite(hashes.size());
  std::vector<std::vector<float>> row_buffers(num_threads(), std::vector<float>(n));
  for (int64_t first = 0; first < root->count; first += kRootChunk) {
    const int64_t count = std::min(kRootChunk, root->count - first);
    const int64_t sub = 64;
    parallel_for((count + sub - 1) / sub, [&](int64_t c, int thread) {
      std::vector<const float*> args;
      float* row = row_buffers[thread].data();
      for (int64_t r = c * sub; r < std::min(count, (c + 1) * sub); ++r) {
        if (root->options.empty()) {
          std::copy(probe, probe + n, row);
        } else {
          compute_row(*root, child_rows, first + r, n, args, row);
        }
        bool fin;
        hashes[r] = hash_row(row, n, &fin);
        finite[r] = fin;
      }
    });
    const int64_t before = index.n_classes();
    index.assign(hashes.data(), count, out.class_of.data() + first);
    for (int64_t r = 0; r < count; ++r) {
      if (out.class_of[first + r] >= before && out.class_of[first + r] == static_cast<int64_t>(out.representative.size())) {
        out.representative.push_back(first + r);
        out.finite.push_back(finite[r]);
        out.fingerprint.push_back(hashes[r]);
      }
    }
  }
  return out;
}

}  // namespace AQF_CPU_KERNELS_NS
}  // namespace aqf
