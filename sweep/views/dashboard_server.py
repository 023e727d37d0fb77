"""``sweep dashboard``: a read-only web server that shows every sweep under some results
roots and updates while drivers write, without a reload.

The page (``sweep/views/live_page/``: HTML, a small script, CSS; plotly.js served from
the installed plotly, so nothing comes from a CDN) polls JSON endpoints once a second;
a sweep's endpoints answer from a snapshot that is re-read only when the sweep's folder
changed (``sweep.views.live_state``), and a poll of an unchanged sweep costs a listing.

==========================================  =================================================
``GET /``, ``/sweep/<key>``,                 the page (one document; the script routes)
``/sweep/<key>/trial/<id>``
``GET /api/sweeps``                          every sweep: state, progress, best, problems
``GET /api/sweeps/<key>``                    one sweep's summary (``?since=<version>``: a
                                             short answer while nothing changed)
``GET /api/sweeps/<key>/figures``            its figures (plotly JSON)
``GET /api/sweeps/<key>/table``              ``?order=top|latest&k=10|100|1000``
``GET /api/sweeps/<key>/importance``         the latest fANOVA (fitted in the background)
``GET /api/sweeps/<key>/trials/<id>``        one trial: row, error, lineage, curve
==========================================  =================================================

Safety: only GET and HEAD; nothing is ever written under the results roots. It binds to
127.0.0.1 unless told otherwise, and then answers only requests whose Host is a
loopback name (a web page elsewhere cannot read it through DNS rebinding). Bound to any
other address it requires a token (given, or generated and printed): ``?token=...``
once, then a cookie; ``Authorization: Bearer ...`` for scripts.

Example:
    >>> server = DashboardServer(["results"], port=0)       # doctest: +SKIP
    >>> threading.Thread(target=server.serve_forever).start(); print(server.url)  # doctest: +SKIP
"""

from __future__ import annotations

import gzip
import hmac
import http.server
import ipaddress
import json
import logging
import secrets
import socketserver
import threading
from collections.abc import Sequence
from functools import cache
from http import HTTPStatus
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from . import live_payloads as payloads
from .live_state import Catalog, Describe

__all__ = ["DashboardServer", "is_loopback"]

log = logging.getLogger("sweep")

PAGE_DIR = Path(__file__).with_name("live_page")
COOKIE = "sweep_dashboard_token"
LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
GZIP_ABOVE = 2048
_CSP = ("default-src 'self'; script-src 'self' 'unsafe-eval'; style-src 'self' "
        "'unsafe-inline'; img-src 'self' data: blob:; connect-src 'self'; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
          ".html": "text/html; charset=utf-8"}


def is_loopback(host: str) -> bool:
    """True for a name or address of this machine only (127.0.0.0/8, ::1, localhost).

    Example: ``is_loopback("127.0.0.1")`` is True, ``is_loopback("0.0.0.0")`` False.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@cache
def _asset(name: str) -> bytes:
    if name == "plotly.js":
        from plotly.offline import get_plotlyjs

        return get_plotlyjs().encode("utf-8")
    return (PAGE_DIR / name).read_bytes()


@cache
def _gzipped(name: str) -> bytes:
    return gzip.compress(_asset(name), compresslevel=6)


class _Server(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    dashboard: DashboardServer


class DashboardServer:
    """The dashboard over ``roots`` (paths or URIs), on ``host``:``port`` (0: any free
    port). ``describe`` turns a stored spec's text into a ``SweepMeta`` (the CLI passes
    one built on ``sweep.spec``); ``token`` is required beyond loopback (None: one is
    generated there)."""

    def __init__(self, roots: Sequence[str], *, host: str = "127.0.0.1", port: int = 8090,
                 describe: Describe | None = None, token: str | None = None,
                 poll: float = 1.0):
        self.catalog = Catalog(roots, describe, poll)
        self.host = host
        self.loopback = is_loopback(host)
        self.token = token if token or self.loopback else secrets.token_urlsafe(24)
        self.poll = poll
        self.httpd = _Server((host, port), _Handler)
        self.httpd.dashboard = self
        self.port = self.httpd.server_address[1]

    @property
    def url(self) -> str:
        """The address to open (with the token, when one is needed)."""
        host = self.host if self.host not in ("0.0.0.0", "::", "") else "127.0.0.1"
        host = f"[{host}]" if ":" in host else host
        tail = f"?token={quote(self.token)}" if self.token else ""
        return f"http://{host}:{self.port}/{tail}"

    def serve_forever(self) -> None:
        self.httpd.serve_forever(poll_interval=0.25)

    def start(self) -> threading.Thread:
        """Serve on a daemon thread (for tests and notebooks); ``shutdown`` stops it."""
        thread = threading.Thread(target=self.serve_forever, name="sweep-dashboard",
                                  daemon=True)
        thread.start()
        return thread

    def shutdown(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(http.server.BaseHTTPRequestHandler):
    server: _Server
    server_version = "sweep-dashboard"
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log.debug("dashboard: " + format, *args)

    # ------------------------------------------------------------ plumbing

    @property
    def dash(self) -> DashboardServer:
        return self.server.dashboard

    def _send(self, status: int, body: bytes, kind: str, *, headers: dict[str, str] | None
              = None, gzipped: bytes | None = None) -> None:
        wants_gzip = "gzip" in (self.headers.get("Accept-Encoding") or "")
        if wants_gzip and gzipped is None and len(body) > GZIP_ABOVE:
            gzipped = gzip.compress(body, compresslevel=5)
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("X-Content-Type-Options", "nosniff")
        self.send_header("Referrer-Policy", "no-referrer")
        self.send_header("Content-Security-Policy", _CSP)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if wants_gzip and gzipped is not None:
            body = gzipped
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Vary", "Accept-Encoding")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, value: Any, status: int = 200) -> None:
        text = value if isinstance(value, str) else json.dumps(value, allow_nan=False)
        self._send(status, text.encode("utf-8"), "application/json; charset=utf-8",
                   headers={"Cache-Control": "no-store"})

    def _error(self, status: int, message: str) -> None:
        if self.path.startswith("/api/"):
            self._json({"error": message}, status)
        else:
            self._send(status, f"<!DOCTYPE html><title>{status}</title><p>{_esc(message)}"
                       .encode(), "text/html; charset=utf-8")

    def _allowed(self) -> str | None:
        """Why this request may not be answered, or None."""
        if self.dash.loopback:
            host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]").lower()
            if host not in LOOPBACK_NAMES and not is_loopback(host):
                return f"Host {host!r} is not this machine's loopback name"
        token = self.dash.token
        if not token:
            return None
        given = [parse_qs(urlsplit(self.path).query).get("token", [""])[0],
                 self.headers.get("Authorization", "").removeprefix("Bearer ").strip()]
        for part in (self.headers.get("Cookie") or "").split(";"):
            name, _, value = part.strip().partition("=")
            if name == COOKIE:
                given.append(value)
        if any(g and hmac.compare_digest(g.encode(), token.encode()) for g in given):
            return None
        return "a token is needed: open the address sweep dashboard printed"

    # ------------------------------------------------------------ requests

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        problem = self._allowed()
        if problem is not None:
            status = HTTPStatus.FORBIDDEN if "Host" in problem else HTTPStatus.UNAUTHORIZED
            self._error(status, problem)
            return
        url = urlsplit(self.path)
        query = parse_qs(url.query)
        if "token" in query and self.dash.token and not url.path.startswith("/api/"):
            # Keep the token out of the address bar and history: a cookie from now on.
            self._send(HTTPStatus.SEE_OTHER, b"", "text/plain", headers={
                "Location": url.path or "/",
                "Set-Cookie": f"{COOKIE}={self.dash.token}; Path=/; HttpOnly; "
                              f"SameSite=Strict"})
            return
        parts = [unquote(p) for p in url.path.split("/") if p]
        try:
            self._route(parts, query)
        except BrokenPipeError:
            pass
        except Exception as exc:  # answer, log, keep serving the rest
            log.warning("dashboard: %s failed: %s", url.path, exc, exc_info=True)
            self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(exc).__name__}: {exc}")

    def do_POST(self) -> None:
        self._error(HTTPStatus.METHOD_NOT_ALLOWED, "the dashboard is read-only")

    do_PUT = do_DELETE = do_PATCH = do_POST

    def _route(self, parts: list[str], query: dict[str, list[str]]) -> None:
        if not parts or parts[0] == "sweep":
            self._send(200, _asset("index.html"), _TYPES[".html"],
                       headers={"Cache-Control": "no-cache"})
        elif parts[0] == "static" and len(parts) == 2 and parts[1] in (
                "app.js", "app.css", "plotly.js"):
            name = parts[1]
            self._send(200, _asset(name), _TYPES[Path(name).suffix],
                       headers={"Cache-Control": "max-age=3600"}, gzipped=_gzipped(name))
        elif parts[:2] == ["api", "sweeps"]:
            self._api(parts[2:], query)
        else:
            self._error(HTTPStatus.NOT_FOUND, "no such page")

    def _api(self, parts: list[str], query: dict[str, list[str]]) -> None:
        catalog = self.dash.catalog
        if not parts:
            sweeps = []
            for w in catalog.sweeps():
                sweeps.append(w.cached("summary", lambda _, w=w: payloads.summary(w)))
                w.release_if_idle()
            self._json({"roots": [{"root": r, "error": catalog.root_errors().get(r)}
                                  for r in catalog.roots],
                        "sweeps": sweeps, "poll": self.dash.poll})
            return
        watch = catalog.get(parts[0])
        if watch is None:
            self._error(HTTPStatus.NOT_FOUND, f"no sweep {parts[0]!r} under the roots")
            return
        rest = parts[1:]
        watch.touch()
        if not rest:
            since = query.get("since", [""])[0]
            snap = watch.current()
            if since == str(snap.version):
                self._json({"version": snap.version, "same": True})
            else:
                self._json(watch.cached("summary", lambda _: payloads.summary(watch)))
        elif rest == ["figures"]:
            self._json(payloads.figures_json(watch))
        elif rest == ["table"]:
            order = "latest" if query.get("order", [""])[0] == "latest" else "top"
            k = _choice(query.get("k", [""])[0], payloads.TABLE_ROWS, 100)
            self._json(watch.cached(f"table-{order}-{k}",
                                    lambda _: payloads.table(watch, order, k)))
        elif rest == ["importance"]:
            catalog.importance.ask(watch)
            self._json(payloads.importance_payload(watch))
        elif len(rest) == 2 and rest[0] == "trials":
            found = payloads.trial_payload(watch, rest[1])
            if found is None:
                self._error(HTTPStatus.NOT_FOUND, f"no trial {rest[1]!r} in {watch.key}")
            else:
                self._json(found)
        else:
            self._error(HTTPStatus.NOT_FOUND, "no such endpoint")


def _choice(text: str, allowed: Sequence[int], default: int) -> int:
    try:
        value = int(text)
    except ValueError:
        return default
    return value if value in allowed else default


def _esc(text: str) -> str:
    import html

    return html.escape(text, quote=True)
