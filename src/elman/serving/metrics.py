"""Request counts, latency quantiles and update rates in Prometheus' text format."""

from __future__ import annotations

import time
from collections import defaultdict, deque
from typing import Any

import numpy as np

QUANTILES = (0.5, 0.9, 0.99)
WINDOW = 4096  # latencies kept per route for the quantiles (the most recent ones)
RATE_SPAN = 60.0  # seconds over which updates per second are averaged


class Metrics:
    """Counters a server keeps while it runs; :meth:`render` writes them for ``/metrics``."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.requests: dict[tuple[str, int], int] = defaultdict(int)
        self.latency: dict[str, deque[float]] = defaultdict(lambda: deque(maxlen=WINDOW))
        self.latency_sum: dict[str, float] = defaultdict(float)
        self.latency_count: dict[str, int] = defaultdict(int)
        self.updates = 0
        self.points = 0
        self.skipped = 0
        self.recent: deque[float] = deque()  # times of the updates of the last RATE_SPAN s

    def request(self, route: str, status: int, seconds: float) -> None:
        """Count one answered request."""
        self.requests[(route, status)] += 1
        self.latency[route].append(seconds)
        self.latency_sum[route] += seconds
        self.latency_count[route] += 1

    def update(self, points: int, skipped: int) -> None:
        """Count one applied update of ``points`` new points (``skipped`` already known)."""
        now = time.monotonic()
        self.updates += 1
        self.points += points
        self.skipped += skipped
        self.recent.append(now)
        while self.recent and self.recent[0] < now - RATE_SPAN:
            self.recent.popleft()

    def updates_per_second(self) -> float:
        """Updates per second over the last minute (or since the start, if sooner)."""
        now = time.monotonic()
        while self.recent and self.recent[0] < now - RATE_SPAN:
            self.recent.popleft()
        span = min(RATE_SPAN, max(now - self.started, 1e-9))
        return len(self.recent) / span

    def render(self, extra: dict[str, Any]) -> str:
        """The Prometheus text exposition (version 0.0.4)."""
        out = [
            "# HELP elman_requests_total HTTP requests answered, by route and status code.",
            "# TYPE elman_requests_total counter",
        ]
        for (route, status), n in sorted(self.requests.items()):
            out.append(f'elman_requests_total{{route="{route}",code="{status}"}} {n}')
        out += [
            "# HELP elman_request_duration_seconds Time to answer a request, by route "
            f"(quantiles over the last {WINDOW} requests).",
            "# TYPE elman_request_duration_seconds summary",
        ]
        for route, values in sorted(self.latency.items()):
            qs = np.quantile(np.fromiter(values, float), QUANTILES) if values else ()
            for q, v in zip(QUANTILES, qs, strict=False):
                out.append(
                    f'elman_request_duration_seconds{{route="{route}",quantile="{q}"}} {v:.6g}'
                )
            out.append(
                f'elman_request_duration_seconds_sum{{route="{route}"}} '
                f"{self.latency_sum[route]:.6g}"
            )
            out.append(
                f'elman_request_duration_seconds_count{{route="{route}"}} '
                f"{self.latency_count[route]}"
            )
        gauges = {
            "elman_updates_total": (
                "counter",
                "Updates applied (one per accepted request).",
                self.updates,
            ),
            "elman_points_total": ("counter", "New points learned from.", self.points),
            "elman_points_skipped_total": (
                "counter",
                "Points at or before the last committed time stamp, skipped.",
                self.skipped,
            ),
            "elman_updates_per_second": (
                "gauge",
                "Updates per second over the last minute.",
                round(self.updates_per_second(), 3),
            ),
            **extra,
        }
        for name, (kind, help_text, value) in gauges.items():
            out += [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", f"{name} {value}"]
        return "\n".join(out) + "\n"
