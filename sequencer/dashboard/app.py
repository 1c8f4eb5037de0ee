"""The dashboard's web application (Starlette): pages, a JSON API, server-sent events.

Everything it shows comes from a :class:`~sequencer.dashboard.source.RunSource`; it knows
nothing of run directories or stores. Access (:class:`Access`): controls need the token
printed at start, sent by the page in a header (a cookie alone does not do: another site's
form could send it); served beyond the loopback interface, every request needs the token
(the first page takes it from the address, ``/?token=...``, and leaves a cookie). On the
loopback interface, requests must name a loopback host (a page of another site that resolves
its name to 127.0.0.1 gets nothing). Every page's content security policy allows this server
alone: nothing is loaded from elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import dataclasses
import gzip
import hashlib
import json
import logging
import math
import re
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from sequencer.dashboard.source import NotFound, Refused, RunSource, SourceError

if TYPE_CHECKING:   # numpy loads with the first series asked for, not at start
    import numpy as np

    from sequencer.dashboard.envelope import SeriesView

STATIC = Path(__file__).parent / "static"
log = logging.getLogger("cellseq.dashboard")
TOKEN_HEADER = "x-cellseq-token"
TOKEN_COOKIE = "cellseq_token"
#: How often the runs are looked at for changes (live runs; others every IDLE_POLL_S).
TICK_S = 1.0
IDLE_POLL_S = 5.0
KEEPALIVE_S = 15.0
MAX_WIDTH = 8000
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1", "[::1]")
_CSP = ("default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline';"
        " frame-ancestors 'none'; base-uri 'none'; form-action 'none'")
_SECURITY_HEADERS = [
    (b"content-security-policy", _CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
]


@dataclass(frozen=True)
class Access:
    token: str
    pages_need_token: bool   # served beyond the loopback interface

    def valid(self, value: str | None) -> bool:
        return value is not None and secrets.compare_digest(value.encode(), self.token.encode())

    def page_token(self, request: Request) -> str | None:
        return request.headers.get(TOKEN_HEADER) or request.cookies.get(TOKEN_COOKIE) or \
            request.query_params.get("token")


class _Gate:
    """Security headers on every response; served beyond loopback, the token on every
    request (a valid ``?token=`` leaves a cookie, for the pages' own requests)."""

    def __init__(self, app: ASGIApp, access: Access) -> None:
        self.app, self.access = app, access

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request = Request(scope)
        set_cookie = False
        if self.access.pages_need_token:
            if not self.access.valid(self.access.page_token(request)):
                response = JSONResponse(
                    {"error": "this dashboard needs its token: open the address it printed"
                              " when it started (.../?token=...)"}, status_code=401)
                await response(scope, receive, _with_headers(send, False, self.access))
                return
            set_cookie = self.access.valid(request.query_params.get("token")) and \
                not self.access.valid(request.cookies.get(TOKEN_COOKIE))
        await self.app(scope, receive, _with_headers(send, set_cookie, self.access))


def _with_headers(send: Send, set_cookie: bool, access: Access) -> Send:
    async def sending(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers", []))
            own_csp = any(k.lower() == b"content-security-policy" for k, _ in headers)
            headers += [h for h in _SECURITY_HEADERS   # the page's own is stricter
                        if not (own_csp and h[0] == b"content-security-policy")]
            if set_cookie:
                headers.append((b"set-cookie", f"{TOKEN_COOKIE}={access.token}; Path=/;"
                                               " HttpOnly; SameSite=Strict".encode()))
            message = {**message, "headers": headers}
        await send(message)
    return sending


class Hub:
    """Looks at every run for changes (``TICK_S``; runs no process holds every
    ``IDLE_POLL_S``) and wakes the event streams of the runs that changed. It looks only
    while a page listens: a dashboard nobody watches reads nothing."""

    def __init__(self, source: RunSource) -> None:
        self.source = source
        self.versions: dict[str, object] = {}
        #: each run's overview as JSON, encoded once for every page that listens
        self.encoded: dict[str, str] = {}
        self._due: dict[str, float] = {}
        self.changed = asyncio.Event()
        self.listeners = 0
        self.wanted = asyncio.Event()

    @contextlib.contextmanager
    def listening(self) -> Iterator[None]:
        self.listeners += 1
        self.wanted.set()
        try:
            yield
        finally:
            self.listeners -= 1
            if self.listeners == 0:   # what it saw goes stale from now: forget it
                self.wanted.clear()
                self.versions.clear()
                self.encoded.clear()
                self._due.clear()

    async def run(self) -> None:
        while True:
            await self.wanted.wait()
            changed = await anyio.to_thread.run_sync(self._poll)
            if changed:
                event, self.changed = self.changed, asyncio.Event()
                event.set()
            await asyncio.sleep(TICK_S)

    def _poll(self) -> bool:
        changed = False
        now = time.monotonic()
        for info in self.source.runs():
            if now < self._due.get(info.id, 0.0):
                continue
            self._due[info.id] = now + (TICK_S if info.live else IDLE_POLL_S) * 0.9
            try:
                version = self.source.version(info.id)
                if version != self.versions.get(info.id):
                    self._keep(info.id, _plain(self.source.overview(info.id)), version)
                    changed = True
            except SourceError as exc:
                self._keep(info.id, {"error": str(exc)}, ("error", str(exc)))
        return changed

    def _keep(self, run_id: str, overview: dict[str, Any], version: object) -> None:
        self.encoded[run_id] = json.dumps(overview, allow_nan=False, separators=(",", ":"))
        self.versions[run_id] = version


def build_app(source: RunSource, access: Access) -> Starlette:
    hub = Hub(source)

    async def call(fn: Callable[..., Any], *args: Any) -> Any:
        return await anyio.to_thread.run_sync(fn, *args)

    def handled(endpoint: Callable[[Request], Awaitable[Response]]
                ) -> Callable[[Request], Awaitable[Response]]:
        async def wrapped(request: Request) -> Response:
            try:
                return await endpoint(request)
            except NotFound as exc:
                return JSONResponse({"error": str(exc)}, status_code=404)
            except Refused as exc:
                return JSONResponse({"error": str(exc)}, status_code=409)
            except (SourceError, _BadRequest) as exc:
                return JSONResponse({"error": str(exc)},
                                    status_code=400 if isinstance(exc, _BadRequest) else 500)
        return wrapped

    page, page_gz, page_csp = _shell()

    async def index(request: Request) -> Response:
        headers = {"content-security-policy": page_csp, "vary": "accept-encoding"}
        if "gzip" in request.headers.get("accept-encoding", ""):
            return Response(page_gz, media_type="text/html; charset=utf-8",
                            headers={**headers, "content-encoding": "gzip"})
        return Response(page, media_type="text/html; charset=utf-8", headers=headers)

    async def runs(request: Request) -> Response:
        return _json({"runs": [_plain(r) for r in await call(source.runs)],
                      "controls_need_token": True})

    async def overview(request: Request) -> Response:
        return _json(_plain(await call(source.overview, request.path_params["run"])))

    async def events(request: Request) -> Response:
        q = request.query_params
        return _json({"events": await call(
            source.events, request.path_params["run"], _int(q, "after", -1, -1, 2 ** 62),
            q.get("cell"), _int(q, "limit", 200, 1, 2000))})

    async def series(request: Request) -> Response:
        q = request.query_params
        args = (request.path_params["run"], request.path_params["cell"], _float(q, "t0"),
                _float(q, "t1"), _int(q, "width", 1000, 10, MAX_WIDTH))
        # read and encoded in a worker thread: the server's loop keeps answering meanwhile
        return Response(await call(lambda: _series_json(source.series(*args))),
                        media_type="application/json")

    async def cycles(request: Request) -> Response:
        run_id, cell = request.path_params["run"], request.path_params["cell"]

        def answer() -> str:
            got = source.cycles(run_id, cell)
            return _dumps({"cycles": [_plain(r) for r in got.rows], "complete": got.complete,
                           "points_read": got.points_read, "points_total": got.points_total})
        return Response(await call(answer), media_type="application/json")

    async def spectra(request: Request) -> Response:
        got = await call(source.spectra, request.path_params["run"],
                         request.path_params["cell"],
                         _int(request.query_params, "last", 3, 0, 50))
        return _json({"spectra": [_plain(s) for s in got]})

    async def results(request: Request) -> Response:
        got = _plain(await call(source.results, request.path_params["run"]))
        cell = request.query_params.get("cell")
        if cell is not None:   # one cell's page: its rows only
            for key in ("results", "checks", "expected"):
                got[key] = [r for r in got[key] if r.get("cell") == cell]
            got["figures"] = []
        return _json(got)

    async def figure(request: Request) -> Response:
        data = await call(source.figure, request.path_params["run"],
                          request.path_params["name"])
        return Response(data, media_type="image/png")

    async def control(request: Request) -> Response:
        if not access.valid(request.headers.get(TOKEN_HEADER)):
            return JSONResponse({"error": "controls need the token the dashboard printed when"
                                          " it started"}, status_code=403)
        try:
            body = json.loads(await request.body())
        except ValueError:
            raise _BadRequest("the request is not JSON") from None
        if not isinstance(body, dict) or body.get("action") not in ("pause", "continue",
                                                                    "stop"):
            raise _BadRequest("action must be pause, continue or stop")
        cell = body.get("cell")
        who = body.get("who") or "someone"
        if not (cell is None or isinstance(cell, str)) or not isinstance(who, str):
            raise _BadRequest("cell and who must be text")
        address = request.client.host if request.client else "unknown"
        receipt = await call(source.control, request.path_params["run"], body["action"],
                             cell, who.strip()[:80] or "someone", address)
        return _json(_plain(receipt), status_code=202)

    async def stream(request: Request) -> Response:
        run_id = request.query_params.get("run")
        if run_id is not None:
            await call(source.overview, run_id)   # NotFound for an unknown run

        async def changes() -> AsyncIterator[str]:
            seen: dict[str, object] = {}
            with hub.listening():
                while True:
                    payload = {rid: hub.encoded[rid] for rid, v in list(hub.versions.items())
                               if (run_id is None or rid == run_id) and seen.get(rid) != v
                               and rid in hub.encoded}
                    for rid in payload:
                        seen[rid] = hub.versions[rid]
                    if payload:   # the overviews as encoded once for every page
                        data = ",".join(f"{json.dumps(rid)}:{text}"
                                        for rid, text in payload.items())
                        yield f"event: change\ndata: {{{data}}}\n\n"
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(hub.changed.wait(), KEEPALIVE_S)
                        continue
                    yield ": still here\n\n"

        return StreamingResponse(changes(), media_type="text/event-stream",
                                 headers={"X-Accel-Buffering": "no"})

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        task = asyncio.create_task(hub.run())
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    routes = [
        Route("/", index),
        Route("/api/runs", handled(runs)),
        Route("/api/stream", handled(stream)),
        Route("/api/runs/{run}", handled(overview)),
        Route("/api/runs/{run}/events", handled(events)),
        Route("/api/runs/{run}/results", handled(results)),
        Route("/api/runs/{run}/figures/{name}", handled(figure)),
        Route("/api/runs/{run}/control", handled(control), methods=["POST"]),
        Route("/api/runs/{run}/cells/{cell}/series", handled(series)),
        Route("/api/runs/{run}/cells/{cell}/cycles", handled(cycles)),
        Route("/api/runs/{run}/cells/{cell}/spectra", handled(spectra)),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    middleware = [Middleware(_Gate, access=access)]
    if not access.pages_need_token:
        middleware.append(Middleware(TrustedHostMiddleware, allowed_hosts=LOOPBACK_HOSTS))
    return Starlette(routes=routes, middleware=middleware, lifespan=lifespan)


_LINKED = re.compile(r'<link rel="stylesheet" href="/static/([^"]+)">|'
                     r'<script src="/static/([^"]+)"></script>')


def _shell() -> tuple[bytes, bytes, str]:
    """The page (``static/index.html``) with the styles and scripts it links put inline, as
    is and gzipped, and its content security policy: this server alone, and of inline
    scripts exactly these (by their SHA-256). Why: the page is one response, so the browser
    asks for a run's data as soon as it has it, not after four more answers from a server
    that yields to the runs (``serve.NICENESS``)."""
    hashes = []

    def inline(m: re.Match[str]) -> str:
        text = (STATIC / (m[1] or m[2])).read_text(encoding="utf-8")
        if m[1]:
            return f"<style>\n{text}\n</style>"
        text = f"\n{text}\n"
        hashes.append("'sha256-" + base64.b64encode(
            hashlib.sha256(text.encode()).digest()).decode() + "'")
        return f"<script>{text}</script>"

    page = _LINKED.sub(inline, (STATIC / "index.html").read_text(encoding="utf-8")).encode()
    csp = _CSP.replace("default-src 'self';",
                       f"default-src 'self'; script-src 'self' {' '.join(hashes)};")
    return page, gzip.compress(page, 6, mtime=0), csp


class _BadRequest(SourceError):
    """A request's parameters are wrong."""


def _int(q: Any, name: str, default: int, lo: int, hi: int) -> int:
    text = q.get(name)
    if text is None:
        return default
    try:
        value = int(text)
    except ValueError:
        raise _BadRequest(f"{name} must be a whole number, not {text!r}") from None
    if not lo <= value <= hi:
        raise _BadRequest(f"{name} must lie between {lo} and {hi}, not {value}")
    return value


def _float(q: Any, name: str) -> float | None:
    text = q.get(name)
    if text in (None, ""):
        return None
    try:
        value = float(text)
    except ValueError:
        raise _BadRequest(f"{name} must be a number, not {text!r}") from None
    if not math.isfinite(value):
        raise _BadRequest(f"{name} must be a finite number, not {text!r}")
    return value


def _plain(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: _plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, list | tuple):
        return [_plain(x) for x in obj]
    if isinstance(obj, dict):
        return {k: _plain(v) for k, v in obj.items()}
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _dumps(data: Any) -> str:
    return json.dumps(_plain(data), allow_nan=False, separators=(",", ":"))


def _json(data: Any, status_code: int = 200) -> Response:
    return Response(_dumps(data), status_code=status_code, media_type="application/json")


def _series_json(view: SeriesView) -> str:
    """A series view as JSON; its thousands of numbers go straight from the arrays (a number
    that is not finite becomes null, as everywhere)."""
    head = _plain({"t_first_s": view.t_first_s, "t_last_s": view.t_last_s,
                   "t0_s": view.t0_s, "t1_s": view.t1_s, "points_in_view": view.points_in_view,
                   "every_point": view.every_point, "complete": view.complete,
                   "points_total": view.points_total})
    head["traces"] = {q: {"t": _numbers(tr.t_s), "y": _numbers(tr.y)}
                      for q, tr in view.traces.items()}
    return json.dumps(head, allow_nan=False, separators=(",", ":"))


def _numbers(values: np.ndarray) -> list[float | None]:
    import numpy as np

    out = values.tolist()
    if not np.isfinite(values).all():
        out = [v if math.isfinite(v) else None for v in out]
    return out
