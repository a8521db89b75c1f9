// Runtime CPU dispatch: which instruction levels this build holds, which this CPU runs, and the
// one the kernels use (chosen once, at import: the best supported, or the one AQF_CPU names).
#pragma once
#include <string>
#include <vector>

namespace aqf {

// Levels compiled into this build, lowest first: "baseline", "avx2", "avx512" for a dispatching
// x86-64 build; one level, "native", for a -march=native build (AQF_NATIVE=1), or "baseline" alone
// on other processors.
std::vector<std::string> cpu_levels_compiled();

// The compiled levels whose instructions this CPU (and its operating system) supports.
std::vector<std::string> cpu_levels_supported();

// The level to use: the highest supported when `requested` is empty, else `requested` itself.
// Throws std::invalid_argument, saying what is possible, for a name that is not a compiled level
// or a level the CPU lacks. Pure: the lists are arguments, so tests can give any CPU.
std::string choose_cpu_level(const std::string& requested, const std::vector<std::string>& compiled,
                             const std::vector<std::string>& supported);

// Makes `level` (a supported compiled level) the one every CPU kernel uses from now on. Called at
// import, before any kernel runs.
void set_cpu_level(const std::string& level);

// The level in use (the best supported one until set_cpu_level is called).
std::string cpu_level();

}  // namespace aqf
