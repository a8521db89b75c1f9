"""The package's layout: no import cycles among its modules, no module importing the package's own
facade, and every public name importable from its documented place."""
import ast
import importlib
import os

import pytest

import aquasurf_fast as aq

PACKAGE_DIR = os.path.dirname(aq.__file__)


def _modules():
    """module name -> path, for every .py file of the package."""
    out = {}
    for folder, dirs, files in os.walk(PACKAGE_DIR):
        dirs[:] = [d for d in dirs if d != "__pycache__"]
        for f in files:
            if f.endswith(".py"):
                rel = os.path.relpath(os.path.join(folder, f), os.path.dirname(PACKAGE_DIR))
                name = rel[:-3].replace(os.sep, ".")
                out[name[:-len(".__init__")] if name.endswith(".__init__") else name] = os.path.join(folder, f)
    return out


def import_graph():
    """module -> the package modules it imports anywhere in its code (function bodies included).

    Importing ``a.b.c`` runs ``a/b/__init__.py`` first, so an import of a module also counts as an
    import of the packages above it, except the importer's own packages (already being imported).
    """
    modules = _modules()
    graph = {}
    for name, path in modules.items():
        is_package = path.endswith("__init__.py")
        package = name.split(".") if is_package else name.split(".")[:-1]
        targets = set()
        for node in ast.walk(ast.parse(open(path, encoding="utf-8").read())):
            found = []
            if isinstance(node, ast.Import):
                found = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[:len(package) - node.level + 1]
                    module = ".".join(base + ([node.module] if node.module else []))
                else:
                    module = node.module or ""
                found = [module] + [f"{module}.{a.name}" for a in node.names]
            for target in found:
                parts = target.split(".")
                for i in range(1, len(parts) + 1):
                    candidate = ".".join(parts[:i])
                    own = name == candidate or name.startswith(candidate + ".")
                    if candidate in modules and not own:
                        targets.add(candidate)
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
