"""The page: one HTML template (``page.html``, package data) filled with the study's views. The
live page loads Plotly from the dashboard server and polls it; the report inlines Plotly and
every view, so that it opens from disk with no server and no network.

Plotly draws the charts: its Python package bundles ``plotly.min.js`` (no CDN; the page works
offline) and its charts zoom, pan and hover out of the box, which a report needs most."""
from __future__ import annotations

import functools
import html
import json
import re
from importlib import resources
from typing import Any, Dict, Optional

DASHBOARD_EXTRA = "pip install 'aquasurf_fast[dashboard]'"
REFRESH_S = 5.0  # seconds between the live page's reads of the study


@functools.lru_cache(maxsize=1)
def plotly_js() -> str:
    """The plotly.js bundled with the plotly package."""
    try:
        from plotly.offline import get_plotlyjs
    except ImportError as exc:
        raise ImportError(f"the dashboard and the report need plotly: {DASHBOARD_EXTRA}") from exc
    return get_plotlyjs()


def _template() -> str:
    return resources.files(__package__).joinpath("page.html").read_text(encoding="utf-8")


def script_json(value: Any) -> str:
    """JSON that is safe inside a <script> element: no "<", ">" or "&" that could close it."""
    text = json.dumps(value, allow_nan=False, separators=(",", ":"))
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def render_page(state: Dict[str, Any], mode: str, details: Optional[Dict[str, Any]] = None) -> str:
    """The HTML page of ``state`` (``StudyState.snapshot``). ``mode`` "live": Plotly and updates
    from the server; "report": Plotly inlined and the ``details`` of the functions a reader can
    select (by class id), nothing fetched."""
    if mode == "live":
        plotly = '<script src="plotly.min.js"></script>'
    else:
        # A "</script" inside the bundle would end the element early; the bundle has none, and
        # the escape keeps it so.
        plotly = "<script>" + plotly_js().replace("</script", "<\\/script") + "</script>"
    boot = {"mode": mode, "state": state, "details": details or {}, "refresh_s": REFRESH_S}
    values = {"TITLE": html.escape(f"aquasurf: {state['study']['path']}"),
              "BOOT": script_json(boot), "PLOTLY": plotly}
    # One pass: a placeholder's name inside the study's strings is never substituted.
    return re.sub(r"__(TITLE|BOOT|PLOTLY)__", lambda m: values[m.group(1)], _template())


def error_page(message: str) -> str:
    """A page that says why the study cannot be shown (the message escaped)."""
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\"><title>aquasurf: "
            "cannot show the study</title></head><body style=\"font-family: sans-serif; margin: "
            "2em\"><h1>Cannot show the study</h1><p>" + html.escape(message) + "</p><p>The "
            "page tries again when reloaded.</p></body></html>")
