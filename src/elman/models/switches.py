"""Every fast-path switch and ``ELMAN_*`` environment variable, in one place.

The tunables below steer the fused CPU recurrences (:mod:`elman.models.fused`,
:mod:`elman.models.recurrent`, :mod:`elman.models.elman`) and their compiled step loops
(:mod:`elman.models.native`). Their readers look them up here at call time
(``switches.FOLD_MAX_INPUTS``) and never keep a copy, so a benchmark or a test changes one
in exactly one place::

    from elman.models import switches
    switches.WEIGHT_GRAD_IN_LOOP = False      # or monkeypatch.setattr(switches, ...)

The environment variables are read where they act, through the names defined here and
(for the on/off ones) :func:`env_flag`.

This module imports nothing but ``os``: the command-line parser imports it without
loading torch, NumPy or pandas.
"""

from __future__ import annotations

import os

# -- tunables of the fused recurrences -------------------------------------------------------

# Most input features for which the Elman, RNN, GRU and LSTM layers fold their input
# projection into the recurrence (the ``*_recurrence_fused`` functions with ``weight_ih``):
# the folded projection costs about 2 I multiply-adds per gate unit and step in the row
# passes, and saves several passes over ``[L, B, gates * H]`` arrays in memory. Measured
# with ``benchmarks/bench_step_paths.py --fold-sweep``: faster up to 8 inputs, even at 16,
# slower at 32.
FOLD_MAX_INPUTS = 8

# Whether the compiled backward loops accumulate the recurrent weight gradient step by
# step (float and double), instead of one product over the whole sequence afterwards:
# each block adds d_t.T @ h_{t-1} into its own partial sum while both are in cache, which
# saves reading the whole sequence twice more. Only for recurrent weights of at most
# WEIGHT_GRAD_IN_LOOP_MAX_BYTES: a larger partial sum and the step's packed weights no
# longer share a core's L2 cache, and the step-by-step sums measured slower (GRU and LSTM
# at H = 256) than one product afterwards. Benchmarks switch it off to measure both; the
# numbers agree to float rounding.
WEIGHT_GRAD_IN_LOOP = True
WEIGHT_GRAD_IN_LOOP_MAX_BYTES = 256 * 1024

# Rows below which a batch is not split into per-thread blocks. Passed to every kernel of
# the compiled step loops.
MIN_BLOCK_ROWS = 8

# Largest batch x hidden size the fused GRU runs with Python step loops (without the compiled
# ones); above it nn.GRU is faster on CPU. Measured
# (2-core Xeon, 100 steps, fused vs nn.GRU): 64 x 64 1.77x, 128 x 64 1.41x, 256 x 64 1.08x,
# 64 x 256 1.29x; 128 x 256 0.90x, 256 x 256 0.88x.
FUSED_GRU_MAX_WORK = 16_384

# Smallest batch x hidden size the fused LSTM runs; below it nn.LSTM (oneDNN) is faster,
# because the fused loop's per-step op overhead outweighs its small products. Measured
# (2-core Xeon, 100 steps, fused / nn.LSTM time): 64 x 32 1.43, 64 x 64 1.36; 64 x 128 0.81,
# 64 x 256 0.89, 256 x 32 0.87, 256 x 64 0.76, 256 x 256 0.85.
FUSED_LSTM_MIN_WORK = 8_192

# -- environment variables ---------------------------------------------------------------------

# Set (not "" or "0"): the fused recurrences run their Python step loops and nothing is
# compiled (:func:`elman.models.native.disabled`).
ENV_NO_NATIVE = "ELMAN_NO_NATIVE"
# Folder of elman's caches; the compiled step loops go to ``$ELMAN_CACHE_DIR/native``
# (default ``$XDG_CACHE_HOME/elman``, else ``~/.cache/elman``).
ENV_CACHE_DIR = "ELMAN_CACHE_DIR"
# Set: the compiled step loops use ``at::mm`` instead of MKL's packed products. Read by
# ``elman/csrc/recurrence.cpp`` itself, at every call, so a benchmark can compare both in
# one process; Python only sets it.
ENV_NO_PACKED_GEMM = "ELMAN_NO_PACKED_GEMM"
# Set: the streaming cells use their NumPy kernels, not numba's
# (:func:`elman.online.cells.jit_kernels`).
ENV_NO_JIT = "ELMAN_NO_JIT"
# Set: training leaves glibc's allocator as it is
# (:func:`elman.training.memory.keep_freed_memory`).
ENV_NO_MALLOC_TUNING = "ELMAN_NO_MALLOC_TUNING"
# Set: training keeps the thread count it starts with, even on a busy machine
# (:mod:`elman.training.threads`); ``--threads N`` does the same for one run.
ENV_FIXED_THREADS = "ELMAN_FIXED_THREADS"
# Seconds a collective of a distributed run may wait for a peer
# (:func:`elman.training.distributed.timeout_seconds`).
ENV_DIST_TIMEOUT = "ELMAN_DIST_TIMEOUT"


def env_flag(name: str) -> bool:
    """Whether the environment variable ``name`` is set to anything but ``""`` or ``"0"``."""
    return os.environ.get(name, "").strip() not in ("", "0")


__all__ = [
    "ENV_CACHE_DIR",
    "ENV_DIST_TIMEOUT",
    "ENV_FIXED_THREADS",
    "ENV_NO_JIT",
    "ENV_NO_MALLOC_TUNING",
    "ENV_NO_NATIVE",
    "ENV_NO_PACKED_GEMM",
    "FOLD_MAX_INPUTS",
    "FUSED_GRU_MAX_WORK",
    "FUSED_LSTM_MIN_WORK",
    "MIN_BLOCK_ROWS",
    "WEIGHT_GRAD_IN_LOOP",
    "WEIGHT_GRAD_IN_LOOP_MAX_BYTES",
    "env_flag",
]
