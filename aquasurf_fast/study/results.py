"""Reading a study's results: every class's status, score, metrics and members."""
from __future__ import annotations

import json
import math
from typing import Any, Dict, Iterator, List, Optional, Tuple

from .._checks import check_int
from .store import StudyError


class ResultsView:
    """Reads a study's results (the part of ``Study`` behind ``results``, ``iter_results``,
    ``top``, ``best`` and ``events``)."""

    def __init__(self, store):
        self.store = store

    def _result_dicts(self, rows: List[tuple], space_members: bool = False) -> List[Dict[str, Any]]:
        """One dict per row of the store's ``result_rows``; ``members`` holds its explicit names,
        and with ``space_members`` also its names in the study's schemas and names files (one
        pass over the stored class ids for all the rows)."""
        out, in_space = [], []
        for (cid, name, status, score, metrics, runtime, attempts, error, eval_index, baseline,
             claim_owner, claimed_at, finished_at, n_members, has_space_names, members) in rows:
            members = sorted(members.split(" "), key=lambda m: (m != name, m)) if members else [name]
            out.append({
                "class_id": cid, "name": name, "status": status,
                "score": float("nan") if score is None else score,
                "metrics": json.loads(metrics) if metrics else {},
                "runtime": runtime, "attempts": attempts, "error": error,
                "eval_index": eval_index, "baseline": bool(baseline),
                "claim_owner": claim_owner, "claimed_at": claimed_at, "finished_at": finished_at,
                "n_members": n_members, "members": members,
            })
            if has_space_names:
                in_space.append(out[-1])
        if space_members and in_space:
            more = self.store.members([r["class_id"] for r in in_space])
            for r in in_space:
                r["members"] = list(dict.fromkeys(r["members"] + more[r["class_id"]]))
        return out

    def results(self, include_pending: bool = False, members: bool = True) -> List[Dict[str, Any]]:
        """One dict per class: name, status, score, metrics, runtime, attempts, error, n_members,
        members (canonical first). Classes of a schema or names file list their names there only
        with ``members`` (a pass over the space); their explicit names (baselines) always."""
        return self._result_dicts(self.store.result_rows(include_pending), space_members=members)

    def iter_results(self, include_pending: bool = True, members: bool = True,
                     batch: int = 10_000) -> Iterator[Dict[str, Any]]:
        """``results`` in class order, ``batch`` classes at a time: for exporting every class of a
        large space in bounded memory."""
        last = 0
        while True:
            rows = self._result_dicts(self.store.result_rows_after(last, batch, include_pending),
                                      space_members=members)
            if not rows:
                return
            last = rows[-1]["class_id"]
            yield from rows

    def top(self, k: int = 10) -> List[Dict[str, Any]]:
        """The ``k`` best evaluated classes, best first."""
        k = check_int("k", k, 0, StudyError)
        rows = self._result_dicts(self.store.best_result_rows(k))
        return [r for r in rows if math.isfinite(r["score"])]

    def best(self) -> Optional[Dict[str, Any]]:
        best = self.top(1)
        return best[0] if best else None

    def event_details(self, kind: str) -> List[Dict[str, Any]]:
        """The decoded details of every event of ``kind`` ("pool", "embed", "feature_set", ...),
        oldest first."""
        return [json.loads(d) for d in self.store.event_details(kind)]

    def events(self, limit: int = 100) -> List[Tuple]:
        return self.store.recent_events(limit)
