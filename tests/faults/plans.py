"""Faults planted inside the functions' execution environments (worker processes).

The local runner calls ``install`` in every new execution environment before it imports the
handler (``LocalSettings.worker_preload``, its counterpart of AWS_LAMBDA_EXEC_WRAPPER). It wraps
a few of the pipeline's own functions; each wrapper does nothing unless the test *armed* its
fault by creating a file in ``$FAULT_STATE_DIR`` (shared by every process), so one warm set of
environments serves every scenario of the suite.

- ``kill-after-index-faces``: the process dies (``os._exit``) right after IndexFaces returned,
  before the ledger's INDEXED write; once per arming.
- ``kill-after-associate-faces``: the process dies right after AssociateFaces returned, before
  the ledger's ASSOCIATED write; once per arming.
- ``rendezvous-associate``: each associate invocation waits (up to RENDEZVOUS_TIMEOUT_SECONDS)
  until as many invocations as the file says have arrived, so their batches plan from the same
  state: two batches for one user really race.
- ``break-association``: every associate invocation fails with an unexpected error for the
  users the file lists (one per line), as a bug would, until the file is removed.
"""

from __future__ import annotations

import functools
import os
import time
from pathlib import Path
from typing import Any

#: Exit status of a killed process (as SIGKILL would give through a shell).
KILLED_EXIT_STATUS = 137
#: How long a rendezvous waits for the others before going on alone (seconds).
RENDEZVOUS_TIMEOUT_SECONDS = 20.0


def state_dir() -> Path | None:
    value = os.environ.get("FAULT_STATE_DIR")
    return Path(value) if value else None


def _disarm(name: str) -> bool:
    """True (once) when the fault ``name`` is armed; disarms it atomically."""
    directory = state_dir()
    if directory is None:
        return False
    try:
        (directory / name).rename(directory / f"{name}.fired")
    except FileNotFoundError:
        return False
    return True


def _kill_after(original: Any, fault: str) -> Any:
    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        result = original(*args, **kwargs)
        if _disarm(fault):
            os._exit(KILLED_EXIT_STATUS)
        return result

    return wrapper


def _rendezvous(original: Any) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, user_id: str, messages: Any) -> Any:
        directory = state_dir()
        armed = directory / "rendezvous-associate" if directory else None
        if armed is not None and armed.exists():
            expected = int(armed.read_text().strip() or "2")
            arrivals = directory / "rendezvous-arrivals"  # type: ignore[operator]
            arrivals.mkdir(exist_ok=True)
            (arrivals / f"{os.getpid()}-{time.monotonic_ns()}").touch()
            deadline = time.monotonic() + RENDEZVOUS_TIMEOUT_SECONDS
            while len(list(arrivals.iterdir())) < expected and time.monotonic() < deadline:
                time.sleep(0.02)
        return original(self, user_id, messages)

    return wrapper


class BrokenAssociation(RuntimeError):
    """The planted bug of ``break-association``."""


def _broken(original: Any) -> Any:
    @functools.wraps(original)
    def wrapper(self: Any, user_id: str, messages: Any) -> Any:
        directory = state_dir()
        marker = directory / "break-association" if directory else None
        if marker is not None and marker.exists() and user_id in marker.read_text().split():
            raise BrokenAssociation(f"planted bug for {user_id}")
        return original(self, user_id, messages)

    return wrapper


def install() -> None:
    """Wrap the pipeline's functions (called once per execution environment)."""
    from enrollment import association
    from enrollment import rekognition as rk

    rk.index_faces = _kill_after(rk.index_faces, "kill-after-index-faces")
    rk.associate_faces = _kill_after(rk.associate_faces, "kill-after-associate-faces")
    stage = association.AssociateStage
    stage.associate_user = _broken(_rendezvous(stage.associate_user))  # type: ignore[method-assign]
