"""Default boto3 clients, created lazily and reused.

Created on first use rather than at import so that tests (mock_aws) and the local runner
(AWS_ENDPOINT_URL, which boto3 honours natively) decide where they point. In Lambda the
environment never changes, so each client is created once per container; locally a new
endpoint or region (another stack in the same process) gets new clients instead of stale ones.
"""

from __future__ import annotations

import os
from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Rekognition's user APIs run at 5 TPS: let botocore's adaptive mode absorb short bursts before
# the SQS redelivery takes over.
RETRY_MAX_ATTEMPTS = 5
_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": RETRY_MAX_ATTEMPTS})
# A person waits on the query API, and API Gateway gives up after 29 s: one quick retry, then
# the caller gets 429 with Retry-After instead of a gateway timeout after minutes of backoff.
INTERACTIVE_MAX_ATTEMPTS = 2
INTERACTIVE_READ_TIMEOUT_S = 10
_INTERACTIVE_CONFIG = Config(
    retries={"mode": "standard", "max_attempts": INTERACTIVE_MAX_ATTEMPTS},
    read_timeout=INTERACTIVE_READ_TIMEOUT_S,
)

# What decides where a client points.
_CLIENT_ENVIRONMENT = ("AWS_ENDPOINT_URL", "AWS_REGION", "AWS_DEFAULT_REGION", "AWS_ACCESS_KEY_ID")


def client(service: str, *, interactive: bool = False) -> Any:
    """The shared boto3 client for ``service`` in the current environment.

    ``interactive`` clients (the query API) retry once instead of backing off for long.
    """
    environment = tuple(os.environ.get(name, "") for name in _CLIENT_ENVIRONMENT)
    return _client(service, environment, interactive)


@cache
def _client(service: str, environment: tuple[str, ...], interactive: bool) -> Any:
    config = _INTERACTIVE_CONFIG if interactive else _CONFIG
    return boto3.client(service, config=config)  # type: ignore[call-overload]
