"""The one way the forwarder builds a boto3 client, for either source."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config


def build_client(service: str, region: str | None, timeout_seconds: float, *, max_pool_connections: int) -> Any:
    """A boto3 client of ``service`` from the standard credential chain (env, web identity, profile, IMDS).

    botocore's own retries are off: the sources retry with their own backoff, counted in the metrics, and a
    throttled call must reach the rate limiter instead of being repeated behind its back. Timeouts are bounded
    so that a hung call shows in liveness instead of stalling a thread for botocore's default minute."""
    config = Config(
        retries={"mode": "standard", "total_max_attempts": 1},
        connect_timeout=timeout_seconds,
        read_timeout=timeout_seconds,
        user_agent_extra="falco-eks-forwarder",
        max_pool_connections=max_pool_connections,
    )
    return boto3.session.Session().client(service, region_name=region, config=config)
