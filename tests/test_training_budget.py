"""A training cost that does not grow with the data: the step budget, the capped validation
sample, the thread choice, and the panel's memory."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from elman import Forecaster
from elman.config import TrainConfig
from elman.data.synthetic import many_series
from elman.data.windows import Layout, Panel, WindowRanges, epoch_batches, make_batch
from elman.errors import ConfigError
from elman.runtime import configure_threads, cpu_quota, usable_cpus
from elman.training.fit import validation_sample
from elman.training.threads import BETTER, CHECK_S, ThreadGovernor


@pytest.fixture(scope="module")
def panel_frame():
    return many_series(n_series=6, length=240, seed=3, period=12)


def small_fit(frame, **train) -> Forecaster:
    f = Forecaster(
        "gru", hidden_size=8, lookback=24, horizon=6, season=12, batch_size=16, seed=5,
        progress=False, target="value", series_id="series", time_col="t", **train,
    )  # fmt: skip
    return f.fit(frame)


# -- the step budget ----------------------------------------------------------------------
def test_the_step_budget_ends_training_inside_an_epoch(panel_frame) -> None:
    f = small_fit(panel_frame, max_batches=3, max_steps=7, epochs=50, threads=1)
    st = f.train_state
    assert st.steps == 7 and st.budget_spent and not st.stopped_early
    # epochs of 3, 3 and 1 steps; the cut last epoch is validated and kept like the others
    assert len(st.history) == 3
    sizes = [round(r.samples_per_s * r.seconds) for r in st.history]
    assert sizes[0] == sizes[1] == 3 * 16
    assert f.config.train.max_steps == 7  # the rule is part of the run's configuration


def test_max_batches_bounds_each_epoch_and_zero_means_every_window(panel_frame) -> None:
    ranges = WindowRanges(np.array([0, 500]), np.array([300, 200]))
    assert len(epoch_batches(ranges, 16, 100, 0, 0)) == 32  # 500 windows: fewer than 100
    assert len(epoch_batches(ranges, 16, 10, 0, 0)) == 10
    assert len(epoch_batches(ranges, 16, 0, 0, 0)) == 32
    assert TrainConfig().max_batches == 100 and TrainConfig().max_steps == 10_000
    with pytest.raises(ConfigError, match=r"--max-steps \(-1\) must be >= 0"):
        TrainConfig(max_steps=-1)


# -- the validation sample ----------------------------------------------------------------
def test_validation_sample_is_a_fixed_seeded_subset_in_panel_order() -> None:
    starts = np.arange(10_000, dtype=np.int64) * 3
    a = validation_sample(starts, 500, seed=1)
    assert len(a) == 500 and len(set(a.tolist())) == 500
    assert np.all(np.diff(a) > 0) and set(a.tolist()) <= set(starts.tolist())
    assert np.array_equal(a, validation_sample(starts, 500, seed=1))  # deterministic
    assert not np.array_equal(a, validation_sample(starts, 500, seed=2))
    assert validation_sample(starts, 0, seed=1) is starts  # 0: every window
    assert validation_sample(starts[:100], 500, seed=1) is not None
    assert len(validation_sample(starts[:100], 500, seed=1)) == 100


def test_validation_scores_only_the_capped_sample(panel_frame) -> None:
    scored: list[int] = []

    class Count:  # a fit hook that counts the windows each validation scores
        def attach(self, trainer, series) -> None:
            original = trainer.evaluate

            def evaluate(batches):
                batches = list(batches)
                scored.append(sum(len(b) for b in batches))
                return original(batches)

            trainer.evaluate = evaluate

    f = Forecaster(
        "gru", hidden_size=8, lookback=24, horizon=6, season=12, batch_size=16, seed=5,
        progress=False, epochs=2, max_batches=2, val_windows=37, val_size=40, threads=1,
        target="value", series_id="series", time_col="t",
    )  # fmt: skip
    f.fit(panel_frame, hooks=[Count()])
    # six series with 40 validation points and horizon 6: 6 x 35 = 210 windows, 37 scored
    assert scored == [37, 37]


# -- determinism and batches --------------------------------------------------------------
def test_same_seed_same_weights_on_a_panel(panel_frame) -> None:
    a = small_fit(panel_frame, epochs=3, max_batches=4, threads=1)
    b = small_fit(panel_frame, epochs=3, max_batches=4, threads=1)
    weights_b = b.predictor.model.state_dict()
    for name, x in a.predictor.model.state_dict().items():
        assert torch.equal(x, weights_b[name]), name
    assert [r.train_loss for r in a.train_state.history] == [
        r.train_loss for r in b.train_state.history
    ]


def test_gathered_batches_equal_a_brute_force_enumeration() -> None:
    rng = np.random.default_rng(0)
    lengths, lookback, horizon = [30, 7, 19], 5, 3
    arrays = [torch.from_numpy(rng.normal(size=(n, 2)).astype(np.float32)) for n in lengths]
    panel = Panel(arrays, Layout(1, 1))
    expected_x, expected_y = [], []
    for a in arrays:  # every window of every series, by plain slicing
        for s in range(len(a) - lookback - horizon + 1):
            expected_x.append(a[s : s + lookback])
            expected_y.append(a[s + lookback : s + lookback + horizon, :1])
    starts = torch.from_numpy(panel.starts(lookback, horizon, [0, 0, 0], lengths))
    batch = make_batch(panel, starts, lookback, horizon, "direct", "none")
    assert torch.equal(batch.x, torch.stack(expected_x))
    assert torch.equal(batch.y, torch.stack(expected_y))


def test_the_panel_keeps_one_copy_of_the_target_column() -> None:
    panel = Panel([torch.ones(50, 3), torch.zeros(20, 3)], Layout(2, 1))
    assert panel.targets.untyped_storage().data_ptr() == panel.feats.untyped_storage().data_ptr()
    assert torch.equal(panel.targets, panel.feats[:, :2])


# -- threads ------------------------------------------------------------------------------
def test_thread_choice_honours_the_affinity_mask_and_threads_option() -> None:
    script = textwrap.dedent(
        """
        import os, torch
        os.sched_setaffinity(0, {0})
        from elman.runtime import configure_threads, usable_cpus
        print(usable_cpus(), configure_threads(), configure_threads(3), torch.get_num_threads())
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.split() == ["1", "1", "3", "3"]
    with pytest.raises(ConfigError, match="at most"):
        configure_threads(4 * usable_cpus() + 1)


@pytest.mark.skipif(not hasattr(os, "sched_getaffinity"), reason="Linux affinity")
def test_a_fit_pinned_to_one_cpu_trains_on_one_thread(tmp_path, panel_frame) -> None:
    data = tmp_path / "panel.csv"
    panel_frame.to_csv(data, index=False)
    script = textwrap.dedent(
        f"""
        import os
        os.sched_setaffinity(0, {{0}})
        from elman import Forecaster
        f = Forecaster("gru", hidden_size=8, lookback=24, horizon=6, epochs=1, max_batches=2,
                       progress=False, target="value", series_id="series", time_col="t")
        f.fit({str(data)!r})
        print(f.train_state.history[0].threads)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.split()[-1] == "1"


def test_cpu_quota_reads_cgroup_v2_and_v1_files(tmp_path) -> None:
    root = tmp_path / "cgroup"
    (root / "box" / "job").mkdir(parents=True)
    (root / "box" / "cpu.max").write_text("150000 100000\n")
    (root / "box" / "job" / "cpu.max").write_text("max 100000\n")
    proc = tmp_path / "self_cgroup"
    proc.write_text("0::/box/job\n")
    assert cpu_quota(str(root), str(proc)) == pytest.approx(1.5)  # the parent's limit
    (root / "box" / "cpu.max").write_text("max 100000\n")
    assert cpu_quota(str(root), str(proc)) is None
    v1 = tmp_path / "v1"
    (v1 / "cpu,cpuacct" / "docker" / "x").mkdir(parents=True)
    (v1 / "cpu,cpuacct" / "docker" / "x" / "cpu.cfs_quota_us").write_text("50000\n")
    (v1 / "cpu,cpuacct" / "docker" / "x" / "cpu.cfs_period_us").write_text("100000\n")
    proc.write_text("4:memory:/docker/x\n3:cpu,cpuacct:/docker/x\n")
    assert cpu_quota(str(v1), str(proc)) == pytest.approx(0.5)
    assert cpu_quota(str(v1), str(tmp_path / "missing")) is None


class Machine:
    """A machine whose load and training speed per thread count the test sets."""

    def __init__(self) -> None:
        self.running = 2
        self.speed = {2: 100.0, 1: 70.0}  # windows per second
        self.applied: list[int] = []

    def run(self, gov: ThreadGovernor, seconds: float, step_s: float = 0.1) -> None:
        for _ in range(round(seconds / step_s)):
            gov.record(step_s, round(self.speed[gov.current] * step_s))


def test_the_governor_never_probes_on_a_quiet_machine() -> None:
    m = Machine()
    gov = ThreadGovernor(2, load=lambda: m.running, set_threads=m.applied.append)
    m.run(gov, 300)
    assert m.applied == [] and gov.current == 2 and gov.mean_threads() == 2


def test_the_governor_moves_to_one_thread_when_that_is_faster_and_back() -> None:
    m = Machine()
    gov = ThreadGovernor(2, load=lambda: m.running, set_threads=m.applied.append)
    m.run(gov, 20)
    m.running, m.speed = 4, {2: 5.0, 1: 60.0}  # another process: the barriers collapse
    m.run(gov, 3)
    assert gov.current == 1 and gov.changes == 1
    m.run(gov, 30)
    assert gov.current == 1  # the retries of two threads lost, and it stayed
    m.running, m.speed = 1, {2: 100.0, 1: 70.0}  # the other process ended
    m.run(gov, 200)
    assert gov.current == 2 and gov.changes == 2
    assert 1 < gov.mean_threads() < 2


def test_the_governor_keeps_all_threads_when_one_is_not_clearly_faster() -> None:
    m = Machine()
    gov = ThreadGovernor(2, load=lambda: m.running, set_threads=m.applied.append)
    m.running, m.speed = 3, {2: 100.0, 1: 110.0}  # 10% faster: not enough
    assert BETTER > 1.1
    m.run(gov, 200)
    assert gov.current == 2 and gov.changes == 0
    assert m.applied.count(1) >= 1 and m.applied[-1] == 2  # probed, went back
    assert gov.hold > CHECK_S  # and probes less often since


@pytest.mark.skipif(usable_cpus() < 2, reason="needs two CPUs to have a choice")
def test_a_fit_with_its_own_thread_choice_is_governed(monkeypatch, panel_frame) -> None:
    monkeypatch.delenv("ELMAN_FIXED_THREADS", raising=False)
    before = torch.get_num_threads()
    try:
        f = small_fit(panel_frame, epochs=2, max_batches=3)
        assert f.trainer is not None and f.trainer.governor is not None
        assert all(1 <= r.threads <= 2 for r in f.train_state.history)
        monkeypatch.setenv("ELMAN_FIXED_THREADS", "1")
        assert small_fit(panel_frame, epochs=1, max_batches=1).trainer.governor is None
        assert small_fit(panel_frame, epochs=1, max_batches=1, threads=2).trainer.governor is None
    finally:
        torch.set_num_threads(before)


def test_interval_calibration_uses_the_capped_number_of_windows(panel_frame) -> None:
    opts = dict(epochs=1, max_batches=1, val_size=40, ensemble="none")  # the network's own
    capped = small_fit(panel_frame, val_windows=12, **opts)
    full = small_fit(panel_frame, val_windows=0, **opts)
    assert full.calibration is not None and capped.calibration is not None
    assert full.calibration.windows == 6 * 35  # six series, 40 - 6 + 1 windows each
    assert capped.calibration.windows == 6 * 2  # 12 // 6 per series, first and last
