"""The candidate map: the classes laid out in 2-D, trained ones coloured by their score, untrained
ones by the surrogate's prediction, the running ones and the next suggestions marked.

The layout is the one the study's strategy ranks by, as the search stored it (``embeddings``): the
paper's single UMAP embedding, or the first of the other strategies' layouts. It is only read
here, never computed: a dashboard must not fit UMAP next to the workers, nor write the file. Until
the search has laid the current candidates out, the map shows the classes by the first two axes
of their output projection (``surrogate.coverage``), which every class of a space has.

Predictions and the next suggestions come from the same ``Strategy`` the search uses, fitted on the
stored layouts and the results: what a worker would pick next, up to its random tie order.
"""
from __future__ import annotations

import math
from typing import Any, Dict, List, Optional

import numpy as np

from ..study.feature_service import FeatureService
from ..study.store import Scope
from ..surrogate.strategy import (DEFAULT_STRATEGY, Strategy, output_points, predict_classes,
                                  rank_classes)

MAX_POINTS = 20_000     # untrained classes drawn one by one; more are drawn as a density
DENSITY_BINS = 90       # bins per axis of that density
PROJECTION_SAMPLE = 60_000  # classes read for the density of a large space without a layout
N_NEXT = 5              # next suggestions marked


def strategy_of(settings: Dict[str, Any]) -> Strategy:
    """The study's strategy with the regressor the search gives it (``Ranker._strategy_regressor``:
    the strategy's own for "knn"; a regressor instance is not stored, so the strategy's own too)."""
    regressor = settings.get("regressor", "knn")
    return Strategy(settings.get("strategy", DEFAULT_STRATEGY),
                    None if regressor in ("knn", "custom") else regressor)


def candidate_map(reader, settings: Dict[str, Any]) -> Dict[str, Any]:
    """The map as JSON-ready lists (see the module docstring)."""
    rows = reader.classes_in_scope(FeatureService(reader, None, "dashboard").candidate_scope())
    strategy = strategy_of(settings)
    n_layouts = max(strategy.n_layouts, 1)
    suffix = "" if strategy.ranks_by_surrogate else f"-layouts{n_layouts}"
    stored = reader.newest_layout(len(rows), suffix) if rows else None
    if stored is None:
        return projection_map(reader, len(rows))
    coords, created = stored
    layouts = coords.reshape(len(rows), n_layouts, 2).transpose(1, 0, 2)
    return layout_map(reader, rows, layouts, strategy, settings, created)


def _color_range(values: List[Optional[float]]) -> Dict[str, float]:
    """A colour range that a few diverged trainings (accuracy near chance) do not crush."""
    v = np.array([x for x in values if x is not None and math.isfinite(x)], dtype=float)
    if v.size == 0:
        return {"lo": 0.0, "hi": 1.0}
    lo, hi = float(np.percentile(v, 10)), float(v.max())
    return {"lo": lo, "hi": hi} if hi - lo > 1e-9 else {"lo": lo - 0.5, "hi": hi + 0.5}


def _points(rows, xy: np.ndarray, extra: Optional[Dict[str, list]] = None) -> Dict[str, list]:
    """Rows (id, canonical, n_members, status, score, baseline) at coordinates ``xy`` [n, 2]."""
    out = {"id": [r[0] for r in rows], "name": [r[1] for r in rows], "n": [r[2] for r in rows],
           "x": np.round(xy[:, 0], 4).tolist() if len(rows) else [],
           "y": np.round(xy[:, 1], 4).tolist() if len(rows) else []}
    out.update(extra or {})
    return out


def density(xy: np.ndarray, scale: float = 1.0) -> Optional[Dict[str, list]]:
    """A 2-D histogram of ``xy`` [n, 2] (bin centres and counts times ``scale``), empty bins None."""
    if len(xy) == 0:
        return None
    counts, ex, ey = np.histogram2d(xy[:, 0], xy[:, 1], bins=DENSITY_BINS)
    z = np.where(counts > 0, np.round(counts * scale), np.nan).T  # rows are y
    return {"x": ((ex[:-1] + ex[1:]) / 2).round(4).tolist(),
            "y": ((ey[:-1] + ey[1:]) / 2).round(4).tolist(),
            "z": [[None if math.isnan(v) else int(v) for v in row] for row in z],
            "total": int(round(len(xy) * scale))}


def layout_map(reader, rows, layouts: np.ndarray, strategy: Strategy, settings: Dict[str, Any],
               created: float) -> Dict[str, Any]:
    """The candidates in the strategy's first layout, with predictions and next suggestions."""
    ids = np.array([r[0] for r in rows], dtype=np.int64)
    status = np.array([r[3] for r in rows])
    scores = {r[0]: r[4] for r in rows if r[3] == "done"}
    running = [r[0] for r in rows if r[3] == "running"]
    pred = np.full(ids.size, np.nan)
    nxt: List[int] = []
    if strategy.n_layouts:
        pred = predict_classes(strategy, ids, layouts, scores)
        points = output_points(reader.output_features(ids)) if strategy.needs_points else None
        n_start = int(sum(1 for r in rows if r[5]))
        nxt = rank_classes(strategy, ids, layouts, scores, running, n_start, N_NEXT,
                           settings.get("random_state"), points)[:N_NEXT]
    xy = layouts[0]
    done, run = status == "done", status == "running"
    todo = ~done & ~run & (status != "failed")
    pick = lambda mask: [r for r, m in zip(rows, mask) if m]  # noqa: E731
    predicted = [None if not math.isfinite(p) else round(float(p), 5) for p in pred]
    untrained = None if todo.sum() > MAX_POINTS else _points(
        pick(todo), xy[todo], {"pred": [p for p, m in zip(predicted, todo) if m]})
    pos = {int(c): i for i, c in enumerate(ids.tolist())}
    nxt_idx = np.array([pos[c] for c in nxt], dtype=np.int64)
    trained = _points(pick(done), xy[done], {"score": [r[4] for r in pick(done)]})
    return {
        "coords": "layout", "strategy": strategy.name, "laid_out_at": created,
        "n_candidates": int(ids.size), "trained": trained, "untrained": untrained,
        "density": density(xy[todo]) if untrained is None else None,
        "running": _points(pick(run), xy[run]),
        "next": _points([rows[i] for i in nxt_idx], xy[nxt_idx],
                        {"pred": [predicted[i] for i in nxt_idx]}),
        "color": _color_range(trained["score"] + [p for p in predicted if p is not None]),
    }


def projection_map(reader, n_candidates: int) -> Dict[str, Any]:
    """The classes by the first two axes of their output projection: trained and running ones as
    points, the others as points or, in a large space, a density of an even sample of them."""
    max_id = reader.max_class_id()
    stride = max(1, math.ceil(max_id / PROJECTION_SAMPLE))
    sample = reader.projection_sample(max_id, stride)
    shown = reader.classes_in_scope(Scope.TRAINED_OR_RUNNING)
    proj = reader.projections_of([r[0] for r in shown])
    shown = [r for r in shown if r[0] in proj]
    xy = np.array([proj[r[0]][:2] for r in shown], dtype=np.float32).reshape(-1, 2)
    pending = [r for r in sample if r[1] not in ("done", "running")]
    # The first two float32 of each projection: its two principal axes.
    pxy = np.frombuffer(b"".join(r[2][:8] for r in pending), dtype="<f4").reshape(-1, 2)
    untrained = dens = None
    if stride == 1 and len(pending) <= MAX_POINTS:
        untrained = _points(reader.classes_by_id([r[0] for r in pending]), pxy,
                            {"pred": [None] * len(pending)})
    else:
        dens = density(pxy, stride)  # each sampled class stands for ``stride`` classes
    done = np.array([r[3] == "done" for r in shown], dtype=bool)
    trained = _points([r for r, d in zip(shown, done) if d], xy[done],
                      {"score": [r[4] for r, d in zip(shown, done) if d]})
    return {
        "coords": "projection", "strategy": None, "laid_out_at": None,
        "n_candidates": n_candidates, "trained": trained, "untrained": untrained,
        "density": dens, "running": _points([r for r, d in zip(shown, done) if not d],
                                               xy[~done]),
        "next": _points([], np.zeros((0, 2))), "color": _color_range(trained["score"]),
    }
