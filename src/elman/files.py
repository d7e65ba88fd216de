"""Safe file handling and file names.

Atomic writes, output directories and files that never clobber user files, and the name of
every file elman writes in a run directory (one place, so readers and writers agree).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

from elman.errors import ConfigError

# ---------------------------------------------------------------- run-directory file names
CONFIG = "config.toml"  # resolved configuration (elman train --config reruns it)
WEIGHTS = "model.safetensors"  # weights and the tail of each series
META = "model.json"  # metadata: versions, configs, scalers, data schema, calibration
METRICS = "metrics.json"  # every metric as JSON
HISTORY = "history.csv"  # loss, learning rate and speed per epoch
HOLDOUT = "holdout.csv"  # hold-out forecasts of the model and baselines beside the actuals
ACTUALS = "actuals.csv"  # the tail of the data drawn in the pictures
REPORT = "report.md"  # the human-readable report
METRICS_CSV = "backtest_metrics.csv"  # backtest metrics per method
FOLDS_CSV = "backtest_folds.csv"  # backtest metrics per fold
FORECASTS_CSV = "backtest_forecasts.csv"  # every backtest forecast beside the actual value
FIGURES = {
    "forecast": "forecast.png",
    "loss": "loss.png",
    "by_step": "backtest_by_step.png",
    "hidden": "hidden_heatmap.png",
    "components": "components.png",  # esrnn: the learned level and seasonal factor
}
TENSORBOARD = "tensorboard"  # event files, when tensorboard is installed
CHECKPOINT_DIR = "checkpoint"  # RUN/checkpoint/: the resumable training state
CHECKPOINT_FILE = "state.safetensors"
STREAM_CHECKPOINT = "stream.safetensors"  # elman stream --checkpoint DIR: learner state
STREAM_STATS = "stream.json"  # elman stream: running statistics
SERVE_STATE = "serve-state"  # elman serve: the default --state directory inside RUN_DIR
SERVE_LOG = "updates.log"  # elman serve --state DIR: the append-only log of updates
SERVE_SNAPSHOTS = "snapshots"  # elman serve --state DIR: the latest learned state of each series
SERVE_SNAPSHOT_INFO = "serving.json"  # in an older snapshot directory: series id, version, counters
SERVE_IDENTITY = "state.json"  # elman serve --state DIR: which model the state belongs to
SERVE_MODEL = "model"  # elman serve --state DIR: the model files as the server first loaded them
# elman tune --out DIR
TUNE_BEST = "best.toml"  # the chosen configuration (elman train --config reruns it)
TUNE_TRIALS = "trials.csv"  # one row per trial: state, score, parameters, reason
TUNE_JOURNAL = "study.journal"  # the Optuna study (journal file storage, append-only)
TUNE_STUDY = "study.json"  # the study's name and what its fingerprint was made of
TUNE_LOCK = "tune.lock"  # held while a search runs in the directory
TUNE_BEST_RUN = "best"  # the run directory of the chosen configuration (--train-best)
TUNE_FIGURES = {"history": "tune_history.png", "importance": "tune_importance.png"}

_UMASK = os.umask(0)
os.umask(_UMASK)


def atomic_write_bytes(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temp file and ``os.replace``.

    A crash at any moment leaves either the old file or the new one, never half a file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, 0o666 & ~_UMASK)  # mkstemp makes 0600; give the usual permissions
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def sync_dir(path: str | Path) -> None:
    """Flush a directory's entries to disk: a rename or a new file in it survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write_text(path: str | Path, text: str) -> None:
    """Atomic UTF-8 text write."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | Path, obj: Any) -> None:
    """Atomic JSON write (sorted keys, indented, no NaN surprises for readers: NaN -> null)."""
    atomic_write_text(path, json.dumps(_json_safe(obj), indent=2, sort_keys=True) + "\n")


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, (dict, list)):  # most documents are safe already: checked in C
        try:  # equal after a round trip: only str keys, lists, finite floats, JSON scalars
            if json.loads(json.dumps(obj, allow_nan=False)) == obj:
                return obj
        except (TypeError, ValueError):
            pass
    return _made_safe(obj)


def _made_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _made_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_made_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy / torch scalars
        return _made_safe(obj.item())
    return obj


def check_output_file(
    path: str | Path | None,
    overwrite: bool = False,
    option: str = "--output",
    example: str = "forecast.csv",
) -> Path | None:
    """An output file path that may be written: not a directory, in an existing folder, and
    not an existing file unless ``overwrite``. ``None`` (write to stdout) passes through.

    Args:
        path: the path the user gave.
        overwrite: whether an existing file may be replaced.
        option: the option that gave it, for messages.
        example: a file name to suggest when ``path`` is a directory.
    """
    if path is None:
        return None
    out = Path(path)
    if out.is_dir():
        raise ConfigError(f"{option} '{out}' is a directory; give a file name such as {example}")
    if out.exists() and not overwrite:
        raise ConfigError(
            f"{option} '{out}' already exists; choose another name or pass --overwrite"
        )
    if not out.parent.exists():
        raise ConfigError(f"{option} '{out}': folder '{out.parent}' does not exist")
    return out


def prepare_out_dir(path: str | Path, overwrite: bool = False, option: str = "--out") -> Path:
    """Create an output directory, refusing to reuse a non-empty one unless ``overwrite``.

    With ``overwrite`` the directory is reused: files elman writes are replaced, nothing else
    in it is deleted.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ConfigError(f"{option} '{path}' is an existing file; give a directory path instead")
    if path.is_dir() and any(path.iterdir()) and not overwrite:
        raise ConfigError(
            f"{option} '{path}' already exists and is not empty; "
            "choose a new directory or pass --overwrite"
        )
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{option} '{path}' cannot be created: {exc.strerror}") from exc
    return path


@contextmanager
def new_out_dir(
    path: str | Path,
    overwrite: bool = False,
    option: str = "--out",
    produced: Callable[[Path], bool] = lambda path: False,
) -> Iterator[Path]:
    """:func:`prepare_out_dir`, undone if the body fails before ``produced(path)`` is true.

    A command that stops on a mistake (a series too short for the lookback, a device that
    is not there) must not leave behind a directory that refuses the corrected rerun. If
    ``path`` was absent or empty, everything in it is this command's, so on an exception
    its contents go, and the directory too when this command made it. A directory that
    held files (reused with ``--overwrite``) and a run that has ``produced`` something
    worth keeping (an epoch's history, a checkpoint) are left as they are.
    """
    path = Path(path)
    existed = path.exists()
    was_empty = not existed or (path.is_dir() and not any(path.iterdir()))
    out = prepare_out_dir(path, overwrite, option)
    try:
        yield out
    except Exception:
        if was_empty and not produced(out):
            _clear(out, remove_dir=not existed)
        raise


def _clear(path: Path, remove_dir: bool) -> None:
    """Delete what is in ``path`` (and ``path`` itself if ``remove_dir``), ignoring failures."""
    for child in list(path.iterdir()) if path.is_dir() else []:
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)
    if remove_dir:
        with suppress(OSError):
            path.rmdir()
