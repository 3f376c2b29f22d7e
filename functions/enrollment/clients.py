"""Default boto3 clients, created lazily once per container.

Created on first use rather than at import so that tests (mock_aws) and the local runner
(AWS_ENDPOINT_URL, which boto3 honours natively) decide where they point.
"""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from botocore.config import Config

# Rekognition's user APIs run at 5 TPS: let botocore's adaptive mode absorb short bursts before
# the SQS redelivery takes over.
RETRY_MAX_ATTEMPTS = 5
_CONFIG = Config(retries={"mode": "adaptive", "max_attempts": RETRY_MAX_ATTEMPTS})


@cache
def client(service: str) -> Any:
    """The container's shared boto3 client for ``service``."""
    return boto3.client(service, config=_CONFIG)  # type: ignore[call-overload]
