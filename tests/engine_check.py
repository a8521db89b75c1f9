"""The engine's hot paths on fixed inputs, saved so that two runs can be compared bit for bit: two
CPU levels (AQF_CPU), or this machine and an emulated older CPU (qemu-x86_64 -cpu Nehalem).

    python tests/engine_check.py run OUT.npz        # evaluate, save every result
    python tests/engine_check.py compare A.npz B.npz [--across-cpus]
                                  # exit 1, naming the results that differ (--across-cpus: see
                                  # C_LIBRARY_MATH)

Covers: evaluation with derivatives (every operator, float32 and float64, on the kernel tests'
inputs with NaN, +-inf, +-0 and huge values), output features of benchmark names, the fused
activation forward and backward through torch, a Fisher histogram, row hashing and the
farthest-point selection. Small on purpose: under qemu it runs in about a minute. Standalone
(numpy, torch and the installed package only), so CI can run it against a wheel.
"""
from __future__ import annotations

import sys

import numpy as np

EDGE = [0.0, -0.0, np.inf, -np.inf, np.nan, 1e-30, -1e-30, 700.0, -700.0, 1.0, -1.0, 2.5, -2.5, 20.0, -20.0,
        30.0, -30.0, 88.0, -88.0, 1e30, -1e30, 0.5, -0.5, 1e-45, -1e-45]


def inputs(dtype, n: int = 3000, seed: int = 0) -> np.ndarray:
    """The kernel tests' inputs (tests/test_kernels.py), subnormals added."""
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(size=n // 2) * 3, rng.uniform(-40, 40, size=n // 2), EDGE])
    return x.astype(dtype)


def expressions() -> list:
    import aquasurf_fast as aq

    names = [f"{op}(x)" for op in aq.UNARY_OPS]
    for op in aq.BINARY_OPS:
        names += [f"{op}(x,x)", f"{op}(tanh(x),x)", f"{op}(abs(x),reciprocal(x))", f"{op}(exp(x),elu(x))"]
    for op in aq.NARY_OPS:
        names += [f"{op}(x,relu(x),abs(x))", f"{op}(tanh(x),x,negative(x),sigmoid(x))", f"{op}(relu(x),relu(x),x)"]
    return names


def run() -> dict:
    import torch

    import aquasurf_fast as aq
    from aquasurf_fast import _C

    out = {}
    names = expressions()
    for dtype in (np.float32, np.float64):
        values, grads = aq.evaluate_grad(names, inputs(dtype))
        out[f"evaluate_{np.dtype(dtype).name}"] = np.asarray(values)
        out[f"grad_{np.dtype(dtype).name}"] = np.asarray(grads)

    benchmark = aq.enumerate_schema(aq.BENCHMARK_SCHEMA)
    features = aq.output_features(benchmark[::5])
    out["output_features"] = features
    hashes, finite = _C.hash_rows(features)
    out["hash_rows"] = np.asarray(hashes)
    out["hash_finite"] = np.asarray(finite)

    # Inputs from numpy: torch's own random and elementwise kernels differ between CPUs.
    x_np = inputs(np.float32, n=4096, seed=2)
    x = torch.from_numpy(x_np).requires_grad_(True)
    grad_out = torch.from_numpy(np.random.default_rng(3).normal(size=x_np.size).astype(np.float32))
    for name in ("max(relu(x),cosh(elu(x)))", "mul(swish(x),bessel_i1e(x))", "sum_n(gelu(x),softplus(x),x)"):
        y = aq.Activation(name)(x)
        (grad,) = torch.autograd.grad(y, x, grad_out)
        out[f"activation_{name}"] = y.detach().numpy()
        out[f"activation_grad_{name}"] = grad.numpy()

    rng = np.random.default_rng(1)
    log_a = np.sort(rng.normal(size=300) * 8)
    log_g = np.sort(rng.normal(size=500) * 8)
    edges = np.linspace(-100.0, 100.0, 400)
    cum = np.zeros(edges.size - 1, dtype=np.int64)
    _C.pair_cumhist(log_a, [100, 200], log_g, [200, 300], edges, cum)
    out["fisher_pair_cumhist"] = cum

    points = np.ascontiguousarray(features[:, :16].T)  # [d, n]
    points = np.where(np.isfinite(points), points, 0).astype(np.float32)
    out["farthest_points"] = np.asarray(_C.farthest_points(points, np.zeros(0, dtype=np.int64), 0, 50))
    return out


def canonical_bytes(x: np.ndarray) -> bytes:
    """The array's bytes with every NaN made one NaN. Which NaN an operation returns (its sign and
    payload) depends on the order of its operands, which the compiler may swap when it vectorizes;
    IEEE 754 leaves it open, and the package treats all NaNs as one (SPEC section 3; row hashes
    canonicalize them). Every other bit must agree."""
    if x.dtype.kind == "f":
        x = np.where(np.isnan(x), np.array(np.nan, dtype=x.dtype), x)
    return x.tobytes()


# float64 evaluation calls the C library's double exp, log, pow, ... and glibc picks their FMA or
# SSE2 versions by CPU, which may round the last bit differently: those results are compared
# between AQF_CPU levels on one machine (one C library choice), not across CPUs. The float32
# math is the package's own (common/fastmath.h) and agrees everywhere.
C_LIBRARY_MATH = ("evaluate_float64", "grad_float64")


def differences(a: dict, b: dict, across_cpus: bool = False) -> list:
    """Names of the results that differ (or are missing from one side); across_cpus leaves out
    the results that depend on the C library's choice of code for the CPU."""
    problems = sorted(set(a) ^ set(b))
    for key in sorted(set(a) & set(b)):
        if across_cpus and key in C_LIBRARY_MATH:
            continue
        x, y = np.asarray(a[key]), np.asarray(b[key])
        if x.shape != y.shape or x.dtype != y.dtype or canonical_bytes(x) != canonical_bytes(y):
            problems.append(key)
    return problems


def compare(a_path: str, b_path: str, across_cpus: bool) -> int:
    a, b = np.load(a_path), np.load(b_path)
    problems = differences({k: a[k] for k in a.files}, {k: b[k] for k in b.files}, across_cpus)
    if problems:
        print(f"{a_path} and {b_path} differ in: {', '.join(problems)}")
        return 1
    n = len(a.files) - (len(C_LIBRARY_MATH) if across_cpus else 0)
    print(f"{a_path} and {b_path}: {n} results identical bit for bit (NaN as one value)")
    return 0


def main(argv) -> int:
    if len(argv) == 2 and argv[0] == "run":
        from aquasurf_fast import _C

        np.savez(argv[1], **run())
        print(f"engine check at CPU level {_C.cpu_level()}: saved {argv[1]}")
        return 0
    if len(argv) in (3, 4) and argv[0] == "compare" and argv[3:] in ([], ["--across-cpus"]):
        return compare(argv[1], argv[2], across_cpus=argv[3:] == ["--across-cpus"])
    print(__doc__, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
