"""The dashboard's panels other than the map, as JSON-ready dicts read from a ``StudyReader``: the
study and its progress, best so far against evaluations, the top functions, the workers and their
claims, the failures and the event log's tail."""
from __future__ import annotations

import json
import math
import time
from typing import Any, Dict, List, Optional

from ..surrogate.strategy import DEFAULT_STRATEGY

N_TOP = 100        # rows of the top functions' table
N_FAILURES = 20
N_EVENTS = 40
RATE_WINDOW = 20   # the trainings per hour are those of the last this many results


def _finite(x: Optional[float]) -> Optional[float]:
    return x if x is not None and math.isfinite(x) else None


def _metrics(text: Optional[str]) -> Dict[str, Any]:
    try:
        return json.loads(text) if text else {}
    except ValueError:
        return {}


def last_line(error: Optional[str]) -> str:
    """The last non-empty line of an error (the exception's message, after its traceback)."""
    lines = [ln for ln in (error or "").strip().splitlines() if ln.strip()]
    return lines[-1].strip() if lines else ""


def study_panel(reader, settings: Dict[str, Any], evaluated: List[tuple],
                budget: Optional[int]) -> Dict[str, Any]:
    """The study's settings, space, counts, Fisher pool progress, pace and time left."""
    counts = reader.counts()
    spaces = reader.spaces()
    n_names = counts.get("functions", 0) + sum(n for _, _, n in spaces)
    recipe = settings.get("recipe")
    return {
        "path": reader.path,
        "task": str(settings.get("task") or "-"),
        "strategy": str(settings.get("strategy", DEFAULT_STRATEGY)),
        "regressor": str(settings.get("regressor", "-")),
        "recipe": json.dumps(recipe, sort_keys=True) if recipe else "-",
        "space": [f"{kind} {source} ({n:,} names)" for kind, source, n in spaces]
                 or [f"{counts.get('functions', 0):,} names listed"],
        "names": n_names,
        "classes": sum(counts.get(s, 0) for s in ("pending", "running", "done", "failed")),
        "counts": {s: counts.get(s, 0) for s in ("done", "running", "pending", "failed")},
        "pool": reader.pool_progress(),
        **pace(evaluated, counts.get("done", 0), budget),
        "read_at": time.time(),
    }


def pace(evaluated: List[tuple], n_done: int, budget: Optional[int]) -> Dict[str, Any]:
    """Trainings per hour over the last ``RATE_WINDOW`` results, and the seconds left until the
    study holds ``budget`` results at that pace (None when unknown)."""
    times = sorted(t for t in (r[6] for r in evaluated[-RATE_WINDOW:]) if t is not None)
    per_hour = None
    if len(times) >= 2 and times[-1] > times[0]:
        per_hour = 3600.0 * (len(times) - 1) / (times[-1] - times[0])
    left = None
    if budget is not None and per_hour:
        left = max(budget - n_done, 0) * 3600.0 / per_hour
    return {"per_hour": per_hour, "budget": budget, "seconds_left": left}


def progress_panel(evaluated: List[tuple]) -> Dict[str, Any]:
    """Score against evaluation number with the best so far; the baselines named."""
    xs, scores, best, names, baseline = [], [], [], [], []
    top = -math.inf
    for i, r in enumerate(evaluated, 1):
        score = _finite(r[2])
        if score is not None:
            top = max(top, score)
        xs.append(i)
        scores.append(score)
        best.append(top if math.isfinite(top) else None)
        names.append(r[1])
        baseline.append(bool(r[7]))
    relu = next((s for s, n, b in zip(scores, names, baseline)
                 if b and n in ("relu", "relu(x)")), None)
    return {"x": xs, "score": scores, "best": best, "name": names, "baseline": baseline,
            "relu": relu}


def top_panel(evaluated: List[tuple]) -> List[Dict[str, Any]]:
    """The best ``N_TOP`` results, best first (sortable in the page)."""
    rows = [r for r in evaluated if _finite(r[2]) is not None]
    rows.sort(key=lambda r: (-r[2], r[5]))
    return [{"id": r[0], "name": r[1], "val_acc": r[2],
             "test_acc": _finite(_metrics(r[3]).get("test_acc")), "runtime": _finite(r[4]),
             "worker": r[9] or "-", "members": r[8], "baseline": bool(r[7]), "eval": r[5]}
            for r in rows[:N_TOP]]


def workers_panel(reader, evaluated: List[tuple]) -> Dict[str, Any]:
    """Each worker's results and current claims; the claims with their age and lease left."""
    now = time.time()
    claims = [{"id": cid, "name": name, "worker": owner or "-",
               "for_s": now - (since or now), "lease_left_s": (until or now) - now}
              for cid, name, owner, since, until in reader.claims()]
    workers: Dict[str, Dict[str, Any]] = {}
    for r in evaluated:
        w = workers.setdefault(r[9] or "-", {"worker": r[9] or "-", "results": 0, "running": 0,
                                             "last_result": None})
        w["results"] += 1
        w["last_result"] = max(w["last_result"] or 0, r[6] or 0) or None
    for c in claims:
        workers.setdefault(c["worker"], {"worker": c["worker"], "results": 0, "running": 0,
                                         "last_result": None})["running"] += 1
    return {"claims": claims, "workers": sorted(workers.values(), key=lambda w: w["worker"])}


def failures_panel(reader) -> List[Dict[str, Any]]:
    return [{"id": cid, "name": name, "status": status, "attempts": attempts,
             "error": last_line(error), "time": at}
            for cid, name, status, attempts, error, at in reader.failures(N_FAILURES)]


def events_panel(reader) -> List[Dict[str, Any]]:
    return [{"time": t, "kind": kind, "name": name, "owner": owner, "detail": (detail or "")[:300]}
            for t, kind, name, owner, detail in reader.events(N_EVENTS)]
