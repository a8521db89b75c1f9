"""The rule that chooses the default strategy, as code: leave one benchmark out.

For every benchmark in turn, each strategy family picks its variant (its tunable settings) by the
best worst case on the *other* benchmarks, and is judged on the one left out; a family's score is
its worst ratio to random search (median evaluations to a top-1% class) over every benchmark so
judged and every number of workers. The default is the eligible family with the lowest such worst
case (ties: the lower mean ratio). A family is not eligible where, on any benchmark and any number
of workers, the variant it would have shipped there needs more evaluations than the reference
strategy's (``REFERENCE``, the paper's) 95% interval allows, or where its median is beyond the
budget. A family with one variant is judged as it is, so the rule cannot fit a file it is judged
on.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Dict, List, Mapping, Optional, Sequence, Tuple

Key = Tuple[str, int]  # (benchmark, workers)
REFERENCE = "paper"    # the strategy whose 95% interval bounds what may become the default


@dataclass(frozen=True)
class Outcome:
    """One variant on one benchmark with W workers: its median evaluations to a top-1% class, the
    95% interval of that median, and random search's exact median on the benchmark."""

    median: float
    ci: Tuple[float, float]
    random: float

    @property
    def ratio(self) -> float:
        return self.median / self.random


@dataclass
class FamilyVerdict:
    family: str
    worst: float                       # worst left-out ratio over benchmarks and W
    mean: float                        # mean left-out ratio
    eligible: bool
    chosen: Dict[str, str]             # left-out benchmark -> variant tuned without it
    ratios: Dict[Key, float]           # left-out ratio per (benchmark, W)
    beyond_reference: List[Key] = field(default_factory=list)


@dataclass
class Decision:
    default: Optional[str]  # None: no family is eligible with a finite worst case
    verdicts: List[FamilyVerdict]

    def table(self) -> str:
        keys = sorted({k for v in self.verdicts for k in v.ratios})
        head = " | ".join(f"{b} W={w}" for b, w in keys)
        lines = [f"| family | {head} | worst | mean | eligible |",
                 "|---|" + "---:|" * (len(keys) + 2) + "---|"]
        for v in sorted(self.verdicts, key=lambda v: (not v.eligible, v.worst, v.mean)):
            cells = " | ".join(f"{v.ratios[k]:.3f}" for k in keys)
            why = "yes" if v.eligible else "no: beyond paper's interval on " + ", ".join(
                f"{b} W={w}" for b, w in v.beyond_reference)
            mark = f"**{v.family}**" if v.family == self.default else v.family
            lines.append(f"| {mark} | {cells} | {v.worst:.3f} | {v.mean:.3f} | {why} |")
        return "\n".join(lines)


def _worst(results: Mapping[Key, Outcome], benchmarks: Sequence[str]) -> float:
    return max(o.ratio for (b, _), o in results.items() if b in benchmarks)


def tune(variants: Mapping[str, Mapping[Key, Outcome]], benchmarks: Sequence[str]) -> str:
    """The variant with the best worst-case ratio on ``benchmarks`` (ties: the first named)."""
    return min(variants, key=lambda v: _worst(variants[v], benchmarks))


def judge_family(family: str, variants: Mapping[str, Mapping[Key, Outcome]],
                 reference: Mapping[Key, Outcome]) -> FamilyVerdict:
    """Leave each benchmark out: tune on the others, judge on it."""
    keys = sorted(next(iter(variants.values())))
    benchmarks = sorted({b for b, _ in keys})
    if len(benchmarks) < 2:
        raise ValueError("leaving one benchmark out needs at least two benchmarks")
    chosen, ratios, beyond = {}, {}, []
    for left_out in benchmarks:
        others = [b for b in benchmarks if b != left_out]
        variant = tune(variants, others) if len(variants) > 1 else next(iter(variants))
        chosen[left_out] = variant
        for key in keys:
            if key[0] != left_out:
                continue
            outcome = variants[variant][key]
            ratios[key] = outcome.ratio
            if outcome.median > reference[key].ci[1]:
                beyond.append(key)
    return FamilyVerdict(family=family, worst=max(ratios.values()),
                         mean=sum(ratios.values()) / len(ratios), eligible=not beyond,
                         chosen=chosen, ratios=ratios, beyond_reference=beyond)


def choose_default(results: Mapping[str, Mapping[Key, Outcome]],
                   families: Mapping[str, Sequence[str]], reference: str = REFERENCE) -> Decision:
    """Apply the rule. ``results``: variant -> (benchmark, W) -> Outcome, every variant on the
    same keys; ``families``: family -> its variants (the reference's family holds it alone)."""
    keys = {v: set(r) for v, r in results.items()}
    if len({frozenset(k) for k in keys.values()}) != 1:
        raise ValueError("every variant must be replayed on the same benchmarks and workers")
    if reference not in results:
        raise ValueError(f"the reference strategy {reference!r} has no results")
    verdicts = [judge_family(f, {v: results[v] for v in vs}, results[reference])
                for f, vs in families.items()]
    eligible = [v for v in verdicts if v.eligible and math.isfinite(v.worst)]
    best = min(eligible, key=lambda v: (v.worst, v.mean)) if eligible else None
    return Decision(default=best.family if best else None, verdicts=verdicts)


__all__ = ["Decision", "FamilyVerdict", "Outcome", "REFERENCE", "choose_default", "judge_family",
           "tune"]
