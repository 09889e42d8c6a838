"""End to end: one event Falco's parser would refuse cannot take the others down with it.

The real `python -m forwarder run` reads moto's CloudWatch Logs over HTTP and sends to a receiver
that enforces fastjson's depth limit the way Falco does: one too-deep event in a request and every
event of that request is lost, after a 200. The forwarder must skip that event alone."""

# ruff: noqa: F811 - pytest fixtures imported from support.moto_server are parameters here by design

from __future__ import annotations

import json

from support.audit_events import make_event, new_stream_name
from support.falco_receiver import FalcoReceiver
from support.forwarder_process import ForwarderProcess, forwarder_env
from support.moto_server import (  # noqa: F401 - pytest fixtures
    create_log_group,
    create_log_stream,
    moto,
    moto_server,
    now_ms,
    put_events,
)

GROUP = "/aws/eks/blind/cluster"
TIMEOUT = 90.0  # generous: the suite may share 2 cores with others; a pass is usually seconds


def _nested_request(line: str, containers: int) -> str:
    """``line`` with a requestObject of ``containers`` nested objects around a scalar: the event
    is level 3 of the EventList, so its scalar sits at level containers + 4 of the request."""
    return line[:-1] + ',"requestObject":' + '{"a":' * containers + "1" + "}" * containers + "}"


def test_one_too_deep_event_among_valid_ones_is_skipped_alone(tmp_path, moto) -> None:
    logs = moto.client("logs")
    create_log_group(logs, GROUP)
    stream = new_stream_name()
    create_log_stream(logs, GROUP, stream)
    ts = now_ms() - 5_000
    good = [make_event(ts + i, size=800) for i in range(20)]
    at_limit_id, at_limit = make_event(ts + 10, size=800)
    deep_id, deep = make_event(ts + 10, size=800)
    pretty_id, pretty = make_event(ts + 11, size=800)
    odd_id, odd = make_event(ts + 12, size=800)
    valid = {
        at_limit_id: _nested_request(at_limit, 296),  # its scalar at level 300: Falco takes it
        # Pretty-printed, with a number beyond a double: re-serialised it would become Infinity.
        pretty_id: json.dumps(json.loads(pretty), indent=2)[:-2] + ',\n  "huge": 1e400\n}',
        odd_id: odd[:-1] + ',"odd":"\\ud800\\u0000\\ufeff","n":' + "9" * 5000 + "}",
        **dict(good),
    }
    lines = [*valid.values(), _nested_request(deep, 297)]  # the deep one last: it shares a batch
    put_events(logs, GROUP, stream, [(ts + i % 20, line) for i, line in enumerate(lines)])

    args = ["run", "--log-group", GROUP, "--start-at", "15m", "--poll-interval", "0.2"]
    with FalcoReceiver(keep_events=True) as receiver:
        env = forwarder_env(moto.env())
        with ForwarderProcess([*args, "--falco-url", receiver.url], env, tmp_path / "fwd.log") as fwd:
            arrived = receiver.wait_for(lambda r: set(valid) <= r.unique_ids or not fwd.alive(), TIMEOUT)
            assert arrived and set(valid) <= receiver.unique_ids, fwd.tail()
            assert fwd.wait_for_metric("forwarder_events_skipped_total", 1, 30, reason="too_deep"), fwd.tail()
            assert fwd.metric("forwarder_events_skipped_total") == 1
            assert fwd.alive()
        assert receiver.violations == [], receiver.violations[:3]
        assert deep_id not in receiver.unique_ids
        # Falco got each event as CloudWatch held it: numbers and escapes as written.
        assert receiver.event(pretty_id)["huge"] == float("inf")
        assert receiver.event(odd_id)["odd"] == "\ud800\x00\ufeff"

    logged = [json.loads(line) for line in fwd.output().splitlines() if line.startswith("{")]
    skips = [entry for entry in logged if entry.get("reason") == "too_deep"]
    assert len(skips) == 1, fwd.tail()
    assert (skips[0]["audit_id"], skips[0]["stream"]) == (deep_id, stream)
