"""``benchmark_fisher``: how fast the Fisher-spectrum features of a network are, measured the way
``aquasurf bench fisher`` reports them (SPEC section 1, use (c)).

For each batch size: first the package's spectrum of the network with relu is checked against
the plain float64 pipeline (``fisher_check``); then, per candidate activation, the package's
pipeline and each baseline run once untimed (the warm-up: allocations, kernel selection, lazy
imports; the peak memory is measured there) and ``repeats`` times timed, and the medians are
kept; then ``fisher_features_for`` featurizes all candidates one at a time and in batched passes
(each timed after a warm-up call). Every pipeline runs on the threads
the package gives the model (``fisher_timing.rate_threads``), and the floor's matmul rate is
measured on them too, so that the ratios compare like with like.
"""
from __future__ import annotations

import contextlib
import random
import statistics
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np
import torch

from ..devices import resolve_device
from ..fisher.candidates import fisher_features_for
from ..fisher.spectrum import FisherError
from ..nn import Activation
from ..runtime.threads import thread_limit
from ..testing.fisher_reference import reference_model
from .fisher_check import check_spectrum
from .fisher_floor import floor_flops
from .fisher_pipelines import BASELINES, PackagePipeline, Unavailable
from .fisher_report import BatchResult, CandidateRow, FisherBenchmark, Throughput
from .fisher_timing import machine_description, matmul_rate, peak_memory, rate_threads, timed_call

__all__ = ["CHECK_FUNCTION", "benchmark_fisher", "draw_candidates", "resized_batch"]

CHECK_FUNCTION = "relu(x)"
# What a candidate's own pass may raise (its activations overflow, its factors are too
# ill-conditioned for LAPACK): the candidate gets no timing, the others go on.
CANDIDATE_FAILURES = (FisherError, torch.linalg.LinAlgError)
# Drawn functions are tried until ``candidates`` of them have a Fisher feature on the network, at
# most this many times as many: on All-CNN-C the first three draws all overflow or fail.
MAX_TRIES_PER_CANDIDATE = 10


def draw_candidates(seed: int = 0) -> List[str]:
    """The names of the benchmark space (SPEC section 2) whose outputs are finite (the others are
    never surrogate candidates), in a random order under ``seed``: the order of the draws."""
    from ..expr import BENCHMARK_SCHEMA, enumerate_schema
    from ..features import output_features

    names = enumerate_schema(BENCHMARK_SCHEMA)
    finite = [name for name, row in zip(names, output_features(names)) if np.isfinite(row).all()]
    random.Random(seed).shuffle(finite)
    return finite


def resized_batch(inputs: torch.Tensor, targets: torch.Tensor, size: int):
    """The first ``size`` samples of the batch, repeated cyclically when ``size`` is larger."""
    if size < 1:
        raise ValueError(f"a batch size must be at least 1, got {size}")
    index = torch.arange(size, device=inputs.device) % inputs.shape[0]
    return inputs[index], targets[index.to(targets.device)]


def _timed_runs(pipeline, model, x, y, loss, repeats: int) -> dict:
    """A warm-up run, which also measures the peak memory, then ``repeats`` timed runs:
    {"seconds", "stages" (medians), "peak", "features"}."""
    _, peak = peak_memory(lambda: pipeline.run(model, x, y, loss), x.device)
    runs = [timed_call(lambda: pipeline.run(model, x, y, loss), x.device) for _ in range(repeats)]
    stages = {k: statistics.median(r[0][1][k] for r in runs) for k in runs[0][0][1]}
    return {"seconds": statistics.median(r[1] for r in runs), "stages": stages, "peak": peak,
            "features": runs[-1][0][0]}


def _candidate_row(build, name, x, y, loss, repeats, baselines, seed) -> CandidateRow:
    torch.manual_seed(seed)
    model = build(Activation(name)).to(x.device)
    try:
        ours = _timed_runs(PackagePipeline(), model, x, y, loss, repeats)
    except CANDIDATE_FAILURES as exc:  # a function whose pass overflows has no feature to time
        return CandidateRow(name, None, {}, None, error=f"{type(exc).__name__}: {exc}")
    row = CandidateRow(name, ours["seconds"], ours["stages"], ours["peak"])
    for baseline in baselines:
        try:
            theirs = _timed_runs(baseline, model, x, y, loss, repeats)
        except Unavailable as exc:
            row.notes[baseline.name] = str(exc)
            continue
        except CANDIDATE_FAILURES as exc:
            row.notes[baseline.name] = f"fails on {name} ({type(exc).__name__}: {exc})"
            continue
        row.baselines[baseline.name] = theirs["seconds"]
        if theirs["features"].shape == ours["features"].shape:
            row.feature_diffs[baseline.name] = float(np.abs(theirs["features"] - ours["features"]).max())
    return row


def _throughput(build, names, x, y, loss, repeats, seed) -> Throughput:
    """Candidates per second of ``fisher_features_for`` one at a time and in batched passes, and
    the candidates of each pass it chose (read from the stacked activations it builds)."""
    pass_sizes: List[int] = []

    def spy(activation):
        pass_sizes.append(len(getattr(activation, "activations", [activation])))
        return build(activation)

    def run(per_pass):
        return fisher_features_for(spy, names, x, y, loss, seed=seed, device=x.device, progress=False,
                                   candidates_per_pass=per_pass)

    rates = {}
    for per_pass in (1, "auto"):
        run(per_pass)  # warm-up: the first call also sets the allocator and the input cache
        seconds = []
        for _ in range(repeats):
            pass_sizes.clear()
            seconds.append(timed_call(lambda: run(per_pass), x.device)[1])
        rates[per_pass] = len(names) / statistics.median(seconds)
    return Throughput(len(names), rates[1], rates["auto"], list(pass_sizes))


def _candidate_rows(build, names, wanted: int, x, y, loss, repeats, baselines, seed) -> List[CandidateRow]:
    """Rows of ``names`` in order until ``wanted`` of them are timed (or MAX_TRIES_PER_CANDIDATE
    times as many were tried); those whose pass fails are kept with their reason."""
    rows: List[CandidateRow] = []
    for name in names[:wanted * MAX_TRIES_PER_CANDIDATE]:
        rows.append(_candidate_row(build, name, x, y, loss, repeats, baselines, seed))
        if sum(not r.error for r in rows) == wanted:
            break
    return rows


def _one_batch(build, names, wanted, x, y, loss, repeats, baselines, seed, check) -> BatchResult:
    # The check, the floor and the thread policy take the network with relu, whose pass is
    # finite on any network at initialization; the floor does not depend on the activation.
    torch.manual_seed(seed)
    model = build(Activation(CHECK_FUNCTION)).to(x.device)
    threads = rate_threads(model)
    with thread_limit(threads) if threads is not None else contextlib.nullcontext():
        checked = check_spectrum(model, x, y, loss) if check else None
        floor = floor_flops(reference_model(model), x)
        rate = matmul_rate(x.device, threads)
        rows = _candidate_rows(build, names, wanted, x, y, loss, repeats, baselines, seed)
        timed = [r.name for r in rows if not r.error]
        throughput = _throughput(build, timed or [r.name for r in rows], x, y, loss, repeats, seed)
    return BatchResult(int(x.shape[0]), checked, floor, rate, threads or torch.get_num_threads(),
                       rows, throughput)


def benchmark_fisher(build: Callable, inputs, targets, loss: Optional[Callable] = None,
                     functions: Optional[Sequence[str]] = None, candidates: int = 3,
                     batch_sizes: Optional[Sequence[int]] = None, repeats: int = 3,
                     device: Optional[str] = "auto", against: Sequence[str] = ("plain", "curvlinops"),
                     seed: int = 42, description: str = "") -> FisherBenchmark:
    """How fast the Fisher features of ``build``'s network are on this machine.

    ``build(activation) -> nn.Module`` and the batch ``(inputs, targets)`` as for
    ``fisher_features_for``; ``loss`` as for ``fisher_spectrum``. The candidates are ``functions``
    (names), else the first ``candidates`` functions of the benchmark space drawn at random
    (``draw_candidates``) whose Fisher pass succeeds on the network; the draws that fail are
    listed with their reason.
    ``batch_sizes``: the batch sizes measured (default: the batch's own), each the first samples
    of the batch, repeated when larger (``resized_batch``). ``against``: baselines among
    "plain" and "curvlinops"; one that cannot run gets a note. The spectrum check runs on the
    smallest batch size with relu (``CHECK_FUNCTION``) and raises ``SpectrumMismatch`` (a ValueError)
    when it fails, before anything is timed. Returns a ``FisherBenchmark`` (``.table()``,
    ``.to_json()``). The caller's random state is restored on return.
    """
    dev = resolve_device(device)
    if repeats < 1:
        raise ValueError(f"repeats must be at least 1, got {repeats}")
    unknown = [a for a in against if a not in BASELINES]
    if unknown:
        raise ValueError(f"unknown baseline {unknown[0]!r}: use {', '.join(BASELINES)}")
    names = list(functions) if functions is not None else draw_candidates()
    wanted = len(names) if functions is not None else int(candidates)
    if not names or wanted < 1:
        raise ValueError("no candidate functions to benchmark")
    x, y = torch.as_tensor(inputs).to(dev), torch.as_tensor(targets).to(dev)
    sizes = sorted(set(int(b) for b in batch_sizes)) if batch_sizes else [int(x.shape[0])]
    baselines = [BASELINES[a]() for a in against]
    results: Dict[int, BatchResult] = {}
    with torch.random.fork_rng(devices=[dev] if dev.type == "cuda" else []):
        for size in sizes:
            xb, yb = resized_batch(x, y, size)
            results[size] = _one_batch(build, names, wanted, xb, yb, loss, repeats, baselines, seed,
                                       check=size == sizes[0])
            if functions is None:  # the larger batches time the draws that the first one timed
                names = [r.name for r in results[size].rows if not r.error] or names
    return FisherBenchmark(description, machine_description(dev), repeats, list(results.values()))
