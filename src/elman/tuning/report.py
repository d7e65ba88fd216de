"""The files of a search: ``best.toml``, ``trials.csv``, two pictures and ``report.md``.

No pickle anywhere: the study itself is Optuna's journal (JSON lines), the rest is TOML,
CSV, PNG and Markdown.
"""

from __future__ import annotations

import logging
import math
import statistics
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd
from optuna.trial import FrozenTrial, TrialState

from elman.files import (
    REPORT,
    TUNE_BEST,
    TUNE_FIGURES,
    TUNE_TRIALS,
    atomic_write_text,
)
from elman.tuning.study import FAIL_REASON, KILLED, NEIGHBOUR, RETRY_OF, stopped

if TYPE_CHECKING:
    from elman.tuning.result import TuneResult

log = logging.getLogger(__name__)


def write_outputs(result: TuneResult) -> list[Path]:
    """Write every file of the search into ``result.out``; return their paths."""
    out = result.out
    atomic_write_text(out / TUNE_BEST, result.best.to_toml())
    table = trials_table(result.trials)
    atomic_write_text(out / TUNE_TRIALS, table.to_csv(index=False))
    paths = [out / TUNE_BEST, out / TUNE_TRIALS]
    figures = _pictures(result)
    paths += list(figures.values())
    atomic_write_text(out / REPORT, report_text(result, table, figures))
    paths.append(out / REPORT)
    return paths


def trials_table(trials: list[FrozenTrial]) -> pd.DataFrame:
    """One row per trial: number, state, score, seconds, every parameter, and the reason of
    a failure (or the trial it re-runs)."""
    rows = []
    for t in trials:
        seconds = (
            (t.datetime_complete - t.datetime_start).total_seconds()
            if t.datetime_complete and t.datetime_start
            else None
        )
        value = t.value if t.state == TrialState.COMPLETE else None  # pruned: no full mean
        rows.append(
            {
                "trial": t.number,
                "state": t.state.name.lower(),
                "score": value,
                "windows_scored": len(t.intermediate_values),
                "seconds": None if seconds is None else round(seconds, 2),
                **t.params,
                "default": bool(t.user_attrs.get("default", False)),
                "neighbour": t.user_attrs.get(NEIGHBOUR, ""),
                "retry_of": t.user_attrs.get(RETRY_OF),
                "reason": t.user_attrs.get(FAIL_REASON, KILLED if stopped(t) else ""),
            }
        )
    return pd.DataFrame(rows)


def spread(values: list[float]) -> float:
    """Highest minus lowest of the finite values (NaN when fewer than two)."""
    finite = [v for v in values if math.isfinite(v)]
    return max(finite) - min(finite) if len(finite) > 1 else float("nan")


def spread_text(values: list[float]) -> str:
    """:func:`spread` with four decimals, or ``-`` when one seed left none to measure."""
    found = spread(values)
    return f"{found:.4f}" if math.isfinite(found) else "-"


def finite_mean(values: list[float]) -> float:
    """Mean of the finite values (NaN when there are none)."""
    finite = [v for v in values if math.isfinite(v)]
    return statistics.fmean(finite) if finite else float("nan")


def report_text(result: TuneResult, table: pd.DataFrame, figures: dict[str, Path]) -> str:
    """The Markdown report of a search."""
    split = result.split
    counts = {str(k): int(v) for k, v in table["state"].value_counts().items()}
    tuned, default = result.untouched["tuned"], result.untouched["default"]
    lines = [
        "# elman tune",
        "",
        f"Study `{result.study_name}`: {len(table)} trials ({_counts(counts)}) in "
        f"{result.seconds:.0f} s.",
        "",
        f"Validation: {split.folds} rolling window(s) of {split.horizon} points at the end of "
        f"each of {len(split.series)} series, before an untouched final window of "
        f"{split.horizon} points that no trial saw. Score: MASE (mean absolute error over the "
        "seasonal-naive in-sample error), averaged over the windows; lower is better.",
        "",
        "## Tuned against default on the untouched window",
        "",
        "| configuration | seeds | MASE per seed | mean | spread |",
        "|---|---|---|---|---|",
        _row("tuned (best.toml)", result.chosen.seeds, tuned),
        _row("default (trial 0)", result.chosen.seeds, default),
        "",
        _verdict(tuned, default),
        "",
        f"Choice: {result.note}.",
        "",
        "## Re-scored on the validation windows over seeds",
        "",
        "| trial | mean | spread | scores per seed | parameters |",
        "|---|---|---|---|---|",
    ]
    for c in sorted(result.candidates, key=lambda c: c.mean):
        mark = " (chosen)" if c is result.chosen else ""
        lines.append(
            f"| {c.trial}{mark} | {c.mean:.4f} | {spread_text(c.scores)} | "
            f"{', '.join(f'{s:.4f}' for s in c.scores)} | {_params(c.params)} |"
        )
    lines += ["", "## Search space", "", "```", *result.space.lines(), "```", ""]
    lines += ["## Chosen configuration", "", "```toml", result.best.to_toml().rstrip(), "```", ""]
    for name, path in figures.items():
        lines += [f"![{name}]({path.name})", ""]
    lines += ["## Trials", "", _markdown(table), ""]
    return "\n".join(lines)


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{n} {state}" for state, n in sorted(counts.items()))


def _row(label: str, seeds: list[int], values: list[float]) -> str:
    per = ", ".join(f"{v:.4f}" for v in values)
    used = ", ".join(str(s) for s in seeds[: len(values)])
    return f"| {label} | {used} | {per} | {finite_mean(values):.4f} | {spread_text(values)} |"


def _verdict(tuned: list[float], default: list[float]) -> str:
    t, d = finite_mean(tuned), finite_mean(default)
    if tuned == default:
        return "The search kept the defaults: no configuration beat them over the seeds."
    spreads = [s for s in (spread(tuned), spread(default)) if math.isfinite(s)]
    change = (t - d) / d if d else float("nan")
    said = (
        f"Tuned is {abs(change):.1%} {'better' if t < d else 'worse'} than default on the "
        f"untouched window ({t:.4f} against {d:.4f})"
    )
    if not spreads:  # one seed (or one that scored): nothing is within or beyond
        return f"{said}; with one seed no seed spread was measured (--seeds 3 measures it)."
    seed_spread = max(spreads)
    within = "within" if abs(t - d) <= seed_spread else "beyond"
    return f"{said}, {within} the seed spread ({seed_spread:.4f})."


def _params(params: dict[str, Any]) -> str:
    return ", ".join(f"{k}={_short(v)}" for k, v in params.items())


def _short(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _markdown(table: pd.DataFrame) -> str:
    cols = [str(c) for c in table.columns]
    head = "| " + " | ".join(cols) + " |"
    rule = "|" + "---|" * len(cols)
    body = [
        "| "
        + " | ".join("" if _blank(v) else _short(v).replace("|", "/") for v in row)
        + " |"
        for row in table.itertuples(index=False)
    ]
    return "\n".join([head, rule, *body])


def _blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _pictures(result: TuneResult) -> dict[str, Path]:
    """The optimisation history and, with enough complete trials, parameter importances."""
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    from elman.runs.pictures import save_figure

    out: dict[str, Path] = {}
    done = [t for t in result.trials if t.state == TrialState.COMPLETE and t.value is not None]
    if not done:
        return out
    fig = Figure(figsize=(7, 3.5))
    ax = fig.subplots()
    xs = [t.number for t in done]
    ys = [float(t.value) for t in done if t.value is not None]
    ax.plot(xs, ys, "o", color="#1f77b4", label="trial score")
    best, running = [], math.inf
    for y in ys:
        running = min(running, y)
        best.append(running)
    ax.step(xs, best, where="post", color="#d62728", label="best so far")
    ax.axhline(ys[0] if done[0].user_attrs.get("default") else math.nan, color="#7f7f7f",
               linestyle="--", label="default (trial 0)")  # fmt: skip
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trial")
    ax.set_ylabel("mean window MASE")
    ax.legend(loc="upper right", fontsize=8)
    out["history"] = save_figure(fig, result.out / TUNE_FIGURES["history"])
    importance = _importances(result)
    if importance:
        fig = Figure(figsize=(6, 0.4 * len(importance) + 1.2))
        ax = fig.subplots()
        names = list(importance)[::-1]
        ax.barh(names, [importance[n] for n in names], color="#2ca02c")
        ax.set_xlabel("importance (fANOVA)")
        out["importance"] = save_figure(fig, result.out / TUNE_FIGURES["importance"])
    return out


def _importances(result: TuneResult) -> dict[str, float]:
    """Optuna's parameter importances, or nothing when too few trials completed or every
    one scored the same (then no parameter explains anything)."""
    import optuna

    done = [t for t in result.trials if t.state == TrialState.COMPLETE]
    if len(done) < 4 or len({str(t.params) for t in done}) < 2 or len({t.value for t in done}) < 2:
        return {}
    try:
        study = optuna.create_study(direction="minimize")
        study.add_trials(done)
        return dict(optuna.importance.get_param_importances(study))
    except Exception as exc:  # an importance estimate is a picture, never worth a failure
        log.info("parameter importances were not computed: %s", exc)
        return {}
