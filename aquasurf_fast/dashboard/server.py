"""``aquasurf dashboard``: the live page and its data, served over HTTP.

The standard library's ``ThreadingHTTPServer`` is enough for a page that a few people poll every
few seconds, and adds no dependency. Only GET is answered (anything else: 405), on fixed routes;
no part of a request's path ever reaches the file system.
"""
from __future__ import annotations

import socket
import sys
import urllib.parse
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Optional

from ..study.store import StudyError
from .page import error_page, plotly_js, render_page, script_json
from .state import StudyState

LOOPBACK = ("127.0.0.1", "localhost", "::1")


class DashboardHandler(BaseHTTPRequestHandler):
    """Routes: ``/`` the page, ``/plotly.min.js``, ``/api/state`` every view as JSON,
    ``/api/function?id=N`` one class in detail."""

    server_version = "aquasurf-dashboard"
    views: StudyState  # set on the subclass that ``make_server`` builds

    def do_GET(self) -> None:  # noqa: N802 (the name http.server calls)
        url = urllib.parse.urlsplit(self.path)
        routes = {"/": self._page, "/plotly.min.js": self._plotly, "/api/state": self._state,
                  "/api/function": self._function}
        route = routes.get(url.path)
        if route is None:
            self._send(HTTPStatus.NOT_FOUND, "text/plain; charset=utf-8", b"not found\n")
            return
        try:
            route(urllib.parse.parse_qs(url.query))
        except StudyError as exc:
            if url.path.startswith("/api/"):
                self._json({"error": str(exc)}, HTTPStatus.SERVICE_UNAVAILABLE)
            else:
                self._send(HTTPStatus.SERVICE_UNAVAILABLE, "text/html; charset=utf-8",
                           error_page(str(exc)).encode("utf-8"))

    def _refuse(self) -> None:
        self._send(HTTPStatus.METHOD_NOT_ALLOWED, "text/plain; charset=utf-8",
                   b"only GET is allowed\n", {"Allow": "GET"})

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_TRACE = do_CONNECT = _refuse

    def _page(self, _query) -> None:
        html = render_page(self.views.snapshot(), "live")
        self._send(HTTPStatus.OK, "text/html; charset=utf-8", html.encode("utf-8"))

    def _plotly(self, _query) -> None:
        self._send(HTTPStatus.OK, "application/javascript; charset=utf-8",
                   plotly_js().encode("utf-8"), {"Cache-Control": "max-age=86400"})

    def _state(self, _query) -> None:
        self._json(self.views.snapshot())

    def _function(self, query) -> None:
        try:
            class_id = int(query.get("id", [""])[0])
        except ValueError:
            self._json({"error": "id must be a class id (an integer)"}, HTTPStatus.BAD_REQUEST)
            return
        detail = self.views.function(class_id)
        if detail is None:
            self._json({"error": f"no class {class_id} in this study"}, HTTPStatus.NOT_FOUND)
        else:
            self._json(detail)

    def _json(self, value, status: HTTPStatus = HTTPStatus.OK) -> None:
        self._send(status, "application/json", script_json(value).encode("utf-8"))

    def _send(self, status: HTTPStatus, kind: str, body: bytes, headers: Optional[dict] = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Content-Type-Options", "nosniff")
        # Everything the page needs comes from this server: no other origin, no inline frames.
        self.send_header("Content-Security-Policy", "default-src 'self'; script-src 'self' "
                         "'unsafe-inline' 'unsafe-eval'; style-src 'self' 'unsafe-inline'; "
                         "img-src 'self' data: blob:; frame-ancestors 'none'")
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def log_message(self, format: str, *args) -> None:  # noqa: A002 (http.server's name)
        """Quiet: the polls every few seconds would drown the terminal."""


def make_server(study_path: str, host: str = "127.0.0.1", port: int = 8050,
                budget: Optional[int] = None) -> ThreadingHTTPServer:
    """A server (not yet serving) of the study at ``study_path``; port 0 takes a free port.
    Raises ``StudyError`` when the study cannot be read."""
    views = StudyState(study_path, budget)
    views.open().close()  # a missing, damaged or foreign file: say so now, not on the first visit
    plotly_js()  # plotly missing: likewise
    handler = type("Handler", (DashboardHandler,), {"views": views})
    server_class = ThreadingHTTPServer
    if ":" in host:  # an IPv6 address
        server_class = type("Server6", (ThreadingHTTPServer,), {"address_family": socket.AF_INET6})
    server = server_class((host, port), handler)
    server.daemon_threads = True
    return server


def serve(study_path: str, host: str = "127.0.0.1", port: int = 8050,
          budget: Optional[int] = None) -> None:
    """Serve the dashboard until interrupted."""
    server = make_server(study_path, host, port, budget)
    if host not in LOOPBACK:
        print(f"warning: serving on {host}, reachable from other machines: anyone who can reach "
              "it can read the study (function names, settings, errors)", file=sys.stderr)
    shown = f"[{host}]" if ":" in host else host
    print(f"aquasurf dashboard of {study_path}: http://{shown}:{server.server_address[1]}/ "
          "(Ctrl-C to stop)", flush=True)
    try:
        server.serve_forever()
    finally:
        server.server_close()
