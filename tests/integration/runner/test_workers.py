"""Execution environments: each invocation in a warm process of its own, as Lambda runs them.

Spawned processes, no network: the handlers come from tests/integration/runner/handlers.py.
"""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from enroll_local.runner.workers import (
    ContextSpec,
    EnvironmentPool,
    ExecutionEnvironment,
    HandlerError,
    InvocationError,
)

HANDLERS = "tests.integration.runner.handlers"


def context(timeout_seconds: float = 30.0) -> ContextSpec:
    return ContextSpec(
        function_name="fn",
        region="us-east-1",
        account_id="123456789012",
        timeout_seconds=timeout_seconds,
        aws_request_id=str(uuid.uuid4()),
    )


@pytest.fixture
def environment() -> Iterator[Any]:
    created: list[ExecutionEnvironment] = []

    def make(handler: str) -> ExecutionEnvironment:
        created.append(ExecutionEnvironment("fn", f"{HANDLERS}:{handler}"))
        return created[-1]

    yield make
    for env in created:
        env.discard()


def test_a_warm_environment_serves_invocations_with_the_functions_environment(
    environment: Any,
) -> None:
    env = environment("echo")
    first = env.invoke({"n": 1}, context(), {"SETTING": "a"})
    second = env.invoke({"n": 2}, context(), {"SETTING": "b"})

    assert first.error is None and second.error is None
    assert first.response["event"] == {"n": 1} and first.response["setting"] == "a"
    assert second.response["setting"] == "b"
    # Warm: the same process, its module state kept from one invocation to the next
    assert first.response["pid"] == second.response["pid"]
    assert (first.response["invocations"], second.response["invocations"]) == (1, 2)
    assert first.response["function_name"] == "fn"
    assert 0 < first.response["remaining_ms"] <= 30_000
    # What the handler printed comes back with the reply (the metrics bridge reads it)
    assert first.stdout == "EMF-like line from the handler\n"
    assert env.starts == 1


def test_each_invocation_sees_only_its_own_functions_environment(environment: Any) -> None:
    env = environment("echo")
    first = env.invoke({}, context(), {"SETTING": "a"})
    # A "redeploy" without the variable: the warm process must not keep the old value
    second = env.invoke({}, context(), {})
    assert (first.response["setting"], second.response["setting"]) == ("a", None)
    assert first.response["pid"] == second.response["pid"]


def test_a_handler_error_fails_the_invocation_and_keeps_the_environment(
    environment: Any,
) -> None:
    env = environment("fail")
    result = env.invoke({"n": 1}, context(), {})
    assert isinstance(result.error, HandlerError)
    assert "ValueError: bad event {'n': 1}" in str(result.error)
    assert env.alive and env.starts == 1


def test_a_timeout_kills_the_environment_and_the_next_invocation_starts_cold(
    environment: Any,
) -> None:
    env = environment("sleep")
    timed_out = env.invoke({"seconds": 30}, context(timeout_seconds=0.5), {})
    assert isinstance(timed_out.error, InvocationError)
    assert "Task timed out after 0.50 seconds" in str(timed_out.error)
    assert not env.alive

    again = env.invoke({"seconds": 0}, context(), {})
    assert again.error is None and env.starts == 2


def test_a_runtime_that_exits_fails_the_invocation(environment: Any) -> None:
    env = environment("crash")
    result = env.invoke({"status": 3}, context(), {})
    assert isinstance(result.error, InvocationError)
    assert "exit status 3" in str(result.error)
    assert not env.alive


def test_a_pool_runs_invocations_at_once_in_separate_processes() -> None:
    pool = EnvironmentPool("fn", f"{HANDLERS}:sleep", size=2)
    try:
        # Warm both environments first, so the timing below is the invocations' own
        warm = [threading.Thread(target=pool.invoke, args=({"seconds": 0}, context(), {}))]
        warm.append(threading.Thread(target=pool.invoke, args=({"seconds": 0.5}, context(), {})))
        for thread in warm:
            thread.start()
        for thread in warm:
            thread.join()

        results: list[Any] = []
        threads = [
            threading.Thread(
                target=lambda: results.append(pool.invoke({"seconds": 1.0}, context(), {}))
            )
            for _ in range(2)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        pool.close()

    assert [r.error for r in results] == [None, None]
    first, second = (r.response for r in results)
    assert first["pid"] != second["pid"]
    # They overlapped: each started before the other ended
    assert first["started"] < second["ended"] and second["started"] < first["ended"]
