"""Lazy re-exports for package ``__init__`` modules (PEP 562).

A package lists the names it offers and the module each lives in; the module is imported
on first access only, so ``import elman`` or ``import elman.data`` loads no torch, pandas
or NumPy until something that needs them is used::

    __getattr__, __dir__ = lazy_exports(__name__, {"Forecaster": "elman.forecaster"})
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import Any


def lazy_exports(
    package: str, exports: dict[str, str]
) -> tuple[Callable[[str], Any], Callable[[], list[str]]]:
    """``__getattr__`` and ``__dir__`` for ``package`` that import ``exports`` on demand.

    Args:
        package: the package's ``__name__``.
        exports: public name -> module that defines it. A name equal to the module's last
            component (``"datasets": "elman.data.datasets"``) re-exports the module itself.
    """

    def __getattr__(name: str) -> Any:
        module = exports.get(name)
        if module is None:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        loaded = importlib.import_module(module)
        value = loaded if module.rsplit(".", 1)[-1] == name else getattr(loaded, name)
        setattr(sys.modules[package], name, value)  # the next access skips this function
        return value

    def __dir__() -> list[str]:
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
