"""Opt-in TPS quotas (token buckets) and seeded fault injection, to exercise callers' retries.

Quotas answer ProvisionedThroughputExceededException exactly as an over-quota account sees it.
Faults are drawn from one seeded RNG, so a failing test replays the same sequence.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

from .errors import RekognitionError

# Default TPS per operation, us-east-1 column of reference §3.2 (requests per second).
DEFAULT_QUOTA_TPS: dict[str, float] = {
    "IndexFaces": 50.0,
    "ListFaces": 50.0,
    "SearchFaces": 50.0,
    "SearchFacesByImage": 50.0,
    "SearchUsers": 50.0,
    "SearchUsersByImage": 50.0,
    "DetectFaces": 100.0,
    "AssociateFaces": 5.0,
    "DisassociateFaces": 5.0,
    "CreateCollection": 5.0,
    "DeleteCollection": 5.0,
    "DeleteFaces": 5.0,
    "DescribeCollection": 5.0,
    "ListCollections": 5.0,
    "CreateUser": 5.0,
    "DeleteUser": 5.0,
    "ListUsers": 5.0,
}
# A bucket holds one second's worth of requests: short bursts pass, sustained excess does not.
BURST_SECONDS = 1.0
# ...and never less than one request: a quota scaled under 1 TPS (the load benchmark's
# --quota-scale) must still pass one call every 1/rate seconds instead of refusing them all.
MIN_BURST_REQUESTS = 1.0


@dataclass
class FaultConfig:
    """Probabilities (0..1) of injected failures; all zero = no faults."""

    throttle_rate: float = 0.0  # ThrottlingException (HTTP 400) on any operation
    conflict_while_updating: float = 0.0  # ConflictException on Associate/Disassociate/DeleteUser
    # of a user whose status is UPDATING (1.0 = always)
    internal_error_rate: float = 0.0  # InternalServerError (HTTP 500) on any operation
    seed: int = 0


class TokenBuckets:
    """One bucket per (account, region, operation), refilled continuously at its TPS."""

    def __init__(self, tps: dict[str, float]) -> None:
        self._tps = dict(tps)
        self._state: dict[tuple[str, str, str], tuple[float, float]] = {}

    def take(self, account: str, region: str, operation: str, now: float) -> None:
        """Consume one request or raise ProvisionedThroughputExceededException."""
        rate = self._tps.get(operation)
        if rate is None or rate <= 0:
            return
        capacity = max(MIN_BURST_REQUESTS, rate * BURST_SECONDS)
        key = (account, region, operation)
        tokens, last = self._state.get(key, (capacity, now))
        tokens = min(capacity, tokens + (now - last) * rate)
        if tokens < 1.0:
            self._state[key] = (tokens, now)
            raise RekognitionError(
                "ProvisionedThroughputExceededException", "Provisioned Rate exceeded."
            )
        self._state[key] = (tokens - 1.0, now)


@dataclass
class FaultInjector:
    """Draws injected faults from a seeded RNG."""

    config: FaultConfig
    _rng: random.Random = field(init=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.config.seed)

    def before_call(self) -> None:
        """Maybe raise a throttle or an internal error for any operation."""
        if self.config.throttle_rate and self._rng.random() < self.config.throttle_rate:
            raise RekognitionError(
                "ThrottlingException", "Slow down; sudden increase in rate of requests.", 400
            )
        if self.config.internal_error_rate and self._rng.random() < self.config.internal_error_rate:
            raise RekognitionError("InternalServerError", "Internal server error.", 500)

    def user_update(self, user_id: str, updating: bool) -> None:
        """Maybe raise ConflictException for a mutation of a user that is still UPDATING."""
        rate = float(self.config.conflict_while_updating)
        if updating and rate and self._rng.random() < rate:
            raise RekognitionError(
                "ConflictException",
                f"The update or deletion of the user {user_id} caused an inconsistent state: "
                "a previous update is still in progress.",
            )
