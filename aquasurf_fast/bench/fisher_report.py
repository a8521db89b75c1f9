"""What ``benchmark_fisher`` measured, as a table a person reads and as JSON for tracking over time:
per batch size, the spectrum check, per candidate the package's median seconds with their
breakdown, its peak memory and the baselines' seconds, the floor, and the throughput of
``fisher_features_for`` one at a time and batched. Ratios are other/ours for the baselines and
ours/floor for the floor, so that every ratio above 1 is the package's margin or headroom."""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from typing import Dict, List, Optional

from .fisher_check import SpectrumCheck

__all__ = ["BatchResult", "CandidateRow", "FisherBenchmark", "Throughput"]

STAGES = ("fwd/bwd", "factors", "eigen", "hist")
BASELINE_ORDER = ("plain", "curvlinops")


@dataclass
class CandidateRow:
    name: str
    seconds: Optional[float]  # median of the package's pipeline; None when it failed
    stages: Dict[str, float]  # medians of its stages (STAGES)
    peak_bytes: Optional[float]  # what one pass added to the device's memory at its height
    baselines: Dict[str, float] = field(default_factory=dict)  # baseline -> median seconds
    feature_diffs: Dict[str, float] = field(default_factory=dict)  # baseline -> max |feature diff|
    notes: Dict[str, str] = field(default_factory=dict)  # baseline -> why it did not run
    error: str = ""  # why the package's pass failed (FisherError), '' when it ran


@dataclass
class Throughput:
    n_candidates: int  # those featurized (the timed ones)
    one_at_a_time: float  # candidates per second, candidates_per_pass=1
    batched: float  # candidates per second, candidates_per_pass="auto"
    pass_sizes: List[int]  # candidates of each model the batched run built, in order

    @property
    def per_pass(self) -> int:
        """K: the most candidates the batched run put in one pass."""
        return max(self.pass_sizes, default=1)


@dataclass
class BatchResult:
    batch: int
    check: Optional[SpectrumCheck]  # on the smallest batch size only
    floor_flops: float
    matmul_rate: float  # float32 FLOP/s on ``threads`` threads
    threads: int
    rows: List[CandidateRow]
    throughput: Throughput

    @property
    def floor_seconds(self) -> float:
        return self.floor_flops / self.matmul_rate


def _seconds(value: Optional[float]) -> str:
    if value is None or not math.isfinite(value):
        return "-"
    return f"{value * 1e3:.1f} ms" if value < 1 else f"{value:.2f} s"


def _ratio(num: Optional[float], den: Optional[float]) -> str:
    return "-" if not num or not den else f"{num / den:.1f}x"


def _mib(value: Optional[float]) -> str:
    return "-" if value is None else f"{value / 2 ** 20:.0f} MiB"


def _aligned(header: List[str], rows: List[List[str]]) -> List[str]:
    widths = [max(len(r[i]) for r in [header] + rows) for i in range(len(header))]
    fmt = lambda r: "  ".join(c.ljust(w) if i == 0 else c.rjust(w)  # noqa: E731
                              for i, (c, w) in enumerate(zip(r, widths)))
    return [fmt(header), "  ".join("-" * w for w in widths)] + [fmt(r) for r in rows]


@dataclass
class FisherBenchmark:
    description: str  # what was measured (task, model), as the caller names it
    machine: dict  # fisher_timing.machine_description
    repeats: int
    batches: List[BatchResult]

    def _baselines(self) -> List[str]:
        present = {b for batch in self.batches for r in batch.rows for b in list(r.baselines) + list(r.notes)}
        return [b for b in BASELINE_ORDER if b in present]

    def _batch_lines(self, batch: BatchResult, baselines: List[str]) -> List[str]:
        lines = [f"batch {batch.batch}: floor {_seconds(batch.floor_seconds)} "
                 f"({batch.floor_flops / 1e9:.2f} GFLOP at {batch.matmul_rate / 1e9:.0f} GFLOP/s "
                 f"float32 matmul on {batch.threads} thread{'s' if batch.threads > 1 else ''})"]
        if batch.check is not None:
            lines.append("check: " + batch.check.line())
        lines_failed: List[str] = []
        header = ["candidate", "ours", *STAGES, "peak mem", *baselines, "floor",
                  *(f"{b}/ours" for b in baselines), "ours/floor"]
        rows = []
        for r in batch.rows:
            if r.error:
                lines_failed.append(f"{r.name}: no timing, its Fisher pass fails ({r.error})")
                continue
            rows.append([r.name, _seconds(r.seconds), *(_seconds(r.stages.get(s)) for s in STAGES),
                         _mib(r.peak_bytes), *(_seconds(r.baselines.get(b)) for b in baselines),
                         _seconds(batch.floor_seconds),
                         *(_ratio(r.baselines.get(b), r.seconds) for b in baselines),
                         _ratio(r.seconds, batch.floor_seconds)])
        lines += _aligned(header, rows) + lines_failed
        t = batch.throughput
        lines.append(f"all {t.n_candidates} candidates with fisher_features_for: one at a time "
                     f"{t.one_at_a_time:.2f}/s, batched {t.batched:.2f}/s "
                     f"({_ratio(t.batched, t.one_at_a_time)}), K = {t.per_pass} per pass "
                     f"(passes of {'+'.join(map(str, t.pass_sizes))})")
        return lines

    def table(self) -> str:
        """The report a person reads."""
        m = self.machine
        where = m["gpu"] or f"{m['cpu']}, {m['usable_cpus']} usable cores"
        lines = [f"{self.description + ': ' if self.description else ''}device {m['device']} ({where}); "
                 f"torch {m['torch']}, aquasurf_fast {m['aquasurf_fast']}; medians of {self.repeats} "
                 f"run(s) after a warm-up"]
        baselines = self._baselines()
        for batch in self.batches:
            lines += [""] + self._batch_lines(batch, baselines)
        notes = sorted({f"{b}: {n}" for batch in self.batches for r in batch.rows for b, n in r.notes.items()})
        lines += [""] * bool(notes) + [f"note: {n}" for n in notes]
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """Every figure (seconds, bytes, FLOP/s, candidates per second) with the machine."""
        batches = []
        for batch in self.batches:
            item = asdict(batch)
            item["floor_seconds"] = batch.floor_seconds
            item["throughput"]["per_pass"] = batch.throughput.per_pass
            for row, r in zip(item["rows"], batch.rows):
                if r.error:
                    continue
                row["ratios"] = {f"{b}/ours": s / r.seconds for b, s in r.baselines.items()}
                row["ratios"]["ours/floor"] = r.seconds / batch.floor_seconds
            batches.append(item)
        return {"description": self.description, "machine": self.machine, "repeats": self.repeats,
                "batches": batches}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1)

    def write_json(self, path: str) -> None:
        with open(path, "w") as f:
            f.write(self.to_json() + "\n")
