"""build_info(), `aquasurf info`, and the installed distribution's metadata against what the
package declares (pyproject.toml and setup.py)."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import aquasurf_fast as aq
from aquasurf_fast import _C

ROOT = Path(__file__).resolve().parents[1]


def test_build_info_fields():
    info = aq.build_info()
    assert info["version"] == aq.__version__
    assert info["cpu_level"] == _C.cpu_level()
    assert info["cpu_level"] in info["cpu_levels_available"]
    assert set(info["cpu_levels_available"]) <= set(info["cpu_levels_compiled"])
    assert info["cuda_compiled"] is bool(_C.built_with_cuda)
    assert info["cuda_usable"] is aq.cuda_available()
    assert info["threads"] == aq.num_threads() >= 1
    assert info["torch"].split("+")[0] == torch.__version__.split("+")[0]
    assert info["numpy"] == np.__version__


def test_build_info_is_public():
    assert "build_info" in aq.__all__


def test_aquasurf_info_prints_the_level_and_versions():
    r = subprocess.run([sys.executable, "-m", "aquasurf_fast.cli", "info"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert f"aquasurf_fast {aq.__version__}" in r.stdout
    assert f"CPU kernels:    {_C.cpu_level()} " in r.stdout
    assert "CUDA:" in r.stdout and f"torch:          {torch.__version__}" in r.stdout


def _declared():
    """name, version, requirements and extras as pyproject.toml declares them."""
    tomllib = pytest.importorskip("tomllib") if sys.version_info >= (3, 11) else pytest.importorskip("tomli")
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    return project


def _installed_metadata(cwd) -> dict:
    """The installed distribution's metadata, read by a process started away from the source tree
    (whose build leftovers, such as an egg-info folder, would otherwise be found first)."""
    code = ("import importlib.metadata as m, json; d = m.distribution('aquasurf_fast'); "
            "print(json.dumps({'name': d.metadata['Name'], 'version': d.version, "
            "'requires_python': d.metadata['Requires-Python'], 'requires': d.requires or [], "
            "'extras': d.metadata.get_all('Provides-Extra') or []}))")
    r = subprocess.run([sys.executable, "-I", "-c", code], cwd=cwd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def _normal(requirement: str) -> str:
    from packaging.requirements import Requirement

    r = Requirement(requirement)
    r.marker = None
    return str(r).replace(" ", "")


@pytest.mark.skipif(not (ROOT / "pyproject.toml").is_file(), reason="no source tree beside the tests")
def test_installed_metadata_equals_the_declared_metadata(tmp_path):
    pytest.importorskip("packaging")
    project = _declared()
    meta = _installed_metadata(tmp_path)
    assert meta["name"].replace("-", "_") == project["name"].replace("-", "_")
    assert meta["version"] == aq.__version__
    assert meta["requires_python"] == project["requires-python"]
    installed = meta["requires"]
    base = sorted(_normal(r) for r in installed if "extra ==" not in r)
    assert base == sorted(_normal(r) for r in project["dependencies"])
    assert sorted(meta["extras"]) == sorted(project["optional-dependencies"])
    for extra, requirements in project["optional-dependencies"].items():
        got = sorted(_normal(r) for r in installed if f'extra == "{extra}"' in r)
        assert got == sorted(_normal(r) for r in requirements), extra


@pytest.mark.skipif(not (ROOT / "setup.py").is_file(), reason="no source tree beside the tests")
def test_setup_py_declares_no_metadata_of_its_own():
    text = (ROOT / "setup.py").read_text(encoding="utf-8")
    for field in ("name=", "version=", "install_requires", "extras_require", "python_requires", "description="):
        assert field not in text, f"setup.py repeats {field}: the metadata lives in pyproject.toml"
