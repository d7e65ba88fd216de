"""What a search found: the re-scored candidates, the progress reports, the result."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from optuna.trial import FrozenTrial

from elman.config import Config
from elman.tuning.space import SearchSpace
from elman.tuning.validation import Split


@dataclass
class Candidate:
    """A configuration re-scored over several seeds on the validation windows."""

    trial: int  # the trial that proposed it
    params: dict[str, Any]
    seeds: list[int]
    scores: list[float]  # mean window score per seed (inf: that seed failed)

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)

    @property
    def spread(self) -> float:
        """Highest minus lowest score over the seeds."""
        return max(self.scores) - min(self.scores)


@dataclass
class Progress:
    """What a progress callback is given, about once a second."""

    done: int  # trials finished (complete, pruned or failed)
    running: int
    total: int  # --trials
    complete: int
    pruned: int
    failed: int
    best: float | None  # best mean window score so far
    best_trial: int | None
    elapsed: float  # seconds since this command started


@dataclass
class TuneResult:
    """What :func:`tune` did and found."""

    out: Path
    study_name: str
    split: Split
    space: SearchSpace
    trials: list[FrozenTrial]
    default_params: dict[str, Any]
    best: Config  # the chosen configuration (what best.toml holds)
    default: Config  # trial 0's configuration
    candidates: list[Candidate]
    chosen: Candidate
    untouched: dict[str, list[float]]  # "tuned" / "default" -> MASE per seed
    seconds: float
    recovered: int = 0  # trials a killed worker left running, enqueued again
    paths: list[Path] = field(default_factory=list)
    best_run: Path | None = None
    note: str = ""  # why the chosen configuration was chosen
