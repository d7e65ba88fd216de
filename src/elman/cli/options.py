"""Command-line flags generated from the config dataclasses, so the CLI and the Python API
offer the same options under the same names (``lookback`` <-> ``--lookback``).

Flags default to ``None`` ("not given"), so that only what the user typed overrides a
``--config`` file or the dataclass defaults.
"""

from __future__ import annotations

import argparse
import dataclasses
import types
import typing
from typing import Any

from elman.config import (
    BASELINE_CHOICES,
    LOSSES,
    MISSING,
    MODEL_NAMES,
    NONNEGATIVE,
    NORMS,
    OPTIMIZERS,
    PRECISIONS,
    SCALERS,
    SCHEDULERS,
    STRATEGIES,
    Config,
    DataConfig,
    ModelConfig,
    TrainConfig,
)

HELP = {
    "source": "data: a CSV or Parquet file, or builtin:NAME (see 'elman datasets')",
    "target": "target column(s) to forecast (default: the only numeric column)",
    "time_col": "time column (default: a column named date/time/month/... if present)",
    "covariates": "past-observed input columns",
    "future_covariates": "input columns known ahead (needed for the forecast steps too)",
    "series_id": "id column of long-format data: one global model learns every series",
    "category": "column naming each series' category, one value per series (e.g. Macro, "
    "Micro); --model esrnn reads it as a one-hot input of its network",
    "calendar": "add calendar features (month, weekday, hour, ...) as known-ahead inputs",
    "missing": "what to do with missing values",
    "sep": "field delimiter of a text file, e.g. ';' (default: from the suffix)",
    "decimal": "decimal mark of numbers in a text file, e.g. ',' for 1502,51",
    "thousands": "thousands separator of numbers in a text file, e.g. ',' for 1,502,514.60",
    "dayfirst": "read ambiguous dates such as 01/02/2023 day first (1 February)",
    "date_format": "format of the time column's dates, e.g. %%d/%%m/%%Y (overrides --dayfirst)",
    "lookback": "input window length (default: from the season and horizon)",
    "horizon": "steps to forecast",
    "season": "season length (default: from the frequency, e.g. 12 for monthly)",
    "scaler": "per-column scaling, fitted on the training part only",
    "norm": "per-window normalisation: subtract the window's last value, or none",
    "val_size": "validation points at the end of the training data (default: auto)",
    "test_size": "points held out for the test metrics (default: the horizon)",
    "nonnegative": "auto: a target whose training values were never negative gets forecasts and "
    "interval bounds floored at 0; off: forecasts as the model gives them",
    "baselines": "baselines scored beside the model: all, fast (no ETS/Theta), or auto: all "
    "unless fitting ETS and Theta would take over 30 s (timed on the first series)",
    "model": "network type",
    "hidden_size": "units per layer (channels for tcn)",
    "num_layers": "stacked layers (residual blocks for tcn)",
    "dropout": "dropout between layers, in [0, 1)",
    "strategy": "direct: emit the whole horizon; recursive: feed one-step outputs back",
    "highway": "direct: add a linear autoregression on the window beside the network",
    "ensemble": "auto: network, ETS, Theta and naive, weighted on the validation "
    "windows (greedy selection); none: the network alone (exports and streams as it is); or a "
    "comma list such as network,theta",
    "epochs": "maximum epochs (early stopping usually ends sooner)",
    "batch_size": "windows per batch",
    "lr": "learning rate",
    "optimizer": "optimizer",
    "weight_decay": "L2 penalty",
    "loss": "training and validation loss in scaled units: mse, mae (robust to outliers), or "
    "huber (squared below 1, absolute above); --model esrnn uses its pinball loss instead",
    "clip": "gradient-norm clipping (0 disables it)",
    "scheduler": "learning-rate schedule",
    "patience": "epochs without validation improvement before stopping",
    "tbptt": "stateful truncated BPTT with chunks of this length (long series; needs --norm none)",
    "teacher_forcing": "recursive: probability of feeding the true value while unrolling",
    "scheduled_sampling": "recursive: decay teacher forcing to 0 over the epochs",
    "max_batches": "at most this many batches per epoch (random windows; 0: every window)",
    "max_steps": "at most this many optimizer steps in all (0: no limit)",
    "val_windows": "score validation on at most this many windows, a fixed sample (0: all)",
    "max_retries": "on a NaN/inf loss: restore the last good weights, halve the LR, retry",
    "average": "average the weights of the K best validation checks and keep the average where "
    "it scores better on validation than the best one (0 or 1: the best weights alone)",
    "seed": "random seed (same seed, data and machine: same numbers)",
    "device": "auto picks CUDA when a GPU is present",
    "threads": "torch threads (default: physical cores)",
    "precision": "bf16: bfloat16 autocast of the forward pass and loss (weights stay float32)",
    "progress": "progress bar on stderr (only shown on a terminal)",
}

CHOICES = {
    "missing": MISSING,
    "baselines": BASELINE_CHOICES,
    "nonnegative": NONNEGATIVE,
    "scaler": SCALERS,
    "norm": NORMS,
    "strategy": STRATEGIES,
    "optimizer": OPTIMIZERS,
    "loss": LOSSES,
    "scheduler": SCHEDULERS,
    "device": ("auto", "cpu", "cuda"),
    "precision": PRECISIONS,
}
FLAG_NAMES = {"source": "--data"}
LIST_FIELDS = {"target", "covariates", "future_covariates"}
SKIP = {"progress"}


def _base_type(tp: Any) -> Any:
    """``int | None`` -> ``int``; ``tuple[str, ...]`` -> ``str``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        return _base_type(args[0])
    if origin is tuple:
        return str
    return tp


def _split_list(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def add_config_options(p: argparse.ArgumentParser, sections: tuple[str, ...]) -> None:
    """One flag per config field of the given sections (``data``, ``model``, ``train``)."""
    klasses = {"data": DataConfig, "model": ModelConfig, "train": TrainConfig}
    for section in sections:
        group = p.add_argument_group(f"{section} options")
        hints = typing.get_type_hints(klasses[section])
        for f in dataclasses.fields(klasses[section]):
            if f.name in SKIP:
                continue
            _add_one(group, f.name, _base_type(hints[f.name]), f.default)


def _add_one(group: Any, name: str, tp: Any, default: Any) -> None:
    flag = FLAG_NAMES.get(name, "--" + name.replace("_", "-"))
    shown = "" if default in (None, ()) else f" (default: {default})"
    help_text = HELP.get(name, "") + shown
    if tp is bool:
        group.add_argument(
            flag, dest=name, action=argparse.BooleanOptionalAction, default=None, help=help_text
        )
        return
    kwargs: dict[str, Any] = {"dest": name, "default": None, "help": help_text}
    if name in LIST_FIELDS:
        kwargs.update(nargs="+", metavar="COL")
    elif name == "model":
        kwargs.update(choices=list(MODEL_NAMES))
    elif name in CHOICES:
        kwargs.update(choices=CHOICES[name])
    else:
        kwargs.update(type=tp, metavar=name.upper())
    group.add_argument(flag, **kwargs)


def config_from_args(args: argparse.Namespace, base: Config | None = None) -> Config:
    """The config file (if any) overridden by every flag the user gave."""
    base = base or (Config.from_toml(args.config) if getattr(args, "config", None) else Config())
    names = {f.name for k in (DataConfig, ModelConfig, TrainConfig) for f in dataclasses.fields(k)}
    given: dict[str, Any] = {}
    for name in names:
        value = getattr(args, name, None)
        if value is None:
            continue
        if name in LIST_FIELDS:
            value = tuple(c for v in value for c in _split_list(v))
        given[name] = value
    if getattr(args, "no_progress_bar", False):
        given["progress"] = False
    return base.replace(**given)
