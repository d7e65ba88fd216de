"""ES-RNN: multiplicative Holt-Winters smoothing per series and one global dilated LSTM.

The hybrid of exponential smoothing and a recurrent network of S. Smyl (M4 winner;
International Journal of Forecasting 36(1), 2020). Every series ``i`` owns a level
smoothing coefficient ``alpha_i``, one or two seasonal smoothing coefficients ``gamma_i``
(and ``delta_i``) and its initial seasonal indices; the network is shared by all series::

    y[t]  (one series, positive)          per-series parameters (sigmoid keeps them in (0, 1))
      |                                            |
      v                                            v
    Holt-Winters recursion (inside autograd):  l[t] = a y[t] / s[t] + (1 - a) l[t-1]
                                               s[t+m] = g y[t] / l[t] + (1 - g) s[t]
      |  window y[t-L+1..t] / (s[...] * l[t]), in logs  -> [N, L] inputs, one per origin t
      v
    dilated LSTM blocks over the origins t (block b: dilations 4^b and 2 * 4^b), residual
    connections between blocks, tanh layer, linear adapter -> [N, H] normalised horizon
      |
      v
    forecast y[t+k] = exp(out[k]) * l[t] * s[t+k]        (k = 1 .. H)

Series are laid out left-aligned in a batch ``[B, T]`` (shorter ones padded on the right);
everything is causal, so padding never reaches a real step.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from elman.errors import ConfigError
from elman.models.base import SequenceModel

LEVEL_LOGIT = 0.0  # alpha starts at 0.5
SEASON_LOGIT = -2.0  # gamma starts at 0.12: the initial indices carry most of the pattern


def pinball(pred: Tensor, target: Tensor, tau: float) -> Tensor:
    """Elementwise pinball (quantile) loss: ``tau * e`` if ``e >= 0`` else ``(tau - 1) * e``,
    with ``e = target - pred``."""
    err = target - pred
    return torch.maximum(tau * err, (tau - 1.0) * err)


class DilatedLSTM(nn.Module):
    """One LSTM layer whose step ``t`` continues the state of step ``t - dilation``.

    The sequence is split into ``dilation`` interleaved subsequences (positions ``j``,
    ``j + d``, ``j + 2d``, ...) run as one batch, so no output depends on a later input.
    """

    def __init__(self, input_size: int, hidden_size: int, dilation: int) -> None:
        super().__init__()
        self.dilation = dilation
        self.lstm = nn.LSTM(input_size, hidden_size, batch_first=True)

    def forward(self, x: Tensor) -> Tensor:
        """``x [B, N, I]`` -> ``[B, N, hidden]``."""
        b, n, i = x.shape
        d = self.dilation
        if d == 1:
            return self.lstm(x)[0]
        pad = (-n) % d  # padding at the end never reaches an earlier step
        xp = F.pad(x, (0, 0, 0, pad))
        steps = (n + pad) // d
        sub = xp.reshape(b, steps, d, i).transpose(1, 2).reshape(b * d, steps, i)
        out = self.lstm(sub)[0]  # [B*d, steps, H]
        h = out.shape[-1]
        return out.reshape(b, d, steps, h).transpose(1, 2).reshape(b, n + pad, h)[:, :n]


class ESRNN(SequenceModel):
    """Per-series Holt-Winters smoothing feeding a global dilated LSTM (see module notes).

    Args:
        input_size: columns of the series (1: ES-RNN forecasts one positive target).
        output_size: the horizon ``H`` (one output per step ahead).
        hidden_size: LSTM units per layer.
        num_layers: residual blocks of two dilated LSTM layers each.
        dropout: dropout on the network's input windows while training.
        window: input window ``L`` (the lookback).
        season: the main season ``m`` (1: no seasonality).
        season2: a second season (0: none), e.g. 168 beside 24 for hourly data.
        n_series: how many series own parameters.
        n_categories: width of an optional one-hot category input (0: none).
        categories: the category names (their count sets ``n_categories``); each series'
            category is the buffer ``series_category``, which the forward pass turns into
            the one-hot input when no ``categories`` tensor is given.
    """

    def __init__(
        self,
        input_size: int,
        output_size: int,
        hidden_size: int = 40,
        num_layers: int = 2,
        dropout: float = 0.0,
        window: int = 13,
        season: int = 1,
        season2: int = 0,
        n_series: int = 1,
        n_categories: int = 0,
        categories: Sequence[str] = (),
    ) -> None:
        super().__init__()
        self.input_size, self.output_size = input_size, output_size
        self.hidden_size, self.num_layers, self.dropout = hidden_size, num_layers, dropout
        self.window, self.season, self.season2 = window, season, season2
        self.categories = [str(c) for c in categories]
        if self.categories and n_categories not in (0, len(self.categories)):
            raise ConfigError(
                f"n_categories ({n_categories}) does not match the {len(self.categories)} "
                "category names"
            )
        n_categories = len(self.categories) or n_categories
        self.n_series, self.n_categories = n_series, n_categories
        if n_categories:  # each series' category (an index into ``categories``)
            self.register_buffer("series_category", torch.zeros(n_series, dtype=torch.long))
        self.level_logit = nn.Parameter(torch.full((n_series,), LEVEL_LOGIT))
        self.seasons = [m for m in (season, season2) if m > 1]
        self.season_logit = nn.Parameter(torch.full((n_series, len(self.seasons)), SEASON_LOGIT))
        # log initial seasonal indices, all seasons side by side: [S, m1 + m2]
        self.init_season = nn.Parameter(torch.zeros(n_series, sum(self.seasons)))
        blocks = []
        width = window + n_categories
        for b in range(num_layers):
            d = 4**b
            blocks.append(
                nn.ModuleList(
                    [
                        DilatedLSTM(width, hidden_size, d),
                        DilatedLSTM(hidden_size, hidden_size, 2 * d),
                    ]
                )
            )
            width = hidden_size
        self.blocks = nn.ModuleList(blocks)
        self.head = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.Tanh())
        self.adapter = nn.Linear(hidden_size, output_size)
        self.drop = nn.Dropout(dropout)

    @property
    def cycle(self) -> int:
        """The length after which every seasonal pattern repeats (1 without seasons)."""
        return math.lcm(*self.seasons) if self.seasons else 1

    def network_parameters(self) -> list[nn.Parameter]:
        """The shared network's parameters (not the per-series ones)."""
        per_series = {id(self.level_logit), id(self.season_logit), id(self.init_season)}
        return [p for p in self.parameters() if id(p) not in per_series]

    # ------------------------------------------------------------------ smoothing
    def smooth(self, y: Tensor, ids: Tensor, lengths: Tensor) -> tuple[Tensor, list[Tensor]]:
        """Holt-Winters levels and seasonal indices of series ``y [B, T]``.

        Args:
            y: positive values, left-aligned; positions at or after ``lengths[b]`` are
                padding (any positive value).
            ids: which series' parameters each row uses ``[B]``.
            lengths: valid steps per row ``[B]``.

        Returns:
            ``levels [B, T]`` and, per season ``m``, indices ``[B, T + m]`` (index ``t`` is
            the seasonal factor applied at step ``t``; the last ``m`` are the next season's).
            At padding steps the state is carried unchanged.
        """
        alpha = torch.sigmoid(self.level_logit[ids])  # [B]
        gammas = torch.sigmoid(self.season_logit[ids])  # [B, n_seasons]
        rings: list[list[Tensor]] = []
        lo = 0
        for m in self.seasons:
            init = torch.exp(self.init_season[ids, lo : lo + m])  # [B, m]
            rings.append(list(init.unbind(1)))
            lo += m
        levels: list[Tensor] = []
        level = y[:, 0]
        for t in range(y.shape[1]):
            yt, live = y[:, t], t < lengths
            seas = [r[t] for r in rings]
            total = _product(seas, y[:, t])
            if t == 0:
                new = yt / total
            else:
                new = torch.where(live, alpha * yt / total + (1 - alpha) * level, level)
            level = new
            levels.append(level)
            for j, (ring, s) in enumerate(zip(rings, seas, strict=True)):
                others = _product([o for k, o in enumerate(seas) if k != j], yt)
                g = gammas[:, j]
                ring.append(torch.where(live, g * yt / (level * others) + (1 - g) * s, s))
        return torch.stack(levels, 1), [torch.stack(r, 1) for r in rings]

    # ------------------------------------------------------------------ network
    def network(self, x: Tensor) -> Tensor:
        """The global network over origins: ``x [B, N, L (+ categories)]`` -> ``[B, N, H]``."""
        h = self.drop(x)
        for b, block in enumerate(self.blocks):
            out = block[1](block[0](h))  # type: ignore[index]
            h = out + h if b > 0 else out  # residual between blocks
        return self.adapter(self.head(h))  # type: ignore[no-any-return]

    def forward(  # type: ignore[override]  # whole series in, not windows
        self,
        y: Tensor,
        ids: Tensor,
        lengths: Tensor,
        categories: Tensor | None = None,
    ) -> tuple[Tensor, Tensor, Tensor]:
        """Normalised forecasts from every origin of every row.

        Args:
            y: positive series ``[B, T]``, left-aligned (see :meth:`smooth`).
            ids: series index of each row ``[B]``.
            lengths: valid steps of each row ``[B]``.
            categories: one-hot categories ``[B, n_categories]``, or ``None``.

        Returns:
            ``pred [B, N, H]``: the log of ``y[t+k] / (l[t] * s[t+k])`` forecast from origin
            ``t = L - 1 + n``; ``log_level [B, T]``; ``log_season [B, T + H]`` (the
            combined seasonal factor, extended past the data for the horizon).
        """
        b, t_len = y.shape
        h, w = self.output_size, self.window
        levels, seasons = self.smooth(y, ids, lengths)
        log_level = torch.log(levels)  # [B, T]
        log_season = self._log_season(seasons, lengths, t_len + h)  # [B, T + H]
        rel = torch.log(y) - log_season[:, :t_len]  # deseasonalised log values [B, T]
        x = rel.unfold(1, w, 1) - log_level[:, w - 1 :, None]  # [B, N, L], N = T - L + 1
        if self.n_categories:
            if categories is None:  # each row's series' own category
                index = self.get_buffer("series_category")[ids]
                categories = F.one_hot(index, self.n_categories).to(x.dtype)
            x = torch.cat([x, categories[:, None, :].expand(b, x.shape[1], -1)], 2)
        return self.network(x), log_level, log_season

    def _log_season(self, seasons: list[Tensor], lengths: Tensor, steps: int) -> Tensor:
        """Log combined seasonal factor ``[B, steps]``; past each row's data the indices of
        its last full cycle repeat (the recursion gives ``m`` steps ahead of the data)."""
        total = torch.zeros(lengths.shape[0], steps, device=lengths.device)
        pos = torch.arange(steps, device=lengths.device)[None]  # [1, steps]
        for m, s in zip(self.seasons, seasons, strict=True):
            end = lengths[:, None] + m  # first step each row's recursion did not produce
            idx = torch.where(pos < end, pos, end - m + (pos - end) % m)
            idx = idx.clamp(max=s.shape[1] - 1)
            total = total + torch.log(s.gather(1, idx))
        return total

    def targets(self, y: Tensor, log_level: Tensor, log_season: Tensor) -> Tensor:
        """Normalised targets ``[B, N, H]`` matching :meth:`forward`'s outputs (entries whose
        step lies beyond the data are garbage; mask them with :func:`target_mask`)."""
        t_len, h, w = y.shape[1], self.output_size, self.window
        logy = torch.log(y)
        padded = F.pad(logy - log_season[:, :t_len], (0, h), value=0.0)  # [B, T + H]
        ahead = padded[:, w:].unfold(1, h, 1)  # origin t = w - 1 + n -> steps t+1 .. t+H
        return ahead - log_level[:, w - 1 :, None]

    def decode(self, pred: Tensor, log_level: Tensor, log_season: Tensor, origin: Tensor) -> Tensor:
        """Real-unit forecasts ``[B, H]`` from origin ``origin[b]`` (the last step used).

        ``pred`` holds the network's outputs ``[B, N, H]``.
        """
        h, w = self.output_size, self.window
        rows = torch.arange(pred.shape[0], device=pred.device)
        out = pred[rows, origin - (w - 1)]  # [B, H]
        steps = origin[:, None] + 1 + torch.arange(h, device=pred.device)  # [B, H]
        seas = log_season.gather(1, steps)
        return torch.exp(out + log_level[rows, origin][:, None] + seas)


def aligned_start(length: int, history: int | None, cycle: int) -> int:
    """Where a series' used history starts: the last ``history`` steps, moved forward to a
    multiple of ``cycle`` so that the learned initial seasonal indices always meet the
    same phase, whatever the length of the data."""
    if history is None or length <= history:
        return 0
    return -(-(length - history) // cycle) * cycle


def pad_rows(rows: list[Tensor]) -> tuple[Tensor, Tensor]:
    """Left-aligned batch ``[B, T_max]`` of 1-D series (each padded with its last value)
    and their lengths ``[B]``."""
    lengths = torch.tensor([len(r) for r in rows])
    width = int(lengths.max())
    y = torch.stack([F.pad(r, (0, width - len(r)), value=float(r[-1])) for r in rows])
    return y, lengths


def _product(factors: list[Tensor], like: Tensor) -> Tensor:
    """The product of ``factors`` (ones like ``like`` when there are none)."""
    out = torch.ones_like(like)
    for f in factors:
        out = out * f
    return out


def target_mask(
    lengths: Tensor, n_origins: int, window: int, horizon: int, lo: Tensor, hi: Tensor
) -> Tensor:
    """Which ``[B, N, H]`` targets count: step ``t + k`` in ``[lo[b], hi[b])`` and inside the
    data, for origin ``t = window - 1 + n`` inside the data."""
    origin = window - 1 + torch.arange(n_origins, device=lengths.device)[None, :, None]
    step = origin + 1 + torch.arange(horizon, device=lengths.device)[None, None, :]
    return (
        (step >= lo[:, None, None]) & (step < hi[:, None, None]) & (step < lengths[:, None, None])
    )


def level_wiggliness(log_level: Tensor, lengths: Tensor) -> Tensor:
    """Mean squared second difference of the log level over each row's valid steps ``[B]``."""
    d2 = log_level[:, 2:] - 2 * log_level[:, 1:-1] + log_level[:, :-2]  # [B, T - 2]
    valid = torch.arange(d2.shape[1], device=d2.device)[None] < (lengths[:, None] - 2)
    return (d2.square() * valid).sum(1) / valid.sum(1).clamp(min=1)
