"""The fast training paths against references: bfloat16 autocast, stateful TBPTT, threads, CUDA.

The fused Elman/GRU kernels have their own oracle tests in ``test_fused.py``; here they are
checked again under bfloat16 autocast, where their state and weights follow the dtype of
the input projections.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.nn import functional as F
from torch.testing import assert_close

from elman.cli import build_parser
from elman.cli.options import config_from_args
from elman.config import Config, TrainConfig
from elman.data.synthetic import noisy_sine, sine
from elman.data.windows import Layout, Panel
from elman.errors import ConfigError
from elman.forecaster import Forecaster
from elman.models import GRU, LSTM, RNN, Elman, switches
from elman.training.precision import autocast_factory, bf16_supported, check_precision
from elman.training.tasks import TbpttTask
from elman.training.trainer import Trainer

CPU = torch.device("cpu")
needs_bf16 = pytest.mark.skipif(not bf16_supported(CPU), reason="CPU without native bfloat16")
needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU")


# ---------------------------------------------------------------------------- precision option
def test_precision_rejects_unknown_value() -> None:
    with pytest.raises(ConfigError, match=r"--precision 'fp16' is not one of: fp32, bf16"):
        TrainConfig(precision="fp16")


def test_precision_round_trips_through_toml(tmp_path) -> None:
    path = tmp_path / "config.toml"
    path.write_text(Config(train=TrainConfig(precision="bf16")).to_toml(), encoding="utf-8")
    assert Config.from_toml(path).train.precision == "bf16"


def test_bf16_is_refused_on_a_device_without_it() -> None:
    with pytest.raises(ConfigError, match="no native bfloat16 support; use --precision fp32"):
        check_precision("bf16", torch.device("meta"))


def test_fp32_gives_a_context_that_changes_nothing() -> None:
    with autocast_factory("fp32", CPU)():
        assert not torch.is_autocast_enabled("cpu")


def test_precision_flag_reaches_the_train_config() -> None:
    args = build_parser().parse_args(["train", "--data", "builtin:sine_long", "--out", "o",
                                      "--precision", "bf16"])  # fmt: skip
    assert config_from_args(args).train.precision == "bf16"


def test_bad_precision_flag_is_a_one_line_error(capsys) -> None:
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["train", "--precision", "fp8"])
    err = capsys.readouterr().err
    assert exc.value.code == 2
    assert "invalid choice: 'fp8'" in err and len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- fused paths under bfloat16
def _rel(a: Tensor, b: Tensor) -> float:
    return float((a - b).norm() / b.norm())


def _run(model: nn.Module, x: Tensor, y: Tensor, bf16: bool) -> tuple[Tensor, list[Tensor]]:
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        out, _ = model(x)
        loss = F.mse_loss(out.float(), y)
    loss.backward()
    return out.float().detach(), [p.grad.clone() for p in model.parameters()]


FUSED_CLASSES = [Elman, GRU, LSTM, RNN]


@pytest.fixture(autouse=True)
def _fuse_small_lstms(monkeypatch: pytest.MonkeyPatch) -> None:
    """Let the tiny LSTMs here take the fused path (where the compiled loops exist)."""
    monkeypatch.setattr(switches, "FUSED_LSTM_MIN_WORK", 0)


# The compiled and Python loops run under bfloat16 autocast on any CPU (products without
# native bfloat16 are only slower); the LSTM's reference, oneDNN's bfloat16 nn.LSTM, needs it.
BF16_CLASSES = [pytest.param(c, marks=needs_bf16) if c is LSTM else c for c in FUSED_CLASSES]


@pytest.mark.parametrize("cls", BF16_CLASSES)
def test_fused_path_under_bf16_matches_fp32_reference(cls: type) -> None:
    torch.manual_seed(0)
    sizes = {"input_size": 2, "hidden_size": 16, "output_size": 2, "num_layers": 2}
    fused, ref = cls(**sizes, fused=True), cls(**sizes, fused=False)
    ref.load_state_dict(fused.state_dict())
    x, y = torch.randn(3, 20, 2), torch.randn(3, 20, 2)
    out_bf16, grads_bf16 = _run(fused, x, y, bf16=True)
    out_ref, grads_ref = _run(ref, x, y, bf16=False)
    assert_close(out_bf16, out_ref, atol=2e-2, rtol=2e-2)
    for g, g_ref in zip(grads_bf16, grads_ref, strict=True):
        assert g.dtype == torch.float32  # weights and their gradients stay float32
        assert _rel(g, g_ref) < 5e-2


@pytest.mark.parametrize("cls", BF16_CLASSES)
def test_fused_path_under_bf16_matches_reference_under_bf16(cls: type) -> None:
    torch.manual_seed(1)
    sizes = {"input_size": 1, "hidden_size": 8, "output_size": 1}
    fused, ref = cls(**sizes, fused=True), cls(**sizes, fused=False)
    ref.load_state_dict(fused.state_dict())
    x, y = torch.randn(4, 12, 1), torch.randn(4, 12, 1)
    out, grads = _run(fused, x, y, bf16=True)
    out_ref, grads_ref = _run(ref, x, y, bf16=True)
    assert_close(out, out_ref, atol=1e-2, rtol=1e-2)
    assert max(_rel(g, r) for g, r in zip(grads, grads_ref, strict=True)) < 5e-2


class _ProbeTask:
    """A task that records whether autocast was on when the trainer asked for a loss."""

    def __init__(self) -> None:
        self.seen: list[tuple[bool, bool]] = []  # (train, autocast on)

    def start_epoch(self, epoch: int, train: bool) -> None:
        pass

    def loss(self, model: nn.Module, x: Tensor, train: bool) -> tuple[Tensor, int]:
        self.seen.append((train, torch.is_autocast_enabled("cpu")))
        out, _ = model(x)
        return F.mse_loss(out.float(), torch.ones(out.shape)), x.shape[0]


@pytest.mark.parametrize("precision", ["fp32", pytest.param("bf16", marks=needs_bf16)])
def test_trainer_runs_forward_and_loss_in_the_chosen_precision(precision: str) -> None:
    task = _ProbeTask()
    cfg = TrainConfig(epochs=1, precision=precision, progress=False)
    x = torch.randn(2, 5, 1)
    Trainer(Elman(1, 4, 1), task, cfg).fit(lambda epoch: [x], lambda: [x])
    on = precision == "bf16"
    assert task.seen == [(True, on), (False, on)]  # one training batch, one validation batch


def _fit(**options) -> Forecaster:
    f = Forecaster(
        hidden_size=16, horizon=4, lookback=24, epochs=6, max_batches=8, val_size=100,
        scheduler="none", progress=False, threads=1, **options,
    )  # fmt: skip
    return f.fit(noisy_sine(600, noise=0.05, seed=3, period=25.0))


@needs_bf16
@pytest.mark.parametrize("model", ["elman", "lstm"])
def test_bf16_training_runs_and_stays_close_to_fp32(model: str) -> None:
    fp32, bf16 = _fit(model=model), _fit(model=model, precision="bf16")
    assert fp32.train_state is not None and bf16.train_state is not None
    loss32, loss16 = fp32.train_state.best_loss, bf16.train_state.best_loss
    first16 = bf16.train_state.history[0].val_loss
    assert first16 is not None and loss16 < first16  # it learns
    assert abs(loss16 - loss32) <= 0.15 * loss32  # and lands close to float32
    assert next(bf16.model.parameters()).dtype == torch.float32
    assert np.isfinite(bf16.predict().to_numpy()).all()


# ------------------------------------------------------------------ stateful truncated BPTT
def _tbptt_setup(chunk: int = 6) -> tuple[Tensor, TbpttTask]:
    values = torch.from_numpy(sine(61, period=13.0)).float().reshape(-1, 1)  # [T, 1]
    panel = Panel([values], Layout(n_targets=1))
    lanes = np.array([0, 30])  # two lanes of 30 rows each
    return values, TbpttTask(panel, lanes, 30, chunk, horizon=1, strategy="recursive")


def _reference_chunk_loss(model: nn.Module, values: Tensor, j: int, k: int) -> Tensor:
    """Chunk ``j`` of both lanes, computed from the raw series with a plain full pass.

    The state at the chunk's start comes from running the lane's first ``j * k`` points
    without gradient; the chunk then predicts each next value.
    """
    lanes = torch.stack([values[:30, 0], values[30:60, 0]])[..., None]  # [2, 30, 1]
    nxt = torch.stack([values[1:31, 0], values[31:61, 0]])[..., None]  # [2, 30, 1]
    state = None
    if j:
        with torch.no_grad():
            _, state = model(lanes[:, : j * k])
    out, _ = model(lanes[:, j * k : (j + 1) * k], state)
    return F.mse_loss(out, nxt[:, j * k : (j + 1) * k])


def test_tbptt_chunks_equal_a_full_pass_in_values_and_gradients() -> None:
    torch.manual_seed(0)
    k = 6
    values, task = _tbptt_setup(k)
    fast = Elman(1, 8, 1, fused=True)  # the task runs the fused path
    ref = Elman(1, 8, 1, fused=False)  # the reference: step-by-step autograd
    ref.load_state_dict(fast.state_dict())
    task.start_epoch(0, True)
    assert task.batches() == [0, 1, 2, 3]  # (30 - 1) // 6 chunks per lane
    for j in task.batches():
        fast.zero_grad()
        ref.zero_grad()
        loss, n = task.loss(fast, j, True)
        loss.backward()
        expected = _reference_chunk_loss(ref, values, j, k)
        expected.backward()
        assert n == 2 * k
        assert_close(loss, expected, atol=1e-6, rtol=1e-5)
        for p, q in zip(fast.parameters(), ref.parameters(), strict=True):
            assert_close(p.grad, q.grad, atol=1e-6, rtol=1e-5)


def test_tbptt_state_is_carried_then_reset_each_epoch() -> None:
    torch.manual_seed(0)
    _, task = _tbptt_setup()
    model = Elman(1, 4, 1)
    task.start_epoch(0, True)
    first, _ = task.loss(model, 0, True)
    task.loss(model, 1, True)
    assert task.state is not None and task.state[0].requires_grad is False  # detached
    task.start_epoch(1, True)
    assert task.state is None
    again, _ = task.loss(model, 0, True)
    assert_close(again, first)


@pytest.mark.parametrize("model", ["lstm", "gru"])
def test_tbptt_training_improves_the_loss(model: str) -> None:
    y = noisy_sine(3000, noise=0.05, seed=0, period=30.0)
    f = Forecaster(
        model, hidden_size=16, tbptt=20, batch_size=8, norm="none", strategy="recursive",
        lookback=40, val_size=200, epochs=15, patience=15, lr=1e-2, progress=False, threads=1,
    )  # fmt: skip
    f.fit(y)
    assert f.train_state is not None
    hist = f.train_state.history
    assert hist[-1].train_loss < 0.3 * hist[0].train_loss
    first = hist[0].val_loss
    assert first is not None and f.train_state.best_loss < 0.3 * first


# ------------------------------------------------------------------------------- threads
def test_fit_and_load_set_the_configured_threads(tmp_path) -> None:
    before = torch.get_num_threads()
    try:
        f = Forecaster("elman", hidden_size=4, horizon=2, lookback=8, epochs=1, threads=1)
        f.fit(sine(120, period=12.0))
        assert torch.get_num_threads() == 1
        f.save(tmp_path / "m")
        torch.set_num_threads(2)
        Forecaster.load(tmp_path / "m")
        assert torch.get_num_threads() == 1  # predicting uses the saved setting too
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------------- CUDA
@needs_cuda
@pytest.mark.parametrize(
    "options",
    [{}, {"tbptt": 16, "norm": "none", "strategy": "recursive"}, {"precision": "bf16"}],
    ids=["windows", "tbptt", "bf16"],
)
def test_cuda_fit_trains_on_the_gpu_and_predicts_on_cpu(options: dict) -> None:
    f = Forecaster(
        "gru", hidden_size=16, horizon=3, lookback=24, epochs=2, val_size=60, device="cuda",
        progress=False, **options,
    )  # fmt: skip
    f.fit(noisy_sine(500, seed=1))
    assert f.model is not None and next(f.model.parameters()).device.type == "cpu"
    assert f.train_state is not None and all(
        r.val_loss is not None and np.isfinite(r.val_loss) for r in f.train_state.history
    )
    assert np.isfinite(f.predict().to_numpy()).all()
