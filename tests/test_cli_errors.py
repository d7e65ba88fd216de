"""Every subcommand, given broken input, ends in one line on stderr, exit code 2, no traceback.

The commands come from ``elman.cli.COMMANDS`` (what ``elman --help`` lists). Each needs at
least one entry in ``BROKEN``: a command added without one fails
``test_every_command_has_broken_input_cases``. Every case runs in a real subprocess.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli, run_cli_many, selected_params

from elman.cli import COMMANDS
from elman.forecaster import Forecaster

# command -> argument lists that must fail cleanly; paths are relative to the fixture folder
BROKEN: dict[str, list[list[str]]] = {
    "tutorial": [
        ["tutorial", "--epochs", "-5", "--out", "t1"],
        ["tutorial", "--out", "afile.csv"],
    ],
    "train": [
        ["train", "--data", "missing.csv", "--out", "o1"],
        ["train", "--data", "junk.csv", "--out", "o2"],
        ["train", "--data", "good.csv", "--lr", "nan", "--out", "o3"],
        ["train", "--resume", "damaged_run"],
    ],
    "forecast": [
        ["forecast", "missing_dir"],
        ["forecast", "damaged_run"],
        ["forecast", "good_run", "--data", "junk.csv"],
        ["forecast", "good_run", "--horizon", "-1"],
    ],
    "backtest": [
        ["backtest", "--data", "junk.csv", "--output", "b1"],
        ["backtest", "--data", "good.csv", "--folds", "0", "--output", "b2"],
    ],
    "tune": [
        ["tune", "--data", "junk.csv", "--out", "u1"],
        ["tune", "--data", "good.csv", "--trials", "0", "--out", "u2"],
        ["tune", "--data", "good.csv", "--space", "missing.toml", "--out", "u3"],
        ["tune", "--data", "good.csv", "--out", "good_run"],
    ],
    "plot": [["plot", "missing_dir"], ["plot", "damaged_run"], ["plot", "empty_dir"]],
    "info": [["info", "missing_dir"], ["info", "damaged_run"], ["info", "junk.csv"]],
    "stream": [
        ["stream", "--model", "missing_dir", "--input", "good.csv"],
        ["stream", "--model", "damaged_run", "--input", "good.csv"],
        ["stream", "--model-type", "gru", "--input", "junk.csv", "--on-bad", "error"],
    ],
    "serve": [
        ["serve", "missing_dir", "--port", "0"],
        ["serve", "damaged_run", "--port", "0"],
        ["serve", "empty_dir", "--port", "0"],
        ["serve", "good_run", "--port", "0", "--state", "afile.csv/st"],
        ["serve", "good_run", "--port", "0", "--snapshot-every", "0", "--state", "s1"],
        ["serve", "good_run", "--port", "0", "--max-body", "0"],
        ["serve", "good_run", "--port", "0", "--token-file", "missing.txt", "--state", "s2"],
    ],
    "export": [["export", "missing_dir"], ["export", "damaged_run"]],
    "datasets": [["datasets", "--bogus"]],
}
CASES = {" ".join(args): args for cases in BROKEN.values() for args in cases}
# Cases that still fail the contract, with the reason; strict: a fix makes the test fail
# until the entry is removed.
KNOWN_BUGS: dict[str, str] = {}
ONE_LINE = re.compile(r"^elman( [a-z]+)?: (error|internal error): .+$")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("broken")
    stamps = [f"2024-01-{d:02d}" for d in range(1, 31)] + [f"2024-02-{d:02d}" for d in range(1, 30)]
    values = [math.sin(i / 3) + i / 50 for i in range(len(stamps))]
    lines = "".join(f"{d},{v:.4f}\n" for d, v in zip(stamps, values, strict=True))
    (root / "good.csv").write_text("date,value\n" + lines)
    (root / "junk.csv").write_bytes(bytes(range(256)) * 8)
    (root / "afile.csv").write_text("precious\n")
    (root / "empty_dir").mkdir()
    good = root / "good_run"
    f = Forecaster("gru", horizon=3, lookback=8, hidden_size=4, epochs=1, progress=False)
    f.fit(np.asarray(values)).save(good)
    damaged = root / "damaged_run"
    damaged.mkdir()
    (damaged / "model.json").write_text('{"format": "elman-model", "format_version": 1, ')
    data = (good / "model.safetensors").read_bytes()
    (damaged / "model.safetensors").write_bytes(data[: len(data) // 3])
    (damaged / "history.csv").write_bytes(b"\x00\xff garbage")
    (damaged / "metrics.json").write_text("[not json")
    (damaged / "checkpoint").mkdir()
    (damaged / "checkpoint" / "state.safetensors").write_bytes(b"\x08" + bytes(30))
    return root


@pytest.fixture(scope="module")
def outcomes(folder: Path, request: pytest.FixtureRequest) -> dict:
    wanted = selected_params(request, "name")  # only the cases this session will check
    cases = {n: a for n, a in CASES.items() if a[0] in COMMANDS and n in wanted}
    return run_cli_many(cases, cwd=folder)


def test_every_command_has_broken_input_cases() -> None:
    missing = [c for c in COMMANDS if not BROKEN.get(c)]
    assert missing == [], f"add broken-input cases to BROKEN in {__file__} for: {missing}"


def test_help_lists_exactly_the_registered_commands() -> None:
    done = run_cli("--help")
    listed = re.search(r"\{([a-z,]+)\}|COMMAND", done.stdout)
    assert done.returncode == 0 and listed
    for name in COMMANDS:
        assert re.search(rf"^\s+{name}\s", done.stdout, re.MULTILINE), name


@pytest.mark.slow
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(n, marks=pytest.mark.xfail(reason=KNOWN_BUGS[n], strict=True))
        if n in KNOWN_BUGS
        else n
        for n in CASES
    ],
)
def test_broken_input_ends_in_one_line_and_exit_2(name: str, outcomes: dict, folder: Path) -> None:
    if CASES[name][0] not in COMMANDS:
        pytest.skip(f"'{CASES[name][0]}' is not a registered command yet")
    done = outcomes[name]
    assert "Traceback" not in done.stderr + done.stdout
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and ONE_LINE.match(lines[0]), done.stderr
    assert "internal error" not in lines[0], "a user error surfaced as an internal error"
    assert done.returncode == 2
    assert (folder / "afile.csv").read_text() == "precious\n"


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    done = run_cli("--debug", "train", "--data", str(tmp_path / "missing.csv"), "--out", "x")
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("elman: error: file not found")


def test_error_messages_stay_on_one_line() -> None:
    """A user's value holding a line break or a tab still gives a one-line message (found by
    the metadata property test: a resealed model.json whose device was a newline)."""
    from elman.config import Config
    from elman.errors import CheckpointError, ConfigError

    with pytest.raises(ConfigError) as caught:
        Config.from_dict({"train": {"device": "\n"}}, source="model.json")
    assert str(caught.value) == "--device '\\n' is not one of: auto, cpu, cuda"
    assert str(CheckpointError("a\tb\x00c é")) == "a\\tb\\x00c é"  # printable text kept
