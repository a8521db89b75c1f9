"""The package's layout: no import cycles among its modules, no module importing the package's own
facade, and every public name importable from its documented place."""
import ast
import importlib
import os
import sys

import pytest

import aquasurf_fast as aq

PACKAGE_DIR = os.path.dirname(aq.__file__)


def _modules():
    """(module name -> path for every .py file of the package, names of its compiled modules)."""
    out, compiled = {}, set()
    for folder, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(PACKAGE_DIR))
            if f.endswith(".py"):
                name = rel[:-3].replace(os.sep, ".")
                out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = os.path.join(folder, f)
            elif f.endswith((".so", ".pyd")):
                compiled.add(rel.split(".")[0].replace(os.sep, "."))
    return out, compiled


def import_graph():
    """module -> the package modules it imports anywhere in its code (function bodies included).

    ``from M import name`` imports the module ``M.name`` when there is one, else reads ``name``
    from ``M`` itself (its ``__init__`` for a package). Importing ``a.b.c`` runs the packages above
    it first, which counts too, except the importer's own packages (already being imported).
    """
    modules, compiled = _modules()
    graph = {}
    for name, path in modules.items():
        is_package = path.endswith("__init__.py")
        package = name.split(".") if is_package else name.split(".")[:-1]
        targets = set()

        def add(target):
            parts = target.split(".")
            for i in range(1, len(parts)):
                above = ".".join(parts[:i])
                if above in modules and not (name == above or name.startswith(above + ".")):
                    targets.add(above)
            if target in modules and target != name:
                targets.add(target)

        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(alias.name)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                for alias in node.names:
                    sub = f"{module}.{alias.name}"
                    add(sub if sub in modules or sub in compiled else module)
        graph[name] = targets
    return graph


def find_cycle(graph):
    """One import cycle as a list of modules, or None."""
    state = {}

    def visit(node, path):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                return path[path.index(nxt):] + [nxt]
            if nxt not in state:
                cycle = visit(nxt, path + [nxt])
                if cycle:
                    return cycle
        state[node] = "done"
        return None

    for start in sorted(graph):
        if start not in state:
            cycle = visit(start, [start])
            if cycle:
                return cycle
    return None


def test_the_import_graph_has_no_cycles():
    graph = import_graph()
    assert len(graph) > 40 and graph["aquasurf_fast.study.study"]
    assert find_cycle(graph) is None, " -> ".join(find_cycle(graph))


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_module_imports_the_package_facade():
    importers = sorted(name for name, targets in import_graph().items() if "aquasurf_fast" in targets)
    assert importers == []


def test_the_graph_sees_an_import_of_the_facade(tmp_path, monkeypatch):
    for folder, text in (("pkg", "from .a import f\n"), ("pkg/a", "def f():\n    import pkg\n"),
                         ("pkg/b", "from . import _C\nfrom .a import f\n")):
        path = tmp_path / (folder + (".py" if "/" in folder else "/__init__.py"))
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    (tmp_path / "pkg" / "_C.so").write_bytes(b"")
    monkeypatch.setattr(sys.modules[__name__], "PACKAGE_DIR", str(tmp_path / "pkg"))
    graph = import_graph()
    assert graph == {"pkg": {"pkg.a"}, "pkg.a": {"pkg"}, "pkg.b": {"pkg.a"}}
    assert find_cycle(graph) == ["pkg", "pkg.a", "pkg"]


# SPEC section 8, and the sampler's documented path.
SPEC_NAMES = ["parse", "Expr", "enumerate_schema", "UNARY_OPS", "BINARY_OPS", "NARY_OPS",
              "BENCHMARK_UNARY_OPS", "evaluate", "evaluate_grad", "probe_inputs", "output_features",
              "equivalence_classes", "Activation", "fisher_spectrum", "FisherSpectrum", "fisher_features",
              "Surrogate", "Study", "cuda_available"]


@pytest.mark.parametrize("name", SPEC_NAMES)
def test_spec_names_import_from_the_package(name):
    assert getattr(aq, name) is not None
    assert name in aq.__all__


@pytest.mark.parametrize("name", sorted(aq.__all__))
def test_every_name_of_all_imports(name):
    namespace = {}
    exec(f"from aquasurf_fast import {name}", namespace)
    assert namespace[name] is getattr(aq, name)


def test_the_optuna_sampler_imports_from_its_documented_place():
    pytest.importorskip("optuna")
    sampler = importlib.import_module("aquasurf_fast.optuna").AquaSurfSampler
    from aquasurf_fast.integrations.optuna import AquaSurfSampler

    assert sampler is AquaSurfSampler


def test_the_command_line_entry_point_imports():
    from aquasurf_fast.cli import main

    assert callable(main)
