"""Hostile input through ``elman train``: broken files, bad values, bad options, bad runs.

Each case is a real ``python -m elman train ...`` subprocess (all run concurrently) and must
end in exactly one ``elman: error: ...`` line naming the problem, exit code 2, and no
traceback. Files the user already had are never changed.
"""

from __future__ import annotations

import math
import re
import shutil
from datetime import date, timedelta
from pathlib import Path

import pytest
from conftest import run_cli, run_cli_many, selected_params

DAYS = [str(date(2024, 1, 1) + timedelta(days=i)) for i in range(84)]


def _csv(values: list[str], stamps: list[str] | None = None, head: str = "date,value") -> str:
    stamps = DAYS[: len(values)] if stamps is None else stamps
    return head + "\n" + "".join(f"{d},{v}\n" for d, v in zip(stamps, values, strict=True))


GOOD = [f"{math.sin(i / 4) + i / 40:.5f}" for i in range(84)]


def _with(i: int, cell: str) -> list[str]:
    return GOOD[:i] + [cell] + GOOD[i + 1 :]


FILES: dict[str, str | bytes] = {
    "good.csv": _csv(GOOD),
    "empty.csv": "",
    "header_only.csv": "date,value\n",
    "junk.csv": bytes(range(256)) * 8,
    "text_cell.csv": _csv(_with(40, "twelve")),
    "nan_cell.csv": _csv(_with(40, "nan")),
    "inf_cell.csv": _csv(_with(40, "inf")),
    "duplicate_stamps.csv": _csv(GOOD, DAYS[:40] + [DAYS[39]] + DAYS[41:]),
    "unsorted_stamps.csv": _csv(GOOD, DAYS[:40] + [DAYS[41], DAYS[40]] + DAYS[42:]),
    "one_row.csv": _csv(["1.5"]),
    "huge_values.csv": _csv([f"{(-1) ** i * 1e307:.3e}" for i in range(84)]),
    "semicolons.csv": "date;value\n"
    + "".join(f"{d};{v}\n" for d, v in zip(DAYS, GOOD, strict=True)),
    "constant.csv": _csv(["3.0"] * 84),
    "spike.csv": _csv(GOOD[:75] + ["1e300"] * 3 + GOOD[78:]),
    "bad.toml": "[data\nsource = 1\n",
    "typo.toml": '[data]\nsource = "good.csv"\nhorizn = 3\n',
    "wrongtype.toml": '[data]\nsource = "good.csv"\nhorizon = 1.5\n',
    "precious/keep.txt": "precious\n",
    "afile": "precious\n",
}
TRAIN = ["--epochs", "1", "--hidden-size", "4", "--threads", "1", "--no-progress-bar"]


_OUTS = iter(range(10**6))


def _train(data: str, *extra: str, out: str | None = None) -> list[str]:
    """``elman train`` on ``data`` into a fresh ``--out`` (unless given)."""
    return ["train", "--data", data, *TRAIN, *extra, "--out", out or f"out{next(_OUTS)}"]


# name -> (arguments, regex the one error line must match)
CASES: dict[str, tuple[list[str], str]] = {
    # files
    "empty file": (_train("empty.csv"), r"empty\.csv is empty"),
    "header only": (_train("header_only.csv"), r"header but no data rows"),
    "binary junk": (_train("junk.csv"), r"binary file"),
    "directory as data": (_train("precious"), r"is a directory"),
    # values
    "text in a numeric column": (_train("text_cell.csv"), r"non-numeric value 'twelve'.*row 42"),
    "NaN value": (_train("nan_cell.csv"), r"missing value .*row 42"),
    "inf value": (_train("inf_cell.csv"), r"infinite or too large value .*row 42"),
    "duplicate timestamps": (_train("duplicate_stamps.csv"), r"duplicate time stamp 2024-02-09"),
    "unsorted timestamps": (_train("unsorted_stamps.csv"), r"not in increasing order"),
    "one-row file": (_train("one_row.csv"), r"1 points?, too few"),
    "huge values": (_train("huge_values.csv"), r"too large"),
    "spike after the training part": (
        _train("spike.csv", "--val-size", "10", "--horizon", "2"),
        r"value 1e\+300 .* row 77 .* too far for the network",
    ),
    "constant series": (_train("constant.csv"), r"constant"),
    "wrong delimiter": (_train("semicolons.csv"), r"';'-separated"),
    "missing target column": (_train("good.csv", "--target", "sales"), r"column 'sales' not found"),
    # options out of range
    "horizon 0": (_train("good.csv", "--horizon", "0"), r"--horizon \(0\) must be >= 1"),
    "lookback too long": (_train("good.csv", "--lookback", "5000"), r"too short"),
    "negative lr": (_train("good.csv", "--lr", "-0.1"), r"--lr \(-0\.1\) must be > 0"),
    "NaN lr": (_train("good.csv", "--lr", "nan"), r"--lr \(nan\) must be a finite number"),
    "dropout 1.5": (_train("good.csv", "--dropout", "1.5"), r"--dropout \(1\.5\) must be in"),
    "val size below horizon": (
        _train("good.csv", "--val-size", "1", "--horizon", "3"),
        r"--val-size \(1\) must be 0 or >= --horizon \(3\)",
    ),
    "negative seed": (_train("good.csv", "--seed", "-1"), r"--seed \(-1\) must be in"),
    "checkpoint every -1": (_train("good.csv", "--checkpoint-every", "-1"), r"--checkpoint-every"),
    "epochs not a number": (_train("good.csv", "--epochs", "many"), r"invalid int value: 'many'"),
    "unknown model": (_train("good.csv", "--model", "transformer"), r"invalid choice"),
    "diverging lr": (
        _train("good.csv", "--lr", "1e30", "--clip", "0", "--optimizer", "sgd", "--epochs", "3"),
        r"loss became NaN or infinite",
    ),
    # config files
    "config missing": (["train", "--config", "nope.toml", "--out", "c1"], r"does not exist"),
    "config not TOML": (["train", "--config", "bad.toml", "--out", "c2"], r"not valid TOML"),
    "config unknown key": (
        ["train", "--config", "typo.toml", "--out", "c3"],
        r"unknown key 'horizn'",
    ),
    "config wrong type": (
        ["train", "--config", "wrongtype.toml", "--out", "c4"],
        r"'horizon' = 1\.5 is not an integer",
    ),
    # output and resume
    "no --out": (["train", "--data", "good.csv"], r"--out DIR is required"),
    "out is a file": (_train("good.csv", out="afile"), r"is an existing file"),
    "out not empty": (_train("good.csv", out="precious"), r"already exists and is not empty"),
    "resume missing dir": (["train", "--resume", "nowhere"], r"is not a run directory"),
    "resume without checkpoint": (["train", "--resume", "precious"], r"holds no checkpoint"),
    "resume truncated checkpoint": (["train", "--resume", "truncated_run"], r"truncated|corrupt"),
    "resume other data": (
        ["train", "--resume", "changed_run", "--data", "changed_good.csv"],
        r"fingerprint changed",
    ),
    "resume new options": (
        ["train", "--resume", "good_run", "--lr", "0.5"],
        r"--lr cannot change when resuming",
    ),
    "resume with --out": (
        ["train", "--resume", "good_run", "--out", "x"],
        r"--out cannot be combined with --resume",
    ),
}


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("hostile")
    for name, content in FILES.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(content if isinstance(content, bytes) else content.encode())
    # One real run to damage: stopped after its first epoch by --epochs 1, then copied.
    done = run_cli(*_train("good.csv", out="good_run"), cwd=root)
    assert done.returncode == 0, done.stderr
    state = root / "good_run" / "checkpoint" / "state.safetensors"
    shutil.copytree(root / "good_run", root / "truncated_run")
    data = state.read_bytes()
    (root / "truncated_run" / "checkpoint" / "state.safetensors").write_bytes(data[:-100])
    shutil.copytree(root / "good_run", root / "changed_run")
    text = (root / "good.csv").read_text().replace("0.00000", "0.00001", 1)
    (root / "changed_good.csv").write_text(text)
    return root


@pytest.fixture(scope="module")
def outcomes(folder: Path, request: pytest.FixtureRequest) -> dict:
    wanted = selected_params(request, "name")  # only the cases this session will check
    cases = {name: args for name, (args, _) in CASES.items() if name in wanted}
    return run_cli_many(cases, cwd=folder)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_hostile_input_ends_in_one_clear_line(name: str, outcomes: dict, folder: Path) -> None:
    done = outcomes[name]
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert re.match(r"^elman( train)?: error: ", lines[0]), lines[0]
    assert re.search(CASES[name][1], lines[0]), lines[0]
    assert done.returncode == 2
    assert (folder / "precious" / "keep.txt").read_text() == "precious\n"
    assert (folder / "afile").read_text() == "precious\n"
    args = CASES[name][0]
    out = args[args.index("--out") + 1] if "--out" in args else None
    if out is not None and out not in {path.split("/")[0] for path in FILES}:
        # A new run that failed before its first epoch leaves nothing behind; one that got
        # further (the diverging one) keeps its history and checkpoint.
        kept = (folder / out).exists()
        assert kept == (name == "diverging lr")
        assert not kept or (folder / out / "history.csv").is_file()


@pytest.mark.slow
def test_a_corrected_rerun_can_use_the_failed_runs_directory(folder: Path) -> None:
    failed = run_cli(*_train("good.csv", "--lookback", "5000", out="retry"), cwd=folder)
    assert failed.returncode == 2 and "too short" in failed.stderr
    assert not (folder / "retry").exists()
    done = run_cli(*_train("good.csv", "--lookback", "8", out="retry"), cwd=folder)
    assert done.returncode == 0, done.stderr
    assert (folder / "retry" / "model.safetensors").is_file()


@pytest.mark.slow
def test_overwrite_reuses_a_run_directory_and_keeps_other_files(folder: Path) -> None:
    target = folder / "reused"
    shutil.copytree(folder / "precious", target)
    done = run_cli(*_train("good.csv", "--overwrite", out="reused"), cwd=folder)
    assert done.returncode == 0, done.stderr
    assert (target / "keep.txt").read_text() == "precious\n"
    assert (target / "model.safetensors").is_file() and (target / "config.toml").is_file()
