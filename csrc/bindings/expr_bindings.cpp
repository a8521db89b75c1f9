// Bindings of the expression language: operator table, parser, batch compiler, schema spaces.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "common/ops.h"
#include "cpu/schema_cpu.h"
#include "cpu/thread_pool.h"
#include "expr/parser.h"
#include "expr/program.h"

namespace py = pybind11;

namespace aqf {
namespace {

std::vector<std::vector<Token>> parse_all(const std::vector<std::string>& names, bool allow_placeholders) {
  std::vector<std::vector<Token>> out(names.size());
  for (size_t i = 0; i < names.size(); ++i) {
    try {
      out[i] = parse_postfix(names[i], allow_placeholders);
    } catch (const ParseError& e) {
      if (names.size() == 1) throw;
      throw ParseError(e, "name #" + std::to_string(i) + ": ");
    }
  }
  return out;
}

std::vector<int32_t> codes_of(const std::vector<std::string>& names, int kind, const char* what) {
  std::vector<int32_t> codes;
  for (const auto& name : names) {
    const int32_t c = op_code(name, false);
    if (c < 0 || op_kind(c) != kind) {
      throw std::invalid_argument(std::string("'") + name + "' is not a " + what + " operator");
    }
    codes.push_back(c);
  }
  return codes;
}

SchemaChoices choices_of(const std::vector<std::string>& unary, const std::vector<std::string>& binary,
                         const std::vector<std::string>& nary) {
  return {codes_of(unary, 1, "unary"), codes_of(binary, 2, "binary"), codes_of(nary, 3, "n-ary")};
}

}  // namespace

void bind_expr(py::module_& m) {
  static py::exception<ParseError> parse_error(m, "ParseError", PyExc_ValueError);
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const ParseError& e) {
      py::set_error(parse_error, e.what());
    }
  });

  std::vector<std::string> names;
  std::vector<int> kinds;
  for (int32_t c = 0; c < OP_COUNT; ++c) {
    names.emplace_back(op_name(c));
    kinds.push_back(op_kind(c));
  }
  m.attr("OP_NAMES") = py::tuple(py::cast(names));
  m.attr("OP_KINDS") = py::tuple(py::cast(kinds));
  m.attr("MAX_EXPR_LENGTH") = kMaxExprLength;
  m.attr("MAX_EXPR_DEPTH") = kMaxExprDepth;

  m.def(
      "parse_postfix",
      [](const std::string& text, bool allow_placeholders) {
        std::vector<Token> tokens = parse_postfix(text, allow_placeholders);
        py::list out;
        for (const Token& t : tokens) out.append(py::make_tuple(op_name(t.code), t.n_args));
        return out;
      },
      py::arg("text"), py::arg("allow_placeholders") = false,
      "Parse an expression into postfix (name, n_args) pairs; raises ParseError.");

  py::class_<Program>(m, "Program", "Compiled batch of expressions (shared subexpressions computed once).")
      .def_property_readonly("n_fns", [](const Program& p) { return p.n_fns; })
      .def_property_readonly("n_instructions", &Program::n_instructions)
      .def_property_readonly("n_subprograms", [](const Program& p) { return p.subs.size(); })
      .def_property_readonly("max_registers", [](const Program& p) { return p.max_regs; })
      .def_property_readonly("with_grad", [](const Program& p) { return p.with_grad; });

  m.def(
      "compile",
      [](const std::vector<std::string>& fns, bool with_grad, int64_t fns_per_sub) {
        py::gil_scoped_release release;
        // By default one sub-program per CPU thread: fewer would idle threads when inputs are
        // few, more would recompute the shared subexpressions once per extra sub-program.
        const int64_t n = static_cast<int64_t>(fns.size());
        if (fns_per_sub <= 0) fns_per_sub = (n + num_threads() - 1) / num_threads();
        return compile_program(parse_all(fns, false), fns_per_sub, with_grad);
      },
      py::arg("fns"), py::arg("with_grad") = false, py::arg("fns_per_sub") = 0,
      "Compile names into one Program (with_grad: also for gradients); raises ParseError.");

  m.def(
      "schema_size",
      [](const std::string& schema, const std::vector<std::string>& unary, const std::vector<std::string>& binary,
         const std::vector<std::string>& nary) {
        return schema_size(parse_postfix(schema, true), choices_of(unary, binary, nary));
      },
      py::arg("schema"), py::arg("unary"), py::arg("binary"), py::arg("nary"));

  m.def(
      "schema_classes",
      [](const std::string& schema, const std::vector<std::string>& unary, const std::vector<std::string>& binary,
         const std::vector<std::string>& nary, py::array_t<float, py::array::c_style | py::array::forcecast> probe) {
        const std::vector<Token> tokens = parse_postfix(schema, true);
        const SchemaChoices choices = choices_of(unary, binary, nary);
        SchemaClasses result;
        {
          py::gil_scoped_release release;
          result = schema_classes_cpu(tokens, choices, probe.data(), probe.size());
        }
        py::array_t<int64_t> class_of(result.class_of.size(), result.class_of.data());
        py::array_t<int64_t> rep(result.representative.size(), result.representative.data());
        py::array_t<bool> finite(result.finite.size());
        std::copy(result.finite.begin(), result.finite.end(), finite.mutable_data());
        static_assert(sizeof(RowHash) == 2 * sizeof(uint64_t), "RowHash is two words");
        py::array_t<uint64_t> fingerprint({static_cast<py::ssize_t>(result.fingerprint.size()), py::ssize_t(2)});
        std::copy(result.fingerprint.begin(), result.fingerprint.end(),
                  reinterpret_cast<RowHash*>(fingerprint.mutable_data()));
        return py::make_tuple(class_of, rep, finite, fingerprint);
      },
      py::arg("schema"), py::arg("unary"), py::arg("binary"), py::arg("nary"), py::arg("probe"),
      "Classes of a schema space straight from the schema: (class_of [n_names], representative "
      "[n_classes], finite [n_classes], fingerprint [n_classes, 2] as hash_rows gives it).");
}

}  // namespace aqf
