"""Errors a user can cause. Each carries one line: what is wrong, where, and how to fix it.

The CLI prints ``elman: error: <message>`` and exits with code 2 for any :class:`ElmanError`;
a Python traceback appears only with ``--debug``.
"""

from __future__ import annotations


class ElmanError(Exception):
    """Base class of every error caused by user input (data, options, files).

    Its message stays on one line whatever the user's values in it hold: line breaks and
    other unprintable characters are shown escaped (``'\\n'``), as ``repr`` shows them.
    """

    exit_code = 2

    def __init__(self, *args: object) -> None:
        super().__init__(*(one_line(a) if isinstance(a, str) else a for a in args))


def one_line(text: str) -> str:
    """``text`` with every unprintable character (line breaks, tabs, NUL, ...) escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


QUOTE_LIMIT = 80
"""The most characters of a user's value a message quotes (:func:`quote`)."""


def quote(value: object, limit: int = QUOTE_LIMIT) -> str:
    """A user's value for a message: its ``repr``, cut to ``limit`` characters with ``...``.

    Every message that echoes a cell, a stamp or a line uses it, so that a 1 MB cell makes a
    short message, not a 1 MB one.
    """
    text = value if isinstance(value, str) else str(value)
    if len(text) > limit:
        return repr(text[:limit]) + f"... ({len(text)} characters)"
    return repr(text)


def clip(text: str, limit: int = QUOTE_LIMIT) -> str:
    """``text`` cut to ``limit`` characters with ``...`` (for values shown without quotes)."""
    return text if len(text) <= limit else text[:limit] + f"... ({len(text)} characters)"


class DataError(ElmanError):
    """The data cannot be used: missing column, bad value, too short, irregular, ..."""


class ConfigError(ElmanError):
    """An option or configuration value is out of range or inconsistent."""


class CheckpointError(ElmanError):
    """A model or checkpoint file is missing, corrupt, tampered with or of an unknown format."""


class TrainingError(ElmanError):
    """Training could not proceed (for example, the loss diverged and retries ran out)."""
