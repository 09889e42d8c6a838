"""The small HTTP servers behind the tests' stand-ins (a webhook, the Kubernetes API, metrics endpoints).

One place for what each of them needs: listen on 127.0.0.1 only (the tests never leave the machine), on a port
the kernel picks, serve from a daemon thread, keep quiet on stderr (a stand-in reports through its own records),
and stop for good on exit.
"""

from __future__ import annotations

import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


class QuietHandler(BaseHTTPRequestHandler):
    """A request handler that keeps connections alive (HTTP/1.1, as the real servers do) and logs nothing."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - base signature
        return


class LoopbackServer:
    """``handler`` served on 127.0.0.1 from a daemon thread; a context manager, or ``start()``/``stop()``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], port: int = 0, poll_interval: float = 0.05,
                 tls: ssl.SSLContext | None = None) -> None:
        self.server = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.server.daemon_threads = True
        self.scheme = "https" if tls is not None else "http"
        if tls is not None:
            self.server.socket = tls.wrap_socket(self.server.socket, server_side=True)
        self._thread = threading.Thread(target=self.server.serve_forever, args=(poll_interval,), daemon=True)

    @property
    def port(self) -> int:
        return int(self.server.server_address[1])

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"

    def start(self) -> LoopbackServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread.is_alive():  # shutdown() waits for a serve_forever() that never began otherwise
            self.server.shutdown()
            self._thread.join(5)
        self.server.server_close()

    def __enter__(self) -> LoopbackServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
