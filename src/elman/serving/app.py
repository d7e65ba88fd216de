"""The HTTP routes of ``elman serve`` (Starlette), over a :class:`~elman.serving.store.Store`.

Concurrency: each series has an ``asyncio.Lock``; an update holds it from the idempotency
check through learning and the fsync of its log record, and a forecast by series id holds
it while it reads, so updates of one series apply one at a time in arrival order and a
forecast never sees a half-applied or unacknowledged update. The model work runs in worker
threads (one torch thread each), so different series proceed in parallel.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import os
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from elman.errors import ConfigError, ElmanError, one_line
from elman.files import SERVE_STATE
from elman.serving.metrics import Metrics
from elman.serving.model import ServedModel, to_columns
from elman.serving.page import Picture, page
from elman.serving.store import CommitLog, SeriesState, Store, encode
from elman.serving.tables import ApiError, Limits, flag, parse_body, table_of

log = logging.getLogger(__name__)

OPEN_ROUTES = ("/healthz", "/readyz")  # answered without the token
# An update of at most this many points learns on the event loop: for one point (about half
# a millisecond with the compiled window kernel) a worker thread's hand-off costs more than
# it saves. Larger updates, a series' first (its model is loaded) and forecasts use threads.
INLINE_POINTS = 8
Handler = Callable[[Request], Awaitable[Response]]


@dataclass(frozen=True)
class ServeOptions:
    """How the service keeps state and what it accepts."""

    state: str | None = None  # state directory; None: RUN_DIR/serve-state
    snapshot_every: int = 100  # updates of a series between two snapshots of it
    limits: Limits = field(default_factory=Limits)
    token: str | None = None  # required as "Authorization: Bearer TOKEN" when set
    page_series: int = 12  # series drawn on the / page


class Service:
    """The model, the state, the counters and the handlers of one server."""

    def __init__(self, run_dir: str | Path, options: ServeOptions | None = None) -> None:
        self.options = opts = options or ServeOptions()
        self.model = ServedModel(run_dir)
        state = Path(opts.state) if opts.state else Path(run_dir) / SERVE_STATE
        self.store = Store(self.model, state, opts.snapshot_every)
        self.store.replay()
        self.log = CommitLog(self.store.log_path)
        self.metrics = Metrics()
        self.limits = opts.limits

    # ------------------------------------------------------------------ plumbing
    def route(self, name: str, fn: Handler) -> Handler:
        """``fn`` with the token check, one-line JSON errors and the request counters."""

        async def handler(request: Request) -> Response:
            start = time.perf_counter()
            try:
                self._authorize(request)
                response = await fn(request)
            except ApiError as exc:
                response = JSONResponse(exc.to_json(), exc.status)
            except ElmanError as exc:
                response = JSONResponse({"error": one_line(str(exc)), "field": None}, 400)
            except Exception as exc:  # the server stays up; the log has the traceback
                log.exception("%s %s failed", request.method, request.url.path)
                text = one_line(f"internal error ({type(exc).__name__}: {exc}); state unchanged")
                response = JSONResponse({"error": text, "field": None}, 500)
            self.metrics.request(name, response.status_code, time.perf_counter() - start)
            return response

        return handler

    def _authorize(self, request: Request) -> None:
        token = self.options.token
        if token is None or request.url.path in OPEN_ROUTES:
            return
        given = request.headers.get("authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            raise ApiError(
                401, "missing or wrong token: send 'Authorization: Bearer TOKEN'", "authorization"
            )

    async def body(self, request: Request) -> dict[str, Any]:
        """The request body (within ``--max-body``) as a JSON object; query options merged in."""
        limit = self.limits.max_body
        declared = request.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise ApiError(
                413,
                f"the body has {declared} bytes, above the limit of {limit} (--max-body)",
                "body",
            )
        chunks, size = [], 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise ApiError(413, f"the body has more than {limit} bytes (--max-body)", "body")
            chunks.append(chunk)
        parsed = parse_body(b"".join(chunks), request.headers.get("content-type"))
        return {**request.query_params, **parsed}

    @staticmethod
    async def work(fn: Callable[..., Any], *args: Any) -> Any:
        """Model work, in a worker thread."""
        return await asyncio.to_thread(fn, *args)

    # ------------------------------------------------------------------ routes
    async def healthz(self, request: Request) -> Response:
        return JSONResponse({"status": "ok"})

    async def readyz(self, request: Request) -> Response:
        problems = []
        if self.log.failed:
            problems.append(f"update log: {self.log.failed}")
        if not os.access(self.store.dir, os.W_OK):
            problems.append(f"state directory {self.store.dir} is not writable")
        body = {
            "ready": not problems,
            "problems": problems,
            "replayed": self.store.replayed,
            "series_loaded": sum(s.forecaster is not None for s in self.store.series.values()),
        }
        return JSONResponse(body, 200 if not problems else 503)

    async def model_card(self, request: Request) -> Response:
        high, name = self.model.horizon_limit(self.limits)
        return JSONResponse(
            {
                **self.model.card(),
                "max_horizon": high,
                "max_horizon_by": name,
                "limits": vars(self.limits),
            }
        )

    async def forecast(self, request: Request) -> Response:
        body = await self.body(request)
        horizon = self.model.horizon(body.get("horizon"), self.limits)
        levels = self.model.levels(body.get("intervals"))
        future = self.model.future_table(
            table_of(body, "future", self.limits) if "future" in body else None
        )
        key = "table" if "table" in body else "history"
        if "series" in body:
            if key in body:
                raise ApiError(
                    400,
                    "give either 'series' (forecast from the state the server "
                    "holds) or 'history' (from the data sent), not both",
                    "series",
                )
            st = self.store.state(str(body["series"]))
            version, table = await self.held_forecast(st, horizon, levels, future)
            answer: dict[str, Any] = {"series": st.sid, "version": version}
        elif key in body:
            series = await self.work(self.model.history, table_of(body, key, self.limits), key)
            table = await self.work(
                self.model.base.predict, horizon, series, future, levels or None
            )
            answer = {}
        else:
            raise ApiError(
                400,
                "give 'series' (an id the server holds) or 'history' (a table of past values)",
                "history",
            )
        return self._table_response(request, body, table, {"horizon": horizon, **answer})

    async def held_forecast(
        self, st: SeriesState, horizon: int, levels: tuple[int, ...], future: pd.DataFrame | None
    ) -> tuple[int, pd.DataFrame]:
        """The forecast of a held series and the state version it continues.

        Without future covariates the forecast is a function of the state alone, so it is
        kept per version: until the next update, the same request is answered from memory.
        A cached entry is of a committed version (the lock is held from learning to the
        fsync), so reading it without the lock is still consistent.
        """
        key = (horizon, levels)
        version, cache = st.cache_version, st.cache  # one read: an update replaces both
        hit = cache.get(key) if future is None and version == st.version else None
        if hit is not None:
            return version, hit
        async with st.lock:
            return await self._forecast_locked(st, horizon, levels, future)

    async def _forecast_locked(
        self, st: SeriesState, horizon: int, levels: tuple[int, ...], future: pd.DataFrame | None
    ) -> tuple[int, pd.DataFrame]:
        table = await self.work(self._predict_held, st, horizon, levels, future)
        if future is None:
            if st.cache_version != st.version:
                st.cache, st.cache_version = {}, st.version
            st.cache[(horizon, levels)] = table
        return st.version, table

    def _predict_held(
        self, st: SeriesState, horizon: int, levels: tuple[int, ...], future: pd.DataFrame | None
    ) -> pd.DataFrame:
        return self.store.forecaster(st).predict(horizon, None, future, levels or None)

    def _table_response(
        self, request: Request, body: dict[str, Any], table: pd.DataFrame, head: dict[str, Any]
    ) -> Response:
        wants_csv = body.get("format") == "csv" or "text/csv" in request.headers.get("accept", "")
        if wants_csv:
            return PlainTextResponse(table.to_csv(index_label="time"), media_type="text/csv")
        return JSONResponse({**head, "forecast": to_columns(table)})

    async def observations(self, request: Request) -> Response:
        sid = request.path_params["sid"]
        st = self.store.state(sid)
        try:  # an ES-RNN (or an ensemble around one) forecasts but does not learn online
            self.model.base.predictor.check_supports("learning from observations", online=True)
        except ConfigError as exc:
            raise ApiError(409, one_line(str(exc)), "series") from exc
        if self.model.base.predictor.layout.n_future:
            raise ApiError(
                409,
                "this model reads future covariates, which are unknown until "
                "a point arrives, so it cannot learn from observations",
                "series",
            )
        body = await self.body(request)
        key = "table" if "table" in body else "observations"
        table = table_of(body, key, self.limits)
        ahead = body.get("forecast", False)
        horizon = (
            None
            if ahead in (False, "false", "0", "no", "")
            else (self.model.horizon(None if flag_or_none(ahead) else ahead, self.limits))
        )
        levels = self.model.levels(body.get("intervals"))
        async with st.lock:
            if st.forecaster is not None and len(next(iter(table.values()), ())) <= INLINE_POINTS:
                prepared, record = self._learn(st, table)  # cheaper than a thread hand-off
            else:
                prepared, record = await self.work(self._learn, st, table)
            if record is not None:
                await self.log.append(encode(record))  # acknowledged only once on disk
                self.metrics.update(len(prepared.index), len(prepared.skipped))
                if self.store.snapshot_due(st):
                    await self.work(self._snapshot, st)
            answer: dict[str, Any] = {
                "series": sid,
                "version": st.version,
                "applied": len(prepared.index),
                "skipped": prepared.skipped,
                "last_time": str(st.forecaster.series[0].index[-1])
                if st.forecaster is not None
                else None,
            }
            if horizon is not None:  # of the version just committed
                _, ahead = await self._forecast_locked(st, horizon, levels, None)
                answer["forecast"] = to_columns(ahead)
        return JSONResponse(answer)

    def _learn(self, st: SeriesState, table: dict[str, list[Any]]) -> tuple[Any, Any]:
        prepared = self.store.prepare(st, table)
        if not len(prepared.index):
            return prepared, None
        return prepared, self.store.apply(st, prepared.index, prepared.values)

    def _snapshot(self, st: SeriesState) -> None:
        try:
            self.store.snapshot(st)
        except (OSError, ElmanError) as exc:  # the log still holds every update
            log.warning("snapshot of series %s failed (%s); the log keeps its updates", st.sid, exc)

    async def series_status(self, request: Request) -> Response:
        st = self.store.state(request.path_params["sid"])
        async with st.lock:
            return JSONResponse(self._status(st))

    def _status(self, st: SeriesState) -> dict[str, Any]:
        if st.forecaster is not None:
            last, online = st.forecaster.series[0].index[-1], st.forecaster.online_summary()
        else:
            last, online = self.model.base.series[self.model.position(st.sid)].index[-1], {}
        running, mae, errors = online.get("running_mae"), online.get("mae"), online.get("errors", 0)
        drift = bool(
            errors >= DRIFT_MIN_ERRORS
            and running is not None
            and mae
            and running > DRIFT_FACTOR * mae
        )
        return {
            "series": st.sid,
            "version": st.version,
            "updates_applied": st.version,
            "points_applied": st.points,
            "last_time": str(last),
            "running_mae": running,
            "mae": mae,
            "anomalies": online.get("anomalies", 0),
            "drift": drift,
            "snapshot_version": st.snapshot_version,
        }

    async def metrics_text(self, request: Request) -> Response:
        extra = {
            "elman_series_loaded": (
                "gauge",
                "Series whose forecaster is in memory.",
                sum(s.forecaster is not None for s in self.store.series.values()),
            ),
            "elman_log_fsyncs_total": (
                "counter",
                "fsync calls of the update log (group commits).",
                self.log.fsyncs,
            ),
            "elman_log_records_total": (
                "counter",
                "Records written to the update log.",
                self.log.records,
            ),
        }
        return PlainTextResponse(self.metrics.render(extra), media_type="text/plain; version=0.0.4")

    async def index(self, request: Request) -> Response:
        shown = self.model.ids[: self.options.page_series]
        pictures = []
        for sid in shown:
            st = self.store.state(sid)
            async with st.lock:
                pictures.append(await self.work(self._picture, st))
        hidden = len(self.model.ids) - len(shown)
        return HTMLResponse(page(self.model.card(), pictures, hidden))

    def _picture(self, st: SeriesState) -> Picture:
        if st.forecaster is not None:
            f = st.forecaster
            history, table = f.series[0], f.predict()
        else:
            history = self.model.base.series[self.model.position(st.sid)]
            table = self.model.base.predict(data=[history])
        target = self.model.targets[0]
        recent = history.tail(3 * len(table))
        return Picture(
            st.sid,
            st.version,
            recent.values[:, 0].tolist(),
            table[target].tolist(),
            str(recent.index[0]),
            str(table.index[-1]),
        )


DRIFT_MIN_ERRORS = 20  # errors seen before the drift flag may rise
DRIFT_FACTOR = 1.5  # drift: the running (recent) MAE above this times the MAE since the start


def flag_or_none(value: Any) -> bool:
    """Whether ``value`` is a plain yes (forecast the trained horizon) rather than a horizon."""
    if isinstance(value, bool) or (isinstance(value, str) and not value.strip().isdigit()):
        return flag(value, "forecast")
    return False


async def _http_error(request: Request, exc: Exception) -> Response:
    """Unknown paths and wrong methods, as one-line JSON like every other error."""
    assert isinstance(exc, HTTPException)
    text = f"{request.method} {request.url.path}: {exc.detail}"
    if exc.status_code == 404:
        text += "; see GET /v1/model and docs/serving.md for the routes"
    return JSONResponse({"error": text, "field": "path"}, exc.status_code)


def create_app(run_dir: str | Path, options: ServeOptions | None = None) -> Starlette:
    """The ASGI application serving the model in ``run_dir`` (loads it and replays its state).

    Run it with any ASGI server, e.g. ``uvicorn.run(create_app("run"))``, or test it with
    Starlette's ``TestClient``. :func:`elman.serving.serve` does both steps from the CLI.
    """
    service = Service(run_dir, options)

    @asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        service.log.start()
        try:
            yield
        finally:
            await service.log.close()

    r = service.route
    routes = [
        Route("/healthz", r("/healthz", service.healthz), methods=["GET"]),
        Route("/readyz", r("/readyz", service.readyz), methods=["GET"]),
        Route("/v1/model", r("/v1/model", service.model_card), methods=["GET"]),
        Route("/v1/forecast", r("/v1/forecast", service.forecast), methods=["POST"]),
        Route(
            "/v1/series/{sid}/observations",
            r("/v1/series/{id}/observations", service.observations),
            methods=["POST"],
        ),
        Route("/v1/series/{sid}", r("/v1/series/{id}", service.series_status), methods=["GET"]),
        Route("/metrics", r("/metrics", service.metrics_text), methods=["GET"]),
        Route("/", r("/", service.index), methods=["GET"]),
    ]
    app = Starlette(
        routes=routes, lifespan=lifespan, exception_handlers={HTTPException: _http_error}
    )
    app.state.service = service
    return app
