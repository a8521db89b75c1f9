"""Runtime CPU dispatch: the level chosen at import, AQF_CPU forcing one, the error for a level the
CPU lacks, and the engine's results identical at every level the machine runs."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aquasurf_fast import _C

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import engine_check  # noqa: E402

COMPILED = list(_C.cpu_levels_compiled())
SUPPORTED = list(_C.cpu_levels_supported())
LACKING = [level for level in COMPILED if level not in SUPPORTED]


def run_python(code: str, level=None) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("AQF_CPU", None)
    if level is not None:
        env["AQF_CPU"] = level
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=600)


def test_the_best_supported_level_is_chosen_by_default():
    r = run_python("from aquasurf_fast import _C; print(_C.cpu_level())")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == SUPPORTED[-1]


def test_supported_levels_are_compiled_levels_lowest_first():
    assert SUPPORTED, "this CPU runs none of the compiled levels"
    assert SUPPORTED == [level for level in COMPILED if level in SUPPORTED]


@pytest.mark.parametrize("level", SUPPORTED)
def test_aqf_cpu_forces_a_level(level):
    r = run_python("from aquasurf_fast import _C; print(_C.cpu_level())", level)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == level


def test_a_level_the_cpu_lacks_is_one_clear_error():
    with pytest.raises(ValueError, match=r"AQF_CPU=avx512 asks for instructions this CPU lacks .*AVX-512.*"
                                         r"it supports baseline, avx2"):
        _C._choose_cpu_level("avx512", ["baseline", "avx2", "avx512"], ["baseline", "avx2"])


@pytest.mark.skipif(not LACKING, reason="this CPU runs every compiled level")
def test_importing_with_a_level_the_cpu_lacks_fails_with_that_error():
    r = run_python("import aquasurf_fast", LACKING[-1])
    assert r.returncode != 0
    assert f"AQF_CPU={LACKING[-1]} asks for instructions this CPU lacks" in r.stderr


def test_an_unknown_level_is_refused_at_import():
    r = run_python("import aquasurf_fast", "avx3")
    assert r.returncode != 0
    assert "AQF_CPU=avx3 is not a CPU level of this build; it has " + ", ".join(COMPILED) in r.stderr


def test_no_request_takes_the_highest_supported():
    assert _C._choose_cpu_level("", ["baseline", "avx2", "avx512"], ["baseline", "avx2"]) == "avx2"
    with pytest.raises(ValueError, match="supports none"):
        _C._choose_cpu_level("", ["baseline", "avx2"], [])


@pytest.fixture(scope="module")
def results_by_level(tmp_path_factory):
    out = {}
    for level in SUPPORTED:
        path = tmp_path_factory.mktemp("engine") / f"{level}.npz"
        r = subprocess.run([sys.executable, str(HERE / "engine_check.py"), "run", str(path)],
                           env={**os.environ, "AQF_CPU": level}, capture_output=True, text=True, timeout=600)
        assert r.returncode == 0, r.stderr
        with np.load(path) as f:
            out[level] = {k: f[k] for k in f.files}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("level", SUPPORTED[1:])
def test_results_are_identical_at_every_level(results_by_level, level):
    assert engine_check.differences(results_by_level[SUPPORTED[0]], results_by_level[level]) == []


@pytest.mark.slow
def test_the_engine_check_covers_nan_and_infinities(results_by_level):
    x = engine_check.inputs(np.float32)
    assert np.isnan(x).any() and np.isinf(x).any() and (x == 0).any()
    values = results_by_level[SUPPORTED[0]]["evaluate_float32"]
    assert np.isnan(values).any() and np.isinf(values).any()


def test_canonical_comparison_ignores_only_which_nan():
    a = np.array([np.nan, 1.0, -0.0], dtype=np.float32)
    b = a.copy()
    b[0] = -np.nan
    assert engine_check.differences({"v": a}, {"v": b}) == []
    c = a.copy()
    c[2] = 0.0
    assert engine_check.differences({"v": a}, {"v": c}) == ["v"]
