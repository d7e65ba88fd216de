"""Errors a user can cause. Each carries one line: what is wrong, where, and how to fix it.

The CLI prints ``elman: error: <message>`` and exits with code 2 for any :class:`ElmanError`;
a Python traceback appears only with ``--debug``.
"""

from __future__ import annotations


class ElmanError(Exception):
    """Base class of every error caused by user input (data, options, files)."""

    exit_code = 2


class DataError(ElmanError):
    """The data cannot be used: missing column, bad value, too short, irregular, ..."""


class ConfigError(ElmanError):
    """An option or configuration value is out of range or inconsistent."""


class CheckpointError(ElmanError):
    """A model or checkpoint file is missing, corrupt, tampered with or of an unknown format."""


class TrainingError(ElmanError):
    """Training could not proceed (for example, the loss diverged and retries ran out)."""
