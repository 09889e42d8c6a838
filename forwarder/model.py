"""Plain data shared by the reading and delivery sides of the forwarder."""

from __future__ import annotations

from dataclasses import dataclass


# Not frozen: a frozen dataclass's __init__ costs 4x, and one is made per event. Never changed once made.
@dataclass(slots=True, unsafe_hash=True)
class LogEvent:
    """One CloudWatch Logs event as FilterLogEvents returns it.

    event_id: CloudWatch's eventId (unique within the log group; the dedup key).
    stream: logStreamName the event was written to.
    timestamp_ms: the event's own timestamp (what startTime/endTime filter on), ms since the epoch.
    ingestion_ms: when CloudWatch ingested it, ms since the epoch.
    message: the raw line (for EKS audit logs, one JSON audit event).
    """

    event_id: str
    stream: str
    timestamp_ms: int
    ingestion_ms: int
    message: str
