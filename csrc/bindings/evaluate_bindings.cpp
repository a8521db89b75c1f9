// Bindings of evaluation and output fingerprints.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>

#include <memory>
#include <string>
#include <vector>

#include "bindings/borrowed_array.h"
#include "cpu/evaluate_cpu.h"
#include "cpu/hash_cpu.h"
#include "cpu/thread_pool.h"
#include "expr/parser.h"
#include "ops/evaluate_ops.h"

namespace py = pybind11;

namespace aqf {

namespace {

template <class T>
py::array apply_op_typed(int32_t code, const py::list& args) {
  std::vector<py::array_t<T, py::array::c_style | py::array::forcecast>> arrays;
  std::vector<const T*> ptrs;
  for (py::handle a : args) {
    arrays.push_back(py::array_t<T, py::array::c_style | py::array::forcecast>::ensure(a));
    if (!arrays.back()) throw std::invalid_argument("apply_op arguments must be numeric arrays");
    if (arrays.back().size() != arrays[0].size()) throw std::invalid_argument("apply_op arguments must have equal sizes");
    ptrs.push_back(arrays.back().data());
  }
  py::array_t<T> y(arrays[0].size());
  {
    py::gil_scoped_release release;
    apply_op_cpu<T>(code, ptrs.data(), static_cast<int>(ptrs.size()), y.mutable_data(), y.size());
  }
  return y;
}

py::array apply_op(const std::string& name, const py::list& args) {
  const int32_t code = op_code(name, false);
  if (code < 0) throw std::invalid_argument("unknown operator '" + name + "'");
  const int kind = op_kind(code);
  const bool arity_ok = kind == 3 ? args.size() >= 2 : args.size() == static_cast<size_t>(kind);
  if (!arity_ok) {
    throw std::invalid_argument("'" + name + "' takes " + (kind == 3 ? "2 or more" : std::to_string(kind)) +
                                " arguments, got " + std::to_string(args.size()));
  }
  const bool f32 = py::isinstance<py::array>(args[0]) && py::array(args[0]).dtype().is(py::dtype::of<float>());
  return f32 ? apply_op_typed<float>(code, args) : apply_op_typed<double>(code, args);
}

}  // namespace

void bind_evaluate(py::module_& m) {
  m.def(
      "evaluate",
      [](const Program& program, py::handle x, py::handle values, py::handle grads, py::handle grad_out,
         int64_t stream) {
        BorrowedArray bx(x, "x");
        std::unique_ptr<BorrowedArray> bv, bg, bo;
        if (!values.is_none()) bv = std::make_unique<BorrowedArray>(values, "values");
        if (!grads.is_none()) bg = std::make_unique<BorrowedArray>(grads, "grads");
        if (!grad_out.is_none()) bo = std::make_unique<BorrowedArray>(grad_out, "grad_out");
        py::gil_scoped_release release;
        evaluate(program, bx.view(), bo ? &bo->view() : nullptr, bv ? &bv->view() : nullptr,
                 bg ? &bg->view() : nullptr, stream);
      },
      py::arg("program"), py::arg("x"), py::arg("values") = py::none(), py::arg("grads") = py::none(),
      py::arg("grad_out") = py::none(), py::arg("stream") = 0,
      "Evaluate a Program at x into preallocated values and/or grads ([n_fns, *x.shape]); "
      "grads are grad_out * f'(x) (grad_out = 1 when None).");

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

  m.def("apply_op", &apply_op, py::arg("name"), py::arg("args"),
        "One operator elementwise over equal-length arrays (float32 if the first is, else float64), "
        "values only.");

  m.def("num_threads", &num_threads, "Threads used by the CPU kernels.");
  m.def("set_num_threads", &set_num_threads, py::arg("n"), "Set the number of CPU kernel threads.");
  m.def("set_calling_thread_only", &set_calling_thread_only, py::arg("on"),
        "Whether CPU kernels called from this thread run on it alone; returns the previous setting.");
  m.def("cuda_available", &cuda_available, "Whether CUDA kernels were built and a GPU is usable.");
}

}  // namespace aqf
