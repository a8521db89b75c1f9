"""One class in detail, for the panel that opens when a function is selected on the map or in a
table: its curve and derivative on [-5, 5] (``aquasurf_fast.evaluate_grad``), and its stored Fisher
feature cut back into one eigenvalue CDF per layer."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, List, Optional

import numpy as np

from ..defaults import expression_name
from ..study.store import from_blob

N_CURVE = 201           # points of the curve on [-5, 5]
MAX_CDF_POINTS = 120    # points kept of each layer's CDF (they are smooth; a page need not hold 13,857)


def curve(name: str) -> Optional[Dict[str, List[Optional[float]]]]:
    """The function and its derivative on [-5, 5]; None for a class whose name is no expression
    (a synthetic study's "f0")."""
    from ..kernels import evaluate_grad

    x = np.linspace(-5.0, 5.0, N_CURVE, dtype=np.float32)
    try:
        values, grads = evaluate_grad([expression_name(name)], x)
    except ValueError:
        return None

    def finite(a):  # JSON has no inf or NaN: the page shows gaps there
        return [round(float(v), 6) if math.isfinite(v) else None for v in np.asarray(a, float)]

    return {"x": finite(x), "y": finite(values[0]), "dy": finite(grads[0])}


def layer_cdfs(feature: np.ndarray) -> List[List[float]]:
    """The per-layer CDFs of a Fisher feature (SPEC section 4: concatenated, each rising to 1). The
    layers' lengths are not stored; a layer ends where the values fall back, to the next layer's
    start. Each is thinned to ``MAX_CDF_POINTS`` points for display."""
    cuts = np.flatnonzero(np.diff(feature) < 0) + 1
    out = []
    for part in np.split(feature, cuts):
        keep = np.unique(np.linspace(0, part.size - 1, min(part.size, MAX_CDF_POINTS)).astype(int))
        out.append(np.round(part[keep].astype(float), 4).tolist())
    return out


def function_detail(reader, class_id: int) -> Optional[Dict[str, Any]]:
    """The selected class: name, class size, status, scores, curve and Fisher CDFs (None: no such
    class)."""
    row = reader.class_detail(class_id)
    if row is None:
        return None
    name, n_members, status, score, metrics, runtime, fisher, fisher_ok, reason = row
    try:
        metrics = json.loads(metrics) if metrics else {}
    except ValueError:
        metrics = {}
    feature = from_blob(fisher)
    return {
        "id": int(class_id), "name": name, "members": n_members, "status": status,
        "val_acc": score, "test_acc": metrics.get("test_acc"), "runtime": runtime,
        "curve": curve(name),
        "fisher": layer_cdfs(feature) if feature is not None and feature.size else None,
        "fisher_note": ("no Fisher features (not in the Fisher pool)" if fisher_ok is None else
                        f"Fisher features failed: {reason or 'unknown reason'}" if not fisher_ok
                        else ""),
    }
