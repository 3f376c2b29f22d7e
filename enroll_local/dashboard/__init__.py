"""``enroll dashboard``: the dashboard definition (infra/dashboard.py) drawn from the local stack.

``run_dashboard(endpoints, out, since_seconds)`` reads every widget's numbers from the local
endpoint (CloudWatch metrics bridged from the functions' EMF output, queue attributes, executions,
the ledger), writes one PNG to ``out`` and the numbers it drew to ``out`` with a ``.json``
suffix, and returns ``out``. See ``collect.py`` for the source of each panel.
"""

from __future__ import annotations

import re
from pathlib import Path

from enroll_local.dashboard.collect import collect_figures
from enroll_local.dashboard.figures import DashboardFigures, Panel, Series
from enroll_local.dashboard.render import render_png
from enroll_local.runner.resources import Endpoints
from infra.config import PipelineConfig

#: Default window of ``enroll dashboard`` (seconds).
DEFAULT_SINCE_SECONDS = 30 * 60
#: Default picture name.
DEFAULT_OUT = Path("dashboard.png")

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_since(text: str) -> float:
    """``30m``, ``2h``, ``90s``, ``1d`` or plain seconds -> seconds (ValueError otherwise)."""
    match = _DURATION.match(text.lower())
    if not match or float(match.group(1)) <= 0:
        raise ValueError(f"not a duration: {text!r} (e.g. 30m, 2h, 90s)")
    return float(match.group(1)) * _UNIT_SECONDS[match.group(2)]


def figures_path(out: Path) -> Path:
    """Where the numbers of the picture ``out`` are saved (same name, ``.json``)."""
    return out.with_suffix(".json")


def run_dashboard(
    endpoints: Endpoints,
    out: Path,
    since_seconds: float = DEFAULT_SINCE_SECONDS,
    *,
    config: PipelineConfig | None = None,
) -> Path:
    """Render the dashboard of the local stack at ``endpoints`` over the last ``since_seconds``.

    Writes the PNG to ``out`` and the figures it drew to ``figures_path(out)``; returns ``out``.
    """
    figures = collect_figures(endpoints, since_seconds, config=config)
    render_png(figures, out)
    figures_path(out).write_text(figures.to_json() + "\n")
    return out


__all__ = [
    "DEFAULT_OUT",
    "DEFAULT_SINCE_SECONDS",
    "DashboardFigures",
    "Panel",
    "Series",
    "collect_figures",
    "figures_path",
    "parse_since",
    "render_png",
    "run_dashboard",
]
