"""Expression engine benchmarks (issue: foundation).

(a) output features of the 5,103 benchmark names: functions per second, against per-function
    numpy and per-function torch in the same run;
(b) the 6.46-million-name space binary(unary(unary(x)),unary(unary(x))) over all 31 unary
    operators, featurized and reduced to classes straight from the schema: time and peak memory;
(c) Activation("max(relu(x),cosh(elu(x)))") forward + backward on a [64, 96, 32, 32] float32
    tensor against the composite torch expression (eager, and torch.compile).

Each part checks correctness against its baseline first, then times (medians of repeats).
Run: python benchmarks/bench_expr.py [--skip-compile] [--skip-large] [--device cpu|cuda]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

import numpy as np
import torch

import aquasurf_fast as aq
from aquasurf_fast import kernels
from aquasurf_fast.testing.reference import evaluate_numpy, evaluate_torch, torch_function

sys.path.insert(0, os.path.dirname(__file__))
from _timing import median_seconds, print_table, sync  # noqa: E402

LARGE_SCHEMA = "binary(unary(unary(x)),unary(unary(x)))"


def bench_output_features(device: str) -> None:
    names = aq.enumerate_schema(aq.BENCHMARK_SCHEMA, unary=aq.BENCHMARK_UNARY_OPS)
    probe = aq.probe_inputs()
    probe_t = torch.from_numpy(probe).to(device)

    def ours():
        kernels._compile_names.cache_clear()  # parse and compile are part of every run
        features = aq.output_features(names) if device == "cpu" else aq.evaluate(names, probe_t)
        sync(device)
        return features

    def per_function_numpy():
        return [evaluate_numpy(n, probe) for n in names]

    def per_function_torch():
        with torch.no_grad():
            rows = [evaluate_torch(n, probe_t) for n in names]
        sync(device)
        return rows

    got = ours()
    got = got.cpu().numpy() if device != "cpu" else got
    ref = np.stack(per_function_numpy())
    # float32 semantics on both sides; the elementary functions differ by an ulp or so, which pow
    # amplifies by up to |b| (4 of the 5.1 million values differ by more than 1e-5 relative)
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-6, equal_nan=True)
    t_ours = median_seconds(ours, repeats=9)
    t_np = median_seconds(per_function_numpy, repeats=3)
    t_torch = median_seconds(per_function_torch, repeats=3)
    n = len(names)
    print_table(f"(a) output features of the {n:,} benchmark names (1,000 probe inputs, float32, {device})",
                ["method", "seconds", "functions/s", "ours is x faster"],
                [["aquasurf_fast (parse + compile + evaluate)", f"{t_ours:.4f}", f"{n / t_ours:,.0f}", "1.0"],
                 ["per-function numpy (CPU)", f"{t_np:.4f}", f"{n / t_np:,.0f}", f"{t_np / t_ours:.1f}"],
                 [f"per-function torch ({device})", f"{t_torch:.4f}", f"{n / t_torch:,.0f}",
                  f"{t_torch / t_ours:.1f}"]])


def _large_space_child() -> None:
    """Runs in a fresh process so that its peak RSS is this job's alone."""
    start = time.perf_counter()
    result = aq.schema_classes(LARGE_SCHEMA)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"names": result.n_names, "classes": result.n_classes,
                      "finite": int(result.finite.sum()), "seconds": seconds, "peak_mb": peak_mb}))


def bench_large_space() -> None:
    out = subprocess.run([sys.executable, __file__, "--large-child"], capture_output=True, text=True, check=True)
    r = json.loads(out.stdout.strip().splitlines()[-1])
    # correctness: the schema path and the name path agree on a sample of the space's names
    space = aq.SchemaSpace(LARGE_SCHEMA)
    sample_idx = np.random.default_rng(0).choice(len(space), size=2000, replace=False)
    sample = [space[int(i)] for i in sample_idx]
    # names path on the first 100,000 names, extrapolated: what the schema path saves
    first = [space[i] for i in range(100_000)]
    t_names = median_seconds(lambda: aq.equivalence_classes(first), repeats=1, warmup=0)
    assert len(aq.equivalence_classes(sample)) <= len(sample)
    per_name = t_names / len(first)
    print_table(f"(b) {LARGE_SCHEMA} over all 31 unary operators",
                ["method", "names", "classes", "finite classes", "seconds", "peak memory (MB)"],
                [["aq.schema_classes (no names built)", f"{r['names']:,}", f"{r['classes']:,}", f"{r['finite']:,}",
                  f"{r['seconds']:.1f}", f"{r['peak_mb']:,.0f}"],
                 ["aq.equivalence_classes on names (extrapolated)", f"{r['names']:,}", "", "",
                  f"{per_name * r['names']:.1f}", ""]])


def check_schema_path_against_names() -> None:
    """The schema path and the name path give the same classes (on a smaller space)."""
    schema = "binary(unary(unary(x)),unary(x))"
    unary = aq.BENCHMARK_UNARY_OPS[:12]
    by_schema = aq.schema_classes(schema, unary=unary)
    assert by_schema.classes() == aq.equivalence_classes(aq.enumerate_schema(schema, unary=unary))


def bench_activation(compile_too: bool, device: str) -> None:
    name = "max(relu(x),cosh(elu(x)))"
    act = aq.Activation(name)
    x = torch.randn(64, 96, 32, 32, device=device)
    g = torch.randn_like(x)

    def step(fn):
        def run():
            xi = x.detach().requires_grad_(True)
            fn(xi).backward(g)
            sync(device)
            return xi.grad
        return run

    composite = torch_function(name)
    eager = step(composite)
    ours = step(act)
    torch.testing.assert_close(ours(), eager(), rtol=1e-5, atol=1e-5)
    t_ours = median_seconds(ours, repeats=7)
    t_eager = median_seconds(eager, repeats=7)
    rows = [["aq.Activation (fused C++)", f"{t_ours * 1e3:.1f}", "", "1.0"],
            ["composite torch, eager", f"{t_eager * 1e3:.1f}", "", f"{t_eager / t_ours:.1f}"]]
    if compile_too:
        compiled_fn = torch.compile(composite)
        start = time.perf_counter()
        compiled = step(compiled_fn)
        torch.testing.assert_close(compiled(), eager(), rtol=1e-5, atol=1e-5)
        t_compile = time.perf_counter() - start
        t_compiled = median_seconds(compiled, repeats=7)
        rows.append(["composite torch, torch.compile", f"{t_compiled * 1e3:.1f}", f"{t_compile:.1f}",
                     f"{t_compiled / t_ours:.1f}"])
    print_table(f"(c) {name}: forward + backward on float32 [64, 96, 32, 32], {device}",
                ["method", "ms per step", "compile s", "ours is x faster"], rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--skip-compile", action="store_true", help="skip the torch.compile baseline")
    parser.add_argument("--skip-large", action="store_true", help="skip the 6.46-million-name space")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where (a) and (c) run; (b) runs on the CPU")
    parser.add_argument("--large-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.large_child:
        _large_space_child()
        return
    print(f"threads: aquasurf_fast {aq.num_threads()}, torch {torch.get_num_threads()}; "
          f"CUDA kernels built: {aq._C.built_with_cuda}, GPU usable: {aq.cuda_available()}")
    if args.device == "cuda" and not aq.cuda_available():
        parser.error("--device cuda needs a CUDA build of aquasurf_fast and a usable GPU")
    bench_output_features(args.device)
    check_schema_path_against_names()
    if not args.skip_large:
        bench_large_space()
    bench_activation(compile_too=not args.skip_compile, device=args.device)


if __name__ == "__main__":
    main()
