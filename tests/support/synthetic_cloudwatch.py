"""A synthetic CloudWatch Logs endpoint: FilterLogEvents pages generated on demand, for backlogs moto cannot hold.

It speaks the JSON protocol boto3 uses (POST, ``X-Amz-Target: Logs_20140328.FilterLogEvents``,
``application/x-amz-json-1.1``), so the forwarder's real client and code path run against it; it
ignores signatures. The log group holds ``rate`` events a second for ``seconds`` seconds from
``start_ms``: event ``i`` has timestamp ``start_ms + i * 1000 // rate``, one of four streams, an
``eventId`` of its own, ``ingestionTime`` a second after its timestamp, and an EKS-shaped audit event
of about ``size`` bytes with ``auditID`` ``bench-<i>``. Nothing is stored: a page is computed from its
range and token. Pages follow the API's limits: at most 10,000 events and 1,048,576 bytes (each event
counting its message plus 26 bytes); startTime and endTime are inclusive.

Run in its own process (its CPU is not the forwarder's):
    python -m support.synthetic_cloudwatch --port P --start-ms S [--rate 1000 --seconds 3600 --size 1500]
It prints "listening <port>" once ready.
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import UTC, datetime
from http.server import ThreadingHTTPServer
from typing import Any

from support.loopback_http import QuietHandler

PAGE_EVENTS = 10_000
PAGE_BYTES = 1_048_576
EVENT_OVERHEAD = 26
STREAMS = tuple(f"kube-apiserver-audit-{k:032x}" for k in range(4))


class Timeline:
    def __init__(self, start_ms: int, rate: int, seconds: int, size: int) -> None:
        self.start_ms, self.rate, self.count, self.size = start_ms, rate, rate * seconds, size
        stamp = "2024-05-01T12:00:00.000000Z"
        probe = self._message(0, stamp, "")
        self.padding = "x" * max(0, size - len(probe))

    def timestamp(self, i: int) -> int:
        return self.start_ms + i * 1000 // self.rate

    def first_at_or_after(self, ms: int) -> int:
        """The first index whose timestamp is >= ms."""
        if ms <= self.start_ms:
            return 0
        # Smallest i with i * 1000 // rate >= ms - start: i >= ceil((ms - start) * rate / 1000).
        return min(self.count, -(-(ms - self.start_ms) * self.rate // 1000))

    @staticmethod
    def _message(i: int, stamp: str, padding: str) -> str:
        return "".join((
            '{"kind":"Event","apiVersion":"audit.k8s.io/v1","level":"Metadata","auditID":"bench-', f"{i:09d}",
            '","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/default/configmaps/app-config",'
            '"verb":"get","user":{"username":"system:serviceaccount:default:app","groups":["system:authenticated"]},'
            '"sourceIPs":["10.0.12.34"],"userAgent":"app/1.0","objectRef":{"resource":"configmaps",'
            '"namespace":"default","name":"app-config","apiVersion":"v1"},"responseStatus":{"metadata":{},"code":200},'
            '"requestReceivedTimestamp":"', stamp, '","stageTimestamp":"', stamp,
            '","annotations":{"authorization.k8s.io/decision":"allow","padding":"', padding, '"}}',
        ))

    def event(self, i: int) -> dict[str, Any]:
        ts = self.timestamp(i)
        stamp = datetime.fromtimestamp(ts / 1000, tz=UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        return {
            "logStreamName": STREAMS[i % len(STREAMS)],
            "timestamp": ts,
            "message": self._message(i, stamp, self.padding),
            "ingestionTime": ts + 1000,
            "eventId": f"{i:056d}",
        }

    def page(self, params: dict[str, Any]) -> dict[str, Any]:
        start, end = int(params.get("startTime", 0)), int(params.get("endTime", 2**62))
        prefix = params.get("logStreamNamePrefix", "")
        if prefix and not STREAMS[0].startswith(prefix):
            return {"events": [], "searchedLogStreams": []}
        token = params.get("nextToken")
        first = int(token) if token else self.first_at_or_after(start)
        stop = self.first_at_or_after(end + 1)
        events, size, i = [], 0, first
        while i < stop and len(events) < PAGE_EVENTS:
            event = self.event(i)
            cost = len(event["message"].encode()) + EVENT_OVERHEAD
            if events and size + cost > PAGE_BYTES:
                break
            events.append(event)
            size += cost
            i += 1
        answer: dict[str, Any] = {"events": events, "searchedLogStreams": []}
        if i < stop:
            answer["nextToken"] = str(i)
        return answer


def serve(timeline: Timeline, port: int) -> ThreadingHTTPServer:
    class Handler(QuietHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            target = self.headers.get("X-Amz-Target", "")
            if not target.endswith(".FilterLogEvents"):
                self._send(400, {"__type": "UnknownOperationException", "message": target})
                return
            self._send(200, timeline.page(json.loads(body or b"{}")))

        def _send(self, status: int, doc: dict[str, Any]) -> None:
            data = json.dumps(doc, separators=(",", ":")).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/x-amz-json-1.1")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    return server


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--start-ms", type=int, required=True)
    parser.add_argument("--rate", type=int, default=1000)
    parser.add_argument("--seconds", type=int, default=3600)
    parser.add_argument("--size", type=int, default=1500)
    args = parser.parse_args(argv)
    server = serve(Timeline(args.start_ms, args.rate, args.seconds, args.size), args.port)
    print(f"listening {server.server_address[1]}", flush=True)
    try:
        server.serve_forever(0.2)
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
