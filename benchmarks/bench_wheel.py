"""Speed of the portable (dispatching) build against a -march=native build of the same sources.

The installed package must be a dispatching build (the default, AQF_NATIVE=0, as in the wheel).
This script builds the extension once more with AQF_NATIVE=1 into a scratch copy of the package,
then measures, each in its own process and in alternating rounds (the machine's noise then falls
on every variant alike):

  native     the -march=native build
  dispatch   the installed build at the level it picks for this CPU
  avx2       the installed build forced to AVX2 (AQF_CPU=avx2)
  baseline   the installed build forced to x86-64-v2 (AQF_CPU=baseline): what a plain portable
             build without dispatch gives

Correctness first: every variant's output features of the benchmark space must equal the native
build's bit for bit (NaN as one value). Then: output features per second (the 5,103 benchmark
names on the 1,000-point probe), the fused activation (forward and backward of
max(relu(x),cosh(elu(x))) over 2^20 float32 elements), and Fisher features per second of the
built-in mnist1d task. Ratios are to the native build, paired by round: each round measures every
variant once, back to back, and the ratio reported is the median over rounds of a variant's value
over the native build's in the same round (with the lowest and highest of those ratios), so that
load on the machine that comes and goes between rounds falls on both sides of each ratio.

    python benchmarks/bench_wheel.py [--rounds 3] [--jobs 1] [--build-dir build/bench-wheel]
"""
from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
from _timing import median_seconds, print_table  # noqa: E402

ACTIVATION = "max(relu(x),cosh(elu(x)))"
N_ACTIVATION = 1 << 20
N_FISHER = 48


def measure() -> dict:
    """One variant's numbers (run in a child process)."""
    import numpy as np
    import torch

    import aquasurf_fast as aq
    from aquasurf_fast import _C
    from aquasurf_fast.fisher.candidates import fisher_features_for
    from aquasurf_fast.tasks import mnist1d

    names = aq.enumerate_schema(aq.BENCHMARK_SCHEMA)
    features = aq.output_features(names)
    canonical = np.where(np.isnan(features), np.float32(np.nan), features)
    out = {"level": _C.cpu_level(), "features_sha": hashlib.sha256(canonical.tobytes()).hexdigest()}
    out["output_features_per_s"] = len(names) / median_seconds(lambda: aq.output_features(names), repeats=5)

    act = aq.Activation(ACTIVATION)
    x = torch.randn(N_ACTIVATION, generator=torch.Generator().manual_seed(0)).requires_grad_(True)
    g = torch.ones(N_ACTIVATION)

    def fused():
        (grad,) = torch.autograd.grad(act(x), x, g)
        return grad

    out["activation_melem_per_s"] = N_ACTIVATION / median_seconds(fused, repeats=9) / 1e6

    inputs, targets = mnist1d.fisher_batch()
    subset = names[:N_FISHER]

    def fisher():
        fisher_features_for(mnist1d.build, subset, inputs, targets, progress=False)

    out["fisher_fns_per_s"] = N_FISHER / median_seconds(fisher, repeats=3)
    return out


def build_native(build_dir: Path, jobs: str) -> Path:
    """The package with a -march=native extension, in build_dir/package (built once, reused)."""
    package = build_dir / "package"
    cmake_build = build_dir / "cmake"
    if package.exists():
        shutil.rmtree(package)
    shutil.copytree(ROOT / "aquasurf_fast", package / "aquasurf_fast",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    cmake_build.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cmake", str(ROOT), "-G", "Ninja", "-DCMAKE_BUILD_TYPE=Release", "-DAQF_NATIVE=ON",
                    "-DAQF_CUDA=OFF", f"-DPython_EXECUTABLE={sys.executable}",
                    f"-DCMAKE_LIBRARY_OUTPUT_DIRECTORY={package / 'aquasurf_fast'}"],
                   cwd=cmake_build, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", ".", "--parallel", jobs], cwd=cmake_build, check=True)
    return package


def run_variant(pythonpath, level) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("AQF_CPU", "PYTHONPATH")}
    if pythonpath:
        env["PYTHONPATH"] = str(pythonpath)
    if level:
        env["AQF_CPU"] = level
    r = subprocess.run([sys.executable, __file__, "--measure"], env=env, capture_output=True, text=True,
                       cwd=str(ROOT / "benchmarks"))
    if r.returncode != 0:
        raise SystemExit(f"measuring {level or 'native'} failed:\n{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--jobs", default=os.environ.get("AQF_BUILD_JOBS", "1"))
    p.add_argument("--build-dir", type=Path, default=ROOT / "build" / "bench-wheel")
    args = p.parse_args()
    if args.measure:
        print(json.dumps(measure()))
        return 0

    from aquasurf_fast import _C

    levels = list(_C.cpu_levels_supported())
    if list(_C.cpu_levels_compiled()) == ["native"]:
        raise SystemExit("the installed aquasurf_fast is a native build; install the dispatching one (AQF_NATIVE=0)")
    start = time.perf_counter()
    native_package = build_native(args.build_dir, args.jobs)
    print(f"native build: {time.perf_counter() - start:.0f} s")

    variants = {"native": (native_package, None), "dispatch": (None, None)}
    if "avx2" in levels and levels[-1] != "avx2":
        variants["avx2"] = (None, "avx2")
    variants["baseline"] = (None, "baseline")
    runs = {name: [] for name in variants}
    for _ in range(args.rounds):
        for name, (path, level) in variants.items():
            runs[name].append(run_variant(path, level))

    reference = runs["native"][0]["features_sha"]
    for name, results in runs.items():
        if any(r["features_sha"] != reference for r in results):
            raise SystemExit(f"{name}: output features differ from the native build's")
    print("output features of all 5,103 benchmark names: identical in every variant (NaN as one value)")

    metrics = [("output features / s", "output_features_per_s", "{:,.0f}"),
               ("fused activation, M elements / s", "activation_melem_per_s", "{:.1f}"),
               ("mnist1d Fisher features / s", "fisher_fns_per_s", "{:.2f}")]
    rows = []
    for label, key, fmt in metrics:
        for name in variants:
            value = statistics.median(r[key] for r in runs[name])
            ratios = [r[key] / n[key] for r, n in zip(runs[name], runs["native"])]
            rows.append([label, f"{name} ({runs[name][0]['level']})", fmt.format(value),
                         f"{statistics.median(ratios):.3f}",
                         f"{min(ratios):.3f}-{max(ratios):.3f}"])
    print_table(f"medians of {args.rounds} alternating rounds, {os.cpu_count()} CPUs; ratios paired "
                "by round", ["measure", "build", "value", "vs native", "range over rounds"], rows)
    return 0


if __name__ == "__main__":
    sys.exit(main())
