"""``elman serve``: forecast, and learn from new observations, over HTTP."""

from __future__ import annotations

import argparse
from typing import Any

from elman.cli.common import say


def add_parser(subs: Any) -> None:
    """Register ``elman serve``."""
    p = subs.add_parser(
        "serve",
        help="serve a trained model over HTTP: forecasts, online updates, metrics, a page",
        description="Load the model in RUN_DIR and answer forecasts (from a history sent in "
        "the request, or from the state of a series the server holds) and new observations "
        "(learned from at once, written to an fsynced log before the reply, replayed after a "
        "restart). Example: elman serve run --port 8000, then curl "
        "localhost:8000/v1/model. See docs/serving.md.",
    )
    p.add_argument("run_dir", metavar="RUN_DIR", help="a directory written by 'elman train'")
    p.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; any other needs a token)",
    )
    p.add_argument("--port", type=int, default=8000, help="TCP port (default 8000; 0: a free one)")
    p.add_argument(
        "--state",
        metavar="DIR",
        help="where the update log and snapshots go (default RUN_DIR/serve-state)",
    )
    p.add_argument(
        "--token-file",
        metavar="FILE",
        help="file holding the token every request but /healthz and /readyz must "
        "send as 'Authorization: Bearer TOKEN' (default on a non-loopback --host: "
        "a new token, printed once)",
    )
    p.add_argument(
        "--snapshot-every",
        type=int,
        default=100,
        metavar="N",
        help="updates of a series between two snapshots of it (default 100)",
    )
    g = p.add_argument_group("request limits (each excess is answered with a 4xx naming it)")
    g.add_argument("--max-body", type=int, metavar="BYTES", help="body size (default 1 MiB)")
    g.add_argument("--max-series", type=int, metavar="N", help="series per request (1000)")
    g.add_argument("--max-points", type=int, metavar="N", help="rows per request (100000)")
    g.add_argument(
        "--max-horizon",
        type=int,
        metavar="N",
        help="forecast steps of a recursive model (1000; a direct model stops at "
        "its trained horizon)",
    )
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Build the options and serve until stopped."""
    from elman.serving import Limits, ServeOptions, serve

    given = {k: getattr(args, k) for k in ("max_body", "max_series", "max_points", "max_horizon")}
    limits = Limits(**{k: v for k, v in given.items() if v is not None})
    options = ServeOptions(state=args.state, snapshot_every=args.snapshot_every, limits=limits)
    serve(args.run_dir, args.host, args.port, options, args.token_file, say=say)
    return 0
