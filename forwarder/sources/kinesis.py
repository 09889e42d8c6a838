"""The three Kinesis Data Streams calls the Kinesis source makes, one attempt each, with their errors sorted.

ListShards, GetShardIterator and GetRecords, always with the stream's ARN (the IAM policy grants exactly these
on that stream, plus ``kms:Decrypt`` when a customer key encrypts it). boto3's own retries are off, so every
refusal reaches the source's per-shard backoff and the metrics (``aws_api_calls_total{operation,outcome}``).
What an error means for the reader:

- ``ThrottledError``: ProvisionedThroughputExceeded (a shard serves 5 GetRecords calls and 2 MB a second),
  LimitExceeded (ListShards), KMS throttling: back off that shard (or the listing) and try again;
- ``IteratorExpiredError``: an iterator lives 5 minutes: get a new one after the last record read;
- ``NotFoundError``: the stream does not exist (yet), or a shard is gone (past the retention);
- ``BadStartError``: the sequence number to resume after is not valid for the shard;
- ``UnavailableError``: access denied or the stream's KMS key unusable: nothing can be read until someone acts;
- ``TransientError``: 5xx, connection errors, timeouts, missing or expired credentials.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from ..metrics import Metrics
from .aws_client import build_client

LIST_SHARDS = "ListShards"
GET_SHARD_ITERATOR = "GetShardIterator"
GET_RECORDS = "GetRecords"
# AWS's most per GetRecords call.
MAX_RECORDS_PER_CALL = 10_000

THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "LimitExceededException",
                            "KMSThrottlingException", "ThrottlingException", "Throttling"})
UNAVAILABLE_CODES = frozenset({"AccessDeniedException", "AccessDenied", "KMSAccessDeniedException",
                               "KMSDisabledException", "KMSInvalidStateException", "KMSNotFoundException",
                               "KMSOptInRequired"})


class KinesisError(Exception):
    """A refused or failed call; ``code`` is AWS's error code (or the exception's name)."""

    def __init__(self, operation: str, code: str, message: str) -> None:
        super().__init__(f"{operation}: {code}: {message}")
        self.operation = operation
        self.code = code


class ThrottledError(KinesisError):
    pass


class IteratorExpiredError(KinesisError):
    pass


class NotFoundError(KinesisError):
    pass


class BadStartError(KinesisError):
    pass


class UnavailableError(KinesisError):
    pass


class TransientError(KinesisError):
    pass


@dataclass(frozen=True)
class Shard:
    shard_id: str
    parents: tuple[str, ...]
    """ParentShardId and AdjacentParentShardId (a merge has two), when the shard came from a reshard."""
    ending_sequence: int | None
    """EndingSequenceNumber: set once the shard is closed (split or merged); no record comes after it."""


@dataclass(frozen=True, slots=True)
class Record:
    sequence: int
    data: bytes
    arrival_ms: int
    """ApproximateArrivalTimestamp: when Kinesis took the record."""


@dataclass(frozen=True)
class RecordsPage:
    records: list[Record]
    next_iterator: str | None
    """None once a closed shard has been read to its end."""
    millis_behind: int
    bytes: int


def build_kinesis_client(region: str | None, timeout_seconds: float) -> Any:
    """A ``kinesis`` client (aws_client.build_client)."""
    return build_client("kinesis", region, timeout_seconds, max_pool_connections=4)


class KinesisReader:
    """Calls on one stream; each method is one attempt, counted in the metrics, raising a KinesisError subclass."""

    def __init__(self, client: Any, stream_arn: str, metrics: Metrics) -> None:
        self.client = client
        self.stream_arn = stream_arn
        self.metrics = metrics
        self.calls = 0

    def _count(self, operation: str, outcome: str) -> None:
        self.calls += 1
        self.metrics.aws_api_calls_total.labels(operation=operation, outcome=outcome).inc()

    def _call(self, operation: str, call: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            response = call()
        except ClientError as exc:
            raise self._sorted(operation, exc) from exc
        except BotoCoreError as exc:
            self._count(operation, "error")
            raise TransientError(operation, type(exc).__name__, str(exc)) from exc
        self._count(operation, "ok")
        return response

    def _sorted(self, operation: str, exc: ClientError) -> KinesisError:
        error = exc.response.get("Error", {}) if isinstance(exc.response, dict) else {}
        meta = exc.response.get("ResponseMetadata", {}) if isinstance(exc.response, dict) else {}
        code, status = str(error.get("Code", "")), int(meta.get("HTTPStatusCode", 0) or 0)
        message = str(error.get("Message", ""))
        kind: type[KinesisError]
        outcome = "error"
        if code in THROTTLE_CODES or status == 429:
            kind, outcome = ThrottledError, "throttled"
        elif code == "ExpiredIteratorException":
            kind, outcome = IteratorExpiredError, "expired_iterator"
        elif code == "ResourceNotFoundException":
            kind, outcome = NotFoundError, "not_found"
        elif code == "InvalidArgumentException" and operation == GET_SHARD_ITERATOR:
            kind = BadStartError
        elif code in UNAVAILABLE_CODES:
            kind, outcome = UnavailableError, "denied"
        else:
            kind = TransientError
        self._count(operation, outcome)
        return kind(operation, code or str(status), message)

    def _list_shards_page(self, params: dict[str, Any]) -> dict[str, Any]:
        return self._call(LIST_SHARDS, lambda: self.client.list_shards(**params))

    def list_shards(self) -> list[Shard]:
        """Every shard of the stream, open and closed (still within the retention)."""
        shards: list[Shard] = []
        params: dict[str, Any] = {"StreamARN": self.stream_arn}
        while True:
            response = self._list_shards_page(params)
            for raw in response.get("Shards", ()):
                parents = tuple(p for p in (raw.get("ParentShardId"), raw.get("AdjacentParentShardId")) if p)
                ending = (raw.get("SequenceNumberRange") or {}).get("EndingSequenceNumber")
                shards.append(Shard(str(raw["ShardId"]), parents, None if ending is None else int(ending)))
            token = response.get("NextToken")
            if not token:
                return shards
            # A NextToken names the stream on its own (ListShards refuses both).
            params = {"NextToken": token}

    def shard_iterator(self, shard_id: str, *, after: int | None = None, at_ms: int | None = None) -> str:
        """An iterator after sequence number ``after``, or else at the records that arrived from ``at_ms`` on."""
        params: dict[str, Any] = {"StreamARN": self.stream_arn, "ShardId": shard_id}
        if after is not None:
            params.update(ShardIteratorType="AFTER_SEQUENCE_NUMBER", StartingSequenceNumber=str(after))
        else:
            # botocore sends the time in whole seconds (its default precision): up to a second early, never late.
            params.update(ShardIteratorType="AT_TIMESTAMP",
                          Timestamp=datetime.fromtimestamp((at_ms or 0) / 1000, tz=UTC))
        return str(self._call(GET_SHARD_ITERATOR, lambda: self.client.get_shard_iterator(**params))["ShardIterator"])

    def records(self, iterator: str, limit: int) -> RecordsPage:
        response = self._call(GET_RECORDS, lambda: self.client.get_records(
            StreamARN=self.stream_arn, ShardIterator=iterator, Limit=max(1, min(MAX_RECORDS_PER_CALL, limit))))
        records: list[Record] = []
        size = 0
        for raw in response.get("Records", ()):
            data = raw.get("Data") or b""
            if isinstance(data, str):
                data = data.encode()
            arrived = raw.get("ApproximateArrivalTimestamp")
            arrival_ms = int(arrived.timestamp() * 1000) if isinstance(arrived, datetime) else 0
            records.append(Record(int(raw["SequenceNumber"]), data, arrival_ms))
            size += len(data)
        return RecordsPage(records, response.get("NextShardIterator") or None,
                           int(response.get("MillisBehindLatest") or 0), size)
