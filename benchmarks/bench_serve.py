"""elman serve under a constant request rate: forecasts by series id and durable updates.

The load is open-loop: request ``i`` is due at ``t0 + i / rate`` whatever happened before,
and its latency is measured from that due time, so a server that falls behind shows its
queueing in the numbers instead of hiding it (no coordinated omission). The client is a
small asyncio HTTP/1.1 client with keep-alive connections (no wrk2 or oha is installed
here); it runs on the same machine as the server and takes part of its CPU.

Phases (each ``--seconds`` long, after a warm-up that loads every series):

* ``forecast``: ``POST /v1/forecast {"series": ID}`` for random ids of the 100 series;
* ``update``: ``POST /v1/series/ID/observations`` with one new point, round-robin over the
  100 series (each series always on the same connection, so its points arrive in order);
  every reply comes after the fsync of its log record;
* ``framework``: ``GET /healthz``-like routes on a bare ASGI app and on a Starlette app
  of the same single route, both under uvicorn: the per-request cost of Starlette's
  routing, and its import time (FastAPI is built on Starlette, so it can only add to it).

The model: the default LSTM (hidden 64, direct, horizon 6) trained for one epoch on
``builtin:many_series`` (100 monthly series). Results: ``benchmarks/results/serve.{json,md}``.

Usage::

    python benchmarks/bench_serve.py                 # rates 250, 500, 1000 per second, 5 s each
    python benchmarks/bench_serve.py --quick         # one rate, 2 s
    python benchmarks/bench_serve.py --run DIR       # reuse a trained run
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
from common import machine_info, md_table, write_results  # type: ignore[import-not-found]

ROOT = Path(__file__).resolve().parents[1]
ENV = dict(os.environ, PYTHONPATH=str(ROOT / "src"), PYTHONUNBUFFERED="1")

BARE_APP = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", b"15")]})
    await send({"type": "http.response.body", "body": b'{"status":"ok"}'})
"""
STARLETTE_APP = """
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

async def healthz(request):
    return JSONResponse({"status": "ok"})

app = Starlette(routes=[Route("/healthz", healthz, methods=["GET"])])
"""


# ---------------------------------------------------------------- a small HTTP/1.1 client
class Conn:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def send(self, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
        head = (f"{method} {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n")  # fmt: skip
        self.writer.write(head.encode() + body)
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.lower() == b"content-length":
                length = int(value)
        return status, await self.reader.readexactly(length)


async def connect(port: int, n: int) -> list[Conn]:
    out = []
    for _ in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        out.append(Conn(r, w))
    return out


async def open_loop(port: int, rate: float, seconds: float, requests: Any, pools: int) -> dict:
    """Send ``requests(i) -> (pool, method, path, body)`` at ``rate`` per second."""
    conns = await connect(port, pools * 2)
    queues = [asyncio.Queue() for _ in range(pools)]
    for i, c in enumerate(conns):
        queues[i % pools].put_nowait(c)
    clock = time.perf_counter  # uvloop's loop.time() counts whole milliseconds
    latencies: list[float] = []
    codes: Counter[int] = Counter()

    async def one(due: float, pool: int, method: str, path: str, body: bytes) -> None:
        conn = await queues[pool].get()
        try:
            status, _ = await conn.send(method, path, body)
        finally:
            queues[pool].put_nowait(conn)
        latencies.append(clock() - due)
        codes[status] += 1

    n = int(rate * seconds)
    t0 = clock() + 0.05
    tasks = []
    for i in range(n):
        due = t0 + i / rate
        if (wait := due - clock()) > 0:
            await asyncio.sleep(wait)
        tasks.append(asyncio.ensure_future(one(due, *requests(i))))
    await asyncio.gather(*tasks)
    elapsed = clock() - t0
    for c in conns:
        c.writer.close()
    lat = np.array(latencies) * 1000
    return {
        "rate": rate, "requests": n, "achieved_per_s": round(n / elapsed, 1),
        "p50_ms": round(float(np.percentile(lat, 50)), 2),
        "p99_ms": round(float(np.percentile(lat, 99)), 2),
        "max_ms": round(float(lat.max()), 2), "codes": dict(codes),
    }  # fmt: skip


# ---------------------------------------------------------------- processes
def start(cmd: list[str], pattern: str) -> tuple[subprocess.Popen, int, float]:
    """Start a server; returns it, its port and the seconds until it answered."""
    began = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=ENV, cwd=ROOT)  # fmt: skip
    assert proc.stdout is not None
    for line in proc.stdout:
        found = re.search(pattern, line)
        if found:
            port = int(found.group(1))
            break
    else:
        raise RuntimeError(f"{cmd} did not start")
    while True:  # until it answers
        try:
            import urllib.request

            urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
            return proc, port, time.perf_counter() - began
        except OSError:
            time.sleep(0.02)


def train(out: Path, norm: str = "last") -> Path:
    subprocess.run(
        [sys.executable, "-m", "elman", "train", "--data", "builtin:many_series", "--epochs", "1",
         "--horizon", "6", "--seed", "0", "--norm", norm, "--out", str(out), "--no-progress-bar",
         "--ensemble", "none"],  # the measured configuration: a window network
        check=True, env=ENV, capture_output=True,
    )  # fmt: skip
    return out


def serve_phases(run: Path, rates: list[float], seconds: float) -> tuple[list[dict], float]:
    state = tempfile.mkdtemp(prefix="bench-serve-")
    cmd = [sys.executable, "-m", "elman", "serve", str(run), "--port", "0", "--state", state]
    proc, port, startup = start(cmd, r"127\.0\.0\.1:(\d+)")
    ids = [f"s{k:03d}" for k in range(100)]
    rows = []
    try:
        warm = lambda i: (0, "POST", "/v1/forecast", b'{"series": "%s"}' % ids[i % 100].encode())  # noqa: E731
        asyncio.run(open_loop(port, 100, 2, warm, 8))  # loads every series' forecaster
        rng = random.Random(0)
        for rate in rates:
            pick = [rng.randrange(100) for _ in range(int(rate * seconds))]

            def fc(i: int, pick: list[int] = pick) -> tuple:
                return 0, "POST", "/v1/forecast", b'{"series": "%s"}' % ids[pick[i]].encode()

            rows.append(
                {"phase": "forecast by id", **asyncio.run(open_loop(port, rate, seconds, fc, 16))}
            )
        month = [240] * 100  # the next month index of each series (the data has 240 months)

        def up(i: int) -> tuple:
            k = i % 100
            m = month[k]
            month[k] += 1
            stamp = f"{2000 + m // 12}-{m % 12 + 1:02d}"
            body = b'{"observations": {"time": ["%s"], "value": [%.3f]}}' % (
                stamp.encode(),
                10 + rng.random(),
            )
            return k % 50, "POST", f"/v1/series/{ids[k]}/observations", body

        # one update per series first: it builds the series' online learner (and, in a
        # fresh process without numba's on-disk cache, compiles the kernels)
        asyncio.run(open_loop(port, 100, 1, up, 50))
        for rate in rates:
            rows.append(
                {"phase": "durable update", **asyncio.run(open_loop(port, rate, seconds, up, 50))}
            )
    finally:
        proc.terminate()
        proc.wait()
    return rows, startup


STARLETTE_IMPORT = "import starlette.applications, starlette.routing, starlette.responses"


def import_seconds(statement: str, repeats: int = 3) -> float:
    """Best wall time of a fresh interpreter running ``statement``, less an empty one's."""

    def best(code: str) -> float:
        times = []
        for _ in range(repeats):
            t = time.perf_counter()
            subprocess.run([sys.executable, "-c", code], check=True)
            times.append(time.perf_counter() - t)
        return min(times)

    return max(best(statement) - best("pass"), 0.0)


def framework_phase(rate: float, seconds: float, repeats: int = 1) -> list[dict]:
    rows = []
    apps = (("bare ASGI", BARE_APP), ("Starlette", STARLETTE_APP)) * repeats  # alternating
    with tempfile.TemporaryDirectory() as tmp:
        for name, code in apps:
            Path(tmp, f"app_{len(rows)}.py").write_text(code)
            cmd = [sys.executable, "-m", "uvicorn", f"app_{len(rows)}:app", "--port", "0",
                   "--log-level", "info", "--app-dir", tmp, "--no-access-log"]  # fmt: skip
            proc, port, startup = start(cmd, r"http://127\.0\.0\.1:(\d+)")
            try:
                get = lambda i: (0, "GET", "/healthz", b"")  # noqa: E731
                asyncio.run(open_loop(port, rate, 1, get, 16))  # warm-up
                res = asyncio.run(open_loop(port, rate, seconds, get, 16))
            finally:
                proc.terminate()
                proc.wait()
            rows.append({"phase": f"framework: {name}", "startup_s": round(startup, 2), **res})
    rows[-1]["starlette_import_ms"] = round(1000 * import_seconds(STARLETTE_IMPORT), 1)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--run", type=Path, help="a trained run directory to reuse")
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rates", default="250,500,1000")
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--norm", default="last", help="the run's --norm when it is trained here")
    ap.add_argument("--name", default="serve", help="results go to results/NAME.{json,md}")
    ap.add_argument("--framework-only", action="store_true", help="only bare ASGI vs Starlette")
    ap.add_argument("--repeats", type=int, default=1, help="framework runs of each app")
    ap.add_argument("--client-loop", choices=("asyncio", "uvloop"), default="asyncio",
                    help="the load generator's event loop")
    args = ap.parse_args()
    client_loop = "asyncio"
    if args.client_loop == "uvloop":  # lighter, where installed (uvicorn[standard] brings it)
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
        client_loop = "uvloop"
    rates = [float(r) for r in args.rates.split(",")]
    seconds = args.seconds
    if args.quick:
        rates, seconds = rates[-1:], 2.0
    rows: list[dict] = []
    startup, run = float("nan"), None
    if not args.framework_only:
        run = args.run or train(
            Path(tempfile.mkdtemp(prefix="bench-serve-run-")) / "run", args.norm
        )
        rows, startup = serve_phases(run, rates, seconds)
    rows += framework_phase(max(rates), seconds, args.repeats)
    table = md_table(
        ["phase", "target /s", "achieved /s", "p50 ms", "p99 ms", "max ms", "status codes"],
        [[r["phase"], int(r["rate"]), r["achieved_per_s"], r["p50_ms"], r["p99_ms"], r["max_ms"],
          ", ".join(f"{k}: {v}" for k, v in sorted(r["codes"].items()))] for r in rows],
    )  # fmt: skip
    fw = [r for r in rows if r["phase"].startswith("framework")]
    table += "\n" + md_table(
        ["app", "start-up to first answer (s)", "extra import time of starlette (ms)"],
        [[r["phase"].split(": ")[1], r["startup_s"], r.get("starlette_import_ms", 0)] for r in fw],
    )
    if run is not None:
        table += f"\n`elman serve` start-up to its first answer: {startup:.2f} s (load + replay).\n"
    table += f"\nLoad generator: {client_loop} event loop, {seconds:g} s per phase.\n"
    report = {"machine": machine_info(), "rows": rows, "serve_startup_s": round(startup, 2),
              "run": str(run), "seconds": seconds, "client_loop": client_loop}  # fmt: skip
    write_results(args.name, report, table)
    print(table)


if __name__ == "__main__":
    main()
