"""A stand-in for Falco's k8saudit webhook that enforces its contract exactly and fails on command.

The contract (falcosecurity/plugins, plugins/k8saudit/pkg/k8saudit/source.go; see shared/DESIGN.md):
  - only POST (else 405); Content-Type must contain "application/json" (else 400);
  - a body larger than the max batch size (default 12582912) gets 400;
  - otherwise 200 is answered BEFORE parsing: a bad payload is only logged by Falco and lost.
    The body is parsed whole by valyala/fastjson: a parse error, or nesting deeper than its
    MaxDepth of 300 levels (every value counts one; the top-level value is level 1), drops every
    event of the request. Accepted payloads: one `kind: Event`, a `kind: EventList` with `items`,
    or a JSON array of them (one element it cannot recognise drops the whole array).
    Each event needs a `stageTimestamp` in RFC3339Nano (the first one, if the key is repeated);
    events whose compact JSON (as written, minus whitespace) is larger than the max event size
    (default 262144) are dropped alone. Our contract also requires `auditID`.

Because real Falco answers 200 and then silently drops what it cannot use, everything a correct
sender should never cause is recorded in `violations` (kind, detail), and tests assert it stays
empty. Events Falco would use are recorded in `accepted_ids` (in order, duplicates included).

Faults on command: fail(status, count) answers a status for the next `count` requests (None: until
clear()); slow(seconds) delays every answer; down() closes the port (connection refused, open
keep-alive connections cut) and up() listens again on the same port.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from support.loopback_http import QuietHandler

DEFAULT_MAX_BATCH_BYTES = 12_582_912
DEFAULT_MAX_EVENT_BYTES = 262_144
DEFAULT_PATH = "/k8s-audit"

# Go's time.Parse(time.RFC3339Nano, ...): the fraction is optional and, when present, takes any
# number of digits after "." or "," (time/format.go, stdFracSecond9); then "Z" or ±hh:mm.
_RFC3339_NANO = re.compile(
    r"^\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d([.,]\d+)?(Z|[+-]([01]\d|2[0-3]):[0-5]\d)$"
)


def is_rfc3339_nano(value: object) -> bool:
    return isinstance(value, str) and _RFC3339_NANO.match(value) is not None


@dataclass(frozen=True, slots=True)
class Violation:
    """Something a correct sender never causes."""

    kind: str  # method | content_type | batch_too_large | bad_json | too_deep | not_audit_payload
    #            | missing_stage_timestamp | bad_stage_timestamp | missing_audit_id | event_too_large | wrong_path
    detail: str


@dataclass(frozen=True, slots=True)
class RequestRecord:
    at: float  # time.time() when the answer was sent
    method: str
    path: str
    status: int
    body_bytes: int
    events: int  # events Falco would have used from this request
    injected: bool  # the status came from fail(), not from the contract
    busy_s: float = 0.0  # time spent receiving and checking the request (injected delays excluded)
    check_s: float = 0.0  # of which parsing and checking the body (the receiver's own CPU, mostly)


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        # A client that hangs up (or a cut from down()) is normal here; anything else is printed.
        if not isinstance(sys.exc_info()[1], (ConnectionError, OSError)):
            super().handle_error(request, client_address)


class FalcoReceiver:
    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = DEFAULT_PATH,
        max_batch_bytes: int = DEFAULT_MAX_BATCH_BYTES,
        max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
        keep_events: bool = False,
        record_ack_times: bool = False,
        answer_before_parse: bool = False,
        defer_checks: bool = False,
    ) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the test receiver listens on loopback only")
        self._host = "127.0.0.1"
        self._port = port
        self.path = path
        self.max_batch_bytes = max_batch_bytes
        self.max_event_bytes = max_event_bytes
        self._keep_events = keep_events
        self._record_ack_times = record_ack_times
        # False (tests): an event is recorded before its 200 leaves, so a sender that got 200 can
        # always find its events recorded. True (benchmark): Falco's order, 200 then parse.
        self._answer_before_parse = answer_before_parse
        self._defer_checks = defer_checks
        self._deferred: list[tuple[float, str, bytes, float]] = []
        self._deferred_marks = 0

        self._cond = threading.Condition()
        self._accepted_ids: list[str] = []
        self._id_counts: Counter[str] = Counter()
        self._events: dict[str, dict[str, Any]] = {}
        self._ack_times: dict[str, float] = {}
        self._violations: list[Violation] = []
        self._requests: list[RequestRecord] = []

        self._fail_status: int | None = None
        self._fail_remaining: int | None = None
        self._fail_retry_after: str | None = None
        self._delay_seconds = 0.0
        self._released = threading.Event()  # set on stop()/down(): cut delays short

        self._server: _Server | None = None
        self._thread: threading.Thread | None = None
        self._connections: set[socket.socket] = set()
        self._in_flight = 0
        self._max_in_flight = 0

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> FalcoReceiver:
        self._listen()
        return self

    def stop(self) -> None:
        self.down()

    def __enter__(self) -> FalcoReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._port}{self.path}"

    def down(self) -> None:
        """Stop listening (new connections are refused) and cut open connections."""
        with self._cond:
            server, self._server = self._server, None
            connections = list(self._connections)
        if server is None:
            return
        self._released.set()
        server.shutdown()
        server.server_close()
        for conn in connections:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(timeout=10)

    def up(self) -> None:
        """Listen again on the same port."""
        with self._cond:
            if self._server is not None:
                return
        deadline = time.monotonic() + 10
        while True:
            try:
                self._listen()
                return
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    @property
    def is_up(self) -> bool:
        with self._cond:
            return self._server is not None

    def _listen(self) -> None:
        self._released.clear()
        server = _Server((self._host, self._port), self._handler_class())
        self._port = int(server.server_address[1])
        thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        with self._cond:
            self._server = server
            self._thread = thread
        thread.start()

    # --- commands ----------------------------------------------------------------------------

    def fail(self, status: int, count: int | None = None, retry_after: float | None = None) -> None:
        """Answer `status` to the next `count` requests (None: until clear())."""
        with self._cond:
            self._fail_status = status
            self._fail_remaining = count
            self._fail_retry_after = None if retry_after is None else f"{retry_after:g}"

    def slow(self, seconds: float) -> None:
        """Wait `seconds` before answering each request (0 to stop)."""
        with self._cond:
            self._delay_seconds = seconds

    def clear(self) -> None:
        """No more injected failures or delays."""
        with self._cond:
            self._fail_status = None
            self._fail_remaining = None
            self._delay_seconds = 0.0

    # --- what it recorded --------------------------------------------------------------------

    @property
    def accepted_ids(self) -> list[str]:
        with self._cond:
            return list(self._accepted_ids)

    @property
    def accepted_count(self) -> int:
        with self._cond:
            return len(self._accepted_ids)

    @property
    def unique_ids(self) -> set[str]:
        with self._cond:
            return set(self._id_counts)

    def duplicates(self) -> dict[str, int]:
        """auditID -> times received, for ids received more than once."""
        with self._cond:
            return {audit_id: n for audit_id, n in self._id_counts.items() if n > 1}

    def event(self, audit_id: str) -> dict[str, Any]:
        """The last received copy of an event (keep_events=True only)."""
        with self._cond:
            return self._events[audit_id]

    def ack_times(self) -> dict[str, float]:
        """auditID -> time.time() of its first 200 (record_ack_times=True only)."""
        with self._cond:
            return dict(self._ack_times)

    @property
    def violations(self) -> list[Violation]:
        with self._cond:
            return list(self._violations)

    @property
    def requests(self) -> list[RequestRecord]:
        with self._cond:
            return list(self._requests)

    @property
    def in_flight_requests(self) -> int:
        """Requests being handled right now (e.g. held by slow())."""
        with self._cond:
            return self._in_flight

    @property
    def max_concurrent_requests(self) -> int:
        """The most requests this receiver was handling at one time."""
        with self._cond:
            return self._max_in_flight

    def defer_checks(self, on: bool) -> None:
        """Keep bodies unchecked from now on (True) or check on arrival again (False)."""
        with self._cond:
            self._defer_checks = on

    @property
    def deferred_marks(self) -> int:
        """defer_checks=True: occurrences of '"auditID"' in the bodies kept so far (a cheap count
        of the events received, for waiting; check_deferred() gives the exact answer)."""
        with self._cond:
            return self._deferred_marks

    @property
    def deferred_requests(self) -> int:
        """defer_checks=True: request bodies kept so far, waiting for check_deferred()."""
        with self._cond:
            return len(self._deferred)

    def check_deferred(self) -> None:
        """defer_checks=True: parse and check every kept body, recording as if done on arrival."""
        with self._cond:
            deferred, self._deferred = self._deferred, []
            self._deferred_marks = 0
        for answered, path, body, busy in deferred:
            started = time.monotonic()
            events = self._parse(body)
            check = time.monotonic() - started
            self._store("POST", path, 200, False, len(body), events, answered, busy + check, check)

    def reset_records(self) -> None:
        with self._cond:
            self._accepted_ids.clear()
            self._id_counts.clear()
            self._events.clear()
            self._ack_times.clear()
            self._violations.clear()
            self._requests.clear()
            self._deferred.clear()
            self._deferred_marks = 0

    def wait_for(self, predicate: Callable[[FalcoReceiver], bool], timeout: float) -> bool:
        """Wait until predicate(self) holds or `timeout` seconds passed; returns the last value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                # The predicate reads through the locked properties: Condition's lock is reentrant.
                if predicate(self):
                    return True
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(timeout=min(remaining, 0.5))

    def wait_for_ids(self, audit_ids: set[str] | list[str], timeout: float) -> bool:
        wanted = set(audit_ids)
        return self.wait_for(lambda r: wanted <= r._id_counts.keys(), timeout)

    def wait_for_count(self, unique: int, timeout: float) -> bool:
        return self.wait_for(lambda r: len(r._id_counts) >= unique, timeout)

    # --- the webhook -------------------------------------------------------------------------

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        receiver = self

        class Handler(QuietHandler):  # keep-alive, like Go's net/http
            def setup(self) -> None:
                super().setup()
                with receiver._cond:
                    receiver._connections.add(self.connection)

            def finish(self) -> None:
                with receiver._cond:
                    receiver._connections.discard(self.connection)
                try:
                    super().finish()
                except OSError:
                    pass

            def _any(self) -> None:
                with receiver._cond:
                    receiver._in_flight += 1
                    receiver._max_in_flight = max(receiver._max_in_flight, receiver._in_flight)
                try:
                    receiver._handle(self)
                except (ConnectionError, OSError):
                    self.close_connection = True
                finally:
                    with receiver._cond:
                        receiver._in_flight -= 1
                        receiver._cond.notify_all()

            do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = _any  # noqa: N815

        return Handler

    def _violate(self, kind: str, detail: str) -> None:
        with self._cond:
            self._violations.append(Violation(kind, detail))
            self._cond.notify_all()

    def _take_injected(self) -> tuple[int | None, str | None, float]:
        with self._cond:
            delay = self._delay_seconds
            status = self._fail_status
            retry_after = self._fail_retry_after
            if status is not None and self._fail_remaining is not None:
                self._fail_remaining -= 1
                if self._fail_remaining <= 0:
                    self._fail_status = None
                    self._fail_remaining = None
            return status, retry_after, delay

    def _answer(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        text: str,
        *,
        injected: bool,
        body_bytes: int,
        events: list[tuple[str, dict[str, Any]]] | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        # Recorded as the answer is written: like Falco, which hands the events on once it has
        # written 200, whether or not the sender reads the answer.
        self._record(handler, status, injected=injected, body_bytes=body_bytes, events=events, at=time.time())
        self._send(handler, status, text, headers=headers, close=close)

    def _record(
        self,
        handler: BaseHTTPRequestHandler,
        status: int,
        *,
        injected: bool,
        body_bytes: int,
        events: list[tuple[str, dict[str, Any]]] | None,
        at: float,
    ) -> None:
        busy = time.monotonic() - getattr(handler, "receiver_started", time.monotonic())
        check = getattr(handler, "receiver_check_s", 0.0)
        self._store(handler.command, handler.path, status, injected, body_bytes, events, at, busy, check)

    def _store(
        self,
        method: str,
        path: str,
        status: int,
        injected: bool,
        body_bytes: int,
        events: list[tuple[str, dict[str, Any]]] | None,
        at: float,
        busy_s: float,
        check_s: float,
    ) -> None:
        with self._cond:
            for audit_id, event in events or []:
                self._accepted_ids.append(audit_id)
                self._id_counts[audit_id] += 1
                if self._keep_events:
                    self._events[audit_id] = event
                if self._record_ack_times and audit_id not in self._ack_times:
                    self._ack_times[audit_id] = at
            self._requests.append(
                RequestRecord(at, method, path, status, body_bytes, len(events or []), injected, busy_s, check_s)
            )
            self._cond.notify_all()

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        text: str,
        *,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        data = text.encode()
        handler.send_response(status)
        handler.send_header("Content-Type", "text/plain; charset=utf-8")
        handler.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            handler.send_header(key, value)
        if close:
            handler.send_header("Connection", "close")
            handler.close_connection = True
        handler.end_headers()
        if handler.command != "HEAD":
            handler.wfile.write(data)
        handler.wfile.flush()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        # Injected behaviour first, like a Falco that is overloaded or behind a failing proxy;
        # the body is still read so the connection stays usable.
        length_header = handler.headers.get("Content-Length")
        chunked = "chunked" in (handler.headers.get("Transfer-Encoding") or "").lower()
        status, retry_after, delay = self._take_injected()
        if delay > 0:
            self._released.wait(delay)
        handler.receiver_started = time.monotonic()  # type: ignore[attr-defined]

        if handler.path.split("?", 1)[0] != self.path:
            self._drain(handler, length_header, chunked)
            self._violate("wrong_path", f"{handler.command} {handler.path}")
            self._answer(handler, 404, "404 page not found\n", injected=False, body_bytes=0)
            return
        if status is not None:
            body_len = self._drain(handler, length_header, chunked)
            extra = {"Retry-After": retry_after} if retry_after is not None and status in (429, 503) else None
            self._answer(handler, status, f"injected {status}\n", injected=True, body_bytes=body_len, headers=extra)
            return
        if handler.command != "POST":
            self._drain(handler, length_header, chunked)
            self._violate("method", handler.command)
            self._answer(handler, 405, f"{handler.command} method not allowed\n", injected=False, body_bytes=0)
            return
        content_type = handler.headers.get("Content-Type") or ""
        if "application/json" not in content_type:
            self._drain(handler, length_header, chunked)
            self._violate("content_type", content_type)
            self._answer(handler, 400, "wrong Content Type\n", injected=False, body_bytes=0)
            return
        if length_header is not None and int(length_header) > self.max_batch_bytes:
            # Go's MaxBytesReader fails the read; the connection is not reused afterwards.
            self._violate("batch_too_large", f"{length_header} bytes > {self.max_batch_bytes}")
            self._answer(
                handler,
                400,
                "bad request: http: request body too large\n",
                injected=False,
                body_bytes=int(length_header),
                close=True,
            )
            return
        body = self._read_body(handler, length_header, chunked)
        if len(body) > self.max_batch_bytes:
            self._violate("batch_too_large", f"{len(body)} bytes > {self.max_batch_bytes}")
            self._answer(
                handler,
                400,
                "bad request: http: request body too large\n",
                injected=False,
                body_bytes=len(body),
                close=True,
            )
            return
        with self._cond:
            deferring = self._defer_checks
        if deferring:
            # Benchmark: answer, keep the body, check it later (check_deferred) so the checking
            # does not compete for this machine's CPU while the sender is being timed.
            answered = time.time()
            self._send(handler, 200, "")
            busy = time.monotonic() - handler.receiver_started  # type: ignore[attr-defined]
            with self._cond:
                self._deferred.append((answered, handler.path, body, busy))
                self._deferred_marks += body.count(b'"auditID"')
                self._cond.notify_all()
            return
        if self._answer_before_parse:
            # Falco's own order: 200 first, parsing afterwards (the sender does not wait for it).
            answered = time.time()
            self._send(handler, 200, "")
            events = self._timed_parse(handler, body)
            self._record(handler, 200, injected=False, body_bytes=len(body), events=events, at=answered)
            return
        events = self._timed_parse(handler, body)
        self._answer(handler, 200, "", injected=False, body_bytes=len(body), events=events)

    @staticmethod
    def _read_body(handler: BaseHTTPRequestHandler, length_header: str | None, chunked: bool) -> bytes:
        if chunked:
            parts: list[bytes] = []
            while True:
                size_line = handler.rfile.readline()
                size = int(size_line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while handler.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass
                    return b"".join(parts)
                parts.append(handler.rfile.read(size))
                handler.rfile.readline()
        return handler.rfile.read(int(length_header or 0))

    def _drain(self, handler: BaseHTTPRequestHandler, length_header: str | None, chunked: bool) -> int:
        return len(self._read_body(handler, length_header, chunked))

    def _timed_parse(self, handler: BaseHTTPRequestHandler, body: bytes) -> list[tuple[str, dict[str, Any]]]:
        started = time.monotonic()
        events = self._parse(body)
        handler.receiver_check_s = time.monotonic() - started  # type: ignore[attr-defined]
        return events

    def _parse(self, body: bytes) -> list[tuple[str, dict[str, Any]]]:
        """What Falco's parser would push, recording a violation for everything it would drop."""
        try:
            items = read_payload(body)
        except DroppedPayloadError as dropped:
            self._violate(dropped.kind, f"{dropped.detail} (body starts {body[:80]!r})")
            return []
        accepted: list[tuple[str, dict[str, Any]]] = []
        for item, raw in items:
            event = self._check_event(item, raw)
            if event is not None:
                accepted.append(event)
        return accepted

    def _check_event(self, item: Any, raw: str) -> tuple[str, dict[str, Any]] | None:
        if not isinstance(item, dict):
            self._violate("not_audit_payload", f"item is not an object: {str(item)[:80]}")
            return None
        if raw.count('"stageTimestamp"') > 1 or raw.count('"auditID"') > 1:
            item = _FIRST_WINS.decode(raw)  # fastjson's Get returns the first of duplicate keys
        audit_id = item.get("auditID")
        if "stageTimestamp" not in item:
            self._violate("missing_stage_timestamp", f"auditID={audit_id!r}")
            return None
        if not is_rfc3339_nano(item["stageTimestamp"]):
            self._violate("bad_stage_timestamp", f"auditID={audit_id!r} stageTimestamp={item['stageTimestamp']!r}")
            return None
        # A UTF-8 character takes at most 4 bytes: a short item cannot be too large.
        size = marshalled_size(raw) if len(raw) * 4 > self.max_event_bytes else 0
        if size > self.max_event_bytes:
            self._violate("event_too_large", f"auditID={audit_id!r} size={size} > {self.max_event_bytes}")
            return None
        if not isinstance(audit_id, str) or not audit_id:
            self._violate("missing_audit_id", f"event without auditID (stageTimestamp={item['stageTimestamp']})")
            return None
        return audit_id, item


# --- Falco's JSON parser (valyala/fastjson, parser.go), as far as a sender can meet it ---------------

FASTJSON_MAX_DEPTH = 300
"""parser.go ``MaxDepth``: parseValue counts every value a level (the top-level value is 1) and fails
the whole parse past 300. Kept here on its own, not imported: this module judges the forwarder."""


class DroppedPayloadError(Exception):
    """Falco would drop every event of the request (after its 200)."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


def _fastjson_constant(name: str) -> float:
    # fastjson reads NaN (any case) as a number, but "Infinity" only as far as "Inf": the rest
    # of the word fails the parse.
    if name == "NaN":
        return float("nan")
    raise ValueError(f"{name} is not a value fastjson parses")


def _number(digits: str) -> int | float:
    # fastjson keeps a number's text and parses it only when asked: any length is fine, while
    # Python's int() refuses more than 4300 digits.
    try:
        return int(digits)
    except ValueError:
        return float(digits)


def _first_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj: dict[str, Any] = {}
    for key, value in pairs:
        obj.setdefault(key, value)
    return obj


# strict=False: fastjson takes raw control characters inside strings. (It also takes invalid
# escapes such as \x and numbers such as +1 or 1., which Python refuses: there this receiver is
# stricter than Falco; no correct sender sends them.)
_DECODER = json.JSONDecoder(strict=False, parse_constant=_fastjson_constant, parse_int=_number)
_FIRST_WINS = json.JSONDecoder(
    strict=False, parse_constant=_fastjson_constant, parse_int=_number, object_pairs_hook=_first_wins
)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_STRING_OR_WHITESPACE = re.compile(r'("[^"\\]*(?:\\.[^"\\]*)*")|[ \t\n\r]+', re.DOTALL)


def json_levels(value: Any) -> int:
    """The level of the deepest value, the top-level value being level 1 (as fastjson counts)."""
    deepest, stack = 1, [(value, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        members = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((member, level + 1) for member in members)
    return deepest


def marshalled_size(raw: str) -> int:
    """Bytes of fastjson's MarshalTo of a parsed value: its text as written, minus the whitespace
    between tokens (strings, escapes and numbers are kept raw). The size Falco checks."""
    return len(_STRING_OR_WHITESPACE.sub(r"\1", raw).encode("utf-8", "surrogateescape"))


def read_payload(body: bytes) -> list[tuple[Any, str]]:
    """The items Falco's k8saudit plugin takes from a request body (source.go,
    ParseAuditEventsJSON), each with its raw text; raises DroppedPayloadError when Falco drops it
    whole. One pass: the envelope is read piece by piece, each item by the C decoder."""
    # fastjson reads bytes and never checks UTF-8: keep invalid bytes as they are.
    text = body.decode("utf-8", "surrogateescape")
    try:
        items, end = _audit_items(text, _skip(text, 0), 1)
        if _skip(text, end) != len(text):
            raise ValueError(f"unexpected tail at {end}")
    except RecursionError:
        raise DroppedPayloadError("too_deep", "too big depth for the nested JSON") from None
    except _TooDeepError as exc:
        raise DroppedPayloadError("too_deep", str(exc)) from None
    except ValueError as exc:
        raise DroppedPayloadError("bad_json", str(exc)) from None
    if items is None:
        raise DroppedPayloadError("not_audit_payload", "data not recognized as a k8s audit event")
    return items


class _TooDeepError(ValueError):
    pass


def _skip(text: str, pos: int) -> int:
    match = _WHITESPACE.match(text, pos)  # always matches, maybe nothing
    return pos if match is None else match.end()


def _value(text: str, pos: int, level: int) -> tuple[Any, int]:
    """The value at text[pos], which sits at ``level``, and its end."""
    value, end = _DECODER.raw_decode(text, pos)
    # The deepest value is at most one level below the last of its opening brackets.
    if text.count("{", pos, end) + text.count("[", pos, end) > FASTJSON_MAX_DEPTH - level:
        levels = json_levels(value) + level - 1
        if levels > FASTJSON_MAX_DEPTH:
            raise _TooDeepError(f"{levels} levels; fastjson parses at most {FASTJSON_MAX_DEPTH}")
    return value, end


def _after_member(text: str, pos: int, closing: str) -> tuple[bool, int]:
    """Past the separator after a member: (True, next member) or (False, past the closing bracket)."""
    pos = _skip(text, pos)
    if text.startswith(",", pos):
        return True, _skip(text, pos + 1)
    if text.startswith(closing, pos):
        return False, pos + 1
    raise ValueError(f"expected ',' or {closing!r} at {pos}")


def _audit_items(text: str, pos: int, level: int) -> tuple[list[tuple[Any, str]] | None, int]:
    """ParseAuditEventsJSON on the value at text[pos]: the items it yields with their raw text,
    or None when it gives up on the request; and where the value ends."""
    if level > FASTJSON_MAX_DEPTH:
        raise _TooDeepError(f"more than {FASTJSON_MAX_DEPTH} levels")
    if text.startswith("[", pos):
        items: list[tuple[Any, str]] | None = []
        more, pos = _after_empty(text, pos, "]")
        while more:
            inner, pos = _audit_items(text, pos, level + 1)
            if inner is None or items is None:
                items = None  # Falco returns the error: nothing of the request is pushed
            else:
                items.extend(inner)
            more, pos = _after_member(text, pos, "]")
        return items, pos
    if text.startswith("{", pos):
        obj, items_raw, end = _object(text, pos, level)
        kind = obj.get("kind")
        if kind == "EventList" and items_raw is not None:
            return items_raw, end
        if kind == "Event":
            return [(obj, text[pos:end])], end
        return None, end
    _, end = _value(text, pos, level)
    return None, end


def _after_empty(text: str, pos: int, closing: str) -> tuple[bool, int]:
    """Past an opening bracket: (True, first member) or (False, past the closing one if empty)."""
    pos = _skip(text, pos + 1)
    return (False, pos + 1) if text.startswith(closing, pos) else (True, pos)


def _object(text: str, pos: int, level: int) -> tuple[dict[str, Any], list[tuple[Any, str]] | None, int]:
    """The object at text[pos] (the first of duplicate keys wins, as in fastjson's Get), the
    elements of its ``items`` array with their raw text (None if it has none), and its end."""
    obj: dict[str, Any] = {}
    items_raw: list[tuple[Any, str]] | None = None
    more, pos = _after_empty(text, pos, "}")
    while more:
        if not text.startswith('"', pos):
            raise ValueError(f"expected a key at {pos}")
        key, pos = _DECODER.raw_decode(text, pos)
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise ValueError(f"expected ':' at {pos}")
        pos = _skip(text, pos + 1)
        if key == "items" and key not in obj and text.startswith("[", pos):
            items_raw, pos = _elements(text, pos, level + 1)
            value: Any = [item for item, _ in items_raw]
        else:
            value, pos = _value(text, pos, level + 1)
        obj.setdefault(key, value)
        more, pos = _after_member(text, pos, "}")
    return obj, items_raw, pos


def _elements(text: str, pos: int, level: int) -> tuple[list[tuple[Any, str]], int]:
    """The elements of the array at text[pos] (at ``level``), each with its raw text; its end."""
    elements: list[tuple[Any, str]] = []
    more, pos = _after_empty(text, pos, "]")
    while more:
        value, end = _value(text, pos, level + 1)
        elements.append((value, text[pos:end]))
        more, pos = _after_member(text, end, "]")
    return elements, pos
