"""Execution environments: one process per concurrent invocation, as Lambda runs them.

Lambda runs each concurrent invocation of a function in an execution environment of its own: a
process with its own module state, environment variables and stdout, reused ("warm") for later
invocations and thrown away when the invocation times out or the runtime exits. The local runner
does the same with :class:`ExecutionEnvironment`: a spawned Python process that imports the
handler once and then serves one invocation at a time over a pipe. So handlers run really in
parallel (two associate functions race for one user as they do in AWS), and nothing they keep at
module level (Powertools' metric set, cached clients and settings) is shared between invocations
that run at once.

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

import importlib
import logging
import multiprocessing
import os
import signal
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from multiprocessing.connection import Connection
from typing import Any

from enroll_local.runner.lambda_context import LocalLambdaContext
from enroll_local.runner.metrics_bridge import POWERTOOLS_METRICS_DISABLED, captured_stdout

log = logging.getLogger(__name__)

#: Concurrent invocations of one function at most, locally: each is a process, and this machine's
#: cores (not the deployed ESM's MaximumConcurrency) set how many are useful.
DEFAULT_MAX_LOCAL_CONCURRENCY = 4
#: Seconds a new process may take to import its handler before the invocation counts as failed
#: (Lambda's init phase has 10 s; a cold import of boto3 + Powertools takes about 1-2 s here).
INIT_TIMEOUT_SECONDS = 60.0
#: Extra seconds after the deadline before the process is killed (the reply may be in the pipe).
TIMEOUT_GRACE_SECONDS = 1.0
#: spawn, not fork: the runner's process has threads (the endpoint, the pollers) whose locks a
#: forked child could inherit held. A spawned process starts clean, like a Lambda sandbox.
_CONTEXT = multiprocessing.get_context("spawn")


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


def _load(path: str) -> Callable[..., Any]:
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]


def _serve(connection: Connection, handler_path: str, preload: Sequence[str]) -> None:
    """The execution environment's main loop (runs in the spawned process)."""
    # The runner's console shows the handlers' logs; their own configuration is Powertools'.
    logging.basicConfig(level=logging.WARNING)
    # Ctrl-C reaches the whole process group: the runner stops its environments itself, after
    # the invocations in progress, rather than each process dying with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for hook in preload:
        _load(hook)()
    handler = _load(handler_path)
    connection.send({"ready": True})
    while True:
        try:
            request = connection.recv()
        except (EOFError, OSError):
            return  # the runner went away
        # The function's environment, for this invocation: the runner turns metrics on, as its
        # bridge does for in-process calls, because EMF is how metrics leave the function.
        os.environ.update(request["environment"])
        os.environ[POWERTOOLS_METRICS_DISABLED] = "false"
        context = LocalLambdaContext(**request["context"])
        started = time.monotonic()
        reply: dict[str, Any] = {}
        with captured_stdout() as buffer:
            try:
                reply["response"] = handler(request["event"], context)
            except Exception as error:
                reply["error"] = f"{type(error).__name__}: {error}\n{traceback.format_exc()}"
        reply["stdout"] = buffer.getvalue()
        reply["duration_ms"] = (time.monotonic() - started) * 1000
        connection.send(reply)


class ExecutionEnvironment:
    """One warm process serving one function's invocations, one at a time."""

    def __init__(self, function_name: str, handler_path: str, preload: Sequence[str] = ()) -> None:
        self.function_name = function_name
        self.handler_path = handler_path
        self.preload = tuple(preload)
        self._process: Any = None
        self._connection: Connection | None = None
        #: Processes started so far (1 + every replacement after a timeout or a crash).
        self.starts = 0

    @property
    def alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def _start(self) -> None:
        parent, child = _CONTEXT.Pipe()
        process = _CONTEXT.Process(
            target=_serve,
            args=(child, self.handler_path, self.preload),
            name=f"lambda-{self.function_name}",
            daemon=True,
        )
        process.start()
        child.close()
        self._process, self._connection = process, parent
        self.starts += 1
        if not parent.poll(INIT_TIMEOUT_SECONDS):
            self.discard()
            raise InvocationError(f"{self.function_name}: init did not finish")
        try:
            parent.recv()
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
        assert self._connection is not None
        started = time.monotonic()
        self._connection.send(
            {"event": event, "context": asdict(context), "environment": environment}
        )
        if not self._connection.poll(context.timeout_seconds + TIMEOUT_GRACE_SECONDS):
            # Lambda stops the invocation at its timeout and replaces the sandbox.
            self.discard()
            return InvocationResult(
                error=InvocationError(
                    f"Task timed out after {context.timeout_seconds:.2f} seconds"
                ),
                duration_ms=(time.monotonic() - started) * 1000,
            )
        try:
            reply = self._connection.recv()
        except (EOFError, OSError):
            exit_code = None
            if self._process is not None:
                self._process.join(timeout=5)  # the exit status is known once it is reaped
                exit_code = self._process.exitcode
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
        if self._connection is not None:
            self._connection.close()
            self._connection = None
        if self._process is not None:
            if self._process.is_alive():
                self._process.kill()
            self._process.join(timeout=5)
            self._process = None


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
