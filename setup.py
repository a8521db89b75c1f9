"""Build aquasurf_fast: setuptools drives CMake to build the single extension ``aquasurf_fast._C``.

Environment:
  AQF_CUDA=auto|0|1   compile the CUDA kernels when nvcc is found (auto, the default), never (0),
                      or always, failing when nvcc is missing (1).
  AQF_NATIVE=0|1      compile the CPU kernels for three x86-64 levels (baseline x86-64-v2, AVX2,
                      AVX-512) and pick the best at import (0, the default: portable), or only for
                      this machine's CPU (1: -march=native; runs on this kind of CPU only).
  CMAKE_ARGS          extra arguments passed to CMake as they are.
  AQF_BUILD_JOBS      parallel compile jobs (default: number of CPUs).
"""
import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

ROOT = Path(__file__).resolve().parent


class CMakeExtension(Extension):
    def __init__(self, name: str) -> None:
        super().__init__(name, sources=[])


def _cuda_setting() -> str:
    value = os.environ.get("AQF_CUDA", "auto").strip().lower()
    if value not in ("auto", "0", "1"):
        raise SystemExit(f"AQF_CUDA must be auto, 0 or 1 (got {value!r})")
    return {"auto": "AUTO", "0": "OFF", "1": "ON"}[value]


def _configuration(cmake_args: list) -> str:
    """Everything a CMake build tree depends on beyond the sources.

    pip builds in an isolated environment whose cmake, ninja and pybind11 live in a temporary
    folder deleted after the build, and CMake's cache remembers their paths: a build tree left by
    another environment, compiler or setting must be started afresh, never trusted.
    """
    try:
        import pybind11

        pybind11_dir = pybind11.get_cmake_dir()
    except ImportError:
        pybind11_dir = None
    tools = {name: shutil.which(name) for name in ("cmake", "ninja", "nvcc", "c++", "cc")}
    compilers = {name: os.environ.get(name) for name in ("CC", "CXX", "CUDACXX", "CUDAHOSTCXX", "CUDAARCHS")}
    return json.dumps({"python": sys.executable, "version": sys.version, "pybind11": pybind11_dir,
                       "tools": tools, "compilers": compilers, "cmake_args": cmake_args},
                      indent=1, sort_keys=True)


def _fresh_build_tree(build_dir: Path, configuration: str) -> None:
    """Keep ``build_dir`` only when it was configured exactly as now (see ``_configuration``)."""
    stamp = build_dir / "aqf-configuration.json"
    if build_dir.exists():
        same = stamp.is_file() and stamp.read_text(encoding="utf-8") == configuration
        if same:
            return
        print(f"aquasurf_fast: {build_dir} was configured by another environment, compiler or "
              "setting; building afresh", flush=True)
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)


class CMakeBuild(build_ext):
    def build_extension(self, ext: CMakeExtension) -> None:
        out_dir = Path(self.get_ext_fullpath(ext.name)).parent.resolve()
        build_type = "Debug" if self.debug else "Release"
        cmake_args = [
            f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={out_dir}{os.sep}",
            f"-DPython_EXECUTABLE={sys.executable}",
            f"-DCMAKE_BUILD_TYPE={build_type}",
            f"-DAQF_CUDA={_cuda_setting()}",
            f"-DAQF_NATIVE={'ON' if os.environ.get('AQF_NATIVE', '0') == '1' else 'OFF'}",
            "-G", "Ninja",
        ]
        cmake_args += shlex.split(os.environ.get("CMAKE_ARGS", ""))
        jobs = os.environ.get("AQF_BUILD_JOBS", str(os.cpu_count() or 1))
        build_dir = Path(self.build_temp) / ext.name
        configuration = _configuration(cmake_args)
        _fresh_build_tree(build_dir, configuration)
        subprocess.run(["cmake", str(ROOT), *cmake_args], cwd=build_dir, check=True)
        # Written once configuring succeeded: a half-configured tree is started afresh next time.
        (build_dir / "aqf-configuration.json").write_text(configuration, encoding="utf-8")
        subprocess.run(["cmake", "--build", ".", "--parallel", jobs], cwd=build_dir, check=True)


# The metadata (name, version, requirements, extras, entry points) is declared in pyproject.toml;
# setup.py only drives CMake to build the extension.
setup(
    ext_modules=[CMakeExtension("aquasurf_fast._C")],
    cmdclass={"build_ext": CMakeBuild},
)
