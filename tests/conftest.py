"""Fixtures shared by every test layer.

Markers follow the folder (unit/, integration/, infra/, faults/) so `pytest -m unit` works without
decorating each test. Photos come from ``../shared/data`` (or ``$ENROLL_SHARED_DATA``); tests that
need them skip with a clear reason on a user's clone, which has no ``shared/``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EVENTS = ROOT / "events"


def shared_data_dir() -> Path | None:
    """The photo folder laid out as ``faces/<identity>/<photos>`` etc., or None if absent."""
    configured = os.environ.get("ENROLL_SHARED_DATA")
    candidate = Path(configured) if configured else ROOT.parent / "shared" / "data"
    return candidate if candidate.is_dir() else None


@pytest.fixture(scope="session")
def shared_data() -> Path:
    path = shared_data_dir()
    if path is None:
        pytest.skip(
            "needs ../shared/data (real photos); set ENROLL_SHARED_DATA to a folder laid out as "
            "faces/<identity>/<photos>, faces_edge/, seed_media/ to run it on your own data"
        )
    return path


def load_event(name: str) -> dict:
    """A real-shaped sample event from ``events/<name>.json``."""
    import json

    return json.loads((EVENTS / f"{name}.json").read_text())


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).relative_to(ROOT / "tests").parts
        layer = parts[0] if parts else ""
        if layer in ("unit", "integration", "infra", "faults"):
            item.add_marker(getattr(pytest.mark, layer))
