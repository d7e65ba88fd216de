"""Run the service: bind the port, check the security defaults, start uvicorn.

``serve(run_dir)`` is what ``elman serve`` calls. It binds the socket before loading the
model, so a port in use is reported at once; a non-loopback host requires a token (the
one given, one read from ``token_file``, or a new one printed once).
"""

from __future__ import annotations

import ipaddress
import logging
import secrets
import socket
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from elman.errors import ConfigError
from elman.serving.app import ServeOptions, create_app

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def resolve_token(host: str, token_file: str | None, say: Callable[[str], None]) -> str | None:
    """The token requests must carry: from ``token_file``, or new for a non-loopback host."""
    if token_file is not None:
        path = Path(token_file)
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"--token-file '{path}': {exc.strerror or exc}; give a readable "
                "file holding the token"
            ) from exc
        if len(token) < 16 or not token.isprintable() or " " in token:
            raise ConfigError(
                f"--token-file '{path}': the token must be one line of at least "
                "16 printable characters without spaces"
            )
        return token
    if is_loopback(host):
        return None
    token = secrets.token_urlsafe(32)
    say(
        f"token (send 'Authorization: Bearer TOKEN' on every request but /healthz and "
        f"/readyz; shown once): {token}"
    )
    return token


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0: any free port)."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(
            f"--host '{host}': {exc.strerror}; give an address such as 127.0.0.1"
        ) from exc
    family, kind, proto, _, address = infos[0]
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
    except OSError as exc:
        sock.close()
        raise ConfigError(
            f"--port {port}: cannot listen on {host} ({exc.strerror}); "
            "choose another --port (0 picks a free one)"
        ) from exc
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    run_dir: str | Path,
    host: str = LOOPBACK,
    port: int = 8000,
    options: ServeOptions | None = None,
    token_file: str | None = None,
    say: Callable[[str], None] = log.warning,
) -> None:
    """Serve the model in ``run_dir`` over HTTP until SIGINT or SIGTERM.

    Args:
        run_dir: a directory written by ``elman train`` or ``Forecaster.save``.
        host: the address to listen on; anything but loopback needs a token.
        port: the TCP port (0: a free one, printed).
        options: state directory, snapshots, limits, token (see :class:`ServeOptions`).
        token_file: a file holding the token.
        say: where the address (and a generated token) are written.
    """
    import uvicorn

    opts = options or ServeOptions()
    if not Path(run_dir).is_dir():
        raise ConfigError(
            f"RUN_DIR '{run_dir}' is not a directory; give a directory written by 'elman train'"
        )
    sock = bind(host, port)
    try:
        if opts.token is None:
            opts = replace(opts, token=resolve_token(host, token_file, say))
        app = create_app(run_dir, opts)
        bound = sock.getsockname()[1]
        config = uvicorn.Config(
            app, log_level="warning", access_log=False, lifespan="on", timeout_graceful_shutdown=5
        )
        server = uvicorn.Server(config)
        shown = f"[{host}]" if ":" in host else host
        say(f"serving {run_dir} on http://{shown}:{bound} (state: {app.state.service.store.dir})")
        server.run(sockets=[sock])
    finally:
        sock.close()
