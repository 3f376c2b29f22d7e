"""Handlers for the execution-environment tests, imported by spawned processes."""

from __future__ import annotations

import os
import time
from typing import Any

#: Module state, as a handler's cached clients or Powertools' metric set are.
invocations = 0


def echo(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global invocations
    invocations += 1
    print("EMF-like line from the handler")
    return {
        "pid": os.getpid(),
        "invocations": invocations,
        "setting": os.environ.get("SETTING"),
        "function_name": context.function_name,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "event": event,
    }


def fail(event: dict[str, Any], context: Any) -> None:
    raise ValueError(f"bad event {event}")


def sleep(event: dict[str, Any], context: Any) -> dict[str, Any]:
    started = time.time()
    time.sleep(float(event["seconds"]))
    return {"pid": os.getpid(), "started": started, "ended": time.time()}


def crash(event: dict[str, Any], context: Any) -> None:
    os._exit(int(event.get("status", 3)))
