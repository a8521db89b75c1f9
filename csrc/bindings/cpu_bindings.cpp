// The CPU instruction level: chosen here, when the module is imported, before any kernel runs.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdlib>
#include <stdexcept>
#include <string>

#include "cpu/dispatch.h"

namespace py = pybind11;

namespace aqf {

void bind_cpu(py::module_& m) {
  const char* requested = std::getenv("AQF_CPU");
  try {
    set_cpu_level(requested ? requested : "");
  } catch (const std::invalid_argument& e) {
    throw py::import_error(std::string("aquasurf_fast: ") + e.what());
  }
  m.def("cpu_level", &cpu_level, "The instruction level the CPU kernels run (chosen at import).");
  m.def("cpu_levels_compiled", &cpu_levels_compiled, "Instruction levels compiled into this build, lowest first.");
  m.def("cpu_levels_supported", &cpu_levels_supported, "Compiled levels this CPU supports, lowest first.");
  m.def("_choose_cpu_level", &choose_cpu_level, py::arg("requested"), py::arg("compiled"), py::arg("supported"),
        "The import-time choice for any CPU (for tests): raises ValueError as importing would.");
#if defined(__VERSION__)
  m.attr("compiler") = __VERSION__;
#endif
}

}  // namespace aqf
