// Bindings of the selection kernels (CPU only: one pass over a few million low-dimensional points
// per choice is memory-bound, and the choice happens once per pool).
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include "cpu/select_cpu.h"

namespace py = pybind11;

namespace aqf {

void bind_select(py::module_& m) {
  m.def(
      "farthest_points",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> points,
         py::array_t<int64_t, py::array::c_style | py::array::forcecast> seeds, int64_t first, int64_t n_select) {
        if (points.ndim() != 2)
          throw std::invalid_argument("farthest_points expects points as a 2-D float32 array [d, n], got " +
                                      std::to_string(points.ndim()) + " dimensions");
        if (seeds.ndim() != 1) throw std::invalid_argument("seeds must be a 1-D array of point indices");
        if (n_select < 0) throw std::invalid_argument("n_select must be >= 0");
        const int64_t d = points.shape(0), n = points.shape(1);
        py::array_t<int64_t> out(std::min(n_select, n));
        int64_t chosen;
        {
          py::gil_scoped_release release;
          chosen = farthest_points_cpu(points.data(), n, d, seeds.data(), seeds.size(), first,
                                       std::min(n_select, n), out.mutable_data());
        }
        return py::array_t<int64_t>(chosen, out.data());
      },
      py::arg("points"), py::arg("seeds"), py::arg("first"), py::arg("n_select"),
      "Greedy farthest-point selection: up to n_select indices of points ([d, n], dimension-major), "
      "each farthest (squared euclidean) from the seeds and the points chosen before it. Without "
      "seeds the first choice is `first`. Ties go to the lowest index.");
}

}  // namespace aqf
