"""The Optuna study of a search: its storage, its name, its trials and its workers.

Storage: a study lives in the output directory as an Optuna journal file
(``study.journal``), which every write appends to and flushes, so a process killed at any
moment leaves every finished trial readable; it is also what Optuna advises for several
processes on one machine. ``storage=`` takes any Optuna RDB URL (``postgresql://...``,
``mysql://...``) instead, so that workers on several machines join one study; those
record heartbeats, and a trial whose worker stopped beating is failed and retried once.

Name: ``elman-`` and the first 16 hex digits of a SHA-256 over the data fingerprint, the
horizon, the search space and the fixed part of the configuration (:func:`fingerprint`).
A resumed search must find a study of that name, so changed data or a changed space is
refused instead of mixing results.

Trials: trial 0 is the configuration the search starts from (enqueued), followed by its
neighbours (:meth:`~elman.tuning.space.SearchSpace.neighbours`, enqueued too); the
sampler proposes the rest. Each trial trains
once (:func:`~elman.tuning.validation.fit_trial`), then reports its K window scores one
by one to the Wilcoxon pruner, which stops it as soon as its windows are significantly
worse than the best trial's. A trial that fails (NaN loss after the trainer's retries,
non-finite forecasts, a lookback the data cannot hold) is recorded as failed with its
reason in the user attribute ``fail_reason``, and the study goes on.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import math
import os
import time
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import optuna
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState

from elman.config import Config
from elman.errors import ConfigError, ElmanError
from elman.files import TUNE_JOURNAL as JOURNAL
from elman.files import TUNE_STUDY as STUDY_JSON
from elman.runs.directory import read_json_object
from elman.runtime import configure_threads
from elman.training.resume import data_fingerprint
from elman.tuning.space import SearchSpace
from elman.tuning.validation import Split, fit_trial, window_scores

log = logging.getLogger(__name__)

FAIL_REASON = "fail_reason"  # user attribute of a failed trial: why it failed
KILLED = "its worker stopped (killed or interrupted)"  # the reason of a stopped trial
NEIGHBOUR = "neighbour"  # user attribute of a defaults' neighbour: the parameter it changes
REQUEUED = "requeued"  # user attribute of a queued trial moved behind the retries: no trial
RETRY_OF = "retry_of"  # user attribute of a trial that re-runs one a dead worker left
PRUNE_P = 0.1  # Wilcoxon p-value below which a trial is pruned
HEARTBEAT_S = 30  # RDB storage: seconds between a running trial's heartbeats


class TrialFailed(ElmanError):
    """A trial that could not be scored (its reason is in its ``fail_reason``)."""


@dataclass(frozen=True)
class Identity:
    """What a study's name is made of, and the name."""

    data: str
    horizon: int
    space: dict[str, Any]
    fixed: dict[str, Any]

    @property
    def name(self) -> str:
        doc = json.dumps(self.__dict__, sort_keys=True, default=str)
        return "elman-" + hashlib.sha256(doc.encode()).hexdigest()[:16]

    def to_dict(self) -> dict[str, Any]:
        return {"study": self.name, **self.__dict__}


def fingerprint(split: Split, space: SearchSpace, config: Config) -> Identity:
    """The identity of a search on this data with this space and base configuration.

    The options a trial does not search count too (a different ``--epochs`` is a different
    search); the seed, threads, device and progress bar do not.
    """
    free = {"threads", "device", "progress", "source", "horizon", *space.to_dict()}
    fixed = {k: v for sec in config.to_dict().values() for k, v in sec.items() if k not in free}
    return Identity(data_fingerprint(split.series), split.horizon, space.to_dict(), fixed)


def check_identity(out: Path, identity: Identity) -> None:
    """Refuse to resume the study in ``out`` when it was made for something else.

    Raises:
        ConfigError: one line naming what changed (data, horizon, search space, options).
    """
    stored = read_json_object(out / STUDY_JSON)
    if stored is None:
        raise ConfigError(
            f"--resume: '{out}' holds no {STUDY_JSON}; give the --out directory of a search"
        )
    now = identity.to_dict()
    if stored.get("study") == now["study"]:
        return
    labels = {"data": "the data", "horizon": "--horizon", "space": "--space", "fixed": "options"}
    changed = [label for key, label in labels.items() if stored.get(key) != now[key]]
    raise ConfigError(
        f"--resume: the study in '{out}' was made for other settings "
        f"({', '.join(changed or ['its name'])} changed); resume with the same data, horizon, "
        "options and --space, or start a new search with another --out"
    )


def open_storage(out: Path, url: str | None) -> optuna.storages.BaseStorage:
    """The study's storage: the journal file in ``out``, or the RDB at ``url``."""
    if url is None:
        backend = JournalFileBackend(str(out / JOURNAL))
        return optuna.storages.JournalStorage(backend)
    try:
        return optuna.storages.RDBStorage(
            url, heartbeat_interval=HEARTBEAT_S, grace_period=4 * HEARTBEAT_S, **_retry_once()
        )
    except Exception as exc:  # sqlalchemy's many errors: a bad URL, a missing driver
        raise ConfigError(f"--storage '{url}' cannot be opened: {exc}") from exc


def _retry_once() -> dict[str, Any]:
    """RDBStorage's argument that retries a trial once when its heartbeat stops: Optuna 4.9
    renamed it (``heartbeat_stale_trial_callback``) and deprecated the old name."""
    retry = getattr(optuna.storages, "RetryHeartbeatStaleTrialCallback", None)
    params = inspect.signature(optuna.storages.RDBStorage).parameters
    if retry is not None and "heartbeat_stale_trial_callback" in params:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return {"heartbeat_stale_trial_callback": retry(max_retry=1)}
    return {"failed_trial_callback": optuna.storages.RetryFailedTrialCallback(max_retry=1)}


def create(
    storage: optuna.storages.BaseStorage,
    name: str,
    defaults: dict[str, Any],
    seed: int,
    neighbours: Sequence[dict[str, Any]] = (),
) -> optuna.Study:
    """The study ``name`` with trial 0, the configuration's own values, enqueued first,
    then ``neighbours`` (each marked with the one parameter it changes).

    A study of that name already in a shared database (another machine's worker made
    it) is joined as it is.
    """
    study = optuna.create_study(
        storage=storage, study_name=name, direction="minimize", sampler=sampler(seed),
        pruner=pruner(), load_if_exists=True,
    )  # fmt: skip
    if not study.get_trials(deepcopy=False):  # skip_if_exists: two machines starting at once
        study.enqueue_trial(defaults, user_attrs={"default": True}, skip_if_exists=True)
        for params in neighbours:
            changed = next(k for k, v in params.items() if v != defaults[k])
            study.enqueue_trial(params, user_attrs={NEIGHBOUR: changed}, skip_if_exists=True)
    return study


def load(storage: optuna.storages.BaseStorage, name: str, seed: int) -> optuna.Study:
    """The study ``name`` in ``storage``, with this worker's sampler and the pruner."""
    try:
        return optuna.load_study(
            study_name=name, storage=storage, sampler=sampler(seed), pruner=pruner()
        )
    except KeyError as exc:
        raise ConfigError(
            f"--resume: the storage holds no study '{name}' (made with other data, horizon, "
            "options or --space); start a new search with another --out"
        ) from exc


def sampler(seed: int) -> optuna.samplers.BaseSampler:
    """TPE, seeded per worker so that workers propose different points."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, multivariate=True)


def pruner() -> optuna.pruners.BasePruner:
    """Wilcoxon signed-rank test of a trial's window scores against the best trial's."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.pruners.WilcoxonPruner(p_threshold=PRUNE_P, n_startup_steps=2)


def recover_stale(study: optuna.Study) -> int:
    """Fail the trials a killed worker left running, and enqueue the parameters of every
    stopped trial (killed, or interrupted by Ctrl-C) once more.

    Called only while no worker of this study runs (the output directory is locked), so
    every running trial is one whose process died. Returns how many were enqueued again.
    """
    storage = study._storage
    trials = study.get_trials(deepcopy=False)
    for t in trials:
        if t.state == TrialState.RUNNING:
            storage.set_trial_user_attr(t._trial_id, FAIL_REASON, KILLED)
            storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    retried = {t.user_attrs.get(RETRY_OF) for t in trials}
    retried |= {t.system_attrs.get("failed_trial") for t in trials}
    trials = study.get_trials(deepcopy=False)
    again = [t for t in trials if stopped(t) and t.number not in retried]
    # Optuna runs queued trials in order, so the queue (the defaults' neighbours not yet
    # run) moves behind the retries: each queued record is closed as no trial, and queued
    # again after them.
    queued = [t for t in trials if t.state == TrialState.WAITING] if again else []
    for t in queued:
        storage.set_trial_user_attr(t._trial_id, REQUEUED, True)
        storage.set_trial_state_values(t._trial_id, TrialState.FAIL)
    for t in again:
        keep = {k: v for k, v in t.user_attrs.items() if k in ("default", NEIGHBOUR)}
        study.enqueue_trial(_params(t), user_attrs={**keep, RETRY_OF: t.number})
    for t in queued:
        study.enqueue_trial(_params(t), user_attrs=dict(t.user_attrs))
    return len(again)


def _params(t: FrozenTrial) -> dict[str, Any]:
    """A trial's parameters, or those it was queued with when it stopped before its
    parameters were drawn (a queued trial has none of its own yet)."""
    return {**t.system_attrs.get("fixed_params", {}), **t.params}


def hidden(t: FrozenTrial) -> bool:
    """Whether a record is no trial: a queued trial moved behind the retries (its copy
    waits or ran under a later number)."""
    return bool(t.user_attrs.get(REQUEUED))


def counts(t: FrozenTrial) -> bool:
    """Whether a record counts as a trial of the search: not one a stopped worker left
    behind (it is tried again) and not a queued record moved behind the retries."""
    return not stopped(t) and not hidden(t)


def counted(trials: list[FrozenTrial]) -> int:
    """Trials that count toward ``--trials``: finished or running, and :func:`counts`."""
    done = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING, TrialState.FAIL)
    return sum(1 for t in trials if t.state in done and counts(t))


def trials_run(study: optuna.Study) -> list[FrozenTrial]:
    """The study's trials, without those still queued (a neighbour queued for a larger
    ``--trials`` than this run's) and without the records :func:`hidden` leaves out."""
    trials = study.get_trials(deepcopy=False)
    return [t for t in trials if t.state != TrialState.WAITING and not hidden(t)]


def stopped(t: FrozenTrial) -> bool:
    """Whether a trial failed because its process stopped (killed, interrupted, or its
    heartbeat ended), not because of its parameters: only those carry no reason."""
    reason = t.user_attrs.get(FAIL_REASON)
    failed = t.state == TrialState.FAIL and not hidden(t)
    return failed and (reason is None or reason == KILLED)


def objective(split: Split, space: SearchSpace, config: Config) -> Callable[[optuna.Trial], float]:
    """The function a worker optimises: train once, score K windows, report each."""

    def run(trial: optuna.Trial) -> float:
        params = space.suggest(trial)
        trial.set_user_attr("worker", os.getpid())
        start = time.perf_counter()
        try:
            cfg = config.replace(**params)
            scores = window_scores(fit_trial(cfg, split), split)
        except ElmanError as exc:
            trial.set_user_attr(FAIL_REASON, str(exc))
            raise TrialFailed(str(exc)) from exc
        trial.set_user_attr("fit_s", round(time.perf_counter() - start, 3))
        trial.set_user_attr("windows", [float(v) for v in scores])
        for k, value in enumerate(scores):
            if not math.isfinite(float(value)):
                trial.set_user_attr(FAIL_REASON, f"window {k} scored {value}")
                raise TrialFailed(f"window {k} scored {value}")
            trial.report(float(value), k)
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned after window {k}")
        return float(scores.mean())

    return run


def optimize(
    study: optuna.Study,
    split: Split,
    space: SearchSpace,
    config: Config,
    trials: int,
    deadline: float | None,
) -> None:
    """Run trials until the study holds ``trials`` of them or ``deadline`` (time.time())."""

    def enough(study: optuna.Study, _trial: FrozenTrial | None = None) -> None:
        if counted(study.get_trials(deepcopy=False)) >= trials:
            study.stop()

    if counted(study.get_trials(deepcopy=False)) >= trials:
        return
    timeout = None if deadline is None else max(deadline - time.time(), 0.0)
    if timeout == 0.0:
        return
    study.optimize(
        objective(split, space, config),
        timeout=timeout,
        callbacks=[enough],
        catch=(TrialFailed,),
        gc_after_trial=False,
    )


@dataclass
class WorkerJob:
    """Everything a worker process needs (sent to it when it starts)."""

    out: Path
    storage_url: str | None
    name: str
    split: Split
    space: SearchSpace
    config: Config
    trials: int
    deadline: float | None
    seed: int


def worker(job: WorkerJob) -> None:
    """One worker process of ``--jobs N``: one torch thread, the shared study, its trials."""
    configure_threads(1)
    optuna.logging.set_verbosity(optuna.logging.ERROR)
    logging.getLogger("elman").setLevel(logging.ERROR)
    study = load(open_storage(job.out, job.storage_url), job.name, job.seed)
    optimize(study, job.split, job.space, job.config, job.trials, job.deadline)
