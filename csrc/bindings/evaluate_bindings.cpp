// Bindings of evaluation and output fingerprints.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>

#include "bindings/borrowed_array.h"
#include "cpu/hash_cpu.h"
#include "cpu/thread_pool.h"
#include "ops/evaluate_ops.h"

namespace py = pybind11;

namespace aqf {

void bind_evaluate(py::module_& m) {
  m.def(
      "evaluate",
      [](const Program& program, py::handle x, py::handle values, py::handle tangents, py::handle seed,
         int64_t stream) {
        BorrowedArray bx(x, "x");
        std::unique_ptr<BorrowedArray> bv, bt, bs;
        if (!values.is_none()) bv = std::make_unique<BorrowedArray>(values, "values");
        if (!tangents.is_none()) bt = std::make_unique<BorrowedArray>(tangents, "tangents");
        if (!seed.is_none()) bs = std::make_unique<BorrowedArray>(seed, "seed");
        py::gil_scoped_release release;
        evaluate(program, bx.view(), bs ? &bs->view() : nullptr, bv ? &bv->view() : nullptr,
                 bt ? &bt->view() : nullptr, stream);
      },
      py::arg("program"), py::arg("x"), py::arg("values") = py::none(), py::arg("tangents") = py::none(),
      py::arg("seed") = py::none(), py::arg("stream") = 0,
      "Evaluate a Program at x into preallocated values and/or tangents ([n_fns, *x.shape]); "
      "tangents are seed * f'(x) (seed = 1 when None).");

  m.def(
      "hash_rows",
      [](py::array_t<float, py::array::c_style | py::array::forcecast> rows) {
        if (rows.ndim() != 2) throw std::invalid_argument("hash_rows expects a 2-D float32 array [n_rows, n]");
        const int64_t n_rows = rows.shape(0), n = rows.shape(1);
        py::array_t<uint64_t> hashes({n_rows, int64_t(2)});
        py::array_t<bool> finite(n_rows);
        static_assert(sizeof(RowHash) == 2 * sizeof(uint64_t), "RowHash is two words");
        {
          py::gil_scoped_release release;
          hash_rows_cpu(rows.data(), n_rows, n, reinterpret_cast<RowHash*>(hashes.mutable_data()),
                        reinterpret_cast<uint8_t*>(finite.mutable_data()));
        }
        return py::make_tuple(hashes, finite);
      },
      py::arg("rows"), "128-bit fingerprints of float32 rows (NaNs canonical) and whether each row is finite.");

  py::class_<ClassIndex>(m, "ClassIndex", "Class ids by fingerprint, in order of first appearance, across calls.")
      .def(py::init<>())
      .def("assign",
           [](ClassIndex& index, py::array_t<uint64_t, py::array::c_style | py::array::forcecast> hashes) {
             if (hashes.ndim() != 2 || hashes.shape(1) != 2) throw std::invalid_argument("hashes must be [n, 2] uint64");
             py::array_t<int64_t> ids(hashes.shape(0));
             index.assign(reinterpret_cast<const RowHash*>(hashes.data()), hashes.shape(0), ids.mutable_data());
             return ids;
           })
      .def_property_readonly("n_classes", &ClassIndex::n_classes);

  m.def("num_threads", &num_threads, "Threads used by the CPU kernels.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Set the number of CPU kernel threads.");
  m.def("cuda_available", &cuda_available, "Whether CUDA kernels were built and a GPU is usable.");
}

}  // namespace aqf
