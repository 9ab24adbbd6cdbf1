"""``meshpy server``: run the control plane under uvicorn until SIGTERM or SIGINT.

Before serving: the database schema is brought up to date (SQLite) or checked
(PostgreSQL), the admin token file is made if absent, and the certificate authority is
loaded (made on the first start); a failure is one line on stderr and exit code 1. Once
the app has started, the URL is written to ``<home>/server-url`` (removed on exit) and
announced on stderr; with a ready file (``meshpy.readyfile``), the URL and PID are written
there too, for the program that started the server. Shutdown lets in-flight requests
finish, then stops the background tasks and closes the database.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from types import FrameType

import uvicorn
from sqlalchemy import exc as sa_exc

from meshpy.api.app import create_app
from meshpy.api.auth import load_or_create_admin_token
from meshpy.ca.authority import Authority, CAError
from meshpy.readyfile import Ready, remove_ready, write_ready
from meshpy.registry import migrations
from meshpy.registry.db import Database, redact
from meshpy.settings import Settings, parse_listen

__all__ = ["serve"]

PREFIX = "meshpy server"
log = logging.getLogger("meshpy.server")


class _Server(uvicorn.Server):
    """A uvicorn server that announces itself once the app has started."""

    def __init__(
        self, config: uvicorn.Config, settings: Settings, url: str, ready_file: Path | None
    ) -> None:
        super().__init__(config)
        self.meshpy_settings = settings
        self.url = url
        self.ready_file = ready_file
        self.failed = False
        """It started, but could not say so: it stops at once, with exit code 1."""

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.should_exit:
            _say(f"{signal.Signals(sig).name}: finishing in-flight requests, then stopping")
            state = getattr(getattr(self.config.app, "state", None), "meshpy", None)
            if state is not None:
                # Ends the config long-polls now (they would hold the shutdown for their
                # whole wait) and stops the lease reaper: no renewals arrive any more.
                with contextlib.suppress(RuntimeError):  # no running loop: nothing waits
                    asyncio.get_running_loop().call_soon_threadsafe(state.feed.close)
        super().handle_exit(sig, frame)
        # uvicorn re-raises the signal after its graceful shutdown (exit status -15); like
        # `meshpy proxy run`, exit 0 instead once everything has stopped cleanly.
        self._captured_signals.clear()

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        if self.should_exit:
            return
        settings = self.meshpy_settings
        _write_url(settings.server_url_file, self.url)
        if self.ready_file is not None:
            try:
                write_ready(self.ready_file, Ready(self.url, os.getpid()))
            except OSError as exc:
                _say(f"error: cannot write {self.ready_file}: {exc.strerror or exc}")
                self.failed = self.should_exit = True
                return
        _say(f"listening on {self.url}")
        _say(f"admin token in {settings.admin_token_file.resolve()}")
        _say(f"certificate authority in {settings.ca_dir.resolve()} for {settings.trust_domain}")
        _say(f"registry {redact(settings.database_url)}")


def serve(settings: Settings, ready_file: Path | None = None) -> int:
    """Run until SIGTERM/SIGINT; return the exit code (1: could not start).

    Once listening, the URL and PID are written to ``ready_file`` (``meshpy.readyfile``).
    """
    logging.basicConfig(level=logging.INFO, format=f"{PREFIX}: %(message)s", stream=sys.stderr)
    logging.getLogger("alembic").setLevel(logging.WARNING)
    try:
        settings.home.mkdir(parents=True, exist_ok=True, mode=0o700)
        _prepare_database(settings)
        load_or_create_admin_token(settings.admin_token_file)
        Authority.open(settings.ca_dir, settings.trust_domain)
        sock, url = _bind(settings.listen)
    except (migrations.SchemaError, CAError, OSError, ValueError) as exc:
        _say(f"error: {exc}")
        return 1
    except sa_exc.SQLAlchemyError as exc:
        reason = str(getattr(exc, "orig", None) or exc).strip().splitlines() or [repr(exc)]
        _say(f"error: cannot use the database {redact(settings.database_url)}: {reason[0]}")
        return 1
    config = uvicorn.Config(
        create_app(settings),
        log_level="warning",
        access_log=False,
        lifespan="on",
        timeout_graceful_shutdown=10,
        server_header=False,
    )
    server = _Server(config, settings, url, ready_file)
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
        _remove_url(settings.server_url_file, url)
        if ready_file is not None:
            remove_ready(ready_file, os.getpid())
    if not server.started or server.failed:
        return 1
    _say("stopped")
    return 0


def _prepare_database(settings: Settings) -> None:
    db = Database(settings.database_url, timeout_s=settings.db_timeout, pool_size=1)
    try:
        before = migrations.prepare(db)
        if before is not None:
            head = migrations.check(db).head
            _say(f"database schema upgraded from {before.current or 'empty'} to {head}")
    finally:
        db.dispose()


def _bind(listen: str) -> tuple[socket.socket, str]:
    host, port = parse_listen(listen)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # proto=IPPROTO_TCP: asyncio sets TCP_NODELAY only on sockets that say they are TCP;
    # without it every response after the first on a connection waits for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        msg = f"cannot listen on {listen}: {exc.strerror or exc}"
        raise OSError(msg) from exc
    bound_port = sock.getsockname()[1]
    shown = f"[{host}]" if family == socket.AF_INET6 else host
    return sock, f"http://{shown}:{bound_port}"


def _write_url(path: Path, url: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(url + "\n", encoding="utf-8")
    tmp.replace(path)


def _remove_url(path: Path, url: str) -> None:
    try:
        if path.read_text(encoding="utf-8").strip() == url:
            path.unlink()
    except OSError:
        pass


def _say(message: str) -> None:
    print(f"{PREFIX}: {message}", file=sys.stderr, flush=True)
