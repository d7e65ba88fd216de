"""Statistical forecasts from statsforecast: AutoETS and AutoTheta, one column at a time.

These are the classical methods a network should beat (ETS and Theta were the M3 and M4
benchmarks). They come from statsforecast (numba-compiled), imported on the first call
only, so ``import elman`` and the CLI's ``--help`` stay light:

* ``ets``: ``AutoETS(season_length=m)``, the ETS model (error, trend, season: additive,
  multiplicative or none, trend optionally damped) with the lowest AICc. statsforecast
  fits a seasonal model only when the history is longer than ``m`` and ``m <= 24``.
* ``theta``: ``AutoTheta(season_length=m)``, the best of the standard, optimised and
  dynamic Theta models; it deseasonalises (classical decomposition) when ``m >= 4``, the
  history has ``2 m`` points and the 90 % seasonality test passes.

:func:`forecast_column` forecasts one column; :mod:`elman.evaluation.baselines` wraps it as
the ``ets`` and ``theta`` baselines over ``[T, C]`` histories and over many cutoffs. Each fit
sees only its own history: one fit per series, column and cutoff. Fits are deterministic
(no random starts).

Short histories: ETS needs ``MIN_POINTS["ets"]`` points (7: its smallest model
has 2 parameters and statsforecast wants 4 more points than parameters) and Theta needs 4.
Long histories: a fit sees the last ``max(1000, 10 m)`` points (:func:`fit_window`), which
keeps one fit well under a second; the forecasts equal statsforecast's on that window.

A shorter or constant history, or one statsforecast cannot fit, gets the naive forecast
(its last value) instead; :func:`fallback_note` says so in one line for tables and reports.

Forms: an automatic fit chooses a *form* (the ETS components such as ``AAdN`` written
``AAND``, or the Theta variant such as ``OTM``) and fits its parameters. Given a form
(:func:`chosen_form` of an earlier fit), a fit only estimates that form's parameters, about
ten times faster for AutoETS and twice for AutoTheta; its forecasts equal the automatic
fit's whenever the automatic fit would choose the same form. An ensemble's validation
windows of one series use the form chosen at the earliest of them (see
:func:`elman.evaluation.ensemble.member_at_cutoffs`). A form that cannot be fitted to a
history falls back to the automatic fit.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

__all__ = [
    "MAX_POINTS",
    "MIN_POINTS",
    "fallback_note",
    "fit_window",
    "chosen_form",
    "cost_per_point",
    "forecast_column",
    "prefit",
    "short_histories",
]

log = logging.getLogger(__name__)

# Fewest history points each method fits; shorter histories get the naive forecast.
MIN_POINTS = {"ets": 7, "theta": 4}
# Most history points a fit sees (the most recent), unless ten seasons are more: AutoTheta's
# cost grows faster than the length (11 s of CPU for 10,000 points, 0.08 s for 1,000), and
# a backtest fits once per cutoff. Exponential smoothing weighs old points little anyway.
MAX_POINTS = 1000
# Fits not yet cached whose estimated cost (points x the method's measured cost per point,
# about 80 ms for AutoETS and 11 ms for AutoTheta on a 200-point quarterly history) reaches
# PARALLEL_SECONDS run on fit_workers() fresh processes (prefit), which take about 1.5 s to start.
COST_S_PER_POINT = {"ets": 4e-4, "theta": 6e-5}
PARALLEL_SECONDS = 4.0
# A fit of a given form costs about this share of an automatic fit (9 ms against 100 ms for
# AutoETS on a 200-point quarterly history; 9 against 22 ms for AutoTheta): the larger.
FIXED_FORM_COST = 0.4
MAX_FIT_WORKERS = 8  # at most this many fitting processes, and no more than usable CPUs
CACHE_ENTRIES = 100_000  # forecasts kept by the digest of their history (a few MB at most)
# key -> (forecast, the form the fit used or chose; None where it fell back to naive)
_FITTED: dict[tuple[Any, ...], tuple[np.ndarray, str | None]] = {}

# What statsforecast raises on a history it cannot fit ("tiny datasets", a degenerate
# optimisation); the forecast falls back to naive rather than stopping the evaluation.
_FIT_ERRORS = (NotImplementedError, ValueError, IndexError, ZeroDivisionError, FloatingPointError)


def _model(method: str, season: int, form: str | None = None) -> Any:
    """A fresh statsforecast model (imported here: statsforecast loads numba and pandas),
    choosing its form, or of the given ``form``."""
    from statsforecast.models import AutoETS, AutoTheta

    if method == "ets":
        if form is None:
            return AutoETS(season_length=season)
        return AutoETS(season_length=season, model=form[:3], damped=form[3] == "D")
    return AutoTheta(season_length=season, model=form)


def _form_of(method: str, fitted: Any) -> str:
    """The form a fitted statsforecast model has: ETS components (error, trend, season,
    ``D`` for a damped trend or ``N``) or the Theta variant."""
    doc = fitted.model_
    return str(doc["components"]) if method == "ets" else str(doc["modeltype"])


def fit_window(season: int) -> int:
    """How many of the most recent history points a fit sees: ``max(1000, 10 season)``."""
    return max(MAX_POINTS, 10 * int(season))


def forecast_column(
    method: str, y: np.ndarray, horizon: int, season: int, form: str | None = None
) -> np.ndarray:
    """Forecasts ``[H]`` of one column ``y [T]`` by ``method`` (``ets`` or ``theta``): the
    model's, fitted on the last :func:`fit_window` points, or the naive forecast when the
    history is too short or cannot be fitted. ``form`` fixes the model's form (see the
    module notes); by default the fit chooses it.

    A fit is deterministic, so its forecast is kept by the digest of the window it saw
    (:data:`CACHE_ENTRIES` at most): the hold-out's baselines, an ensemble's members and
    the forecast of one run fit each history once.
    """
    return _fitted(method, y, horizon, season, form)[0].copy()


def chosen_form(method: str, y: np.ndarray, horizon: int, season: int) -> str | None:
    """The form the automatic fit of ``y`` chose (fitting it, unless it is kept already),
    or None where it fell back to the naive forecast."""
    return _fitted(method, y, horizon, season, None)[1]


def _fitted(
    method: str, y: np.ndarray, horizon: int, season: int, form: str | None
) -> tuple[np.ndarray, str | None]:
    y, key = _keyed(method, y, horizon, season, form)
    hit = _FITTED.get(key)
    if hit is None:
        forecast, note, used = _fit_column(method, y, horizon, season, form)
        hit = _keep(key, forecast, note, used)
    return hit


def prefit(
    method: str, histories: list[np.ndarray], horizon: int, season: int,
    forms: list[str | None] | None = None,
) -> None:  # fmt: skip
    """Fit ``method`` to every 1-D history not fitted yet (of the form in ``forms`` where
    given), on several processes when the work is large, so that :func:`forecast_column`
    then reads each forecast from memory.

    Each history's fit is the one :func:`forecast_column` would do (the same window and
    fallback), so the results are identical; only the wall time changes. The fits run in
    :func:`fit_workers` fresh processes when the fits not yet done would take about
    :data:`PARALLEL_SECONDS` or more here (for example an M4 panel, or AutoETS on the
    validation windows of a dozen quarterly series), and here otherwise.
    """
    todo: dict[tuple[Any, ...], np.ndarray] = {}
    for y, form in zip(histories, forms or [None] * len(histories), strict=True):
        window, key = _keyed(method, y, horizon, season, form)
        if key not in _FITTED:
            todo[key] = window
    workers = min(fit_workers(), len(todo))
    cost = sum(len(w) * cost_per_point(method, k[-1] is not None) for k, w in todo.items())
    if workers < 2 or cost < PARALLEL_SECONDS:
        return  # forecast_column fits them one by one, here
    keys = sorted(todo, key=lambda k: -len(todo[k]))  # longest first, dealt out in turn
    shares = [keys[i::workers] for i in range(workers)]
    jobs = [[(todo[k], k[-1]) for k in share] for share in shares]
    try:
        done = _run_workers(method, jobs, horizon, season)
    except (OSError, RuntimeError, ValueError, KeyError) as exc:
        log.warning("%s: fitting on %d processes failed (%s); fitting here", method, workers, exc)
        return
    for key, (forecast, note, used) in zip(
        [k for share in shares for k in share], [r for share in done for r in share], strict=True
    ):
        _keep(key, forecast, note, used)


def cost_per_point(method: str, given_form: bool = False) -> float:
    """Estimated seconds of one fit of ``method`` per history point: an automatic fit tries
    every form; a fit of a given form costs :data:`FIXED_FORM_COST` of that."""
    cost = COST_S_PER_POINT.get(method, 0.0)
    return cost * FIXED_FORM_COST if given_form else cost


def fit_workers() -> int:
    """How many fitting processes :func:`prefit` may start: the usable CPUs (affinity and
    CPU quota, :func:`elman.runtime.usable_cpus`), at most :data:`MAX_FIT_WORKERS`."""
    from elman.runtime import usable_cpus

    return min(usable_cpus(), MAX_FIT_WORKERS)


def _run_workers(
    method: str, shares: list[list[tuple[np.ndarray, str | None]]], horizon: int, season: int
) -> list[list[tuple[np.ndarray, str | None, str | None]]]:
    """Each share of the histories fitted on its own fresh ``python`` process (neither a fork
    of a process holding torch's threads nor a multiprocessing spawn, which would run the
    caller's script again). Jobs and results travel over stdin and stdout as ``.npz``
    archives (arrays and one JSON text; nothing is unpickled). Every process is stopped
    before this returns or raises."""
    import queue
    import subprocess
    import sys
    import threading

    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    env.update(OMP_NUM_THREADS="1", NUMBA_NUM_THREADS="1")
    code = "from elman.evaluation.statistical import _worker; _worker()"
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for share in shares:
            procs.append(subprocess.Popen(
                [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=subprocess.PIPE, env=env,
            ))  # fmt: skip
            asked = {"method": method, "horizon": horizon, "season": season, "n": len(share),
                     "forms": [form for _, form in share]}  # fmt: skip
            job = _pack(asked, [y for y, _ in share])
            proc = procs[-1]
            assert proc.stdin is not None
            proc.stdin.write(job)  # the process reads all of it before it starts fitting
            proc.stdin.close()
            proc.stdin = None
        finished: queue.Queue[tuple[int, bytes, bytes]] = queue.Queue()
        for i, proc in enumerate(procs):  # stdout and stderr read together: no pipe fills up
            threading.Thread(
                target=lambda i=i, proc=proc: finished.put((i, *proc.communicate())), daemon=True
            ).start()
        out: list[list[tuple[np.ndarray, str | None, str | None]]] = [[] for _ in procs]
        for _ in procs:  # in the order they finish: the first failure stops the others
            i, data, err = finished.get()
            if procs[i].returncode != 0:
                lines = err.decode(errors="replace").strip().splitlines()
                raise RuntimeError(f"a fitting process failed: {lines[-1] if lines else ''}")
            head, forecasts = _unpack(data)
            notes: list[str | None] = list(head["notes"])
            forms: list[str | None] = list(head["forms"])
            out[i] = list(zip(forecasts, notes, forms, strict=True))
        return out
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


def _pack(head: dict[str, Any], arrays: list[np.ndarray]) -> bytes:
    """``head`` (JSON) and ``arrays`` as one ``.npz`` archive."""
    import io
    import json

    buf = io.BytesIO()
    named: dict[str, Any] = {f"a{i}": a for i, a in enumerate(arrays)}
    np.savez(buf, head=np.array(json.dumps(head)), **named)
    return buf.getvalue()


def _unpack(data: bytes) -> tuple[dict[str, Any], list[np.ndarray]]:
    """What :func:`_pack` wrote (read without pickle)."""
    import io
    import json

    with np.load(io.BytesIO(data), allow_pickle=False) as npz:
        head = json.loads(str(npz["head"]))
        return head, [np.asarray(npz[f"a{i}"], np.float64) for i in range(int(head["n"]))]


def _worker() -> None:
    """A fitting process: histories from stdin, forecasts and notes to stdout (see prefit)."""
    import sys

    head, ys = _unpack(sys.stdin.buffer.read())
    done = [
        _fit_column(head["method"], y, int(head["horizon"]), int(head["season"]), form)
        for y, form in zip(ys, head["forms"], strict=True)
    ]
    said = {"n": len(done), "notes": [d[1] for d in done], "forms": [d[2] for d in done]}
    sys.stdout.buffer.write(_pack(said, [d[0] for d in done]))


def _keyed(
    method: str, y: np.ndarray, horizon: int, season: int, form: str | None = None
) -> tuple[np.ndarray, tuple[Any, ...]]:
    """The window a fit of ``y`` sees, and its cache key (the window's digest; the form
    last)."""
    w = np.ascontiguousarray(np.asarray(y)[-fit_window(season) :], np.float64)
    digest = hashlib.blake2b(w.tobytes(), digest_size=16).digest()
    return w, (method, horizon, season, len(w), digest, form)


def _keep(
    key: tuple[Any, ...], forecast: np.ndarray, note: str | None, form: str | None
) -> tuple[np.ndarray, str | None]:
    if note:
        log.warning(note)
    if len(_FITTED) >= CACHE_ENTRIES:
        _FITTED.clear()
    _FITTED[key] = (forecast, form)
    return forecast, form


def _fit_column(
    method: str, y: np.ndarray, horizon: int, season: int, form: str | None = None
) -> tuple[np.ndarray, str | None, str | None]:
    """The forecast of one window, the line to log when it fell back to naive, and the form
    fitted (``form``, or the one chosen; None for naive). A ``form`` that cannot be fitted
    to this window gives way to the automatic fit."""
    note = None
    if len(y) >= MIN_POINTS[method] and np.ptp(y) > 0:
        try:  # short histories divide by zero inside statsforecast; the result is checked
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                model = _model(method, season, form).fit(y=y)
                mean = model.predict(h=horizon)["mean"]
            if np.all(np.isfinite(mean)):
                return np.asarray(mean, dtype=np.float64), None, _form_of(method, model)
            note = f"{method} gave non-finite forecasts; using the naive forecast"
        except _FIT_ERRORS as exc:
            note = f"{method} could not fit {len(y)} points ({exc}); using naive"
        if form is not None:  # that form does not suit this history: choose again
            return _fit_column(method, y, horizon, season)
    return np.full(horizon, y[-1]), note, None


def short_histories(method: str, lengths: ArrayLike) -> int:
    """How many of the history ``lengths`` are too short for ``method`` (0 for a method
    without a minimum)."""
    need = MIN_POINTS.get(method)
    return 0 if need is None else int(np.sum(np.asarray(lengths) < need))


def fallback_note(method: str, lengths: ArrayLike, what: str = "histories") -> str | None:
    """One line saying how many ``what`` got the naive forecast in place of ``method``,
    or None when every history was long enough."""
    count = short_histories(method, lengths)
    if not count:
        return None
    total = np.asarray(lengths).size
    return (
        f"{method}: {count} of {total} {what} had fewer than {MIN_POINTS[method]} points, "
        f"too few to fit; the naive forecast stands in for {method} there"
    )
