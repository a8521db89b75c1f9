"""``aquasurf dashboard`` and ``aquasurf report``: watch a study in the browser, or write its views
to one HTML file to share."""
from __future__ import annotations

import os

from .common import UsageError, int_at_least


def cmd_dashboard(args) -> int:
    from ..dashboard import serve

    try:
        serve(args.study, host=args.host, port=args.port, budget=args.budget)
    except KeyboardInterrupt:
        print("\nstopped")
    return 0


def cmd_report(args) -> int:
    from ..dashboard import write_report

    out_dir = os.path.dirname(os.path.abspath(args.out))
    if not os.path.isdir(out_dir):
        raise UsageError(f"{out_dir}: no such folder for the report")
    size = write_report(args.study, args.out, budget=args.budget)
    print(f"wrote {args.out} ({size / 1e6:.1f} MB): open it in a browser, no server needed")
    return 0


def _budget_option(sp) -> None:
    sp.add_argument("--budget", type=int_at_least(1),
                    help="the results the search is to reach, for the time left at its pace")


def add_dashboard_parsers(sub, study_command) -> None:
    """The ``dashboard`` and ``report`` subcommands (``study_command`` adds one that takes the
    study file first)."""
    sp = study_command(sub, "dashboard", "a live page of the study in the browser, read-only on "
                       "the file while a search runs (needs: pip install 'aquasurf_fast[dashboard]')",
                       cmd_dashboard)
    sp.add_argument("--host", default="127.0.0.1",
                    help="address to listen on (default 127.0.0.1, this machine only; another "
                         "address lets others read the study, with a warning)")
    sp.add_argument("--port", type=int_at_least(0), default=8050,
                    help="port (default 8050; 0 takes a free one)")
    _budget_option(sp)
    sp = study_command(sub, "report", "the dashboard's views as one self-contained HTML file "
                       "(needs: pip install 'aquasurf_fast[dashboard]')", cmd_report)
    sp.add_argument("--out", default="report.html", help="file to write (default report.html)")
    _budget_option(sp)
