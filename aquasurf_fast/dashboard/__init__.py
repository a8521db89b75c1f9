"""Watching a study: a live dashboard in the browser (``serve``) and a one-file HTML report
(``write_report``), both read-only on the study file.

``state`` gathers the views from a read-only ``StudyReader`` (``study.store.readonly``):
``panels`` (the study, progress, top functions, workers, failures, events), ``candidate_map``
(the strategy's layout with scores, predictions and next suggestions) and ``function_view`` (one
function's curve and Fisher CDFs). ``page`` renders them with Plotly; ``server`` serves the live
page, ``report`` writes the file. Needs the ``dashboard`` extra (plotly).
"""
from .report import write_report
from .server import make_server, serve
from .state import StudyState

__all__ = ["StudyState", "make_server", "serve", "write_report"]
