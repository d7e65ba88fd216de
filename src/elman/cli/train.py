"""``elman train``: fit a forecaster, score it on a hold-out beside the baselines, save a run."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from elman.cli.common import add_out_options, say, wrote
from elman.cli.options import add_config_options, config_from_args
from elman.config import Config
from elman.errors import ConfigError
from elman.evaluate import MODEL, HoldoutResult, evaluate_holdout, split_holdout
from elman.files import atomic_write_text, prepare_out_dir
from elman.forecaster import Forecaster
from elman.prepare import load_series
from elman.runs import CONFIG, HISTORY, write_history, write_holdout

SHOWN = ("mae", "rmse", "smape", "mase")


def add_parser(subs: Any) -> None:
    """Register ``elman train``."""
    p = subs.add_parser(
        "train",
        help="train a forecaster on a series, score it on a hold-out, save a run directory",
        description="Train on DATA without its last --test-size points (default: the horizon), "
        "forecast them, and print the model's metrics beside naive, seasonal-naive, drift and "
        "linear-AR baselines. Example: elman train --data builtin:airline --horizon 12 --out run",
    )
    p.add_argument("--config", metavar="FILE", help="TOML config (e.g. a run's config.toml)")
    add_config_options(p, ("data", "model", "train"))
    p.add_argument("--no-progress-bar", action="store_true", help="never draw a progress bar")
    add_out_options(p, None, "the run (model, config, metrics)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Train, evaluate, save."""
    cfg = config_from_args(args)
    if cfg.data.source is None:
        raise ConfigError("no data given: use --data FILE or --data builtin:NAME")
    out = prepare_out_dir(args.out, args.overwrite)
    series = load_series(cfg.data.source, cfg.data)
    test = cfg.data.test_size if cfg.data.test_size is not None else cfg.data.horizon
    fitted = split_holdout(series, test) if test else series
    f = Forecaster(config=cfg).fit(fitted)
    paths = [Path(out / CONFIG)]
    atomic_write_text(out / CONFIG, cfg.to_toml())
    assert f.train_state is not None
    paths.append(write_history(out / HISTORY, f.train_state.history))
    summary = f.summary()
    if test:
        result = evaluate_holdout(f, series, test)
        paths += write_holdout(out, result, series, {"training": summary})
        _print_table(result, cfg, series_count=len(series))
    f.series = series  # forecasts continue after the last point of the full data
    f.save(out)
    paths += [out / "model.safetensors", out / "model.json"]
    say(
        f"trained {cfg.model.model} ({summary.get('epochs_run')} epochs, best at "
        f"{summary.get('best_epoch')}); lookback {f.sizes.lookback if f.sizes else '?'}"
    )
    wrote(paths)
    return 0


def _print_table(result: HoldoutResult, cfg: Config, series_count: int) -> None:
    what = f"{series_count} series" if series_count > 1 else "the series"
    say(f"hold-out: last {result.test_size} points of {what} (season {result.season})")
    say("  ".join(["method".ljust(16), *(m.upper().rjust(10) for m in SHOWN)]))
    for name, metrics in result.metrics.items():
        label = f"{MODEL} ({cfg.model.model})" if name == MODEL else name
        cells = [f"{metrics.get(m, float('nan')):10.4g}" for m in SHOWN]
        say("  ".join([label.ljust(16), *cells]))
    model_mase = result.metrics[MODEL].get("mase")
    snaive = result.metrics.get("seasonal_naive", {}).get("mase")
    if model_mase is not None and snaive is not None:
        verdict = "beats" if model_mase < snaive else "does NOT beat"
        say(f"the model {verdict} seasonal-naive on MASE ({model_mase:.3f} vs {snaive:.3f})")
