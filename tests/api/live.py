"""A control-plane app served by uvicorn on a thread of the test process, on a free port."""

from __future__ import annotations

import functools
import socket
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from meshpy.api import create_app
from meshpy.registry import migrations
from meshpy.registry.db import Database
from meshpy.settings import Settings


@dataclass
class LiveServer:
    """A running app: its URL, settings and an admin client."""

    url: str
    settings: Settings
    admin_token: str
    server: uvicorn.Server = field(repr=False)
    thread: threading.Thread = field(repr=False)
    sock: socket.socket = field(repr=False)
    clients: list[httpx.Client] = field(default_factory=list, repr=False)

    def client(self, token: str | None = None, *, admin: bool = False) -> httpx.Client:
        """An HTTP client of this server, sending ``token`` (or the admin token) if given."""
        bearer = self.admin_token if admin else token
        headers = {"Authorization": f"Bearer {bearer}"} if bearer else {}
        client = httpx.Client(base_url=self.url, headers=headers, timeout=15.0)
        self.clients.append(client)
        return client

    @functools.cached_property
    def admin(self) -> httpx.Client:
        """A client with the admin token."""
        return self.client(admin=True)

    def join_token(self, service: str, namespace: str = "default", ttl: str = "1h") -> str:
        """Create a join token for ``namespace``/``service``."""
        response = self.admin.post(
            "/api/v1/tokens", json={"namespace": namespace, "service": service, "ttl": ttl}
        )
        assert response.status_code == 201, response.text
        token: str = response.json()["token"]
        return token

    def register(self, service: str, namespace: str = "default", **body: Any) -> dict[str, Any]:
        """Register an instance with the admin token; returns the registration."""
        body = {"address": "127.0.0.1", "inbound_port": 15006, **body}
        response = self.admin.post(
            f"/api/v1/namespaces/{namespace}/services/{service}/instances", json=body
        )
        assert response.status_code == 201, response.text
        registration: dict[str, Any] = response.json()
        return registration

    def stop(self) -> None:
        """Stop the server and close the clients."""
        for client in self.clients:
            client.close()
        self.server.should_exit = True
        self.thread.join(15)
        self.sock.close()
        assert not self.thread.is_alive(), "the server thread did not stop"


def start(settings: Settings, **app_options: Any) -> LiveServer:
    """Serve ``create_app(settings, **app_options)`` on 127.0.0.1 and a free port; PostgreSQL
    is migrated."""
    if settings.db_url.startswith("postgresql"):
        db = Database(settings.db_url)
        try:
            migrations.upgrade(db)
        finally:
            db.dispose()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)  # TCP_NODELAY
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        create_app(settings, **app_options), log_level="warning", lifespan="on", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 15
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            msg = "the server did not start"
            raise AssertionError(msg)
        time.sleep(0.01)
    token = settings.admin_token_file.read_text().strip()
    return LiveServer(f"http://127.0.0.1:{port}", settings, token, server, thread, sock)
