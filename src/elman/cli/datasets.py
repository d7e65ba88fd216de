"""``elman datasets``: the built-in series usable anywhere as ``--data builtin:NAME``."""

from __future__ import annotations

import argparse
from typing import Any

from elman.cli.common import say


def add_parser(subs: Any) -> None:
    """Register ``elman datasets``."""
    p = subs.add_parser(
        "datasets",
        help="list the built-in datasets (use them as --data builtin:NAME)",
        description="List the built-in datasets: generated series and small real ones shipped "
        "with elman (public domain; sources in each entry).",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Print one line per dataset."""
    from elman.data.datasets import list_datasets

    rows = [("name", "freq", "points", "series", "description")]
    for d in list_datasets():
        rows.append(
            (f"builtin:{d.name}", str(d.freq or "-"), str(d.length), str(d.n_series), d.description)
        )
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        say("  ".join([*(c.ljust(w) for c, w in zip(r[:4], widths, strict=False)), r[4]]))
    return 0
