"""Synthetic series: the seed's sine, longer and noisier sines, Mackey-Glass, many series.

Every generator returns float64 numpy data and is deterministic given ``seed``.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from elman.errors import ConfigError


def _positive(name: str, value: float) -> None:
    if not value > 0:
        raise ConfigError(f"{name} must be > 0, got {value}")


def seed_sine() -> np.ndarray:
    """The seed tutorial's data: ``sin(t)`` at 21 points evenly spaced over [2, 10].

    Returns:
        ``[21]`` float64, exactly ``np.sin(np.linspace(2, 10, 21))``.
    """
    return np.sin(np.linspace(2, 10, 21))


def sine(
    n: int = 1000, period: float = 50.0, amplitude: float = 1.0, phase: float = 0.0
) -> np.ndarray:
    """A clean sine wave ``amplitude * sin(2 pi t / period + phase)`` for ``t = 0..n-1``.

    Returns:
        ``[n]`` float64.
    """
    _positive("n", n)
    _positive("period", period)
    t = np.arange(n, dtype=np.float64)
    return amplitude * np.sin(2.0 * math.pi * t / period + phase)


def noisy_sine(
    n: int = 1000, noise: float = 0.1, seed: int = 0, period: float = 50.0
) -> np.ndarray:
    """A sine wave plus Gaussian noise of standard deviation ``noise``.

    Returns:
        ``[n]`` float64.
    """
    if noise < 0:
        raise ConfigError(f"noise must be >= 0, got {noise}")
    rng = np.random.default_rng(seed)
    return sine(n, period) + noise * rng.standard_normal(n)


def drifting_sine(
    n: int = 5000,
    period_start: float = 50.0,
    period_end: float = 25.0,
    noise: float = 0.0,
    seed: int = 0,
) -> np.ndarray:
    """A sine whose frequency drifts linearly from ``1/period_start`` to ``1/period_end``.

    A fixed model slowly goes stale on it, which is what streaming (online) learning is for.

    Returns:
        ``[n]`` float64.
    """
    _positive("n", n)
    _positive("period_start", period_start)
    _positive("period_end", period_end)
    freq = np.linspace(1.0 / period_start, 1.0 / period_end, n)
    phase = 2.0 * math.pi * np.concatenate([[0.0], np.cumsum(freq[:-1])])
    rng = np.random.default_rng(seed)
    return np.sin(phase) + noise * rng.standard_normal(n)


def mackey_glass(
    n: int = 2000,
    tau: float = 17.0,
    beta: float = 0.2,
    gamma: float = 0.1,
    power: float = 10.0,
    dt: float = 1.0,
    subsample: int = 1,
    discard: int = 250,
    x0: float = 1.2,
    seed: int | None = None,
) -> np.ndarray:
    """The Mackey-Glass delay differential equation, integrated with fourth-order Runge-Kutta.

    ``dx/dt = beta * x(t - tau) / (1 + x(t - tau) ** power) - gamma * x(t)``

    The history buffer holds the last ``tau / dt`` states; the delayed term at the half step
    is the mean of its neighbours. The history starts at ``x0`` (plus uniform noise of width
    0.2 when ``seed`` is given). The first ``discard`` samples (the transient) are dropped and
    every ``subsample``-th step is kept. ``tau=17`` gives the classic mildly chaotic series.

    Args:
        n: Number of samples returned.
        tau: Delay (in time units, a multiple of ``dt``).
        beta, gamma, power: Equation parameters (standard: 0.2, 0.1, 10).
        dt: Integration step.
        subsample: Keep every ``subsample``-th integration step.
        discard: Samples dropped at the start.
        x0: Constant initial history.
        seed: Optional seed for noise on the initial history.

    Returns:
        ``[n]`` float64.
    """
    _positive("n", n)
    _positive("dt", dt)
    _positive("subsample", subsample)
    delay = int(round(tau / dt))
    if delay < 1:
        raise ConfigError(f"tau ({tau}) must be at least one step dt ({dt})")
    history = np.full(delay + 1, x0, dtype=np.float64)
    if seed is not None:
        history += 0.2 * (np.random.default_rng(seed).random(delay + 1) - 0.5)
    steps = (n + max(discard, 0)) * subsample
    out = np.empty(steps, dtype=np.float64)
    x = float(history[-1])
    buf = [float(v) for v in history]  # ring of the last delay + 1 states; buf[0] = x(t - tau)

    def f(xt: float, xd: float) -> float:
        return beta * xd / (1.0 + xd**power) - gamma * xt

    for i in range(steps):
        lag, lag_next = buf[0], buf[1]
        lag_mid = 0.5 * (lag + lag_next)
        k1 = f(x, lag)
        k2 = f(x + 0.5 * dt * k1, lag_mid)
        k3 = f(x + 0.5 * dt * k2, lag_mid)
        k4 = f(x + dt * k3, lag_next)
        x += dt * (k1 + 2 * k2 + 2 * k3 + k4) / 6.0
        buf.pop(0)
        buf.append(x)
        out[i] = x
    return out[::subsample][max(discard, 0) :][:n].copy()


def many_series(
    n_series: int = 10, length: int = 200, seed: int = 0, period: int = 12
) -> pd.DataFrame:
    """Related series sharing one seasonal shape, each with its own level, trend and noise.

    ``value = level_i + trend_i * t + amp_i * season(t) + noise_i * e``, where ``season``
    is a fixed mix of two harmonics of ``period``.

    Returns:
        Long-format DataFrame ``[n_series * length, 3]`` with columns ``series``
        (``'s000'``, ``'s001'``, ... so text order is numeric order), ``t`` (0..length-1) and
        ``value``.
    """
    _positive("n_series", n_series)
    _positive("length", length)
    _positive("period", period)
    rng = np.random.default_rng(seed)
    t = np.arange(length, dtype=np.float64)
    angle = 2.0 * math.pi * t / period
    season = np.sin(angle) + 0.4 * np.cos(2.0 * angle)  # [length]
    level = rng.uniform(5.0, 50.0, n_series)
    trend = rng.normal(0.0, 0.02, n_series) * level / 10.0
    amp = level * rng.uniform(0.1, 0.3, n_series)
    noise = amp * rng.uniform(0.05, 0.2, n_series)
    values = (
        level[:, None]
        + trend[:, None] * t
        + amp[:, None] * season
        + noise[:, None] * rng.standard_normal((n_series, length))
    )  # [n_series, length]
    width = max(3, len(str(n_series - 1)))
    ids = np.repeat([f"s{i:0{width}d}" for i in range(n_series)], length)
    return pd.DataFrame(
        {"series": ids, "t": np.tile(np.arange(length), n_series), "value": values.reshape(-1)}
    )
