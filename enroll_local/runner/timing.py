"""Where a run's time went: the face model against the pipeline around it.

The ledger records, per photo, when S3 received it (``uploaded_at``), when the index stage
finished it (``indexed_at``) and when it last changed (``updated_at``, the ACTIVE time for an
ACTIVE photo); the emulator sums the seconds its face engine spent (``engine_seconds``). From
those, ``enroll demo`` says how much of its wall time the model itself took and where the rest
went: the index stage (queue, handler, IndexFaces) and association + activation (the batching
window, AssociateFaces, the activation's status checks and their waits).
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class RunTiming:
    photos: int
    wall_s: float  # first upload to the last photo settled
    engine_s: float  # time the face model was busy (overlapping calls count once)
    upload_to_indexed_p50_s: float | None
    indexed_to_active_p50_s: float | None
    upload_to_active_max_s: float | None

    def describe(self) -> str:
        """Two lines for the demo's report."""
        share = self.engine_s / self.wall_s if self.wall_s > 0 else 0.0
        lines = [
            f"{self.photos} photos settled {self.wall_s:.1f} s after the first upload; the face "
            f"model was busy {self.engine_s:.1f} s of it ({share:.0%})."
        ]
        if self.upload_to_indexed_p50_s is not None and self.indexed_to_active_p50_s is not None:
            lines.append(
                f"Per photo (median): upload to indexed {self.upload_to_indexed_p50_s:.1f} s, "
                f"indexed to ACTIVE {self.indexed_to_active_p50_s:.1f} s (the association "
                "batching window, AssociateFaces, the activation's status checks)."
            )
        return "\n".join(lines)


def run_timing(photos: list[dict[str, Any]], engine_seconds: float) -> RunTiming:
    """Timing of ``photos`` (ledger photo items) from their timestamps."""
    uploaded = [_epoch(p.get("uploaded_at")) for p in photos]
    known_uploads = [u for u in uploaded if u is not None]
    settled = [_epoch(p.get("updated_at")) for p in photos]
    known_settled = [s for s in settled if s is not None]
    to_indexed, to_active, whole = [], [], []
    for photo, upload in zip(photos, uploaded, strict=True):
        indexed = _epoch(photo.get("indexed_at"))
        done = _epoch(photo.get("updated_at"))
        if upload is not None and indexed is not None:
            to_indexed.append(indexed - upload)
        if photo.get("status") == "ACTIVE" and indexed is not None and done is not None:
            to_active.append(done - indexed)
            if upload is not None:
                whole.append(done - upload)
    wall = max(known_settled) - min(known_uploads) if known_uploads and known_settled else 0.0
    return RunTiming(
        photos=len(photos),
        wall_s=max(0.0, wall),
        engine_s=engine_seconds,
        upload_to_indexed_p50_s=statistics.median(to_indexed) if to_indexed else None,
        indexed_to_active_p50_s=statistics.median(to_active) if to_active else None,
        upload_to_active_max_s=max(whole) if whole else None,
    )


def _epoch(value: Any) -> float | None:
    if not value:
        return None
    try:
        return datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp()
    except ValueError:
        return None
