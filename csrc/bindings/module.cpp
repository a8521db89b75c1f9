// The extension module aquasurf_fast._C: each binding file registers its part.
#include <pybind11/pybind11.h>

namespace py = pybind11;

namespace aqf {
void bind_expr(py::module_& m);
void bind_evaluate(py::module_& m);
void bind_fisher(py::module_& m);
void bind_select(py::module_& m);
void bind_cpu(py::module_& m);
}  // namespace aqf

PYBIND11_MODULE(_C, m) {
  m.doc() = "aquasurf_fast compiled core (C++ kernels, CUDA twins when built with nvcc)";
#ifdef AQF_WITH_CUDA
  m.attr("built_with_cuda") = true;
#else
  m.attr("built_with_cuda") = false;
#endif
  aqf::bind_cpu(m);  // first: picks the CPU kernels (or refuses AQF_CPU) before anything runs
  aqf::bind_expr(m);
  aqf::bind_evaluate(m);
  aqf::bind_fisher(m);
  aqf::bind_select(m);
}
