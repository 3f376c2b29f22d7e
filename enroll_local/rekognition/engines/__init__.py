"""Face engines: ``make_engine("synthetic" | "dlib" | "hybrid")``."""

from __future__ import annotations

from .base import FaceEngine

ENGINE_NAMES = ("synthetic", "dlib", "hybrid")


def make_engine(name: str) -> FaceEngine:
    """A new engine by name; the dlib model is imported only when asked for."""
    if name == "synthetic":
        from .synthetic import SyntheticEngine

        return SyntheticEngine()
    if name == "dlib":
        from .dlib_engine import DlibEngine

        return DlibEngine()
    if name == "hybrid":
        from .hybrid import HybridEngine

        return HybridEngine()
    raise ValueError(f"unknown face engine {name!r}; choose one of {', '.join(ENGINE_NAMES)}")
