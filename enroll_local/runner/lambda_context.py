"""A Lambda-like context object for handlers invoked in-process by the local runner.

Powertools' ``inject_lambda_context`` reads function_name, memory_limit_in_mb,
invoked_function_arn and aws_request_id; handlers may also ask for the remaining time, so the
context carries a real deadline computed from the function's timeout.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field

#: Memory reported to handlers; only informative locally (Lambda's default is 128 MB).
DEFAULT_MEMORY_MB = 1024


@dataclass
class LocalLambdaContext:
    """The attributes of ``awslambdaric``'s LambdaContext that handlers and Powertools use."""

    function_name: str
    region: str
    account_id: str
    timeout_seconds: float
    memory_limit_in_mb: int = DEFAULT_MEMORY_MB
    aws_request_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    function_version: str = "$LATEST"
    _started_at: float = field(default_factory=time.monotonic)

    @property
    def invoked_function_arn(self) -> str:
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{self.function_name}"

    @property
    def log_group_name(self) -> str:
        return f"/aws/lambda/{self.function_name}"

    @property
    def log_stream_name(self) -> str:
        return f"local/{self.aws_request_id}"

    def get_remaining_time_in_millis(self) -> int:
        """Milliseconds left before the function's timeout, like the real context."""
        elapsed = time.monotonic() - self._started_at
        return max(0, int((self.timeout_seconds - elapsed) * 1000))


@contextlib.contextmanager
def function_environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in os.environ for the block and restore the previous values after.

    Each Lambda invocation sees its own function's environment; in-process, one invocation's
    variables must not outlive it (a test that "redeploys" with another setting would otherwise
    leave it behind for everything that runs later in the process).
    """
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in previous.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
