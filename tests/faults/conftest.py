"""The fault suite's stack: concurrency on, faults planted, the same invariants after each scenario.

One local stack for the whole suite (package scope). Its functions run as Lambda runs them:
each concurrent invocation in an execution environment (a process) of its own, up to the
mappings' concurrency (index 4 here, associate 2, as deployed), with timeouts and crashes
failing the batch. ``tests.faults.plans:install`` is preloaded in every environment; a test arms
a planted fault by creating its file in the state directory.

After each scenario, ``settle_and_verify``: wait until the stack is idle, run the reconciler,
wait again, run it a second time (it must repair nothing), then check every invariant
(enroll_local.runner.invariants).
"""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enroll_local.runner.invariants import InvariantReport, check_invariants

#: Activation re-checks every 1-2 s (the deployed schedule waits up to 60 s).
TEST_WAIT_SCHEDULE = "1,1,1,2,2,2,4,4"
#: Seconds a user stays UPDATING after an association change in the emulator.
TEST_UPDATE_DELAY_SECONDS = 0.3
#: The associate poller's batching window (seconds; 5 s deployed).
TEST_BATCHING_WINDOW_SECONDS = 1.0
#: Budget for a scenario to go quiet (seconds); healthy runs need a fraction.
IDLE_TIMEOUT_SECONDS = 120
#: The preloaded fault plans.
PLANS = "tests.faults.plans:install"


@pytest.fixture(scope="package")
def fault_state() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="enroll-faults-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="package")
def fault_stack(fault_state: Path) -> Iterator[Any]:
    from enroll_local.runner.stack import LocalSettings, LocalStack
    from enroll_local.testing import aws_test_environment

    settings = LocalSettings(
        engine="synthetic",
        retry_delay_seconds=1,
        start_pollers=False,
        record_deliveries=True,
        isolation="process",
        worker_preload=(PLANS,),
        associate_batching_window_seconds=TEST_BATCHING_WINDOW_SECONDS,
        extra_environment={
            "ACTIVATION_WAIT_SCHEDULE": TEST_WAIT_SCHEDULE,
            "POWERTOOLS_LOG_LEVEL": "ERROR",
            "FAULT_STATE_DIR": str(fault_state),
            # Once the stack is idle, anything unfinished is stuck and any unowned face orphaned.
            "RECONCILE_STUCK_AFTER_S": "0",
            "RECONCILE_ORPHAN_GRACE_S": "0",
        },
    )
    with aws_test_environment(), LocalStack(settings) as stack:
        yield stack


@dataclass
class Scenario:
    """One fault scenario on the shared stack."""

    stack: Any
    state: Path

    def arm(self, fault: str, content: str = "") -> None:
        """Arm a planted fault (tests/faults/plans.py)."""
        (self.state / fault).write_text(content)

    def disarm(self, fault: str) -> None:
        (self.state / fault).unlink(missing_ok=True)

    def fired(self, fault: str) -> bool:
        return (self.state / f"{fault}.fired").exists()

    def upload(self, user: str, index: int, *, variant: int | None = None) -> str:
        """Put photo ``index`` of ``user`` (a new version when the key exists); its key."""
        key = f"{self.stack.endpoints.prefix}{user}/{index:03d}.jpg"
        variant = index if variant is None else variant
        body = make_synthetic_photo([{"identity": user, "variant": variant}], seed=variant)
        self.stack.clients.s3.put_object(Bucket=self.stack.endpoints.bucket, Key=key, Body=body)
        return key

    def wait_idle(self, timeout: float = IDLE_TIMEOUT_SECONDS) -> None:
        assert self.stack.wait_until_idle(timeout, settle_seconds=1.5), (
            f"not idle within {timeout} s: {self.stack.queue_depths()}"
        )

    def settle_and_verify(self, *, max_faces_per_user: int | None = None) -> InvariantReport:
        """Quiet, reconcile, quiet, reconcile again (nothing to repair), check the invariants."""
        self.wait_idle()
        first = self.stack.reconcile()
        self.wait_idle()
        second = self.stack.reconcile()
        assert second["total"] == 0, f"the second reconcile repaired {second['repaired']}"
        report = check_invariants(self.stack, max_faces_per_user=max_faces_per_user)
        assert report.violations() == {}, (report.violations(), first)
        self.first_reconcile = first
        return report

    first_reconcile: dict[str, Any] | None = None


@pytest.fixture
def scenario(fault_stack: Any, fault_state: Path) -> Iterator[Callable[..., Scenario]]:
    """``scenario(emulator_config=..., environment=...)``: the stack reset and running."""
    from enroll_local.rekognition.service import EmulatorConfig

    previous = fault_stack.settings

    def start(emulator_config: Any = None, environment: dict[str, str] | None = None) -> Scenario:
        for entry in fault_state.iterdir():
            if entry.is_dir():
                shutil.rmtree(entry)
            else:
                entry.unlink()
        fault_stack.settings = replace(
            previous,
            extra_environment={**previous.extra_environment, **(environment or {})},
        )
        fault_stack.reset(
            engine="synthetic",
            emulator_config=emulator_config
            or EmulatorConfig(update_delay_seconds=TEST_UPDATE_DELAY_SECONDS),
        )
        for poller in fault_stack.pollers:
            if poller.delivered_bodies is not None:
                poller.delivered_bodies.clear()
        fault_stack.start_pollers()
        return Scenario(fault_stack, fault_state)

    yield start
    fault_stack.stop_pollers()
    fault_stack.settings = previous


def wait_for(predicate: Callable[[], Any], what: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"{what}: not within {timeout} s")
