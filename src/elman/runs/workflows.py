"""Whole runs in one call: what ``elman train`` and ``elman backtest`` do, for Python users.

::

    from elman.config import Config
    from elman.runs import backtest_run, train_run

    cfg = Config().replace(source="builtin:airline", horizon=12)
    run = train_run("runs/airline", cfg)          # train, hold-out table, files, report
    print(run.holdout.table(), run.paths)
    bt = backtest_run("runs/airline_bt", cfg, folds=8, intervals=(80, 95))

:func:`train_run` trains on the data without its last ``test_size`` points (default: the
horizon), scores the hold-out beside the baselines, and writes the run directory: config,
history, checkpoint, metrics, hold-out table, model files, report and pictures. It
checkpoints every ``checkpoint_every`` epochs; Ctrl-C or SIGTERM stops after the current
batch with a checkpoint, and ``train_run(out, cfg, resume=True)`` continues from it.
:func:`backtest_run` does the same for a rolling-origin backtest.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elman.checkpoint import read_checkpoint_doc
from elman.config import Config
from elman.data.prepare import load_series
from elman.errors import CheckpointError, ConfigError
from elman.evaluation.backtest import parse_refit
from elman.evaluation.holdout import (
    HoldoutResult,
    check_holdout,
    evaluate_holdout,
    split_holdout,
)
from elman.evaluation.scores import BacktestResult
from elman.files import (
    CHECKPOINT_DIR,
    CHECKPOINT_FILE,
    CONFIG,
    HISTORY,
    META,
    WEIGHTS,
    atomic_write_text,
    new_out_dir,
)
from elman.forecaster import Forecaster
from elman.forecasting.intervals import parse_levels
from elman.runs.directory import RunLogger, data_schema, write_history, write_holdout
from elman.runs.report import render_run
from elman.runtime import on_signals
from elman.training import distributed
from elman.training.resume import Checkpointer, FitHook, data_fingerprint

Launch = Callable[[Path, Config], int]  # runs the training on several ranks; the exit code


@dataclass
class TrainRun:
    """What :func:`train_run` did."""

    out: Path
    config: Config
    forecaster: Forecaster | None = None  # None when the ranks ran elsewhere (``launch``)
    holdout: HoldoutResult | None = None  # None without a hold-out (``test_size`` 0)
    paths: list[Path] = field(default_factory=list)  # files written
    interrupted: bool = False  # stopped by Ctrl-C; a checkpoint was saved
    resumed_from: int | None = None  # the epoch (0-based) a resumed run continued from
    series_count: int = 0
    main: bool = True  # this process writes (rank 0, or a plain process)
    exit_code: int = 0


@dataclass
class BacktestRun:
    """What :func:`backtest_run` did."""

    out: Path
    forecaster: Forecaster
    result: BacktestResult
    paths: list[Path] = field(default_factory=list)


def train_run(
    out: str | Path,
    config: Config,
    *,
    checkpoint_every: int = 1,
    resume: bool = False,
    overwrite: bool = False,
    launch: Launch | None = None,
) -> TrainRun:
    """Train, score the hold-out and write the run directory ``out``; see the module notes.

    Args:
        out: the run directory: new (refused if not empty unless ``overwrite``), or the
            run to continue with ``resume``.
        config: the resolved configuration; ``config.data.source`` names the data.
        checkpoint_every: write a checkpoint every N epochs and when training ends (0: only
            at the end).
        resume: continue the run in ``out`` from its checkpoint (see :func:`resume_config`).
        overwrite: reuse a non-empty ``out``, replacing the files elman writes there.
        launch: when given, the training runs on several ranks through it (``elman train
            --nproc``) once the data has been checked, and this process only waits.

    In a torchrun job every rank calls this; only rank 0 writes files.
    """
    out = Path(out)
    if config.data.source is None:
        raise ConfigError("no data given: use --data FILE or --data builtin:NAME")
    if checkpoint_every < 0:
        raise ConfigError(f"--checkpoint-every ({checkpoint_every}) must be >= 0")
    main = distributed.is_main()  # rank 0 of a torchrun job (or a plain process) writes
    if resume or not main:
        return _train(out, config, checkpoint_every, resume, main, launch)
    # A mistake found before the first epoch is saved leaves no directory to block the rerun.
    with new_out_dir(out, overwrite, produced=_trained) as made:
        return _train(made, config, checkpoint_every, resume, main, launch)


def _trained(out: Path) -> bool:
    """Whether a run directory holds an epoch's history or a checkpoint (worth keeping)."""
    return (out / HISTORY).exists() or (out / CHECKPOINT_DIR / CHECKPOINT_FILE).exists()


def _train(
    out: Path, cfg: Config, every: int, resume: bool, main: bool, launch: Launch | None
) -> TrainRun:
    series = load_series(cfg.data.source, cfg.data)
    run = TrainRun(out, cfg, series_count=len(series), main=main)
    if launch is not None:
        run.exit_code = launch(out, cfg)
        return run
    fingerprint = data_fingerprint(series)
    if not resume and main:
        atomic_write_text(out / CONFIG, cfg.to_toml())
    test = cfg.data.test_size if cfg.data.test_size is not None else cfg.data.horizon
    if test:  # before training: a hold-out the baselines cannot score would fail at the end
        check_holdout(series, test, cfg.data.season or int(series[0].season or 1))
    fitted = split_holdout(series, test) if test else series
    extra = {"config": cfg.to_dict(), "checkpoint_every": every}
    ckpt = Checkpointer(out / CHECKPOINT_DIR, every, resume, fingerprint, extra)
    f = run.forecaster = Forecaster(config=cfg)
    hooks: list[FitHook] = [ckpt, RunLogger(out)] if main else [distributed.follower(ckpt)]
    # Ctrl-C, or kill / a scheduler's stop; a torchrun rank leaves SIGTERM to the agent,
    # which sends it to stop the other ranks when one fails
    stop = (signal.SIGINT,) if distributed.launched() else (signal.SIGINT, signal.SIGTERM)
    with on_signals(lambda: _stop_after_batch(ckpt), *stop), distributed.peer_errors():
        f.fit(fitted, hooks=hooks)
    assert f.train_state is not None
    run.resumed_from = ckpt.resumed_from
    run.interrupted = f.train_state.interrupted
    if not main or run.interrupted:  # ranks other than 0 neither write nor print
        return run
    run.paths = [out / CONFIG, write_history(out / HISTORY, f.train_state.history)]
    if test:
        run.holdout = evaluate_holdout(f.predictor, series, test, baselines=cfg.data.baselines)
        run.paths += write_holdout(out, run.holdout, series, {"training": f.summary()})
    f.series = series  # forecasts continue after the last point of the full data
    f.save(out, extra={"data": data_schema(series, fingerprint)})
    run.paths += [out / WEIGHTS, out / META]
    run.paths += render_run(out, series)
    return run


def _stop_after_batch(ckpt: Checkpointer) -> None:
    """Ctrl-C (or SIGTERM) asks the trainer to stop after the current batch, with a
    checkpoint; a second one aborts. Before the trainer exists it aborts at once, and the
    new run directory is taken back."""
    trainer = ckpt.trainer
    if trainer is None or trainer.stop_requested:
        raise KeyboardInterrupt
    trainer.stop_requested = True


def resume_config(out: str | Path) -> tuple[Config, int]:
    """The stored configuration of the run in ``out`` and its checkpoint interval.

    Raises:
        CheckpointError: ``out`` is not a run directory with a checkpoint, or the
            checkpoint holds no valid configuration.
    """
    out = Path(out)
    if not out.is_dir():
        raise CheckpointError(f"--resume '{out}' is not a run directory (it does not exist)")
    path = out / CHECKPOINT_DIR / CHECKPOINT_FILE
    if not path.is_file():
        raise CheckpointError(
            f"--resume '{out}' holds no {CHECKPOINT_DIR}/{CHECKPOINT_FILE}; give a run "
            "directory written by 'elman train'"
        )
    doc = read_checkpoint_doc(path)
    try:
        cfg = Config.from_dict(doc["config"], source=str(path))
    except (KeyError, TypeError, AttributeError, ConfigError) as exc:
        raise CheckpointError(f"{path}: no valid run configuration ({exc})") from exc
    stored = doc.get("checkpoint_every", 1)
    return cfg, stored if isinstance(stored, int) and stored >= 0 else 1


def backtest_run(
    out: str | Path,
    config: Config,
    *,
    folds: int = 5,
    stride: int | None = None,
    refit: str | int = "never",
    intervals: Any = None,
    overwrite: bool = False,
) -> BacktestRun:
    """Backtest ``config`` on its data and write the results to the directory ``out``.

    Args:
        out: new directory (refused if not empty unless ``overwrite``).
        config: the resolved configuration; ``config.data.source`` names the data.
        folds, stride, refit, intervals: as in :meth:`Forecaster.backtest
            <elman.forecaster.Forecaster.backtest>`.
        overwrite: reuse a non-empty ``out``, replacing the files elman writes there.

    Writes the config, the training history of the last fit, the backtest metrics, folds
    and forecasts, the model files (fitted on the data before the last refit point, with
    the backtest calibration), the report and its pictures.
    """
    if config.data.source is None:
        raise ConfigError("no data given: use --data FILE or --data builtin:NAME")
    levels = parse_levels(intervals) if intervals is not None else None
    parse_refit(refit, folds)
    if stride is not None and stride < 1:
        raise ConfigError(f"--stride ({stride}) must be >= 1")
    if folds < 1:
        raise ConfigError(f"--folds ({folds}) must be >= 1")
    with new_out_dir(out, overwrite, option="--output") as made:
        f = Forecaster(config=config)
        result = f.backtest(
            config.data.source, folds=folds, stride=stride, refit=refit, intervals=levels
        )
        atomic_write_text(made / CONFIG, f.config.to_toml())
        paths = [made / CONFIG]
        if f.train_state is not None:
            paths.append(write_history(made / HISTORY, f.train_state.history))
        paths += result.save(made, {"training": f.summary()})
        f.save(made)
        paths += [made / WEIGHTS, made / META]
        paths += render_run(made, result.series)
        return BacktestRun(made, f, result, paths)
