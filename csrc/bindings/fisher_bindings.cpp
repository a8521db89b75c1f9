// Bindings of the Fisher-spectrum ops. Outputs are allocated by the caller's own library (numpy,
// torch or cupy) and filled in place, so results stay on the inputs' device.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "bindings/borrowed_array.h"
#include "ops/fisher_ops.h"

namespace py = pybind11;

namespace aqf {

void bind_fisher(py::module_& m) {
  m.def(
      "pair_cumhist",
      [](py::handle log_a, std::vector<int64_t> sizes_a, py::handle log_g, std::vector<int64_t> sizes_g,
         py::handle edges, py::handle out_cum) {
        BorrowedArray a(log_a, "log_a"), g(log_g, "log_g"), e(edges, "edges"), o(out_cum, "out_cum");
        py::gil_scoped_release release;
        pair_cumhist(a.view(), sizes_a, g.view(), sizes_g, e.view(), o.view());
      },
      py::arg("log_a"), py::arg("sizes_a"), py::arg("log_g"), py::arg("sizes_g"), py::arg("edges"),
      py::arg("out_cum"),
      "Cumulative histogram (int64, written to out_cum) of all within-group pairwise sums of two "
      "sets of log-eigenvalues, without materializing the pairs. Bins follow np.histogram.");
  m.def(
      "conv_cov_assemble",
      [](py::handle S, py::handle cell_sums, py::handle boxes, py::handle pair_offset, bool bias,
         double inv_batch, double n_locations, py::handle out) {
        BorrowedArray s(S, "S"), c(cell_sums, "cell_sums"), b(boxes, "boxes"), p(pair_offset, "pair_offset"),
            o(out, "out");
        py::gil_scoped_release release;
        conv_cov_assemble(s.view(), c.view(), b.view(), p.view(), bias, inv_batch, n_locations, o.view());
      },
      py::arg("S"), py::arg("cell_sums"), py::arg("boxes"), py::arg("pair_offset"), py::arg("bias"),
      py::arg("inv_batch"), py::arg("n_locations"), py::arg("out"),
      "Input factor A of a stride-1 convolution from per-offset, per-cell channel cross products.");
}

}  // namespace aqf
