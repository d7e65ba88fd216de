"""The ``elman`` command line: argument parsing and printing only; the library does the work.

Every subcommand lives in its own module exposing ``add_parser(subparsers)``, which registers
its options and sets ``func`` to a ``run(args) -> int`` callable.
"""

from __future__ import annotations

import argparse
import logging
import sys
import traceback
import warnings
from collections.abc import Sequence
from importlib import import_module
from typing import Any

from elman._version import __version__
from elman.errors import ElmanError, one_line

# Subcommand modules, in the order ``elman --help`` lists them.
COMMANDS = (
    "tutorial",
    "train",
    "forecast",
    "backtest",
    "tune",
    "plot",
    "info",
    "stream",
    "serve",
    "export",
    "datasets",
)


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see '{self.prog} --help')\n")


def build_parser() -> argparse.ArgumentParser:
    """The full parser with every subcommand registered."""
    parser = OneLineParser(
        prog="elman",
        description="Recurrent-network time-series forecasting.",
    )
    parser.add_argument("--version", action="version", version=f"elman {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    parser.add_argument(
        "-v", "--verbose", action="count", default=0, help="more log output (repeatable)"
    )
    subs = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    subs.required = True
    for name in COMMANDS:
        import_module(f"elman.cli.{name}").add_parser(subs)
    return parser


def _configure_logging(verbosity: int) -> None:
    level = logging.WARNING if verbosity == 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )


def _show_warning(
    message: Warning | str,
    category: type[Warning],
    filename: str,
    lineno: int,
    file: Any = None,
    line: str | None = None,
) -> None:
    """A library warning as one ``elman: warning:`` line, each distinct text once."""
    text = one_line(str(message))
    if text not in _SHOWN:
        _SHOWN.add(text)
        print(f"elman: warning: {text}", file=sys.stderr)


_SHOWN: set[str] = set()


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``elman`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    debug = "--debug" in argv
    previous = warnings.showwarning
    if not debug:  # no source paths on stderr; --debug keeps Python's own format
        warnings.showwarning = _show_warning
    try:
        return _main(argv, debug)
    finally:
        warnings.showwarning = previous


def _main(argv: list[str], debug: bool) -> int:
    try:
        args = build_parser().parse_args(argv)
        _configure_logging(args.verbose)
        return int(args.func(args) or 0)
    except ElmanError as exc:
        if debug:
            traceback.print_exc()
        print(f"elman: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("elman: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except Exception as exc:  # a bug, not a user error: still one line unless --debug
        if debug:
            traceback.print_exc()
        print(
            f"elman: internal error: {type(exc).__name__}: {exc} (rerun with --debug for details)",
            file=sys.stderr,
        )
        return 1


def run() -> None:
    """``sys.exit(main())``, for ``python -m elman`` and the console script."""
    sys.exit(main())
