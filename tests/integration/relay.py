"""A TCP relay on 127.0.0.1 in front of a server, which a test can take down or stall.

- ``down()``: every relayed connection is closed and new ones are closed at once, as
  when the database goes away;
- ``stall()``: connections stay open but no byte moves either way (a black hole);
- ``up()``: relaying again.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from typing import Literal

Mode = Literal["up", "down", "stall"]


class Relay:
    """Relays 127.0.0.1:<port> to ``target``; ``close()`` ends everything it opened."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target = target
        self.mode: Mode = "up"
        self._lock = threading.Lock()
        self._sockets: set[socket.socket] = set()
        self._closed = False
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def up(self) -> None:
        """Relay again."""
        self.mode = "up"

    def stall(self) -> None:
        """Keep connections open but move no bytes."""
        self.mode = "stall"

    def down(self) -> None:
        """Close every connection; close new ones at once."""
        self.mode = "down"
        self._close_all()

    def close(self) -> None:
        """Stop the relay and close every socket it holds."""
        self._closed = True
        # The accept loop may still be adding a connection: stop it first, then close all.
        self._thread.join(5)
        self._close_all()
        self._listener.close()

    def _close_all(self) -> None:
        with self._lock:
            sockets, self._sockets = self._sockets, set()
        for sock in sockets:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            if self.mode == "down":
                client.close()
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            upstream.settimeout(None)
            with self._lock:
                self._sockets.update((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while not self._closed:
                data = src.recv(65536)
                if not data:
                    break
                while self.mode == "stall" and not self._closed:
                    time.sleep(0.01)
                if self.mode == "down":
                    break
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
