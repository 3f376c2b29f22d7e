"""What the load benchmark observes while it runs: Rekognition calls as the emulator serves them,
and the queues' depth once a second.

``RekognitionRecorder`` wraps the emulator's ``dispatch`` (every caller goes through it: the
functions' worker processes over HTTP, the state machine's SDK tasks, the runner), so it sees
each call's outcome: served, or refused with ProvisionedThroughputExceededException /
ThrottlingException. ``QueueSampler`` reads the stack's queue depths on a thread.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from enroll_local.rekognition.errors import RekognitionError

THROTTLE_CODES = frozenset({"ProvisionedThroughputExceededException", "ThrottlingException"})


@dataclass
class CallLog:
    """Timestamps of served and throttled calls per operation, and AssociateFaces' batch sizes."""

    served: dict[str, list[float]] = field(default_factory=dict)
    throttled: Counter[str] = field(default_factory=Counter)
    associate_face_ids: list[int] = field(default_factory=list)


class RekognitionRecorder:
    """Records every call the emulator answers from ``start()`` until ``stop()``."""

    def __init__(self, emulator: Any, clock: Any = time.time) -> None:
        self._emulator = emulator
        self._original = emulator.dispatch
        self._clock = clock
        self._lock = threading.Lock()
        self.log = CallLog()

    def start(self) -> None:
        self.log = CallLog()
        self._emulator.dispatch = self._dispatch

    def stop(self) -> None:
        self._emulator.dispatch = self._original

    def _dispatch(self, operation: str, params: dict[str, Any], **kwargs: Any) -> Any:
        try:
            response = self._original(operation, params, **kwargs)
        except RekognitionError as error:
            if error.code in THROTTLE_CODES:
                with self._lock:
                    self.log.throttled[operation] += 1
            raise
        now = self._clock()
        with self._lock:
            self.log.served.setdefault(operation, []).append(now)
            if operation == "AssociateFaces":
                self.log.associate_face_ids.append(len(params.get("FaceIds") or []))
        return response


@dataclass
class QueueSample:
    at: float
    depths: dict[str, int]


class QueueSampler:
    """Samples ``stack.queue_depths()`` every ``interval`` seconds on a daemon thread."""

    def __init__(self, stack: Any, interval: float = 1.0) -> None:
        self._stack = stack
        self._interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-queue-sampler", daemon=True)
        self.samples: list[QueueSample] = []

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=30)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append(QueueSample(time.time(), self._stack.queue_depths()))
            self._stop.wait(self._interval)
