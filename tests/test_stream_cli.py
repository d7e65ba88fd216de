"""``elman stream`` in real subprocesses: formats, bad points, errors, resume after kill -9."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from elman.data.synthetic import drifting_sine
from elman.forecaster import Forecaster

FRESH = ["--model-type", "lstm", "--hidden-size", "8", "--warmup", "16"]


def _values(n: int, seed: int = 0) -> np.ndarray:
    return drifting_sine(n, noise=0.02, seed=seed)


def _numbers(path: Path, values: np.ndarray) -> Path:
    path.write_text("".join(f"{float(v)!r}\n" for v in values))
    return path


def _rows(path: Path) -> list[str]:
    return path.read_text().splitlines()


def _stats(state: Path) -> dict:
    return json.loads((state / "stream.json").read_text())


def test_numbers_in_csv_out(cli, tmp_path):
    inp = _numbers(tmp_path / "in.txt", _values(200))
    out = tmp_path / "out.csv"
    r = cli("stream", *FRESH, "--input", str(inp), "--output", str(out))
    assert r.returncode == 0, r.stderr
    rows = _rows(out)
    assert rows[0] == "index,value,prediction,error,running_mae,anomaly"
    assert len(rows) == 201
    assert rows[1].endswith(",,,,0")  # warm-up: no prediction yet
    idx, value, pred, err, mae, flag = rows[-1].split(",")
    assert idx == "199" and float(value) - float(pred) == pytest.approx(float(err), abs=1e-6)
    assert "streamed 200 points" in r.stderr
    assert _stats(Path(str(out) + ".state"))["points"] == 200


def test_csv_with_time_in_json_lines_out(cli, tmp_path):
    values = _values(120)
    inp = tmp_path / "in.csv"
    inp.write_text("date,load\n" + "".join(f"2024-01-01T{i // 60:02d}:{i % 60:02d},{v}\n"
                                          for i, v in enumerate(values)))  # fmt: skip
    out = tmp_path / "out.jsonl"
    r = cli("stream", *FRESH, "--input", str(inp), "--output", str(out))
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in _rows(out)]
    assert len(recs) == 120
    assert recs[0]["time"] == "2024-01-01T00:00" and recs[0]["prediction"] is None
    last = recs[-1]
    assert last["value"] == pytest.approx(values[-1])
    assert last["error"] == pytest.approx(last["value"] - last["prediction"])
    assert isinstance(last["anomaly"], bool) and last["running_mae"] > 0


BAD = "time,value\n1,0.5\n2,abc\n3,\n4,nan\n5,1.0\n4,0.7\n6,1,2\n7,1.5\n8,2.0\n"


def test_bad_points_are_skipped_with_a_warning_and_counted(cli, tmp_path):
    inp = tmp_path / "in.csv"
    inp.write_text(BAD)
    out = tmp_path / "out.csv"
    r = cli("stream", *FRESH[:-1], "2", "--input", str(inp), "--output", str(out))
    assert r.returncode == 0, r.stderr
    for text in ("line 3: 'abc' is not a number", "line 4: the value is missing",
                 "line 5: the value 'nan' is not finite", "line 7: time '4' is not after",
                 "line 8: it has 3 fields"):  # fmt: skip
        assert text in r.stderr
    assert [row.split(",")[1] for row in _rows(out)[1:]] == ["1", "5", "7", "8"]
    assert _stats(Path(str(out) + ".state"))["bad_points"] == 5


@pytest.mark.slow
def test_on_bad_error_stops_clearly_and_resumes_after_the_fix(cli, tmp_path):
    inp = tmp_path / "in.csv"
    inp.write_text(BAD)
    out = tmp_path / "out.csv"
    args = ["stream", *FRESH[:-1], "2", "--input", str(inp), "--output", str(out),
            "--on-bad", "error"]  # fmt: skip
    r = cli(*args)
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [
        f"elman: error: {inp} line 3: 'abc' is not a number; the stream stopped before this "
        "line and the state is saved (fix the line, or use --on-bad skip)"
    ]
    assert len(_rows(out)) == 2  # header + the one good point
    clean = "time,value\n1,0.5\n5,1.0\n7,1.5\n8,2.0\n"
    inp.write_text(clean)
    assert cli(*args).returncode == 0
    ref_in, ref_out = tmp_path / "ref.csv", tmp_path / "ref_out.csv"
    ref_in.write_text(clean)
    assert cli("stream", *FRESH[:-1], "2", "--input", str(ref_in), "--output",
               str(ref_out)).returncode == 0  # fmt: skip
    assert out.read_bytes() == ref_out.read_bytes()


@pytest.mark.parametrize(
    "args,message",
    [
        (["--input", "nope.txt"], "--input 'nope.txt' does not exist"),
        (["--input", "in.txt", "--state", "a/b/c"], "--state 'a/b/c': folder 'a/b' does not exist"),
        (["--input", "in.txt", "--output", "no/out.csv"], "folder 'no' does not exist"),
        (["--input", "in.txt", "--output", "old.csv"], "already exists and there is no checkpoint"),
        (["--input", "in.txt", "--tbptt", "0"], "--tbptt (0) must be >= 1"),
    ],
)
def test_user_errors_are_one_line_and_exit_2(cli, tmp_path, args, message):
    _numbers(tmp_path / "in.txt", _values(40))
    (tmp_path / "old.csv").write_text("keep me\n")
    r = cli("stream", *FRESH, *args, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("elman: error:") and message in lines[0]
    assert (tmp_path / "old.csv").read_text() == "keep me\n"


def test_model_choice_is_required_and_exclusive(cli, tmp_path):
    for args in ([], ["--model", "m", "--model-type", "lstm"]):
        r = cli("stream", *args, "--input", "-")
        assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1


def test_a_resume_with_other_options_is_refused(cli, tmp_path):
    inp = _numbers(tmp_path / "in.txt", _values(60))
    out = tmp_path / "out.csv"
    assert cli("stream", *FRESH, "--input", str(inp), "--output", str(out)).returncode == 0
    r = cli("stream", *FRESH, "--lr", "0.1", "--input", str(inp), "--output", str(out))
    assert r.returncode == 2 and "was written with other online options" in r.stderr


@pytest.mark.slow
def test_stdin_replay_resumes_by_line_count_and_by_time(cli, tmp_path):
    values = _values(400)
    lines = [f"{float(v)!r}\n" for v in values]
    stamped = ["time,y\n"] + [f"{i},{float(v)!r}\n" for i, v in enumerate(values)]
    for name, text in (("plain", lines), ("stamped", stamped)):
        ref, out = tmp_path / f"{name}_ref.csv", tmp_path / f"{name}.csv"
        full = "".join(text)
        assert (
            cli("stream", *FRESH, "--input", "-", "--output", str(ref), input=full).returncode == 0
        )
        first = "".join(text[:250])
        assert (
            cli("stream", *FRESH, "--input", "-", "--output", str(out), input=first).returncode == 0
        )
        replay = full if name == "plain" else "".join(text[:1] + text[100:])  # a partial replay
        r = cli("stream", *FRESH, "--input", "-", "--output", str(out), input=replay)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == ref.read_bytes()


@pytest.mark.slow
def test_a_trained_model_streams_from_its_first_point(cli, tmp_path):
    values = drifting_sine(700)
    for name, opts in (("windowed", {}), ("stateful", {"norm": "none", "tbptt": 20})):
        f = Forecaster("lstm", hidden_size=8, epochs=2, lookback=20, val_size=0, threads=1, **opts)
        model = f.fit(values[:500]).save(tmp_path / name)
        inp = _numbers(tmp_path / f"{name}.txt", values[500:])
        out = tmp_path / f"{name}.csv"
        r = cli("stream", "--model", str(model), "--input", str(inp), "--output", str(out))
        assert r.returncode == 0, r.stderr
        preds = np.array([float(row.split(",")[2]) for row in _rows(out)[1:]])
        assert len(preds) == 200 and np.isfinite(preds).all()
        # The first row holds the model's forecast of the first point after its data.
        expected = float(f.predict(horizon=1).iloc[0, 0])
        assert preds[0] == pytest.approx(expected, rel=1e-4, abs=1e-5)


def _popen(*args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.Popen([sys.executable, "-m", "elman", *args], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip


def _wait_for(check, proc: subprocess.Popen, timeout: float = 120.0) -> None:
    end = time.monotonic() + timeout
    while not check():
        if proc.poll() is not None:
            raise AssertionError(f"stream exited early: {proc.communicate()[1].decode()}")
        if time.monotonic() > end:
            proc.kill()
            raise AssertionError("timed out waiting for the stream")
        time.sleep(0.05)


def _line_count(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
def test_kill_9_then_the_same_command_resumes_without_loss_or_duplicates(cli, tmp_path):
    values = _values(1600, seed=3)
    ref_in, ref_out = _numbers(tmp_path / "ref.txt", values), tmp_path / "ref.csv"
    assert cli("stream", *FRESH, "--input", str(ref_in), "--output", str(ref_out)).returncode == 0
    inp, out = _numbers(tmp_path / "in.txt", values[:1000]), tmp_path / "out.csv"
    state = Path(str(out) + ".state")
    cmd = ["stream", *FRESH, "--input", str(inp), "--output", str(out), "--follow",
           "--poll", "0.05", "--checkpoint-every", "300"]  # fmt: skip
    proc = _popen(*cmd)
    # It checkpoints at 900 points, writes all 1000 rows, then waits for more lines.
    _wait_for(lambda: _line_count(out) == 1001 and (state / "stream.json").exists()
              and _stats(state)["points"] == 900, proc)  # fmt: skip
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _line_count(out) == 1001  # rows 900..999 are beyond the checkpoint
    with open(inp, "a") as fh:
        fh.write("".join(f"{float(v)!r}\n" for v in values[1000:]))
    proc = _popen(*cmd)  # the same command
    _wait_for(lambda: _line_count(out) == 1601, proc)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err.decode()
    assert "resumed after point 900" in err.decode()
    assert out.read_bytes() == ref_out.read_bytes()
    assert _stats(state)["points"] == 1600 and _stats(state)["stopped"]


@pytest.mark.slow
def test_kill_9_while_busy_resumes_without_loss_or_duplicates(cli, tmp_path):
    values = _values(12000, seed=4)
    inp = _numbers(tmp_path / "in.txt", values)
    ref_out, out = tmp_path / "ref.csv", tmp_path / "out.csv"
    args = [*FRESH, "--update-every", "4", "--input", str(inp), "--checkpoint-every", "500"]
    assert cli("stream", *args, "--output", str(ref_out)).returncode == 0
    state = Path(str(out) + ".state")
    proc = _popen("stream", *args, "--output", str(out))
    _wait_for(lambda: (state / "stream.json").exists() and _stats(state)["points"] >= 1000, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    r = cli("stream", *args, "--output", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == ref_out.read_bytes()


def test_difference_lets_a_fresh_network_follow_a_trend(tmp_path):
    from elman.config import OnlineConfig
    from elman.online.stream import ModelSpec, StreamOptions, run_stream

    t = np.arange(1500)
    values = 0.02 * t + np.sin(2 * np.pi * t / 25)  # climbs 30 units above the warm-up range
    inp, out = _numbers(tmp_path / "in.txt", values), tmp_path / "out.csv"
    spec = ModelSpec(model_type="lstm", hidden_size=16, difference=True)
    opts = StreamOptions(input=str(inp), output=str(out), warmup=16)
    stats = run_stream(spec, OnlineConfig(lr=3e-3), opts, handle_signals=False)
    assert stats["points"] == 1500
    errors = np.array([float(r.split(",")[3]) for r in _rows(out)[-300:]])
    assert np.mean(np.abs(errors)) < 0.1
