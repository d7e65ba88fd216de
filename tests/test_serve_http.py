"""elman serve as a real process over real HTTP: security defaults, limits, CLI errors,
concurrent updates, and a kill -9 crash test."""

from __future__ import annotations

import random
import socket
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from conftest import run_cli

from elman import Forecaster
from elman.files import SERVE_LOG

OBS = "/v1/series/{}/observations"


def test_loopback_needs_no_token_and_other_hosts_do(airline_run, tmp_path, server_process):
    local = server_process(airline_run, "--state", str(tmp_path / "a"))
    assert local.token is None
    assert httpx.get(local.url + "/v1/model").status_code == 200
    local.stop()
    public = server_process(airline_run, "--host", "0.0.0.0", "--state", str(tmp_path / "b"))
    url = public.url.replace("0.0.0.0", "127.0.0.1")
    assert public.token is not None and len(public.token) >= 32
    for path in ("/v1/model", "/metrics", "/", "/v1/series/default"):
        r = httpx.get(url + path)
        assert (r.status_code, r.json()["field"]) == (401, "authorization"), path
    r = httpx.post(url + OBS.format("default"), json={"observations": {}})
    assert r.status_code == 401
    wrong = {"Authorization": "Bearer " + public.token[:-1] + "x"}
    assert httpx.get(url + "/v1/model", headers=wrong).status_code == 401
    good = {"Authorization": f"Bearer {public.token}"}
    assert httpx.get(url + "/v1/model", headers=good).status_code == 200
    assert httpx.get(url + "/healthz").status_code == 200
    assert httpx.get(url + "/readyz").json()["ready"] is True


def test_a_token_file_sets_the_token(airline_run, tmp_path, server_process):
    token_file = tmp_path / "token"
    token_file.write_text("a-long-enough-secret-token\n")
    s = server_process(
        airline_run, "--token-file", str(token_file), "--state", str(tmp_path / "st")
    )
    assert s.token is None  # given, so not printed
    assert httpx.get(s.url + "/v1/model").status_code == 401
    auth = {"Authorization": "Bearer a-long-enough-secret-token"}
    assert httpx.get(s.url + "/v1/model", headers=auth).status_code == 200


def test_each_limit_is_answered_over_http_with_a_4xx_naming_it(
    airline_run, tmp_path, server_process
):
    s = server_process(airline_run, "--state", str(tmp_path / "st"), "--max-body", "4000",
                       "--max-points", "20", "--max-series", "2")  # fmt: skip
    url = s.url
    big = {"observations": {"time": ["1961-01"] * 500, "passengers": [1.0] * 500}}
    r = httpx.post(url + OBS.format("default"), json=big)
    assert r.status_code == 413 and "--max-body" in r.json()["error"]
    many = {"observations": {"time": ["1961-01"] * 21, "passengers": [1.0] * 21}}
    r = httpx.post(url + OBS.format("default"), json=many)
    assert r.status_code == 413 and "--max-points" in r.json()["error"]
    three = {"history": {"time": ["1960-01"] * 3, "passengers": [1.0] * 3}, "sizes": [1, 1, 1]}
    r = httpx.post(url + "/v1/forecast", json=three)
    assert r.status_code == 413 and "--max-series" in r.json()["error"]
    r = httpx.post(url + "/v1/forecast", json={"series": "default", "horizon": 7})
    assert (r.status_code, r.json()["field"]) == (400, "horizon")
    chunked = httpx.post(url + OBS.format("default"), content=iter([b"{" + b" " * 3000] * 3),
                         headers={"content-type": "application/json"})  # fmt: skip
    assert chunked.status_code == 413  # no Content-Length: counted while it streams
    assert httpx.get(url + "/v1/series/default").json()["version"] == 0
    assert httpx.get(url + "/readyz").json()["ready"] is True


def test_cli_errors_are_one_line(airline_run, tmp_path):
    missing = run_cli("serve", str(tmp_path / "nothing"))
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    try:
        port = str(busy.getsockname()[1])
        in_use = run_cli("serve", str(airline_run), "--port", port, "--state", str(tmp_path / "s"))
    finally:
        busy.close()
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # a directory cannot be made inside a file, even by root
    unwritable = run_cli("serve", str(airline_run), "--state", str(blocker / "st"), "--port", "0")
    results = {"missing": missing, "in use": in_use, "unwritable": unwritable}
    words = {"missing": "RUN_DIR", "in use": f"--port {port}", "unwritable": "--state"}
    for name, r in results.items():
        assert r.returncode != 0, name
        assert r.stderr.startswith("elman: error: ") and r.stderr.count("\n") == 1, r.stderr
        assert words[name] in r.stderr


def batches_for(k: int, count: int, seed: int) -> list[tuple[list[str], list[float]]]:
    """``count`` updates of series ``s{k}`` after the panel's end (2013-12): 1-2 points each."""
    rng = random.Random(seed * 1000 + k)
    out, month = [], 48
    for _ in range(count):
        n = rng.choice((1, 2))
        stamps = [f"{2010 + m // 12}-{m % 12 + 1:02d}" for m in range(month, month + n)]
        values = [round(10.0 * (k + 1) + rng.gauss(0, 1), 3) for _ in stamps]
        out.append((stamps, values))
        month += n
    return out


def offline(run: Path, k: int, batches: list[tuple[list[str], list[float]]]) -> pd.DataFrame:
    """What series ``s{k}`` forecasts after ``batches``, by Forecaster.update in this process."""
    f = Forecaster.load(run)
    f.series = [f.series[k]]
    for stamps, values in batches:
        f.update(pd.DataFrame({"month": stamps, "series": f"s{k}", "value": values}))
    return f.predict()


def test_concurrent_updates_of_several_series_equal_their_offline_replay(
    panel_run, tmp_path, server_process
):
    s = server_process(panel_run, "--state", str(tmp_path / "st"))
    plans = {k: batches_for(k, 8, seed=1) for k in range(3)}
    errors: list[str] = []

    def feed(k: int) -> None:
        with httpx.Client(base_url=s.url, timeout=30) as c:
            for stamps, values in plans[k]:
                body = {"observations": {"time": stamps, "value": values}}
                replies = []
                for _ in range(2):  # each update twice: the second is skipped by time stamp
                    replies.append(c.post(OBS.format(f"s{k}"), json=body).json())
                if replies[1]["applied"] != 0 or replies[1]["skipped"] != stamps:
                    errors.append(f"s{k}: {replies}")

    threads = [threading.Thread(target=feed, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    for k in range(3):
        got = httpx.post(s.url + "/v1/forecast", json={"series": f"s{k}"}).json()
        np.testing.assert_array_equal(
            got["forecast"]["value"], offline(panel_run, k, plans[k])["value"]
        )
        assert got["version"] == 8
    metrics = httpx.get(s.url + "/metrics").text
    fsyncs = next(
        int(x.split()[1]) for x in metrics.splitlines() if x.startswith("elman_log_fsyncs")
    )
    assert 1 <= fsyncs <= 24  # one per commit at most; concurrent ones share


@pytest.mark.slow
def test_kill_9_under_load_loses_no_acknowledged_update_and_applies_none_twice(
    panel_run, tmp_path, server_process
):
    state = tmp_path / "st"
    plans = {k: batches_for(k, 400, seed=2) for k in range(3)}
    acked = {k: 0 for k in range(3)}  # updates acknowledged (or found committed) per series
    rng = random.Random(0)
    cycles = 20
    for _ in range(cycles):
        s = server_process(panel_run, "--state", str(state), "--snapshot-every", "7")
        stop = threading.Event()

        def feed(k: int, url: str = s.url, stop: threading.Event = stop) -> None:
            with httpx.Client(base_url=url, timeout=10) as c:
                while not stop.is_set() and acked[k] < len(plans[k]):
                    stamps, values = plans[k][acked[k]]
                    body = {"observations": {"time": stamps, "value": values}}
                    try:
                        reply = c.post(OBS.format(f"s{k}"), json=body).json()
                    except httpx.HTTPError:
                        return  # killed before the reply: not acknowledged
                    assert reply["applied"] + len(reply["skipped"]) == len(stamps), reply
                    acked[k] += 1  # applied now, or (a resend) found committed before

        threads = [threading.Thread(target=feed, args=(k,)) for k in range(3)]
        for t in threads:
            t.start()
        time.sleep(rng.uniform(0.2, 1.2))
        s.kill()
        stop.set()
        for t in threads:
            t.join()
    s = server_process(panel_run, "--state", str(state))
    assert sum(acked.values()) > 3 * cycles
    for k in range(3):
        # a batch sent but not acknowledged may be committed: resend it (skipped if so)
        if acked[k] < len(plans[k]):
            stamps, values = plans[k][acked[k]]
            body = {"observations": {"time": stamps, "value": values}}
            assert httpx.post(s.url + OBS.format(f"s{k}"), json=body).status_code == 200
            acked[k] += 1
        status = httpx.get(s.url + f"/v1/series/s{k}").json()
        done = plans[k][: acked[k]]
        assert status["points_applied"] == sum(len(b[0]) for b in done)
        assert status["version"] == len(done)  # one record per batch, none twice
        assert status["last_time"] == done[-1][0][-1]
        got = httpx.post(s.url + "/v1/forecast", json={"series": f"s{k}"}).json()
        np.testing.assert_array_equal(
            got["forecast"]["value"], offline(panel_run, k, done)["value"]
        )
    assert (state / SERVE_LOG).exists()
