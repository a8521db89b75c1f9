"""What this installation of aquasurf_fast was built with and what it runs on: the version, the CPU
instruction level its kernels use (chosen at import from CPUID, or forced by ``AQF_CPU``), whether
CUDA was compiled in and can run, the kernel threads, and the versions of torch and numpy."""
from __future__ import annotations

import importlib.metadata
import platform
from typing import Dict, List, Optional

from . import _C
from ._version import __version__

# What each level of a dispatching build is compiled for (CMakeLists.txt).
CPU_LEVEL_TARGETS = {
    "baseline": "x86-64-v2 (SSE4.2, POPCNT)",
    "avx2": "x86-64-v3 (AVX2, FMA)",
    "avx512": "x86-64-v4 (AVX-512)",
    "native": "the building machine's CPU (-march=native, AQF_NATIVE=1)",
}


def _version_of(distribution: str) -> Optional[str]:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def build_info() -> Dict[str, object]:
    """A dict describing this build and machine (the fields ``aquasurf info`` prints).

    Keys: ``version``; ``cpu_level`` (the level the CPU kernels run), ``cpu_levels_compiled``,
    ``cpu_levels_available`` (compiled levels this CPU supports, lowest first); ``cuda_compiled``,
    ``cuda_usable`` (a GPU the kernels can run on is present); ``threads``; ``torch`` and ``numpy``
    (their versions, None when not installed); ``python``, ``machine`` and ``compiler``.
    Asking about CUDA loads the CUDA runtime (never at import), so this is a function.
    """
    import numpy

    compiled = bool(_C.built_with_cuda)
    return {
        "version": __version__,
        "cpu_level": _C.cpu_level(),
        "cpu_levels_compiled": list(_C.cpu_levels_compiled()),
        "cpu_levels_available": list(_C.cpu_levels_supported()),
        "cuda_compiled": compiled,
        "cuda_usable": compiled and bool(_C.cuda_available()),
        "threads": int(_C.num_threads()),
        "torch": _version_of("torch"),
        "numpy": numpy.__version__,
        "python": platform.python_version(),
        "machine": platform.machine(),
        "compiler": getattr(_C, "compiler", None),
    }


def format_build_info(info: Dict[str, object]) -> List[str]:
    """The lines ``aquasurf info`` prints for ``build_info()``."""
    def levels(names) -> str:
        return ", ".join(names) if names else "none"

    level = str(info["cpu_level"])
    return [
        f"aquasurf_fast {info['version']}",
        f"CPU kernels:    {level} ({CPU_LEVEL_TARGETS.get(level, level)})",
        f"CPU levels:     compiled {levels(info['cpu_levels_compiled'])}; "
        f"this CPU runs {levels(info['cpu_levels_available'])} (AQF_CPU forces one)",
        f"CUDA:           {'compiled in' if info['cuda_compiled'] else 'not compiled in'}, "
        f"{'a GPU is usable' if info['cuda_usable'] else 'no usable GPU'}",
        f"threads:        {info['threads']} (AQF_NUM_THREADS)",
        f"torch:          {info['torch'] or 'not installed'}",
        f"numpy:          {info['numpy']}",
        f"python:         {info['python']} on {info['machine']}",
        f"compiler:       {info['compiler'] or 'unknown'}",
    ]
