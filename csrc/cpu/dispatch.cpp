#include "cpu/dispatch.h"

#include <algorithm>
#include <atomic>
#include <stdexcept>
#include <type_traits>

#include "cpu/evaluate_cpu.h"
#include "cpu/fisher_cpu.h"
#include "cpu/hash_cpu.h"
#include "cpu/kernels.h"
#include "cpu/schema_cpu.h"
#include "cpu/select_cpu.h"

#define AQF_STR_(x) #x
#define AQF_STR(x) AQF_STR_(x)

namespace aqf {

#if AQF_CPU_DISPATCH
namespace kernels_avx2 { const CpuKernels& kernel_table(); }
namespace kernels_avx512 { const CpuKernels& kernel_table(); }
#endif

namespace {

struct Level {
  const char* name;
  const CpuKernels& (*table)();
  bool (*supported)();
  const char* needs;  // what the CPU must have, for messages
};

#if AQF_CPU_DISPATCH
// __builtin_cpu_supports reads CPUID and, for AVX and AVX-512, whether the operating system saves
// the wider registers (XGETBV).
bool has_v2() { return __builtin_cpu_supports("x86-64-v2"); }
bool has_v3() { return __builtin_cpu_supports("x86-64-v3"); }
bool has_v4() { return __builtin_cpu_supports("x86-64-v4"); }
const Level kLevels[] = {
    {"baseline", &kernels_baseline::kernel_table, &has_v2, "x86-64-v2: SSE4.2, POPCNT"},
    {"avx2", &kernels_avx2::kernel_table, &has_v3, "x86-64-v3: AVX2, FMA, BMI2"},
    {"avx512", &kernels_avx512::kernel_table, &has_v4, "x86-64-v4: AVX-512 F, BW, CD, DQ, VL"},
};
#else
bool always() { return true; }  // one level: the build machine's own (native) or portable code
const Level kLevels[] = {{AQF_STR(AQF_CPU_LEVEL), &AQF_CPU_KERNELS_NS::kernel_table, &always, ""}};
#endif

const Level* find_level(const std::string& name) {
  for (const Level& level : kLevels) {
    if (name == level.name) return &level;
  }
  return nullptr;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s.empty() ? "none" : s;
}

std::atomic<const Level*> g_level{nullptr};

const Level& active_level() {
  const Level* level = g_level.load(std::memory_order_acquire);
  if (!level) {
    level = find_level(choose_cpu_level("", cpu_levels_compiled(), cpu_levels_supported()));
    g_level.store(level, std::memory_order_release);
  }
  return *level;
}

const CpuKernels& active() { return active_level().table(); }

}  // namespace

std::vector<std::string> cpu_levels_compiled() {
  std::vector<std::string> names;
  for (const Level& level : kLevels) names.emplace_back(level.name);
  return names;
}

std::vector<std::string> cpu_levels_supported() {
  __builtin_cpu_init();
  std::vector<std::string> names;
  for (const Level& level : kLevels) {
    if (level.supported()) names.emplace_back(level.name);
  }
  return names;
}

std::string choose_cpu_level(const std::string& requested, const std::vector<std::string>& compiled,
                             const std::vector<std::string>& supported) {
  auto has = [](const std::vector<std::string>& names, const std::string& n) {
    return std::find(names.begin(), names.end(), n) != names.end();
  };
  if (requested.empty()) {
    for (auto it = compiled.rbegin(); it != compiled.rend(); ++it) {
      if (has(supported, *it)) return *it;
    }
    throw std::invalid_argument("this CPU supports none of the instruction levels aquasurf_fast was built for (" +
                                joined(compiled) + "); the lowest needs x86-64-v2 (SSE4.2, POPCNT)");
  }
  if (!has(compiled, requested)) {
    throw std::invalid_argument("AQF_CPU=" + requested + " is not a CPU level of this build; it has " +
                                joined(compiled) + " (unset AQF_CPU to take the best this CPU supports)");
  }
  if (!has(supported, requested)) {
    const Level* level = find_level(requested);
    throw std::invalid_argument("AQF_CPU=" + requested + " asks for instructions this CPU lacks" +
                                (level ? std::string(" (") + level->needs + ")" : std::string()) +
                                "; it supports " + joined(supported) +
                                " (unset AQF_CPU to take the best of them)");
  }
  return requested;
}

void set_cpu_level(const std::string& name) {
  const std::string chosen = choose_cpu_level(name, cpu_levels_compiled(), cpu_levels_supported());
  g_level.store(find_level(chosen), std::memory_order_release);
}

std::string cpu_level() { return active_level().name; }

// ---- the public kernels of cpu/*.h: through the chosen level's table -------------------------
template <class T>
void evaluate_cpu(const Program& program, const T* x, int64_t n, const T* grad_out, T* values, T* grads) {
  if constexpr (std::is_same_v<T, float>) {
    active().evaluate_f32(program, x, n, grad_out, values, grads);
  } else {
    active().evaluate_f64(program, x, n, grad_out, values, grads);
  }
}
template <class T>
void apply_op_cpu(int32_t op, const T* const* args, int n_args, T* y, int64_t n) {
  if constexpr (std::is_same_v<T, float>) {
    active().apply_op_f32(op, args, n_args, y, n);
  } else {
    active().apply_op_f64(op, args, n_args, y, n);
  }
}
template void evaluate_cpu<float>(const Program&, const float*, int64_t, const float*, float*, float*);
template void evaluate_cpu<double>(const Program&, const double*, int64_t, const double*, double*, double*);
template void apply_op_cpu<float>(int32_t, const float* const*, int, float*, int64_t);
template void apply_op_cpu<double>(int32_t, const double* const*, int, double*, int64_t);

RowHash hash_row(const float* row, int64_t n, bool* finite) { return active().hash_row(row, n, finite); }

void hash_rows_cpu(const float* rows, int64_t n_rows, int64_t n, RowHash* hashes, uint8_t* finite) {
  active().hash_rows(rows, n_rows, n, hashes, finite);
}

int64_t schema_size(const std::vector<Token>& schema, const SchemaChoices& choices) {
  return active().schema_size(schema, choices);
}

SchemaClasses schema_classes_cpu(const std::vector<Token>& schema, const SchemaChoices& choices, const float* probe,
                                 int64_t n) {
  return active().schema_classes(schema, choices, probe, n);
}

int64_t farthest_points_cpu(const float* points, int64_t n, int64_t d, const int64_t* seeds, int64_t n_seeds,
                            int64_t first, int64_t n_select, int64_t* out) {
  return active().farthest_points(points, n, d, seeds, n_seeds, first, n_select, out);
}

void pair_cumhist_cpu(const double* log_a, const std::vector<int64_t>& sizes_a, const double* log_g,
                      const std::vector<int64_t>& sizes_g, const double* edges, int64_t n_edges, int64_t* out_cum) {
  active().pair_cumhist(log_a, sizes_a, log_g, sizes_g, edges, n_edges, out_cum);
}

void conv_cov_assemble_cpu(const float* S, const float* cell_sums, const int64_t* boxes, const int64_t* pair_offset,
                           const ConvCovShape& shape, float* out) {
  active().conv_cov_assemble(S, cell_sums, boxes, pair_offset, shape, out);
}

}  // namespace aqf
