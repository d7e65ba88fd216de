"""elman serve's request logic, through Starlette's TestClient (real files, real model).

Oracles: ``Forecaster.predict`` and ``Forecaster.update`` called directly on the run, and a
second service started on the same state directory (replay).
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from starlette.testclient import TestClient

from elman import Forecaster
from elman.errors import CheckpointError, ConfigError
from elman.files import META, SERVE_LOG, SERVE_SNAPSHOTS, WEIGHTS
from elman.serving import Limits, ServeOptions, create_app
from elman.serving.store import encode

NEXT = ["1961-01", "1961-02", "1961-03", "1961-04", "1961-05", "1961-06"]


def client(run: Path, state: Path, **options) -> TestClient:
    return TestClient(create_app(run, ServeOptions(state=str(state), **options)))


def columns(response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()["forecast"]


def observe(c: TestClient, stamps: list[str], values: list[float], sid: str = "default", **kw):
    body = {"observations": {"time": stamps, "passengers": values}, **kw}
    return c.post(f"/v1/series/{sid}/observations", json=body)


def test_model_card_names_the_model_and_the_digests_of_its_files(airline_run, tmp_path):
    with client(airline_run, tmp_path / "st") as c:
        card = c.get("/v1/model").json()
    meta = json.loads((airline_run / META).read_text())
    weights = "sha256:" + hashlib.sha256((airline_run / WEIGHTS).read_bytes()).hexdigest()
    assert card["digests"][WEIGHTS] == weights
    assert card["digests"]["weights_sha256"] == meta["weights_sha256"]
    assert (card["model"], card["horizon"], card["frequency"], card["season"]) == (
        "lstm",
        6,
        "M",
        12,
    )
    assert card["targets"] == ["passengers"] and card["trained_range"] == ["1949-01", "1960-12"]
    assert card["max_horizon"] == 6  # a direct model stops at its trained horizon


def test_forecast_by_series_id_equals_forecaster_predict(airline_run, tmp_path):
    with client(airline_run, tmp_path / "st") as c:
        got = columns(c.post("/v1/forecast", json={"series": "default", "horizon": 4,
                                                    "intervals": [80]}))  # fmt: skip
    want = Forecaster.load(airline_run).predict(4, intervals=(80,))
    assert got["time"] == NEXT[:4]
    for name in want.columns:
        np.testing.assert_array_equal(got[name], want[name].to_numpy())


def test_stateless_forecast_from_json_and_csv_equals_predict_on_that_history(airline_run, tmp_path):
    stamps = [f"{y}-{m:02d}" for y in range(1954, 1958) for m in range(1, 13)]
    values = [100.0 + i + 10 * float(np.sin(i / 2)) for i in range(len(stamps))]
    csv = "time,passengers\n" + "".join(f"{t},{v!r}\n" for t, v in zip(stamps, values, strict=True))
    with client(airline_run, tmp_path / "st") as c:
        by_json = columns(
            c.post("/v1/forecast", json={"history": {"time": stamps, "passengers": values}})
        )
        by_csv = columns(c.post("/v1/forecast", content=csv.encode(),
                                headers={"content-type": "text/csv"}))  # fmt: skip
    frame = pd.DataFrame({"month": stamps, "passengers": values})
    want = Forecaster.load(airline_run).predict(data=frame)
    assert by_json == by_csv
    assert by_json["time"] == [f"1958-{m:02d}" for m in range(1, 7)]
    np.testing.assert_allclose(by_json["passengers"], want["passengers"], rtol=0, atol=1e-9)


def test_columnar_sizes_forecast_each_series_as_alone(panel_run, tmp_path):
    stamps = [f"{2012 + m // 12}-{m % 12 + 1:02d}" for m in range(24)]
    a = [20.0 + np.cos(m) for m in range(24)]
    b = [5.0 + 0.1 * m for m in range(20)]
    body = {"history": {"time": stamps + stamps[:20], "value": a + b},
            "sizes": [24, 20], "ids": ["a", "b"]}  # fmt: skip
    with client(panel_run, tmp_path / "st") as c:
        both = columns(c.post("/v1/forecast", json=body))
        alone = columns(c.post("/v1/forecast",
                               json={"history": {"time": stamps[:20], "value": b}}))  # fmt: skip
    assert both["series"] == ["a"] * 3 + ["b"] * 3
    assert both["time"][3:] == alone["time"] == ["2013-09", "2013-10", "2013-11"]
    np.testing.assert_allclose(both["value"][3:], alone["value"], rtol=0, atol=1e-9)


def test_observations_learn_like_forecaster_update(airline_run, tmp_path):
    batches = [(NEXT[:2], [420.0, 401.5]), (NEXT[2:3], [455.0]), (NEXT[3:6], [460.0, 470.0, 499.0])]
    with client(airline_run, tmp_path / "st") as c:
        for n, (stamps, values) in enumerate(batches, start=1):
            r = observe(c, stamps, values)
            assert r.json()["version"] == n and r.json()["applied"] == len(stamps)
        got = columns(c.post("/v1/forecast", json={"series": "default"}))
        status = c.get("/v1/series/default").json()
    f = Forecaster.load(airline_run)
    for stamps, values in batches:
        f.update(pd.DataFrame({"month": stamps, "passengers": values}))
    want = f.predict()
    np.testing.assert_array_equal(got["passengers"], want["passengers"].to_numpy())
    assert got["time"][0] == "1961-07"
    assert status["version"] == 3 and status["points_applied"] == 6
    assert status["last_time"] == "1961-06"
    assert status["running_mae"] == pytest.approx(f.online_summary()["running_mae"])


def test_a_repeated_update_is_skipped_by_time_stamp_and_changes_nothing(airline_run, tmp_path):
    with client(airline_run, tmp_path / "st") as c:
        first = observe(c, NEXT[:3], [420.0, 401.5, 430.0]).json()
        before = c.post("/v1/forecast", json={"series": "default"}).json()
        again = observe(c, NEXT[:4], [1.0, 2.0, 3.0, 440.0], forecast=True).json()
        after = c.post("/v1/forecast", json={"series": "default"}).json()
        same = observe(c, NEXT[:4], [1.0, 2.0, 3.0, 4.0]).json()
    assert first["version"] == 1 and first["skipped"] == []
    assert again["skipped"] == NEXT[:3] and again["applied"] == 1 and again["version"] == 2
    assert again["forecast"] == after["forecast"] != before["forecast"]
    assert same == {"series": "default", "version": 2, "applied": 0, "skipped": NEXT[:4],
                    "last_time": "1961-04"}  # fmt: skip


BAD = {
    "malformed JSON": ({"content": b'{"observations": '}, 400, "body"),
    "NaN": ({"content": b'{"observations": {"time": ["1961-01"], "passengers": [NaN]}}'},
            400, "body"),
    "text value": ({"json": {"observations": {"time": ["1961-01"], "passengers": ["many"]}}},
                   400, "passengers"),
    "null value": ({"json": {"observations": {"time": ["1961-01"], "passengers": [None]}}},
                   400, "passengers"),
    "wrong column": ({"json": {"observations": {"time": ["1961-01"], "pax": [1.0]}}},
                     400, "passengers"),
    "extra column": ({"json": {"observations": {"time": ["1961-01"], "passengers": [1.0],
                                                "x": [2.0]}}}, 400, "x"),
    "no time": ({"json": {"observations": {"passengers": [1.0]}}}, 400, "time"),
    "bad time": ({"json": {"observations": {"time": ["soon"], "passengers": [1.0]}}},
                 400, "time"),
    "off the grid": ({"json": {"observations": {"time": ["1961-03"], "passengers": [1.0]}}},
                     400, "time"),
    "ragged columns": ({"json": {"observations": {"time": ["1961-01"], "passengers": []}}},
                       400, "observations"),
    "not an object": ({"json": [1, 2]}, 400, "body"),
    "ragged CSV": ({"content": b"time,passengers\n1961-01\n",
                    "headers": {"content-type": "text/csv"}}, 400, "body"),
    "content type": ({"content": b"x", "headers": {"content-type": "application/xml"}},
                     415, "content-type"),
    "body too large": ({"json": {"observations": {"time": ["1961-01"] * 300,
                                                  "passengers": [1.0] * 300}}}, 413, "body"),
    "too many points": ({"json": {"observations": {"time": ["1961-01"] * 60,
                                                   "passengers": [1.0] * 60}}},
                        413, "observations"),
}  # fmt: skip


@pytest.mark.parametrize("case", list(BAD))
def test_bad_observations_get_a_4xx_naming_the_field_and_change_nothing(
    airline_run, tmp_path, case
):
    request, status, field = BAD[case]
    limits = Limits(max_body=2000, max_points=50)
    with client(airline_run, tmp_path / "st", limits=limits) as c:
        before = c.post("/v1/forecast", json={"series": "default"}).json()
        r = c.post("/v1/series/default/observations", **request)
        assert (r.status_code, r.json()["field"]) == (status, field), r.text
        assert "\n" not in r.json()["error"]
        assert c.post("/v1/forecast", json={"series": "default"}).json() == before
        assert c.get("/v1/series/default").json()["version"] == 0
        assert c.get("/healthz").status_code == 200
    assert (tmp_path / "st" / SERVE_LOG).read_bytes() == b""


@pytest.mark.parametrize(
    ("body", "status", "field", "words"),
    [
        ({"series": "nope"}, 404, "series", "unknown series 'nope'"),
        ({"series": "default", "horizon": 7}, 400, "horizon", "above the model's trained horizon"),
        ({"series": "default", "horizon": 0}, 400, "horizon", "must be >= 1"),
        ({"series": "default", "horizon": "x"}, 400, "horizon", "whole number"),
        ({"series": "default", "intervals": [150]}, 400, "intervals", "intervals"),
        ({}, 400, "history", "give 'series'"),
        ({"history": {"time": ["1960-01"], "pax": [1.0]}}, 400, "history.passengers", "no column"),
        ({"history": {"passengers": [1.0] * 40}}, 400, "history.time", "needs a 'time' column"),
    ],
)
def test_bad_forecast_requests_name_the_field(airline_run, tmp_path, body, status, field, words):
    with client(airline_run, tmp_path / "st") as c:
        r = c.post("/v1/forecast", json=body)
    assert (r.status_code, r.json()["field"]) == (status, field), r.text
    assert words in r.json()["error"]


def test_unknown_routes_and_series_answer_json(airline_run, tmp_path):
    with client(airline_run, tmp_path / "st") as c:
        assert c.get("/v2/nothing").json()["field"] == "path"
        assert c.get("/v1/forecast").status_code == 405
        r = c.get("/v1/series/nope")
    assert r.status_code == 404 and r.json()["error"].startswith("unknown series 'nope'")


def test_a_restart_replays_the_log_after_the_last_snapshot(airline_run, tmp_path):
    state = tmp_path / "st"
    values = [420.0, 401.5, 455.0, 460.0, 470.0]
    with client(airline_run, state, snapshot_every=2) as c:
        for stamp, value in zip(NEXT, values, strict=False):
            observe(c, [stamp], [value])
        before = c.post("/v1/forecast", json={"series": "default"}).json()
        status = c.get("/v1/series/default").json()
    assert status["snapshot_version"] == 4 and status["version"] == 5
    assert len((state / SERVE_LOG).read_bytes().splitlines()) == 5
    with client(airline_run, state, snapshot_every=2) as c:
        assert c.get("/readyz").json()["replayed"] == 5
        assert c.post("/v1/forecast", json={"series": "default"}).json() == before
        after = c.get("/v1/series/default").json()
    assert after == {**status, "snapshot_version": 5}  # the replayed record was snapshotted
    assert (state / SERVE_LOG).read_bytes() == b""  # and the log starts empty
    assert len(list((state / SERVE_SNAPSHOTS).iterdir())) == 1


def _updated(run: Path, values: list[float]) -> Forecaster:
    f = Forecaster.load(run)
    f.update(pd.DataFrame({"month": NEXT[: len(values)], "passengers": values}))
    return f


def test_learned_state_continues_exactly_where_the_updated_forecaster_is(airline_run):
    f = _updated(airline_run, [420.0, 401.5, 455.0])
    tensors, doc = f.learned_state()
    assert not any(k.startswith("model.") for k in tensors)  # the weights live in the learner
    json.dumps(doc)  # JSON as it is
    g = Forecaster.load(airline_run).load_learned_state(tensors, doc, "snap")
    pd.testing.assert_frame_equal(g.predict(), f.predict())
    more = pd.DataFrame({"month": NEXT[3:5], "passengers": [460.0, 470.0]})
    f.update(more)
    g.update(more)
    pd.testing.assert_frame_equal(g.predict(intervals=(80,)), f.predict(intervals=(80,)))
    assert g.online_summary() == f.online_summary()
    with pytest.raises(ConfigError, match="after update"):
        Forecaster.load(airline_run).learned_state()
    bad = {**tensors, "context.0": tensors["context.0"][:, :0]}
    with pytest.raises(CheckpointError, match="snap"):
        Forecaster.load(airline_run).load_learned_state(bad, doc, "snap")


def test_a_snapshot_is_one_file_and_a_restart_from_it_learns_on_as_if_never_stopped(
    airline_run, tmp_path
):
    values = [420.0, 401.5, 455.0, 460.0, 470.0, 480.0]
    with client(airline_run, tmp_path / "once") as c:
        for stamp, value in zip(NEXT, values, strict=True):
            observe(c, [stamp], [value])
        want = c.post("/v1/forecast", json={"series": "default", "intervals": [80]}).json()
    state = tmp_path / "st"
    with client(airline_run, state, snapshot_every=1) as c:
        for stamp, value in zip(NEXT[:3], values[:3], strict=True):
            observe(c, [stamp], [value])
    (snap,) = (state / SERVE_SNAPSHOTS).iterdir()  # the older ones were removed
    assert snap.is_file() and snap.name.endswith("-000000000003.safetensors")
    assert snap.stat().st_size < (airline_run / WEIGHTS).stat().st_size + 64 * 1024
    with client(airline_run, state, snapshot_every=1) as c:
        assert c.get("/readyz").json()["replayed"] == 3  # all three already in the snapshot
        assert c.get("/v1/series/default").json()["version"] == 3
        for stamp, value in zip(NEXT[3:], values[3:], strict=True):
            observe(c, [stamp], [value])
        got = c.post("/v1/forecast", json={"series": "default", "intervals": [80]}).json()
    assert got == want


def test_a_changed_snapshot_is_refused_in_one_line_naming_it(airline_run, tmp_path):
    state = tmp_path / "st"
    with client(airline_run, state, snapshot_every=1) as c:
        observe(c, NEXT[:1], [420.0])
    (snap,) = (state / SERVE_SNAPSHOTS).iterdir()
    data = bytearray(snap.read_bytes())
    data[-3] ^= 1  # a tensor byte
    snap.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{snap.name} does not match its tensors_sha256"):
        create_app(airline_run, ServeOptions(state=str(state)))


def test_a_snapshot_directory_of_the_earlier_layout_is_still_read(airline_run, tmp_path):
    state = tmp_path / "st"
    with client(airline_run, state):
        pass
    f = _updated(airline_run, [420.0, 401.5])
    key = hashlib.sha256(b"default").hexdigest()[:16]
    old = state / SERVE_SNAPSHOTS / f"{key}-000000000002"
    f.save(old)
    (old / "serving.json").write_text(json.dumps({"series": "default", "version": 2, "points": 2}))
    with client(airline_run, state) as c:
        assert c.get("/v1/series/default").json()["version"] == 2
        got = columns(c.post("/v1/forecast", json={"series": "default"}))
        observe(c, NEXT[2:3], [455.0])  # learns on; the next snapshot replaces the directory
    np.testing.assert_array_equal(got["passengers"], f.predict()["passengers"].to_numpy())
    with client(airline_run, state) as c:  # replayed, snapshotted in the new layout
        assert c.get("/v1/series/default").json()["version"] == 3
    assert [p.suffix for p in (state / SERVE_SNAPSHOTS).iterdir()] == [".safetensors"]


def test_a_torn_last_log_line_is_dropped_and_a_damaged_middle_refused(airline_run, tmp_path):
    state = tmp_path / "st"
    with client(airline_run, state, snapshot_every=100) as c:
        observe(c, NEXT[:1], [420.0])
    log = state / SERVE_LOG
    good = log.read_bytes()
    log.write_bytes(good + good[: len(good) // 2])  # a second record cut short by a crash
    with client(airline_run, state) as c:
        assert c.get("/v1/series/default").json()["version"] == 1
        observe(c, NEXT[1:2], [430.0])
    damaged = bytearray(log.read_bytes())
    damaged[12] ^= 1
    intact = encode({"s": "default", "v": 3, "t": ["1961-03"], "x": [[440.0]]})
    log.write_bytes(bytes(damaged) + intact)
    with pytest.raises(CheckpointError, match="line 1 is damaged and 1 intact line"):
        create_app(airline_run, ServeOptions(state=str(state)))


def test_a_state_directory_of_another_model_is_refused(airline_run, panel_run, tmp_path):
    with client(airline_run, tmp_path / "st"):
        pass
    with pytest.raises(Exception, match="holds the state of another model"):
        create_app(panel_run, ServeOptions(state=str(tmp_path / "st")))


def test_metrics_count_requests_and_updates_in_prometheus_text(airline_run, tmp_path):
    with client(airline_run, tmp_path / "st") as c:
        observe(c, NEXT[:2], [420.0, 401.5])
        c.post("/v1/forecast", json={"series": "nope"})
        text = c.get("/metrics").text
    assert 'elman_requests_total{route="/v1/series/{id}/observations",code="200"} 1' in text
    assert 'elman_requests_total{route="/v1/forecast",code="404"} 1' in text
    assert 'elman_request_duration_seconds{route="/v1/forecast",quantile="0.99"}' in text
    assert "elman_updates_total 1\n" in text and "elman_points_total 2\n" in text
    assert "elman_log_fsyncs_total 1\n" in text


def test_page_is_self_contained_with_the_card_and_a_picture_per_series(panel_run, tmp_path):
    with client(panel_run, tmp_path / "st") as c:
        html = c.get("/").text
    assert html.count("<svg") == 3 and "s2 &middot; state version 0" in html
    assert "gru" in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<script" not in html and "src=" not in html


def test_series_of_a_global_model_learn_independently(panel_run, tmp_path):
    with client(panel_run, tmp_path / "st") as c:
        before = {s: c.post("/v1/forecast", json={"series": s}).json() for s in ("s0", "s1")}
        r = c.post("/v1/series/s0/observations",
                   json={"observations": {"time": ["2014-01"], "value": [12.0]}})  # fmt: skip
        assert r.json()["version"] == 1
        assert c.post("/v1/forecast", json={"series": "s1"}).json() == before["s1"]
        assert c.post("/v1/forecast", json={"series": "s0"}).json() != before["s0"]


def test_series_updated_in_step_snapshot_in_turn(panel_run, tmp_path):
    def status(c):
        return {s: c.get(f"/v1/series/{s}").json()["snapshot_version"] for s in ("s0", "s1", "s2")}

    with client(panel_run, tmp_path / "st", snapshot_every=3) as c:
        seen = []
        for month in ("2014-01", "2014-02", "2014-03", "2014-04"):
            for s in ("s0", "s1", "s2"):  # one point for every series, as a feed sends them
                body = {"observations": {"time": [month], "value": [12.0]}}
                assert c.post(f"/v1/series/{s}/observations", json=body).status_code == 200
            seen.append(status(c))
    # positions 0, 1, 2 of three series shift their snapshot points by 0, 1 and 2 updates
    assert seen == [
        {"s0": 0, "s1": 0, "s2": 1},
        {"s0": 0, "s1": 2, "s2": 1},
        {"s0": 3, "s1": 2, "s2": 1},
        {"s0": 3, "s1": 2, "s2": 4},
    ]


def test_held_series_start_from_the_model_as_loaded_even_if_the_run_changes(airline_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(airline_run, run)
    want = Forecaster.load(run).predict()
    with client(run, tmp_path / "st") as c:
        (run / WEIGHTS).write_bytes(b"retrained meanwhile")
        got = columns(c.post("/v1/forecast", json={"series": "default"}))
    np.testing.assert_array_equal(got["passengers"], want["passengers"].to_numpy())


def test_updates_matched_by_their_text_keep_to_the_grid_around_a_refused_one(airline_run, tmp_path):
    with client(airline_run, tmp_path / "st") as c:
        assert observe(c, NEXT[:1], [420.0]).json()["version"] == 1
        refused = observe(c, NEXT[1:2], [1e300])  # matched by its text, then refused
        assert refused.status_code == 400 and "1961-02" in refused.text
        off_grid = observe(c, NEXT[2:3], [430.0])  # 1961-02 is still the next month
        assert (off_grid.status_code, off_grid.json()["field"]) == (400, "time")
        assert observe(c, NEXT[1:3], [401.5, 430.0]).json()["applied"] == 2
        spelled = observe(c, ["1961-4"], [440.0]).json()  # not the text the server prints
        assert (spelled["applied"], spelled["last_time"]) == (1, "1961-04")
        assert observe(c, NEXT[4:6], [470.0, 499.0]).json()["version"] == 4
        got = columns(c.post("/v1/forecast", json={"series": "default"}))
    f = Forecaster.load(airline_run)
    for stamps, values in [(NEXT[:1], [420.0]), (NEXT[1:3], [401.5, 430.0]),
                           (NEXT[3:4], [440.0]), (NEXT[4:6], [470.0, 499.0])]:  # fmt: skip
        f.update(pd.DataFrame({"month": stamps, "passengers": values}))
    np.testing.assert_array_equal(got["passengers"], f.predict()["passengers"].to_numpy())


def test_a_model_that_cannot_learn_online_refuses_observations_with_409(tmp_path):
    from elman.config import Config
    from elman.runs.workflows import train_run

    run = tmp_path / "esrnn"
    train_run(run, Config().replace(source="builtin:airline", model="esrnn", horizon=6,
                                    epochs=2, seed=0))  # fmt: skip
    with client(run, tmp_path / "st") as c:
        r = observe(c, NEXT[:1], [420.0])
        assert c.get("/v1/series/default").json()["version"] == 0  # nothing applied
    assert r.status_code == 409 and r.json()["field"] == "series"
    assert "not available for --model esrnn" in r.json()["error"]
