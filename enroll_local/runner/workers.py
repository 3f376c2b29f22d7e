"""Execution environments: one process per concurrent invocation, as Lambda runs them.

Lambda runs each concurrent invocation of a function in an execution environment of its own: a
process with its own module state, environment variables and stdout, reused ("warm") for later
invocations and thrown away when the invocation times out or the runtime exits. The local runner
does the same with :class:`ExecutionEnvironment`: a fresh Python process (``lambda_runtime.py``,
the runtime interface client's counterpart) that imports the handler once and then serves one
invocation at a time over a pipe. So handlers run really in parallel (two associate functions
race for one user as they do in AWS), and nothing they keep at module level (Powertools' metric
set, cached clients and settings) is shared between invocations that run at once.

What the process reproduces of Lambda:

- the function's environment variables, set for each invocation;
- a context with the function's deadline;
- the timeout: an invocation still running at its deadline is killed with its process, and the
  batch fails ("Task timed out"), as in Lambda; the next invocation gets a fresh process;
- a runtime that exits mid-invocation (a crash, ``os._exit``, the OOM killer) fails the batch the
  same way;
- stdout: what the handler prints is sent back with the reply, so the metrics bridge turns its
  EMF lines into CloudWatch metrics exactly as for an in-process call.

``preload``: import paths (``module:function``) called once in each new process before the
handler is imported, the local counterpart of Lambda's ``AWS_LAMBDA_EXEC_WRAPPER``. The fault
suite uses it to kill a handler at a chosen point (tests/faults).
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

log = logging.getLogger(__name__)

#: Concurrent invocations of one function at most, locally: each is a process, and this machine's
#: cores (not the deployed ESM's MaximumConcurrency) set how many are useful.
DEFAULT_MAX_LOCAL_CONCURRENCY = 4
#: Seconds a new process may take to import its handler before the invocation counts as failed
#: (Lambda's init phase has 10 s; a cold import of boto3 + Powertools takes about 1-2 s here).
INIT_TIMEOUT_SECONDS = 60.0
#: Extra seconds after the deadline before the process is killed (the reply may be in the pipe).
TIMEOUT_GRACE_SECONDS = 1.0
#: What each execution environment runs (its side of the pipe protocol).
RUNTIME_MODULE = "enroll_local.runner.lambda_runtime"


class InvocationError(Exception):
    """The invocation failed outside the handler's own code: timeout, crash, init failure."""


class HandlerError(Exception):
    """The handler raised; ``str()`` carries its traceback from the execution environment."""


@dataclass(frozen=True)
class ContextSpec:
    """What the execution environment needs to build the handler's context."""

    function_name: str
    region: str
    account_id: str
    timeout_seconds: float
    aws_request_id: str


@dataclass
class InvocationResult:
    """One invocation's outcome as the runner sees it."""

    response: Any = None
    #: The handler's exception, or the environment's failure (None: it returned).
    error: Exception | None = None
    #: What the handler printed to stdout (EMF documents and anything else).
    stdout: str = ""
    duration_ms: float = 0.0


class ExecutionEnvironment:
    """One warm process serving one function's invocations, one at a time."""

    def __init__(self, function_name: str, handler_path: str, preload: Sequence[str] = ()) -> None:
        self.function_name = function_name
        self.handler_path = handler_path
        self.preload = tuple(preload)
        self._process: subprocess.Popen[bytes] | None = None
        self._reader: Connection | None = None
        self._writer: Connection | None = None
        #: Processes started so far (1 + every replacement after a timeout or a crash).
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def _start(self) -> None:
        child_read, parent_write = os.pipe()
        parent_read, child_write = os.pipe()
        command = [
            sys.executable,
            "-m",
            RUNTIME_MODULE,
            str(child_read),
            str(child_write),
            self.handler_path,
            *self.preload,
        ]
        try:
            self._process = subprocess.Popen(
                command, pass_fds=(child_read, child_write), env=_runtime_environment()
            )
        except OSError:
            os.close(parent_read)
            os.close(parent_write)
            raise
        finally:
            os.close(child_read)
            os.close(child_write)
        self._reader = Connection(parent_read, writable=False)
        self._writer = Connection(parent_write, readable=False)
        self.starts += 1
        if not self._reader.poll(INIT_TIMEOUT_SECONDS):
            self.discard()
            raise InvocationError(f"{self.function_name}: init did not finish")
        try:
            self._reader.recv()
        except (EOFError, OSError) as error:
            self.discard()
            raise InvocationError(f"{self.function_name}: runtime exited during init") from error

    def invoke(
        self, event: Any, context: ContextSpec, environment: dict[str, str]
    ) -> InvocationResult:
        """Run the handler once in this environment (started or replaced first if needed)."""
        if not self.alive:
            self.discard()
            self._start()
        assert self._reader is not None and self._writer is not None
        started = time.monotonic()
        # A process that is gone fails the send too: the read below says how it ended.
        with contextlib.suppress(OSError):
            self._writer.send(
                {"event": event, "context": asdict(context), "environment": environment}
            )
        if not self._reader.poll(context.timeout_seconds + TIMEOUT_GRACE_SECONDS):
            # Lambda stops the invocation at its timeout and replaces the sandbox.
            self.discard()
            return InvocationResult(
                error=InvocationError(
                    f"Task timed out after {context.timeout_seconds:.2f} seconds"
                ),
                duration_ms=(time.monotonic() - started) * 1000,
            )
        try:
            reply = self._reader.recv()
        except (EOFError, OSError):
            exit_code = None
            if self._process is not None:
                with contextlib.suppress(subprocess.TimeoutExpired):
                    exit_code = self._process.wait(timeout=5)
            self.discard()
            return InvocationResult(
                error=InvocationError(f"Runtime exited with error: exit status {exit_code}"),
                duration_ms=(time.monotonic() - started) * 1000,
            )
        error = reply.get("error")
        return InvocationResult(
            response=reply.get("response"),
            error=HandlerError(error) if error else None,
            stdout=reply.get("stdout", ""),
            duration_ms=reply.get("duration_ms", 0.0),
        )

    def discard(self) -> None:
        """Kill the process (if any); the next invocation starts a new one."""
        for connection in (self._reader, self._writer):
            if connection is not None:
                connection.close()
        self._reader = self._writer = None
        if self._process is not None:
            if self._process.poll() is None:
                self._process.kill()
            try:
                self._process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                log.warning("%s: an execution environment did not exit", self.function_name)
            self._process = None


def _runtime_environment() -> dict[str, str]:
    """The runner's environment, with its import path: the handlers and the preload hooks
    import from wherever the runner does (functions/, the repository, the venv)."""
    environment = dict(os.environ)
    path = [os.path.abspath(entry) if entry else os.getcwd() for entry in sys.path]
    environment["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(path))
    return environment


class EnvironmentPool:
    """Up to ``size`` execution environments of one function; each caller borrows one."""

    def __init__(
        self, function_name: str, handler_path: str, size: int, preload: Sequence[str] = ()
    ) -> None:
        self.function_name = function_name
        self._idle = [
            ExecutionEnvironment(function_name, handler_path, preload) for _ in range(size)
        ]
        self._all = list(self._idle)
        self._available = threading.Condition()

    @property
    def size(self) -> int:
        return len(self._all)

    @property
    def starts(self) -> int:
        """Processes started so far across the pool (cold starts)."""
        return sum(environment.starts for environment in self._all)

    def invoke(
        self, event: Any, context: ContextSpec, environment: dict[str, str]
    ) -> InvocationResult:
        with self._available:
            while not self._idle:
                self._available.wait()
            borrowed = self._idle.pop()
        try:
            return borrowed.invoke(event, context, environment)
        finally:
            with self._available:
                self._idle.append(borrowed)
                self._available.notify()

    def close(self) -> None:
        for environment in self._all:
            environment.discard()
