"""What the dashboard and the report show, gathered from one read-only look at the study file."""
from __future__ import annotations

import math
import threading
from typing import Any, Dict, Optional

import numpy as np

from ..study.store.readonly import StudyReader
from . import panels
from .candidate_map import candidate_map
from .function_view import function_detail


def json_ready(value: Any) -> Any:
    """``value`` with NaN and infinities as None and numpy scalars as Python ones: strict JSON."""
    if isinstance(value, dict):
        return {str(k): json_ready(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class StudyState:
    """The views of the study file at ``path``. Each call opens the file afresh, read-only (a
    file replaced or damaged meanwhile is reported, not served stale); the candidate map, which
    fits the strategy's regressor, is kept until the results, claims, features or layouts change.

    ``budget``: the number of results the search is to reach, for the time left (a study does not
    store it)."""

    def __init__(self, path: str, budget: Optional[int] = None):
        self.path, self.budget = path, budget
        self._map_memo = None
        self._lock = threading.Lock()

    def open(self) -> StudyReader:
        """The study, opened read-only; raises ``StudyError`` with a clear message."""
        return StudyReader(self.path)

    def snapshot(self) -> Dict[str, Any]:
        """Every panel: study, progress, map, top, workers, failures, events."""
        reader = self.open()
        try:
            settings = reader.meta()
            evaluated = reader.evaluated()
            return json_ready({
                "study": panels.study_panel(reader, settings, evaluated, self.budget),
                "progress": panels.progress_panel(evaluated),
                "map": self._map(reader, settings),
                "top": panels.top_panel(evaluated),
                "workers": panels.workers_panel(reader, evaluated),
                "failures": panels.failures_panel(reader),
                "events": panels.events_panel(reader),
            })
        finally:
            reader.close()

    def _map(self, reader: StudyReader, settings: Dict[str, Any]) -> Dict[str, Any]:
        counts = reader.counts()
        key = (reader.features_version(), reader.layouts_stamp(), reader.max_class_id(),
               tuple(sorted(counts.items())), settings.get("strategy"), settings.get("regressor"))
        with self._lock:
            if self._map_memo is None or self._map_memo[0] != key:
                self._map_memo = (key, candidate_map(reader, settings))
            return self._map_memo[1]

    def function(self, class_id: int) -> Optional[Dict[str, Any]]:
        """One class in detail (``function_view.function_detail``), None when there is none."""
        reader = self.open()
        try:
            return json_ready(function_detail(reader, class_id))
        finally:
            reader.close()
