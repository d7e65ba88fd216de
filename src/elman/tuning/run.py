"""``elman.tune``: a whole hyperparameter search in one call, with its files.

::

    import elman
    result = elman.tune("builtin:airline", horizon=12, trials=30, out="runs/tune")
    print(result.untouched)        # tuned and default MASE on the untouched window, per seed

Steps: read the data and cut the untouched final window off
(:mod:`elman.tuning.validation`); build the search space (:mod:`elman.tuning.space`);
open or resume the study in ``out`` (:mod:`elman.tuning.study`); run the trials in this
process or in ``jobs`` worker processes; re-score the best few configurations over
``seeds`` seeds and keep the one with the best mean; score it and the defaults on the
untouched window over the same seeds; write ``best.toml``, ``trials.csv``, the pictures and
``report.md`` (:mod:`elman.tuning.report`), and with ``train_best`` the run directory
``out/best`` that ``elman train --config best.toml`` writes.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import multiprocessing
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import optuna
from optuna.trial import FrozenTrial, TrialState

from elman.config import Config, ensemble_members
from elman.data.prepare import MIN_TRAIN_WINDOWS, load_series, resolve_sizes
from elman.errors import ConfigError, ElmanError
from elman.evaluation.scores import MODEL
from elman.files import (
    TUNE_BEST_RUN,
    TUNE_JOURNAL,
    TUNE_LOCK,
    TUNE_STUDY,
    atomic_write_json,
    prepare_out_dir,
)
from elman.runs.workflows import train_run
from elman.tuning import study as studies
from elman.tuning.report import write_outputs
from elman.tuning.result import Candidate, Progress, TuneResult
from elman.tuning.space import SearchSpace, default_space, holding, inert, load_space
from elman.tuning.validation import Split, fit_trial, make_split, untouched_score, window_scores

log = logging.getLogger(__name__)

POLL_S = 1.0  # seconds between two looks at the study for the progress callback


def tune(
    data: Any = None,
    *,
    out: str | Path,
    config: Config | None = None,
    trials: int = 20,
    timeout: float | None = None,
    jobs: int = 1,
    space: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    storage: str | None = None,
    seeds: int = 3,
    top: int = 3,
    folds: int | None = None,
    neighbours: int | None = None,
    train_best: bool = True,
    on_start: Callable[[Split, SearchSpace, bool], None] | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    **options: Any,
) -> TuneResult:
    """Search hyperparameters on ``data`` and write the results to ``out``.

    Args:
        data: path, ``builtin:NAME``, DataFrame, array or series (default: ``source``).
        out: the search's directory: new (refused if not empty unless ``overwrite``) or,
            with ``resume``, the directory of the search to continue.
        config: the configuration to start from (trial 0); ``options`` override it by
            name (``horizon=12, model="gru", epochs=50``).
        trials: trials the study holds when the search ends (a resumed study counts the
            ones it has).
        timeout: stop starting trials after this many seconds.
        jobs: worker processes sharing the study (one torch thread each).
        space: a TOML file that narrows or replaces the default search space.
        resume: continue the study in ``out`` (same data, horizon, options and space).
        overwrite: start afresh in a non-empty ``out``, replacing the files elman writes.
        storage: an Optuna RDB URL instead of the journal file in ``out``.
        seeds: seeds the best configurations and the defaults are scored over.
        top: how many of the best trials are re-scored over the seeds.
        folds: validation windows per series (default: from the count and length).
        neighbours: how many of the defaults' one-option neighbours run right after them
            (default: half of the other trials, :func:`neighbours_for`); set when the
            study is made, so a resumed search keeps its own.
        train_best: also write ``out/best``, the run of ``elman train --config best.toml``.
        on_start: called with the split, the space and whether the study is resumed,
            before the first trial.
        on_progress: called with a :class:`Progress` about once a second.
    """
    started = time.time()
    cfg, series = _setup(data, config, options)
    season = cfg.data.season or int(series[0].season or 1)
    split = make_split(series, cfg.data.horizon, season, folds)
    base, the_space = _space(cfg, split, space)
    for name, value in (("--trials", trials), ("--jobs", jobs), ("--seeds", seeds), ("--top", top)):
        if isinstance(value, bool) or int(value) < 1:
            raise ConfigError(f"{name} ({value}) must be >= 1")
    if neighbours is not None and (isinstance(neighbours, bool) or int(neighbours) < 0):
        raise ConfigError(f"--neighbours ({neighbours}) must be >= 0")
    if timeout is not None and not timeout > 0:
        raise ConfigError(f"--timeout ({timeout}) must be > 0 seconds")
    identity = studies.fingerprint(split, the_space, base)
    out = _out_dir(Path(out), resume, overwrite, identity)
    with _locked(out):
        store = studies.open_storage(out, storage)
        seed = base.train.seed
        defaults = the_space.defaults(base)
        if resume:
            if neighbours is not None:
                warnings.warn(
                    f"--neighbours ({neighbours}) is ignored with --resume: the study in "
                    f"'{out}' keeps the neighbours it was made with",
                    stacklevel=2,
                )
            study = studies.load(store, identity.name, seed)
        else:
            count = neighbours_for(trials) if neighbours is None else int(neighbours)
            near = the_space.neighbours(defaults, count, inert(base))
            study = studies.create(store, identity.name, defaults, seed, near)
        recovered = studies.recover_stale(study) if storage is None else 0
        if on_start is not None:
            on_start(split, the_space, resume)
        deadline = None if timeout is None else started + timeout
        job = studies.WorkerJob(
            out, storage, identity.name, split, the_space, base, trials, deadline, seed
        )
        with _watching(study, trials, started, on_progress):
            _run_workers(study, job, jobs)
        all_trials = studies.trials_run(study)
    result = _choose(split, base, defaults, all_trials, seeds, top)
    result.out, result.study_name, result.space, result.recovered = (
        out, identity.name, the_space, recovered
    )  # fmt: skip
    source = cfg.data.source if data is None or isinstance(data, str) else None
    _untouched(result, seeds, train_best, source)
    result.seconds = time.time() - started
    result.paths += write_outputs(result)
    return result


def neighbours_for(trials: int) -> int:
    """How many of the defaults' neighbours a search of ``trials`` tries after the defaults:
    half of the rest, so that the sampler proposes at least as many."""
    return (trials - 1) // 2


def _setup(data: Any, config: Config | None, options: dict[str, Any]) -> tuple[Config, list[Any]]:
    """The base configuration (no progress bar in trials) and the series."""
    cfg = (config or Config()).replace(**options)
    if isinstance(data, str):
        cfg = cfg.replace(source=data)
    source = data if data is not None else cfg.data.source
    if source is None:
        raise ConfigError("no data given: use --data FILE or --data builtin:NAME")
    return cfg.replace(progress=False), load_series(source, cfg.data)


def _space(cfg: Config, split: Split, path: str | Path | None) -> tuple[Config, SearchSpace]:
    """The base configuration with its lookback resolved, and the search space."""
    sizes = resolve_sizes(split.training(), cfg.data)
    shortest = min(int(k) for k in split.cutoffs[:, 0])
    longest = max(1, shortest - sizes.val_size - sizes.horizon - MIN_TRAIN_WINDOWS + 1)
    base = cfg.replace(lookback=sizes.lookback, season=split.season)
    found = default_space(base, sizes.lookback, max(longest, sizes.lookback))
    if path is not None:
        found, base = holding(load_space(path, found, base), base, path)
    return base, found


def _out_dir(out: Path, resume: bool, overwrite: bool, identity: studies.Identity) -> Path:
    """The search directory: checked for a resume, made (and described) for a new search."""
    if resume:
        if not out.is_dir():
            raise ConfigError(f"--resume: '{out}' is not a directory; give the --out of a search")
        studies.check_identity(out, identity)
        return out
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise ConfigError(
            f"--out '{out}' already exists and is not empty; add --resume to continue the "
            "search in it, choose a new directory, or pass --overwrite"
        )
    made = prepare_out_dir(out, overwrite)
    (made / TUNE_JOURNAL).unlink(missing_ok=True)  # --overwrite starts a fresh study
    atomic_write_json(made / TUNE_STUDY, identity.to_dict())
    return made


@contextlib.contextmanager
def _locked(out: Path) -> Iterator[None]:
    """Hold ``out/tune.lock`` so that two searches never run in one directory at once."""
    with open(out / TUNE_LOCK, "a+") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError as exc:
            raise ConfigError(
                f"--out '{out}': another elman tune is running in it; wait for it to end"
            ) from exc
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _run_workers(study: optuna.Study, job: studies.WorkerJob, jobs: int) -> None:
    """The trials: in this process for one job, else in ``jobs`` spawned processes."""
    if jobs == 1:
        studies.optimize(study, job.split, job.space, job.config, job.trials, job.deadline)
        return
    ctx = multiprocessing.get_context("spawn")
    procs = []
    for i in range(jobs):
        one = studies.WorkerJob(**{**job.__dict__, "seed": job.seed + 1 + i})
        procs.append(ctx.Process(target=studies.worker, args=(one,), name=f"elman-tune-{i}"))
    for p in procs:
        p.start()
    try:
        for p in procs:
            p.join()
    except BaseException:
        for p in procs:
            p.terminate()
        raise
    bad = [p.exitcode for p in procs if p.exitcode]
    if bad:
        raise ConfigError(f"--jobs: {len(bad)} worker(s) ended with exit code {bad[0]}")


@contextlib.contextmanager
def _watching(
    study: optuna.Study, total: int, started: float, callback: Callable[[Progress], None] | None
) -> Iterator[None]:
    """Call ``callback`` with the study's progress about once a second, and once at the end."""
    if callback is None:
        yield
        return
    stop = threading.Event()

    def watch() -> None:
        while not stop.wait(POLL_S):
            callback(progress(study.get_trials(deepcopy=False), total, started))

    thread = threading.Thread(target=watch, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        callback(progress(study.get_trials(deepcopy=False), total, started))


def progress(trials: list[FrozenTrial], total: int, started: float) -> Progress:
    """The :class:`Progress` of a list of trials."""
    states = [t.state for t in trials if studies.counts(t)]
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    best = min(done, key=lambda t: t.value or 0.0) if done else None
    return Progress(
        done=sum(s.is_finished() for s in states),
        running=states.count(TrialState.RUNNING),
        total=total,
        complete=len(done),
        pruned=states.count(TrialState.PRUNED),
        failed=states.count(TrialState.FAIL),
        best=None if best is None else best.value,
        best_trial=None if best is None else best.number,
        elapsed=time.time() - started,
    )


def _choose(
    split: Split,
    base: Config,
    defaults: dict[str, Any],
    trials: list[FrozenTrial],
    seeds: int,
    top: int,
) -> TuneResult:
    """Re-score the ``top`` best trials and the defaults over ``seeds`` seeds; keep the best
    mean whose lead is larger than the seed spread (:func:`_pick`). The defaults are always
    a candidate, so the choice is never worse than them on the validation windows. When the
    ensemble gave no trial's network any weight, the trials with the ensemble are not
    re-scored (their options changed nothing); only those of the network alone compete with
    the defaults."""
    done = sorted(
        (t for t in trials if t.state == TrialState.COMPLETE and t.value is not None),
        key=lambda t: (t.value, t.number),
    )
    first = next((t for t in done if t.params == defaults), None)
    ensembled = [t for t in done if _with_ensemble(t.params, base)]
    unused = _network_unused(ensembled)
    picked: list[FrozenTrial] = []
    for t in [t for t in done if not _with_ensemble(t.params, base)] if unused else done:
        if len(picked) < top and all(t.params != p.params for p in picked):
            picked.append(t)
    seed_list = [base.train.seed + i for i in range(seeds)]
    candidates = [_rescore(split, base, t.params, t.number, t.value, seed_list) for t in picked]
    if all(c.params != defaults for c in candidates):
        value = first.value if first is not None else None
        number = first.number if first is not None else 0
        candidates.append(_rescore(split, base, defaults, number, value, seed_list))
    chosen, note = _pick(candidates, defaults)
    if unused:
        alone = len(picked) > 0
        note = (
            f"every complete trial with the ensemble scored {ensembled[0].value:.4f} on the "
            "validation windows: the ensemble gave no trial's network any weight, so the "
            "network's options change nothing with it; "
        ) + (note if alone else "--ensemble none tunes the network alone")
    return TuneResult(
        note=note,
        out=Path("."),
        study_name="",
        split=split,
        space=SearchSpace(()),
        trials=trials,
        default_params=defaults,
        best=base.replace(**chosen.params),
        default=base.replace(**defaults),
        candidates=candidates,
        chosen=chosen,
        untouched={},
        seconds=0.0,
    )


def _with_ensemble(params: dict[str, Any], base: Config) -> bool:
    """Whether a trial of ``params`` forecasts with an ensemble (not the network alone)."""
    return bool(ensemble_members(params.get("ensemble", base.model.ensemble)))


def _network_unused(ensembled: list[FrozenTrial]) -> bool:
    """Whether trials with an ensemble, of different parameters, all scored exactly the same:
    then no such trial's network had any weight in it."""
    values = {t.value for t in ensembled}
    distinct = {tuple(sorted(t.params.items())) for t in ensembled}
    return len(values) == 1 and len(distinct) > 1


def _pick(candidates: list[Candidate], defaults: dict[str, Any]) -> tuple[Candidate, str]:
    """The candidate with the best mean over the seeds among those whose lead over the
    defaults is larger than the seed spread (of either); the defaults when none is, since
    then the search did not measure an improvement that the seed alone could not make."""
    default = next(c for c in candidates if c.params == defaults)
    best = min(candidates, key=lambda c: (c.mean, c.params != defaults))
    if best is default:
        return best, "no configuration beat the defaults on the validation windows"

    def margin(c: Candidate) -> float:
        return max(c.spread, default.spread)

    clear = [
        c for c in candidates if c is not default
        and (not math.isfinite(default.mean) or default.mean - c.mean > margin(c))
    ]  # fmt: skip
    if not clear:
        lead = default.mean - best.mean
        return default, (
            f"trial {best.trial} led the defaults on the validation windows by {lead:.4f}, "
            f"no more than the seed spread ({margin(best):.4f}), so the defaults were kept"
        )
    chosen = min(clear, key=lambda c: c.mean)
    lead = default.mean - chosen.mean
    return chosen, (
        f"trial {chosen.trial} led the defaults on the validation windows by {lead:.4f}, "
        f"more than the seed spread ({margin(chosen):.4f})"
    )


def _rescore(
    split: Split,
    base: Config,
    params: dict[str, Any],
    number: int,
    value: float | None,
    seeds: list[int],
) -> Candidate:
    """The mean window score of ``params`` for every seed (the first from its trial)."""
    scores = []
    for i, seed in enumerate(seeds):
        if i == 0 and value is not None:
            scores.append(float(value))
            continue
        try:
            cfg = base.replace(**params, seed=seed)
            score = float(window_scores(fit_trial(cfg, split), split).mean())
            scores.append(score if math.isfinite(score) else float("inf"))
        except ElmanError as exc:
            log.info("re-scoring trial %d with seed %d failed: %s", number, seed, exc)
            scores.append(float("inf"))
    return Candidate(number, dict(params), list(seeds), scores)


def _untouched(result: TuneResult, seeds: int, train_best: bool, source: str | None) -> None:
    """Score the chosen configuration and the defaults on the untouched window, per seed;
    with ``train_best`` the chosen one's first seed is the run ``out/best``."""
    best = result.best.replace(progress=True)
    if source is not None:
        best = best.replace(source=source)
    result.best = best
    seed0 = best.train.seed
    tuned: list[float] = []
    if train_best and source is not None:
        run = train_run(result.out / TUNE_BEST_RUN, best, overwrite=True)
        result.best_run = run.out
        assert run.holdout is not None
        tuned.append(float(run.holdout.metrics[MODEL]["mase"]))
    same = result.chosen.params == result.default_params
    for i in range(len(tuned), seeds):
        tuned.append(_safe_untouched(best.replace(seed=seed0 + i, progress=False), result.split))
    if same:
        default = list(tuned)
    else:
        default = [
            _safe_untouched(result.default.replace(seed=seed0 + i), result.split)
            for i in range(seeds)
        ]
    result.untouched = {"tuned": tuned, "default": default}


def _safe_untouched(config: Config, split: Split) -> float:
    try:
        return untouched_score(config, split)
    except ElmanError as exc:
        log.info("the untouched window could not be scored: %s", exc)
        return float("nan")
