"""Training precision: float32, or bfloat16 autocast of the forward pass and the loss.

With ``precision="bf16"`` the trainer runs each batch's forward pass and loss inside
``torch.autocast(device_type, dtype=torch.bfloat16)``: matrix products (input projections,
recurrent steps, heads, ``nn.LSTM`` / ``nn.RNN`` through oneDNN or cuDNN) run in bfloat16,
while the weights, their gradients and the optimizer state stay float32. bfloat16 has the
exponent range of float32, so no loss scaling is needed; it keeps 8 bits of mantissa, so
results differ from float32 in the third significant digit.

The CPU path needs the instructions oneDNN uses for bfloat16 (AVX-512 BW/VL/DQ on x86, BF16
on Arm); elsewhere bfloat16 would be emulated, slower and less accurate than float32, so it
is refused with a :class:`~elman.errors.ConfigError`. On CUDA it needs a GPU that supports
bfloat16 (Ampere or newer).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch

from elman.config import PRECISIONS
from elman.errors import ConfigError


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` runs bfloat16 matrix products natively."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        check = getattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", None)
        return bool(check is not None and torch.backends.mkldnn.is_available() and check())
    return False


def check_precision(precision: str, device: torch.device) -> None:
    """Raise :class:`ConfigError` unless ``precision`` can run on ``device``."""
    if precision not in PRECISIONS:
        raise ConfigError(f"--precision '{precision}' is not one of: {', '.join(PRECISIONS)}")
    if precision == "bf16" and not bf16_supported(device):
        what = "this GPU" if device.type == "cuda" else f"this {device.type.upper()}"
        capability = (
            f" (capability {torch.backends.cpu.get_cpu_capability()})"
            if device.type == "cpu"
            else ""
        )
        raise ConfigError(
            f"--precision bf16: {what} has no native bfloat16 support{capability}; "
            "use --precision fp32"
        )


def autocast_factory(
    precision: str, device: torch.device
) -> Callable[[], contextlib.AbstractContextManager]:
    """A zero-argument callable giving the context to run forward passes and losses in.

    ``fp32`` gives a no-op context; ``bf16`` checks the device once (raising
    :class:`ConfigError` if it cannot) and gives ``torch.autocast`` contexts.
    """
    check_precision(precision, device)
    if precision == "fp32":
        return contextlib.nullcontext
    return lambda: torch.autocast(device.type, dtype=torch.bfloat16)


def model_device(model: torch.nn.Module) -> torch.device:
    """The device of a model's first parameter (CPU for a model without parameters)."""
    first = next(model.parameters(), None)
    return first.device if first is not None else torch.device("cpu")
