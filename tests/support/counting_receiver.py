"""A webhook that only counts: for the benchmark's multi-million-event backlog, where keeping and checking
every body (support.falco_receiver) would take gigabytes. It answers 200 to POSTs of JSON and marks each
``auditID`` of the form ``bench-<n>`` in a bitmap, so it can say how many distinct events arrived and how
many came twice. The contract itself is checked by the other phases and the tests.
"""

from __future__ import annotations

import re
import threading
import time

from support.loopback_http import LoopbackServer, QuietHandler

_AUDIT_ID = re.compile(rb'"auditID":"bench-(\d{9})"')


class CountingReceiver:
    def __init__(self, expected: int) -> None:
        self.seen = bytearray(expected)
        self.distinct = 0
        self.duplicates = 0
        self.requests = 0
        self.last_at = 0.0
        self._lock = threading.Lock()
        receiver = self

        class Handler(QuietHandler):
            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                receiver.record(body)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self._server = LoopbackServer(Handler, poll_interval=0.2)

    def record(self, body: bytes) -> None:
        numbers = [int(n) for n in _AUDIT_ID.findall(body)]
        with self._lock:
            seen = self.seen
            for n in numbers:
                if seen[n]:
                    self.duplicates += 1
                else:
                    seen[n] = 1
                    self.distinct += 1
            self.requests += 1
            self.last_at = time.monotonic()

    @property
    def url(self) -> str:
        return self._server.url("/k8s-audit")

    def __enter__(self) -> CountingReceiver:
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.stop()
