"""One local stack for every end-to-end test: the real path, from an S3 upload to ACTIVE.

The handlers create their boto3 clients once per "cold start", pointed at the stack's endpoint,
so the stack is shared by the whole session and each test starts from ``reset()`` (every
resource, face and ledger item forgotten) with its own engine.
"""

from __future__ import annotations

import contextlib
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any

import pytest

#: Activation re-checks every 1-2 s in tests (the deployed schedule waits up to 60 s).
TEST_WAIT_SCHEDULE = "1,1,1,2,2,2,4,4"
#: Seconds a user stays UPDATING after AssociateFaces in the emulator.
TEST_UPDATE_DELAY_SECONDS = 0.3


@pytest.fixture(scope="session")
def session_stack() -> Iterator[Any]:
    from enroll_local.runner.stack import LocalSettings, LocalStack
    from enroll_local.testing import aws_test_environment

    settings = LocalSettings(
        engine="synthetic",
        retry_delay_seconds=1,
        record_deliveries=True,
        start_pollers=False,
        extra_environment={
            "ACTIVATION_WAIT_SCHEDULE": TEST_WAIT_SCHEDULE,
            "POWERTOOLS_LOG_LEVEL": "WARNING",
        },
    )
    with aws_test_environment(), LocalStack(settings) as stack:
        yield stack


@pytest.fixture
def pipeline(session_stack: Any) -> Iterator[Callable[..., Any]]:
    """``pipeline(engine="synthetic", isolation="process")`` -> the shared stack, reset, pollers
    running. ``isolation="inline"`` runs the handlers in this process, one at a time: for tests
    that patch handler code with monkeypatch (the default runs them in worker processes)."""
    from enroll_local.rekognition.service import EmulatorConfig

    started: list[Any] = []
    previous = session_stack.settings

    def start(engine: str = "synthetic", isolation: str = "process") -> Any:
        session_stack.settings = replace(session_stack.settings, isolation=isolation)
        session_stack.reset(
            engine=engine,
            emulator_config=EmulatorConfig(update_delay_seconds=TEST_UPDATE_DELAY_SECONDS),
        )
        session_stack.start_pollers()
        started.append(session_stack)
        return session_stack

    yield start
    for stack in started:
        stack.stop_pollers()
    session_stack.settings = previous


@contextlib.contextmanager
def counting_calls(stack: Any) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """Record every Rekognition operation the emulator serves (any caller) as (op, params)."""
    calls: list[tuple[str, dict[str, Any]]] = []
    emulator = stack.emulator
    original = emulator.dispatch

    def dispatch(operation: str, params: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        calls.append((operation, params))
        return original(operation, params, **kwargs)  # type: ignore[no-any-return]

    emulator.dispatch = dispatch
    try:
        yield calls
    finally:
        emulator.dispatch = original


def operation_counts(calls: list[tuple[str, dict[str, Any]]]) -> Counter[str]:
    return Counter(op for op, _ in calls)
