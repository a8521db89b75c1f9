"""``aquasurf report``: the dashboard's views as one self-contained HTML file."""
from __future__ import annotations

import os
from typing import Optional

from .page import plotly_js, render_page
from .state import StudyState


def write_report(study_path: str, out: str, budget: Optional[int] = None) -> int:
    """Write the report of the study at ``study_path`` to ``out``; returns its size in bytes.

    A reader can select the functions of the top table, the running and failed ones and the next
    suggestions: each selection needs its curve and Fisher CDFs in the file."""
    plotly_js()  # plotly missing: say so before reading the study
    views = StudyState(study_path, budget)
    state = views.snapshot()
    ids = [r["id"] for r in state["top"]]
    ids += state["map"]["running"]["id"] + state["map"]["next"]["id"]
    ids += [c["id"] for c in state["workers"]["claims"]] + [f["id"] for f in state["failures"]]
    details = {str(i): views.function(i) for i in dict.fromkeys(ids)}
    text = render_page(state, "report", details)
    tmp = out + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(tmp, out)  # a reader never opens a half-written report
    return len(text.encode("utf-8"))
