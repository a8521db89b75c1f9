// Equivalence classes of a whole schema space, straight from the schema: no names are built.
// Every proper subtree's outputs are materialized once ([its count, n]); the root's rows are
// computed in parallel streaming chunks, fingerprinted and dropped, so memory stays bounded by
// the subtrees and one int64 class id per name.
#pragma once
#include <cstdint>
#include <vector>

#include "common/row_hash.h"
#include "expr/parser.h"

namespace aqf {

struct SchemaChoices {
  std::vector<int32_t> unary, binary, nary;  // operator codes replacing each placeholder kind
};

struct SchemaClasses {
  std::vector<int64_t> class_of;        // [n_names]
  std::vector<int64_t> representative;  // [n_classes]: first name index of each class
  std::vector<uint8_t> finite;          // [n_classes]
  std::vector<RowHash> fingerprint;     // [n_classes]: the fingerprint of the class's outputs
};

// Number of names of a schema (throws when it exceeds 2^62).
int64_t schema_size(const std::vector<Token>& schema, const SchemaChoices& choices);

// probe: [n] float32 inputs. Name indices follow enumerate order: the leftmost placeholder
// varies slowest.
SchemaClasses schema_classes_cpu(const std::vector<Token>& schema, const SchemaChoices& choices,
                                 const float* probe, int64_t n);

}  // namespace aqf
