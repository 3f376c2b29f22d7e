"""The inside of an execution environment: ``python -m enroll_local.runner.lambda_runtime``.

The counterpart of Lambda's runtime interface client. The runner (workers.py) starts this module
as a fresh Python process with two pipe file descriptors, the handler's import path and the
preload hooks; it imports the handler once, says it is ready, then serves one invocation at a
time: it receives ``{event, context, environment}``, sets the function's environment, calls the
handler with its stdout captured, and answers ``{response | error, stdout, duration_ms}``.

A fresh interpreter rather than multiprocessing's spawn: spawn re-runs the parent's main module
in the child, which breaks any script that starts a LocalStack without the
``if __name__ == "__main__"`` guard (and a notebook cell); a fork of the runner's process could
inherit a lock held by one of its threads.

Usage: ``python -m enroll_local.runner.lambda_runtime READ_FD WRITE_FD HANDLER [PRELOAD ...]``
with HANDLER and each PRELOAD as ``module:attribute``.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection
from typing import Any

from enroll_local.runner.lambda_context import LocalLambdaContext
from enroll_local.runner.metrics_bridge import POWERTOOLS_METRICS_DISABLED, captured_stdout


def load(path: str) -> Callable[..., Any]:
    """``module:attribute`` -> the attribute."""
    module_name, _, attribute = path.partition(":")
    return getattr(importlib.import_module(module_name), attribute)  # type: ignore[no-any-return]


def serve(
    reader: Connection, writer: Connection, handler_path: str, preload: Sequence[str]
) -> None:
    """Import the handler, then answer invocations until the runner closes the pipe."""
    # The runner's console shows the handlers' logs; their own configuration is Powertools'.
    logging.basicConfig(level=logging.WARNING)
    # Ctrl-C reaches the whole process group: the runner stops its environments itself, after
    # the invocations in progress, rather than each process dying with a traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for hook in preload:
        load(hook)()
    handler = load(handler_path)
    # The environment the process started with: each invocation sees it plus its function's
    # variables, and nothing a previous invocation's environment had set (a "redeploy" that
    # drops a variable drops it here too).
    base_environment = dict(os.environ)
    writer.send({"ready": True})
    while True:
        try:
            request = reader.recv()
        except (EOFError, OSError):
            return  # the runner went away
        # The function's environment, for this invocation: metrics on, as the runner's bridge
        # turns them on for in-process calls, because EMF is how metrics leave the function.
        os.environ.clear()
        os.environ.update(base_environment)
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
        writer.send(reply)


def main(argv: Sequence[str]) -> None:
    read_fd, write_fd, handler_path, *preload = argv
    serve(
        Connection(int(read_fd), writable=False),
        Connection(int(write_fd), readable=False),
        handler_path,
        preload,
    )


if __name__ == "__main__":
    main(sys.argv[1:])
