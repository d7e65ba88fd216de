"""Frozen, validated configuration: what to read, what to build, how to train.

Each dataclass owns its defaults (one comment per field) and checks itself in
``__post_init__``; messages name the option, its value and the rule it broke. A run writes
its resolved configuration as TOML, and ``elman train --config FILE`` reads it back.
"""

from __future__ import annotations

import dataclasses
import math
import numbers
import sys
import types
import typing
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import tomli_w

from elman.errors import ConfigError, quote

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STRATEGIES = ("direct", "recursive")
SCALERS = ("standard", "minmax", "none")
NORMS = ("last", "none")
BASELINE_CHOICES = ("auto", "all", "fast")
NONNEGATIVE = ("auto", "off")  # auto: a target never negative in training is forecast >= 0
# members of an ensemble beside the network (statistical forecasts fitted per series)
ENSEMBLE_MEMBERS = ("network", "ets", "theta", "naive", "seasonal_naive", "drift")
ENSEMBLE_AUTO = ("network", "ets", "theta", "naive")  # what --ensemble auto combines
MISSING = ("error", "interpolate", "ffill", "drop")
OPTIMIZERS = ("adam", "sgd", "lbfgs")
LOSSES = ("mse", "mae", "huber")  # training losses of window networks (esrnn: pinball)
SCHEDULERS = ("plateau", "cosine", "none")
DEVICES = ("auto", "cpu", "cuda")
PRECISIONS = ("fp32", "bf16")
MODEL_NAMES = ("elman", "esrnn", "gru", "lstm", "rnn", "tcn")  # elman.models.registry.available()
# models that read whole series with per-series parameters (no windows, state, ONNX, online)
SERIES_MODEL_NAMES = ("esrnn",)
# models whose dropout acts only between stacked layers, so that it does nothing with one
# (tcn drops after each convolution, esrnn on its input windows)
LAYER_DROPOUT_MODELS = ("elman", "rnn", "lstm", "gru")
ONLINE_OPTIMIZERS = ("adam", "sgd")  # the optimizers of the online learner
MAX_HORIZON = 100_000  # steps; a recursive forecast runs the network once per step
DEFAULT_OPSET = 17  # ONNX opset of the exported graphs (onnxruntime >= 1.12 runs it)
DEFAULT_DIST_TIMEOUT_S = 300.0  # seconds a distributed collective may wait for a peer


def ensemble_members(spec: str) -> tuple[str, ...]:
    """The members an ``--ensemble`` value names: ``()`` for ``none`` (a single network).

    Raises:
        ConfigError: an unknown member, a list without ``network``, or one member only.
    """
    text = spec.strip().lower()
    if text == "none":
        return ()
    if text == "auto":
        return ENSEMBLE_AUTO
    names = tuple(dict.fromkeys(part.strip() for part in text.split(",") if part.strip()))
    bad = [n for n in names if n not in ENSEMBLE_MEMBERS]
    if bad:
        raise ConfigError(
            f"--ensemble: '{bad[0]}' is not a member; use none, auto or a comma list of: "
            f"{', '.join(ENSEMBLE_MEMBERS)}"
        )
    if "network" not in names or len(names) < 2:
        raise ConfigError(
            f"--ensemble '{spec}' must list network and at least one other member, e.g. "
            "network,theta (or none for the network alone)"
        )
    return names


def _opt(name: str) -> str:
    return "--" + name.replace("_", "-")


def _check_choice(name: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ConfigError(f"{_opt(name)} '{value}' is not one of: {', '.join(choices)}")


MAX_AVERAGE = 50  # --average: weight copies kept at most


def _check_min(name: str, value: float | int | None, low: float, strict: bool = False) -> None:
    if value is None:
        return
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{_opt(name)} ({value}) must be a finite number")
    bad = value <= low if strict else value < low
    if bad:
        rule = f"> {low:g}" if strict else f">= {low:g}"
        raise ConfigError(f"{_opt(name)} ({value}) must be {rule}")


def check_number_marks(decimal: str, thousands: str | None, sep: str | None) -> None:
    """``--decimal`` and ``--thousands``: one punctuation or space character each, unlike
    each other and ``--sep``.

    Raises:
        ConfigError: names the option and the rule.
    """
    for flag, mark in (("--decimal", decimal), ("--thousands", thousands)):
        if mark is None:
            continue
        if not isinstance(mark, str) or len(mark) != 1 or mark.isalnum() or mark in '\r\n"':
            raise ConfigError(
                f"{flag} {quote(mark)} must be one punctuation or space character, "
                "for example ',' or '.'"
            )
        if sep is not None and mark == sep:
            raise ConfigError(
                f"{flag} {quote(mark)} is also --sep (the field delimiter); they must differ"
            )
    if thousands is not None and thousands == decimal:
        raise ConfigError(
            f"--thousands {quote(thousands)} is also --decimal (the decimal mark); they must differ"
        )


def _check_reading(
    sep: str | None, decimal: str, thousands: str | None, date_format: str | None
) -> None:
    """The reading options: number marks (:func:`check_number_marks`) and a ``--date-format``
    that holds a ``%`` directive."""
    check_number_marks(decimal, thousands, sep)
    if date_format is not None and (not isinstance(date_format, str) or "%" not in date_format):
        raise ConfigError(
            f"--date-format {date_format!r} has no % directive; write it like %d/%m/%Y"
        )


@dataclass(frozen=True)
class DataConfig:
    """Which columns to use and how to shape them into windows."""

    source: str | None = None  # CSV / Parquet path or builtin:NAME (None: data given in Python)
    target: tuple[str, ...] = ()  # target columns; empty = the only numeric column
    time_col: str | None = None  # time column; None = auto-detect or integer index
    covariates: tuple[str, ...] = ()  # past-observed inputs
    future_covariates: tuple[str, ...] = ()  # inputs known ahead
    series_id: str | None = None  # id column of long-format data (one global model)
    category: str | None = None  # column naming each series' category (esrnn: a network input)
    calendar: bool = False  # add calendar features from the time index as future inputs
    missing: str = "error"  # error | interpolate | ffill | drop
    sep: str | None = None  # field delimiter of text files; None = from the suffix (, or tab)
    decimal: str = "."  # decimal mark of numbers in text files (',' for 1502,51)
    thousands: str | None = None  # thousands separator in text files (',' for 1,502,514.60)
    dayfirst: bool = False  # read ambiguous dates like 01/02/2023 day first (1 February)
    date_format: str | None = None  # strftime format of the time column, e.g. %d/%m/%Y
    lookback: int | None = None  # input window; None = chosen from season and horizon
    horizon: int = 1  # steps forecast at once
    season: int | None = None  # season length; None = inferred from the frequency
    scaler: str = "standard"  # standard | minmax | none, fitted on the training part
    norm: str = "last"  # per-window: subtract the window's last value (last) or not (none)
    val_size: int | None = None  # validation points at the end of training; None = auto
    test_size: int | None = None  # held-out test points; None = horizon (train CLI)
    baselines: str = "auto"  # auto | all | fast: which baselines the hold-out/backtest scores
    nonnegative: str = "auto"  # auto: floor at 0 the forecasts of a never-negative target | off

    def __post_init__(self) -> None:
        for name in ("target", "covariates", "future_covariates"):
            value = getattr(self, name)
            if isinstance(value, str):
                object.__setattr__(self, name, (value,))
            else:
                object.__setattr__(self, name, tuple(value))
        _check_min("horizon", self.horizon, 1)
        if self.horizon > MAX_HORIZON:
            raise ConfigError(
                f"--horizon ({self.horizon}) is above elman's limit of {MAX_HORIZON:,} steps; "
                "forecast a shorter horizon (or resample the data to a coarser frequency)"
            )
        _check_min("lookback", self.lookback, 1)
        _check_min("season", self.season, 1)
        _check_min("val_size", self.val_size, 0)
        _check_min("test_size", self.test_size, 0)
        _check_choice("scaler", self.scaler, SCALERS)
        _check_choice("norm", self.norm, NORMS)
        _check_choice("missing", self.missing, MISSING)
        _check_choice("baselines", self.baselines, BASELINE_CHOICES)
        _check_choice("nonnegative", self.nonnegative, NONNEGATIVE)
        _check_reading(self.sep, self.decimal, self.thousands, self.date_format)
        overlap = set(self.target) & (set(self.covariates) | set(self.future_covariates))
        if overlap:
            raise ConfigError(
                f"column '{sorted(overlap)[0]}' is both a target and a covariate; "
                "use it in one role only"
            )


@dataclass(frozen=True)
class ModelConfig:
    """Which network to build."""

    model: str = "lstm"  # elman | rnn | lstm | gru | tcn | esrnn
    hidden_size: int = 64  # units per layer (channels for tcn)
    num_layers: int = 1  # stacked layers (residual blocks for tcn)
    dropout: float = 0.0  # dropout between layers
    strategy: str = "direct"  # direct: emit the whole horizon; recursive: feed outputs back
    highway: bool = True  # direct: add a linear map of the input window (see models/highway.py)
    season2: int = 0  # esrnn: a second season (e.g. 168 beside 24 for hourly data); 0 = none
    history: int | None = 520  # esrnn: last steps of each series the smoothing reads; None = all
    ensemble: str = "auto"  # none | auto | members, e.g. "network,theta": weights on validation

    def __post_init__(self) -> None:
        ensemble_members(self.ensemble)  # refuses an unknown member
        _check_min("hidden_size", self.hidden_size, 1)
        _check_min("season2", self.season2, 0)
        _check_min("history", self.history, 1)
        _check_min("num_layers", self.num_layers, 1)
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"--dropout ({self.dropout}) must be in [0, 1)")
        _check_choice("strategy", self.strategy, STRATEGIES)


@dataclass(frozen=True)
class TrainConfig:
    """How to train."""

    epochs: int = 200  # upper bound; early stopping usually ends sooner
    batch_size: int = 64  # windows per batch
    lr: float = 3e-3  # learning rate
    optimizer: str = "adam"  # adam | sgd | lbfgs
    weight_decay: float = 0.0  # L2 penalty
    clip: float | None = 1.0  # gradient-norm clipping; None or 0 disables it
    scheduler: str = "plateau"  # plateau | cosine | none
    patience: int = 10  # epochs without validation improvement before stopping
    tbptt: int | None = None  # stateful truncated BPTT chunk length (long series); None = windows
    teacher_forcing: float = 1.0  # recursive: probability of feeding the truth while unrolling
    scheduled_sampling: bool = False  # recursive: decay teacher forcing to 0 over the epochs
    max_batches: int | None = 100  # batches per epoch at most (random windows); 0: every window
    max_steps: int | None = 10_000  # optimizer steps in all at most; 0: no limit
    val_windows: int | None = 2048  # validation windows at most (a fixed seeded sample); 0: all
    max_retries: int = 3  # NaN/inf losses survived (each restores the weights, halves the LR)
    average: int = 0  # average the weights of the K best validation checks if that scores better
    seed: int = 0  # seeds weights, shuffling and sampling
    device: str = "auto"  # auto | cpu | cuda
    threads: int | None = None  # torch threads; None = physical cores
    precision: str = "fp32"  # fp32 | bf16: bfloat16 autocast of forward + loss (see precision.py)
    progress: bool = True  # progress bar on stderr (only when it is a terminal)
    loss: str = "mse"  # mse | mae | huber (delta 1 in scaled units); esrnn: the pinball loss
    quantile: float = 0.48  # esrnn: quantile of the pinball loss (a little below the median)
    level_penalty: float = 0.0  # esrnn: weight of the log level's squared second differences

    def __post_init__(self) -> None:
        _check_min("epochs", self.epochs, 0)
        _check_min("level_penalty", self.level_penalty, 0.0)
        if not 0.0 < self.quantile < 1.0:
            raise ConfigError(f"--quantile ({self.quantile}) must be in (0, 1)")
        _check_min("batch_size", self.batch_size, 1)
        _check_min("lr", self.lr, 0.0, strict=True)
        _check_min("weight_decay", self.weight_decay, 0.0)
        _check_min("clip", self.clip, 0.0)
        _check_min("patience", self.patience, 1)
        _check_min("tbptt", self.tbptt, 2)
        _check_min("max_batches", self.max_batches, 0)
        _check_min("max_steps", self.max_steps, 0)
        _check_min("val_windows", self.val_windows, 0)
        _check_min("threads", self.threads, 1)
        _check_min("max_retries", self.max_retries, 0)
        _check_min("average", self.average, 0)
        if self.average > MAX_AVERAGE:  # each kept check is a copy of the weights
            raise ConfigError(
                f"--average ({self.average}) must be at most {MAX_AVERAGE}: each averaged "
                "check keeps a copy of the model's weights"
            )
        if not 0 <= self.seed < 2**32:
            raise ConfigError(f"--seed ({self.seed}) must be in [0, 2**32)")
        _check_choice("optimizer", self.optimizer, OPTIMIZERS)
        _check_choice("loss", self.loss, LOSSES)
        _check_choice("scheduler", self.scheduler, SCHEDULERS)
        _check_choice("device", self.device, DEVICES)
        _check_choice("precision", self.precision, PRECISIONS)
        if not 0.0 <= self.teacher_forcing <= 1.0:
            raise ConfigError(f"--teacher-forcing ({self.teacher_forcing}) must be in [0, 1]")


@dataclass(frozen=True)
class Config:
    """The three parts together, as one run resolves them."""

    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain dict (tuples become lists), JSON- and TOML-safe apart from ``None``."""
        return {k: _plain(asdict(getattr(self, k))) for k in ("data", "model", "train")}

    @classmethod
    def from_dict(cls, d: dict[str, Any], source: str = "config") -> Config:
        """Build from a dict such as :meth:`to_dict` or a TOML file gives."""
        if not isinstance(d, dict):
            raise ConfigError(f"{source}: expected the sections data, model, train; got {d!r}")
        unknown = set(d) - {"data", "model", "train"}
        if unknown:
            raise ConfigError(
                f"{source}: unknown section [{sorted(unknown)[0]}]; sections are data, model, train"
            )
        parts = {}
        for name, klass in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
            parts[name] = _build(klass, d.get(name, {}), f"{source} [{name}]")
        return cls(**parts)

    def to_toml(self) -> str:
        """TOML text; ``None`` values are left out (they mean "the default")."""
        clean = {
            k: {n: v for n, v in sec.items() if v is not None} for k, sec in self.to_dict().items()
        }
        return tomli_w.dumps(clean)

    @classmethod
    def from_toml(cls, path: str | Path) -> Config:
        """Read a TOML file written by :meth:`to_toml` (or by hand)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as exc:
            raise ConfigError(f"--config '{path}' does not exist") from exc
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--config '{path}' is not valid TOML: {exc}") from exc
        except IsADirectoryError as exc:
            raise ConfigError(
                f"--config '{path}' is a directory; give the config.toml file"
            ) from exc
        return cls.from_dict(data, source=str(path))

    def replace(self, **overrides: Any) -> Config:
        """A copy with flat overrides routed to the section that owns each name."""
        return split_overrides(overrides, base=self)


def _plain(value: Any) -> Any:
    if isinstance(value, tuple):
        return list(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _build(klass: Any, values: dict[str, Any], where: str) -> Any:
    names = {f.name for f in fields(klass)}
    if not isinstance(values, dict):
        raise ConfigError(f"{where}: expected a table of options, got {values!r}")
    hints = typing.get_type_hints(klass)
    for key, value in values.items():
        if key not in names:
            raise ConfigError(
                f"{where}: unknown key '{key}'; valid keys: {', '.join(sorted(names))}"
            )
        if not _fits(value, hints[key]):
            raise ConfigError(f"{where}: '{key}' = {value!r} is not {_type_name(hints[key])}")
    try:
        return klass(**values)
    except TypeError as exc:  # wrong value types from a hand-written file
        raise ConfigError(f"{where}: {exc}") from exc


def _fits(value: Any, tp: Any) -> bool:
    """Whether a value read from a file fits a field type (ints count as floats, not bools)."""
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return any(_fits(value, arg) for arg in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if typing.get_origin(tp) is tuple:  # tuple[str, ...]: one name or a list of names
        items = [value] if isinstance(value, str) else value
        return isinstance(items, (list, tuple)) and all(isinstance(v, str) for v in items)
    if tp is float:
        return isinstance(value, numbers.Real) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, numbers.Integral) and not isinstance(value, bool)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    names = {int: "an integer", float: "a number", str: "a string", bool: "true or false"}
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        parts = [_type_name(a) for a in typing.get_args(tp) if a is not type(None)]
        return " or ".join(parts) + " (or left out)"
    if typing.get_origin(tp) is tuple:
        return "a list of column names"
    return names.get(tp, str(tp))


def field_owner(name: str) -> str:
    """The section (data, model or train) that owns an option name."""
    for section, klass in (("data", DataConfig), ("model", ModelConfig), ("train", TrainConfig)):
        if name in {f.name for f in fields(klass)}:
            return section
    valid = sorted({f.name for k in (DataConfig, ModelConfig, TrainConfig) for f in fields(k)})
    raise ConfigError(f"unknown option '{name}'; valid options: {', '.join(valid)}")


_HINTS = {  # each section's field types, for checking options given from Python
    "data": typing.get_type_hints(DataConfig),
    "model": typing.get_type_hints(ModelConfig),
    "train": typing.get_type_hints(TrainConfig),
}


def split_overrides(overrides: dict[str, Any], base: Config | None = None) -> Config:
    """Route flat ``name=value`` options to their sections and build a validated Config."""
    base = base or Config()
    sections: dict[str, dict[str, Any]] = {"data": {}, "model": {}, "train": {}}
    for name, value in overrides.items():
        section = field_owner(name)
        hint = _HINTS[section][name]
        if not _fits(value, hint):
            raise ConfigError(f"{_opt(name)} ({value!r}) must be {_type_name(hint)}")
        sections[section][name] = value
    return Config(
        data=dataclasses.replace(base.data, **sections["data"]),
        model=dataclasses.replace(base.model, **sections["model"]),
        train=dataclasses.replace(base.train, **sections["train"]),
    )


# ----------------------------------------------------------------------------- online learning
# (elman stream and Forecaster.update; the learner is elman.online.learner.OnlineLearner)


@dataclass(frozen=True)
class OnlineConfig:
    """How a stream is learned and scored."""

    tbptt: int = 16  # k: steps back-propagated behind the oldest trained position
    update_every: int = 1  # u: one optimizer step per u points
    optimizer: str = "adam"  # adam | sgd
    lr: float = 1e-3  # learning rate of the online optimizer
    clip: float | None = 1.0  # gradient-norm clipping; None or 0 disables it
    anomaly_threshold: float = 4.0  # flag |error| > threshold x running MAE
    metric_span: int = 100  # span of the exponentially weighted running MAE
    min_errors: int = 10  # no anomaly flag before this many errors
    learn: bool = True  # False: predict and score only, never update the weights

    def __post_init__(self) -> None:
        checks = [
            ("--tbptt", self.tbptt, self.tbptt >= 1, ">= 1"),
            ("--update-every", self.update_every, self.update_every >= 1, ">= 1"),
            ("--lr", self.lr, self.lr >= 0, ">= 0"),
            ("--clip", self.clip, self.clip is None or self.clip >= 0, ">= 0"),
            ("--anomaly-threshold", self.anomaly_threshold, self.anomaly_threshold > 0, "> 0"),
            ("--metric-span", self.metric_span, self.metric_span >= 1, ">= 1"),
            ("--min-errors", self.min_errors, self.min_errors >= 0, ">= 0"),
        ]
        for flag, value, ok, rule in checks:
            if not ok:
                raise ConfigError(f"{flag} ({value}) must be {rule}")
        if self.optimizer not in ONLINE_OPTIMIZERS:
            raise ConfigError(
                f"--optimizer '{self.optimizer}' is not one of: {', '.join(ONLINE_OPTIMIZERS)}"
            )

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-safe dict."""
        return dataclasses.asdict(self)


# ----------------------------------------------------------------------------- the seed system
# (elman tutorial; the system itself is elman.tutorial)

COMPARE_OPTIMIZERS = ("lbfgs", "adam")


@dataclass(frozen=True)
class TutorialConfig:
    """Every knob of the seed system; the defaults are the seed's values."""

    seed: int = 0  # fixed, so two runs print identical numbers
    epochs: int = 300  # passes over the 20 points
    lr: float = 0.1  # plain gradient-descent step
    hidden_size: int = 6  # context neurons
    init_std_in: float = 0.4  # std of w1, the [input, context] -> context weights
    init_std_out: float = 0.3  # std of w2, the context -> output weights
    n_points: int = 21  # linspace(2, 10, 21): 20 inputs, 20 next-value targets
    print_every: int = 10  # the seed prints every 10 epochs
    compare: bool = False  # also train with full-sequence BPTT
    compare_optimizer: str = "lbfgs"  # lbfgs | adam
    compare_target: float = 1e-3  # stop the modern run at this one-step MSE
    compare_max_steps: int = 2000  # give up after this many optimizer steps

    def __post_init__(self) -> None:
        if self.epochs < 0:
            raise ConfigError(f"--epochs ({self.epochs}) must be >= 0")
        if self.hidden_size < 1:
            raise ConfigError(f"--hidden-size ({self.hidden_size}) must be >= 1")
        if not self.lr > 0:
            raise ConfigError(f"--lr ({self.lr}) must be > 0")
        if self.compare_optimizer not in COMPARE_OPTIMIZERS:
            raise ConfigError(
                f"--compare-optimizer '{self.compare_optimizer}' is not one of: "
                + ", ".join(COMPARE_OPTIMIZERS)
            )
        if not self.compare_target > 0:
            raise ConfigError(f"--compare-target ({self.compare_target}) must be > 0")
