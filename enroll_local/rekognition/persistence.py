"""Optional on-disk state, so a local run survives a restart of the emulator.

Everything goes into ONE file, ``<data_dir>/rekognition-state.npz`` (the JSON document plus the
vector matrices), written to a temporary name and renamed: a crash mid-save leaves the previous
state intact, never a JSON that disagrees with its vectors.

Saves are debounced: the first change after a quiet period is written at once, later ones at
most every ``interval_seconds`` (a timer writes the last of a burst), because rewriting a
million-face matrix after every IndexFaces call would cost more than the call itself.
"""

from __future__ import annotations

import atexit
import json
import os
import threading
import time
import weakref
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from .service import RekognitionEmulator

STATE_FILE = "rekognition-state.npz"
_DOC_KEY = "__state_json__"
FORMAT_VERSION = 1


class StateStore:
    """Load and (debounced) save an emulator's state under ``data_dir``."""

    def __init__(self, data_dir: Path, interval_seconds: float) -> None:
        self.path = Path(data_dir) / STATE_FILE
        self.interval_seconds = interval_seconds
        self._last_save = float("-inf")
        self._timer: threading.Timer | None = None
        self._dirty = False

    def load_into(self, emulator: RekognitionEmulator) -> None:
        """Restore the saved state, if any, and arrange a final save at interpreter exit."""
        if self.path.exists():
            with np.load(self.path, allow_pickle=False) as npz:
                doc = json.loads(bytes(npz[_DOC_KEY]).decode())
                if doc.get("format") != FORMAT_VERSION:
                    raise ValueError(
                        f"{self.path} has state format {doc.get('format')}, expected "
                        f"{FORMAT_VERSION}; move it away to start empty"
                    )
                arrays = {k: npz[k] for k in npz.files if k != _DOC_KEY}
            emulator.import_state(doc["state"], arrays)
        ref = weakref.ref(emulator)

        def _final_save() -> None:
            em = ref()
            if em is not None:
                em.flush()

        atexit.register(_final_save)

    def changed(self, emulator: RekognitionEmulator) -> None:
        """Note a mutation; save now or schedule a save within ``interval_seconds``."""
        self._dirty = True
        now = time.monotonic()
        if now - self._last_save >= self.interval_seconds:
            self.save(emulator)
        elif self._timer is None:
            delay = self.interval_seconds - (now - self._last_save)
            self._timer = threading.Timer(delay, emulator.flush)
            self._timer.daemon = True
            self._timer.start()

    def save(self, emulator: RekognitionEmulator) -> None:
        """Write the state now if anything changed (caller holds the emulator's lock)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._dirty:
            return
        state, arrays = emulator.export_state()
        doc = json.dumps({"format": FORMAT_VERSION, "state": state}).encode()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as fh:
            payload = {_DOC_KEY: np.frombuffer(doc, dtype=np.uint8), **arrays}
            np.savez(fh, **payload)  # type: ignore[arg-type]
        os.replace(tmp, self.path)
        self._dirty = False
        self._last_save = time.monotonic()
