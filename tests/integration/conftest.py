"""Fixtures for integration tests: moto + the Rekognition emulator, in-process or on loopback.

Every integration test runs with dummy credentials and region (``aws_env``, autouse) so that no
call can ever reach a real AWS account, whatever the developer's shell holds.

- ``local_aws``: ``mock_aws`` (state machines executed for real) with the synthetic emulator
  installed on the ``clock`` fixture (a ``ManualClock``: ``clock.advance(1)`` ends UPDATING).
- ``local_endpoint_url``: moto's threaded server on a free loopback port with the emulator
  plugged in; yields ``http://127.0.0.1:<port>``.
- ``synthetic_photo``: photos the synthetic engine reads (identity, variant, several faces).

The emulator is imported inside the fixtures so that a broken emulator fails only the tests that
use it, not the collection of every integration test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from enroll_local.testing import ManualClock, aws_test_environment

REGION = "us-east-1"
SFN_EXECUTES = {"stepfunctions": {"execute_state_machine": True}}
SERVER_UPDATE_DELAY_SECONDS = 0.2  # UPDATING -> ACTIVE on the real clock, for server tests


@pytest.fixture(autouse=True)
def aws_env() -> Iterator[dict[str, str]]:
    with aws_test_environment() as env:
        yield env


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def local_aws(clock: ManualClock) -> Iterator[Any]:
    """moto in-process (Step Functions executing) + synthetic emulator on a manual clock."""
    from moto import mock_aws

    from enroll_local.rekognition.moto_plugin import local_rekognition

    with mock_aws(config=SFN_EXECUTES), local_rekognition("synthetic", clock=clock) as emulator:  # type: ignore[arg-type]
        yield emulator


@pytest.fixture
def local_endpoint_url() -> Iterator[str]:
    """moto's server + synthetic emulator on 127.0.0.1:<free port>."""
    from enroll_local.rekognition.moto_plugin import build_emulator
    from enroll_local.rekognition.server import local_endpoint

    emulator = build_emulator("synthetic", update_delay_seconds=SERVER_UPDATE_DELAY_SECONDS)
    with local_endpoint(emulator) as url:
        yield url


@pytest.fixture
def synthetic_photo() -> Callable[..., bytes]:
    """``synthetic_photo("alice", variant=1, fmt="JPEG", faces=None, seed=None) -> bytes``."""
    from enroll_local.rekognition.engines.synthetic import make_synthetic_photo

    def make(
        identity: str = "alice",
        variant: int = 0,
        *,
        fmt: str = "JPEG",
        faces: list[dict[str, Any]] | None = None,
        seed: int | None = None,
    ) -> bytes:
        spec = faces if faces is not None else [{"identity": identity, "variant": variant}]
        return make_synthetic_photo(spec, fmt=fmt, seed=seed if seed is not None else variant)

    return make
