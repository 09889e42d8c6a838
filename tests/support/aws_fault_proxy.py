"""An HTTP proxy on 127.0.0.1 in front of moto: counts AWS calls by operation, injects faults on command.

Point the client's endpoint at `proxy.endpoint_url` instead of moto's. The operation is read from
`X-Amz-Target` (JSON protocol, e.g. "Logs_20140328.FilterLogEvents" -> "FilterLogEvents") or from
the `Action=` form field (query protocol, e.g. STS "AssumeRoleWithWebIdentity").

Faults, for the JSON-protocol operations you name (all of them when `operations` is None):
  - throttle(): HTTP 400 {"__type":"ThrottlingException","message":"Rate exceeded"}, which is
    what CloudWatch Logs answers when the account's TPS quota is exceeded;
  - unavailable(): HTTP 503 {"__type":"ServiceUnavailableException", ...};
  - error(code, status): any other AWS error, e.g. Kinesis's ProvisionedThroughputExceededException or
    ExpiredIteratorException.
Each for the next `count` matching calls, or until clear() when count is None.

    with AwsFaultProxy(moto.endpoint_url) as proxy:
        proxy.throttle(count=20, operations={"FilterLogEvents"})
        ...
        proxy.count("FilterLogEvents"); proxy.calls_between(t0, t1)
"""

from __future__ import annotations

import json
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import urllib3
from support.loopback_http import QuietHandler

_HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade"}


@dataclass(frozen=True, slots=True)
class Call:
    """One request seen by the proxy."""

    at: float  # time.monotonic() when it arrived
    operation: str
    status: int  # what the client got
    injected: str | None  # "throttle" | "unavailable" | None
    access_key_id: str | None  # from the SigV4 Authorization header, if signed


@dataclass
class _Fault:
    kind: str
    remaining: int | None
    operations: frozenset[str] | None
    code: str = ""
    status: int = 400

    def matches(self, operation: str, json_protocol: bool) -> bool:
        if not json_protocol:
            return False
        return self.operations is None or operation in self.operations


def operation_of(headers: Any, body: bytes) -> tuple[str, bool]:
    """(operation name, whether the call uses the JSON protocol)."""
    target = headers.get("X-Amz-Target")
    if target:
        return target.rsplit(".", 1)[-1], True
    if body:
        try:
            fields = urllib.parse.parse_qs(body.decode("utf-8", "replace"))
        except ValueError:
            fields = {}
        if "Action" in fields:
            return fields["Action"][0], False
    return "unknown", False


def access_key_of(headers: Any) -> str | None:
    auth = headers.get("Authorization") or ""
    marker = "Credential="
    start = auth.find(marker)
    if start < 0:
        return None
    return auth[start + len(marker) :].split("/", 1)[0]


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # Clients hanging up mid-request are normal (a killed forwarder); anything else is printed.
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


class AwsFaultProxy:
    def __init__(self, upstream_url: str, host: str = "127.0.0.1", port: int = 0) -> None:
        parsed = urllib.parse.urlsplit(upstream_url)
        self._upstream = urllib3.HTTPConnectionPool(
            parsed.hostname or "127.0.0.1", parsed.port or 80, maxsize=16, block=False, retries=False
        )
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._calls: list[Call] = []
        self._fault: _Fault | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> AwsFaultProxy:
        proxy = self

        class Handler(QuietHandler):
            def _any(self) -> None:
                proxy._handle(self)

            do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _any  # noqa: N815

        self._server = _QuietServer((self._host, self._port), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, name="aws-fault-proxy", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        self._upstream.close()

    def __enter__(self) -> AwsFaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def endpoint_url(self) -> str:
        if self._server is None:
            raise RuntimeError("proxy not started")
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    # --- commands ----------------------------------------------------------------------------

    def throttle(self, count: int | None = None, operations: Iterable[str] | None = None) -> None:
        """Answer ThrottlingException to the next `count` matching calls (None: until clear())."""
        self._set_fault("throttle", count, operations)

    def unavailable(self, count: int | None = None, operations: Iterable[str] | None = None) -> None:
        """Answer HTTP 503 to the next `count` matching calls (None: until clear())."""
        self._set_fault("unavailable", count, operations)

    def error(self, code: str, status: int = 400, count: int | None = None,
              operations: Iterable[str] | None = None) -> None:
        """Answer the AWS error `code` with HTTP `status` to the next `count` matching calls."""
        self._set_fault("error", count, operations, code, status)

    def clear(self) -> None:
        with self._lock:
            self._fault = None

    def _set_fault(self, kind: str, count: int | None, operations: Iterable[str] | None, code: str = "",
                   status: int = 400) -> None:
        with self._lock:
            self._fault = _Fault(kind, count, frozenset(operations) if operations is not None else None, code, status)

    # --- what it saw -------------------------------------------------------------------------

    def calls(self) -> list[Call]:
        with self._lock:
            return list(self._calls)

    def count(self, operation: str | None = None, *, injected: bool | None = None) -> int:
        """Calls seen, optionally for one operation and only injected (True) / passed through (False)."""
        with self._lock:
            return sum(
                1
                for call in self._calls
                if (operation is None or call.operation == operation)
                and (injected is None or (call.injected is not None) == injected)
            )

    def counts(self) -> Counter[str]:
        with self._lock:
            return Counter(call.operation for call in self._calls)

    def calls_between(self, start: float, end: float, operation: str | None = None) -> int:
        """Calls that arrived in [start, end) on the time.monotonic() clock."""
        with self._lock:
            return sum(
                1
                for call in self._calls
                if start <= call.at < end and (operation is None or call.operation == operation)
            )

    def reset_counts(self) -> None:
        with self._lock:
            self._calls.clear()

    # --- the proxying ------------------------------------------------------------------------

    def _take_fault(self, operation: str, json_protocol: bool) -> _Fault | None:
        with self._lock:
            fault = self._fault
            if fault is None or not fault.matches(operation, json_protocol):
                return None
            if fault.remaining is not None:
                fault.remaining -= 1
                if fault.remaining <= 0:
                    self._fault = None
            return fault

    def _record(self, operation: str, status: int, injected: str | None, headers: Any) -> None:
        call = Call(time.monotonic(), operation, status, injected, access_key_of(headers))
        with self._lock:
            self._calls.append(call)

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("Content-Length") or 0)
        body = handler.rfile.read(length) if length else b""
        operation, json_protocol = operation_of(handler.headers, body)
        fault = self._take_fault(operation, json_protocol)
        if fault is not None:
            if fault.kind == "throttle":
                status, payload = 400, {"__type": "ThrottlingException", "message": "Rate exceeded"}
            elif fault.kind == "unavailable":
                status, payload = 503, {"__type": "ServiceUnavailableException", "message": "Service unavailable"}
            else:
                status, payload = fault.status, {"__type": fault.code, "message": f"injected {fault.code}"}
            data = json.dumps(payload).encode()
            self._record(operation, status, fault.kind, handler.headers)
            handler.send_response(status)
            handler.send_header("Content-Type", "application/x-amz-json-1.1")
            handler.send_header("x-amzn-RequestId", "00000000-0000-0000-0000-000000000000")
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return

        headers = {k: v for k, v in handler.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            response = self._upstream.urlopen(
                handler.command,
                handler.path,
                body=body or None,
                headers=headers,
                preload_content=True,
                assert_same_host=False,
                redirect=False,
            )
        except urllib3.exceptions.HTTPError as exc:
            data = f"proxy: upstream error: {exc}".encode()
            self._record(operation, 502, None, handler.headers)
            handler.send_response(502)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)
            return
        data = response.data
        self._record(operation, response.status, None, handler.headers)
        handler.send_response(response.status)
        for key, value in response.headers.items():
            if key.lower() not in _HOP_BY_HOP and key.lower() not in ("content-length", "server", "date"):
                handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
