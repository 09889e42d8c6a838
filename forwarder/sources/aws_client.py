"""The one way the forwarder builds a boto3 client, for either source."""

from __future__ import annotations

from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import NoRegionError, ProfileNotFound

from ..config import ConfigError

NO_REGION = ("no AWS Region: give --region REGION (or set FORWARDER_REGION or AWS_REGION), or set a region in the "
             "AWS profile")


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
    try:
        return boto3.session.Session().client(service, region_name=region, config=config)
    except NoRegionError as exc:  # boto3's chain found none (it reads AWS_DEFAULT_REGION and the profile only)
        raise ConfigError("--region", NO_REGION) from exc
    except ProfileNotFound as exc:
        raise ConfigError("AWS_PROFILE", f"{exc} (unset it, or name a profile of the AWS config file)") from exc
