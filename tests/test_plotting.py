"""Figures: every plotting function writes a real PNG, sized by what it shows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.image import imread

from elman.runs.pictures import (
    ForecastPanel,
    plot_by_step,
    plot_forecast,
    plot_hidden,
    plot_loss,
    plot_tutorial,
)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _size(path) -> tuple[int, int]:
    """(height, width) in pixels of a PNG, after checking it is one."""
    assert path.read_bytes()[:8] == PNG_MAGIC
    img = imread(path)
    return img.shape[0], img.shape[1]


def _panel(n: int = 60, h: int = 6, times: bool = True) -> ForecastPanel:
    x = list(pd.date_range("2020-01-01", periods=n, freq="D")) if times else list(range(n))
    y = np.sin(np.arange(n) / 4)
    xt = x[-h:]
    point = y[-h:] + 0.1
    return ForecastPanel(
        title="y",
        x=x,
        actual=y,
        spans=[
            ("train", x[0], x[n - 20]),
            ("validation", x[n - 20], x[n - h]),
            ("test", x[n - h], x[-1]),
        ],
        lines=[("model (lstm)", xt, point), ("naive (best baseline)", xt, np.full(h, y[-h - 1]))],
        bands=[(80, xt, point - 0.2, point + 0.2), (95, xt, point - 0.4, point + 0.4)],
    )


@pytest.mark.parametrize("times", [True, False])
def test_forecast_figure_is_a_png_one_panel_per_series(tmp_path, times):
    one = _size(plot_forecast([_panel(times=times)], tmp_path / "one.png", "t", "y"))
    three = _size(plot_forecast([_panel(times=times)] * 3, tmp_path / "three.png", "t", "y"))
    assert three[0] > 2 * one[0]  # stacked panels
    assert three[1] == pytest.approx(one[1], rel=0.05)


def test_loss_figure_handles_missing_validation_loss(tmp_path):
    epochs = np.arange(1, 21)
    train = 1.0 / epochs
    val = 1.2 / epochs
    val[3] = np.nan
    assert _size(plot_loss(epochs, train, val, tmp_path / "a.png"))[1] > 300
    assert _size(plot_loss(epochs, train, None, tmp_path / "b.png"))[1] > 300
    assert _size(plot_loss(epochs, train, np.full(20, np.nan), tmp_path / "c.png"))[1] > 300


def test_by_step_figure_adds_a_coverage_panel_only_with_intervals(tmp_path):
    errors = {"model": np.linspace(1, 2, 12), "naive": np.linspace(1.5, 3, 12)}
    alone = _size(plot_by_step(errors, tmp_path / "a.png"))
    both = _size(plot_by_step(errors, tmp_path / "b.png", coverage={80: np.full(12, 0.8)}))
    assert both[1] > 1.5 * alone[1]


def test_hidden_heatmap_grows_with_the_number_of_units(tmp_path):
    x = [str(v) for v in range(48)]
    signal = np.sin(np.arange(48) / 3)
    few = _size(
        plot_hidden(x, signal, np.random.default_rng(0).normal(size=(48, 6)), tmp_path / "a.png")
    )
    many = _size(
        plot_hidden(
            x, signal, np.tanh(np.random.default_rng(1).normal(size=(48, 64))), tmp_path / "b.png"
        )
    )
    assert many[0] > few[0]


def test_hidden_heatmap_accepts_constant_units(tmp_path):
    x = list(range(10))
    assert _size(plot_hidden(x, np.zeros(10), np.zeros((10, 4)), tmp_path / "z.png"))[0] > 100


def test_tutorial_figure_still_renders(tmp_path):
    t = list(np.linspace(2, 10, 21))
    x = list(np.sin(t[:-1]))
    assert _size(plot_tutorial(t, x, {"Predicted": x}, tmp_path / "t.png"))[1] > 300
