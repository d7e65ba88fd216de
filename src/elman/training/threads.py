"""The thread count during training, moved between all cores and one by measured speed.

A training step is hundreds of small parallel regions. With every core busy with one of
its threads, a region finishes only when its slowest thread does; once another process
wants a core, one thread waits for the scheduler at each region while the others spin
at the barrier, and training runs tens of times slower than a fair share of the machine
(``benchmarks/bench_shared_cpu.py`` measures it; docs/performance.md has the table). One
thread has no barriers to wait at, and keeps its share.

So when the thread count is elman's own choice (no ``--threads``), the
:class:`ThreadGovernor` watches the machine while it trains:

* every ``CHECK_S`` seconds of training it reads how many tasks are runnable on the
  machine (``procs_running``); while no more than its own threads are, nothing happens,
  and a quiet machine trains exactly as with a fixed thread count;
* when more are, it measures the training speed for ``PROBE_S`` seconds with the current
  count and then with the other (all threads or one), and keeps the faster, the other only
  when it is ``BETTER`` times faster;
* after a decision it waits ``hold`` seconds before probing again: ``HOLD_S`` at first,
  doubled (up to ``MAX_HOLD_S``) each time a probe changes nothing. On one thread it probes
  the full count again once the hold ends, so training takes the cores back when the
  other process stops.

When training ends, torch keeps the count chosen last, so the validation forecasts and
hold-out scoring that follow in the same command run as training did; the next fit or
load chooses afresh.

The sums inside the network's operations are split by thread, so a run whose thread count
changed agrees with a fixed-count run only to float rounding; ``--threads N`` fixes the
count (and the numbers, bit for bit).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from elman.runtime import running_tasks

log = logging.getLogger(__name__)

CHECK_S = 1.0  # training seconds between looks at the machine's load
PROBE_S = 0.5  # training seconds measured per thread count in a probe
SKIP_STEPS = 2  # steps after a change of count that are not measured (pools wake up)
BETTER = 1.15  # the other count is kept only when this much faster
HOLD_S = 10.0  # training seconds after a decision before the next probe
MAX_HOLD_S = 80.0


class ThreadGovernor:
    """Chooses between ``high`` torch threads and 1 while training; see the module notes.

    Args:
        high: the thread count to use on a quiet machine (at least 2).
        load: runnable tasks on the machine now, or None when unknown.
        set_threads: applies a thread count.
    """

    def __init__(
        self,
        high: int,
        load: Callable[[], int | None] = running_tasks,
        set_threads: Callable[[int], None] = torch.set_num_threads,
    ) -> None:
        if high < 2:
            raise ValueError(f"a governor needs at least 2 threads to choose from, got {high}")
        self.high = high
        self.current = high
        self._load = load
        self._set = set_threads
        self.phase = "watch"  # watch | skip | measure
        self.hold = HOLD_S
        self._held = HOLD_S  # the first look may probe at once
        self._since_check = 0.0
        self._skip = 0
        self._acc_s = 0.0
        self._acc_n = 0
        self._rates: dict[int, float] = {}
        self._first = high  # the count a probe started from
        self.seconds: dict[int, float] = {high: 0.0, 1: 0.0}  # training time per count
        self.changes = 0

    @property
    def other(self) -> int:
        return 1 if self.current == self.high else self.high

    def record(self, seconds: float, samples: int) -> None:
        """Account one training step of ``seconds`` covering ``samples`` windows."""
        self.seconds[self.current] += seconds
        if self.phase == "watch":
            self._held += seconds
            self._since_check += seconds
            if self._since_check >= CHECK_S:
                self._since_check = 0.0
                if self._held >= self.hold and self._crowded():
                    self._first = self.current
                    self._rates = {}
                    self._begin_measure(skip=0)
        elif self.phase == "skip":
            self._skip -= 1
            if self._skip <= 0:
                self._begin_measure(skip=0)
        else:
            self._acc_s += seconds
            self._acc_n += samples
            if self._acc_s >= PROBE_S:
                self._rates[self.current] = self._acc_n / self._acc_s
                if len(self._rates) == 1:
                    self._switch(self.other)
                    self._begin_measure(skip=SKIP_STEPS)
                else:
                    self._decide()

    def _crowded(self) -> bool:
        """On all threads: is anything else runnable? On one: always (time to retry)."""
        if self.current == 1:
            return True
        running = self._load()
        return running is not None and running > self.current

    def _begin_measure(self, skip: int) -> None:
        self._acc_s, self._acc_n = 0.0, 0
        self._skip = skip
        self.phase = "skip" if skip else "measure"

    def _decide(self) -> None:
        first, second = self._first, self.current
        keep = second if self._rates[second] > BETTER * self._rates[first] else first
        log.debug(
            "threads: %d at %.0f windows/s, %d at %.0f; keeping %d",
            first, self._rates[first], second, self._rates[second], keep,
        )  # fmt: skip
        if keep != second:
            self._switch(keep)
        if keep == first:
            self.hold = min(2 * self.hold, MAX_HOLD_S)
        else:
            self.hold = HOLD_S
            self.changes += 1
        self._held = 0.0
        self.phase = "watch"

    def _switch(self, n: int) -> None:
        self.current = n
        self._set(n)

    def mean_threads(self, since: dict[int, float] | None = None) -> float:
        """Time-weighted thread count, over everything or since a copy of :attr:`seconds`."""
        before = since or {}
        spent = {n: s - before.get(n, 0.0) for n, s in self.seconds.items()}
        total = sum(spent.values())
        return sum(n * s for n, s in spent.items()) / total if total > 0 else float(self.current)
