"""moto's FilterLogEvents paged as AWS pages it (support/moto_aws_pages.py): the benchmark compares the Kinesis
path with polling through these pages, and the forwarder is run through them here, so they are tested."""

# ruff: noqa: F811 - pytest fixtures imported from support.moto_server are parameters here by design

from __future__ import annotations

import random
from collections.abc import Iterator
from typing import Any

import pytest
from support import moto_aws_pages
from support.audit_events import make_event, new_stream_name
from support.falco_receiver import FalcoReceiver
from support.forwarder_process import ForwarderProcess, forwarder_env
from support.moto_aws_pages import EVENT_OVERHEAD, PAGE_BYTES, PAGE_EVENTS, aws_like_pages
from support.moto_server import (  # noqa: F401 - pytest fixtures
    MotoServer,
    create_log_group,
    create_log_stream,
    moto,
    moto_server,
    now_ms,
    put_events,
)

GROUP = "/aws/eks/pages/cluster"


@pytest.fixture
def paged(moto: MotoServer) -> Iterator[Any]:
    """A logs client of the module's moto (thread mode) with AWS's paging patched in for the test."""
    with aws_like_pages():
        client = moto.client("logs")
        create_log_group(client, GROUP)
        yield client


def _put(logs: Any, stream: str, events: list[tuple[int, str]]) -> list[tuple[int, str, str]]:
    create_log_stream(logs, GROUP, stream)
    put_events(logs, GROUP, stream, events)
    return [(timestamp, stream, message) for timestamp, message in sorted(events, key=lambda e: e[0])]


def _pages(logs: Any, **kwargs: Any) -> list[list[dict[str, Any]]]:
    pages, token = [], None
    for _ in range(1_000):
        answer = logs.filter_log_events(logGroupName=GROUP, **kwargs, **({"nextToken": token} if token else {}))
        pages.append(answer["events"])
        token = answer.get("nextToken")
        if not token:
            return pages
    raise AssertionError("more than 1,000 pages")


def _aws_bytes(page: list[dict[str, Any]]) -> int:
    return sum(len(e["message"].encode("utf-8")) + EVENT_OVERHEAD for e in page)


def _as_put(page_events: list[dict[str, Any]]) -> list[tuple[int, str, str]]:
    return [(e["timestamp"], e["logStreamName"], e["message"]) for e in page_events]


def _expected(*streams: list[tuple[int, str, str]]) -> list[tuple[int, str, str]]:
    # AWS's order: by timestamp; here ties go by stream name, then by the order they were put in.
    return sorted((e for s in streams for e in s), key=lambda e: (e[0], e[1]))


def test_pages_stop_at_1_mb_or_10000_events_and_hand_out_every_event_once_in_timestamp_order(paged) -> None:
    base = now_ms() - 60_000
    rng = random.Random(7)
    audit = _put(paged, new_stream_name(), [(base + i * 7, make_event(base + i * 7, size=1_500)[1])
                                            for i in range(2_000)])
    large = _put(paged, new_stream_name(), [(base + 15_000 + rng.randrange(5_000), "L" * 60_000) for _ in range(40)])
    # 12,000 small events, 3,000 of them in one millisecond: a page ends by count inside it.
    small = _put(paged, new_stream_name(), [(base + 5_000 + i // 4_000 * 3 if i < 9_000 else base + 5_001, f"s{i}")
                                            for i in range(12_000)])
    pages = _pages(paged)
    assert all(page for page in pages), "no page may be empty while more events follow"
    assert max(len(page) for page in pages) == PAGE_EVENTS
    assert all(len(page) <= PAGE_EVENTS and _aws_bytes(page) <= PAGE_BYTES for page in pages)
    # Pages of 1.5 KB events hold ~680 of them, not moto's 10,000.
    audit_pages = [page for page in pages if all(e["message"].startswith("{") for e in page)]
    assert any(600 <= len(page) <= 700 for page in audit_pages)
    got = [e for page in pages for e in _as_put(page)]
    assert got == _expected(audit, large, small)
    ids = [e["eventId"] for page in pages for e in page]
    assert len(ids) == len(set(ids))


def test_start_and_end_are_inclusive_and_the_limit_is_honoured(paged) -> None:
    base = now_ms() - 10_000
    events = _put(paged, new_stream_name(), [(base + i, f"e{i}") for i in range(100)])
    pages = _pages(paged, startTime=base + 10, endTime=base + 19, limit=3)
    assert [len(p) for p in pages] == [3, 3, 3, 1]
    assert [e for page in pages for e in _as_put(page)] == events[10:20]


def test_a_token_resumes_after_its_event_when_the_group_grew_meanwhile(paged) -> None:
    base = now_ms() - 10_000
    first, second = new_stream_name(), new_stream_name()
    a = _put(paged, first, [(base + i // 2, f"a{i}") for i in range(3_000)])
    page = paged.filter_log_events(logGroupName=GROUP, limit=1_001)
    last = page["events"][-1]
    # Written after the first page: some before its last event (not returned, as in AWS: the token moved
    # past them), one sharing its millisecond in each stream, and later ones.
    b = _put(paged, second, [(base, "early"), (last["timestamp"], "tied"), (base + 5_000, "late")])
    a_more = _put(paged, first, [(last["timestamp"], "a-tied"), (base + 6_000, "a-late")])
    rest = [e for p in _pages(paged, nextToken=page["nextToken"]) for e in p]

    def key(e: dict[str, Any]) -> tuple[int, str, int]:
        return e["timestamp"], e["logStreamName"], int(e["eventId"])

    everything = [e for p in _pages(paged) for e in p]  # the whole group in order (checked above)
    assert [e["eventId"] for e in rest] == [e["eventId"] for e in everything if key(e) > key(last)]
    messages = [e["message"] for e in rest]
    assert "early" not in messages and {"a-tied", "late", "a-late"} <= set(messages)
    assert ("tied" in messages) == (second > first)
    assert len(page["events"]) + len(rest) == len(a) + len(a_more) + len(b) - 1 - (second < first)


def test_an_unknown_token_gives_an_empty_page(paged) -> None:
    _put(paged, new_stream_name(), [(now_ms() - 1_000, "x")])
    answer = paged.filter_log_events(logGroupName=GROUP, nextToken="not-a-token")
    assert answer["events"] == [] and "nextToken" not in answer


def test_the_forwarder_drains_a_backlog_through_aws_sized_pages_whole_and_once(tmp_path, moto, paged,
                                                                               monkeypatch) -> None:
    cut: list[int] = []  # the sizes of the pages that ended before their range did

    def recording(*args: Any) -> Any:
        answer = original(*args)
        if answer[1] is not None:
            cut.append(len(answer[0]))
        return answer

    original = moto_aws_pages.page
    monkeypatch.setattr(moto_aws_pages, "page", recording)
    base = now_ms() - 120_000
    ids: set[str] = set()
    for stream in (new_stream_name(), new_stream_name()):
        batch = [make_event(base + i * 20, size=1_500) for i in range(2_500)]
        ids |= {audit_id for audit_id, _ in batch}
        _put(paged, stream, [(base + i * 20, line) for i, (_, line) in enumerate(batch)])
    with FalcoReceiver() as receiver:
        args = ["run", "--log-group", GROUP, "--falco-url", receiver.url, "--start-at", "15m",
                "--poll-interval", "0.2", "--max-requests-per-second", "20"]
        env = forwarder_env(moto.env())
        with ForwarderProcess(args, env, tmp_path / "forwarder.log") as fwd:
            done = receiver.wait_for(lambda r: ids <= r.unique_ids or not fwd.alive(), 120)
            assert done and ids <= receiver.unique_ids, fwd.tail()
    # 5,000 events of 1.5 KB fill at least 7 pages of 1 MB (~690 events each): the forwarder followed them.
    assert len(cut) >= 7 and max(cut) < 700, cut
    assert receiver.duplicates() == {}
    assert receiver.violations == []
