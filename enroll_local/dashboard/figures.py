"""What a local dashboard panel shows, as plain numbers (saved as JSON beside the picture)."""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Series:
    """One line of a time-series panel: epoch seconds and values."""

    label: str
    timestamps: list[float] = field(default_factory=list)
    values: list[float] = field(default_factory=list)


@dataclass
class Panel:
    """One widget of the definition as drawn locally.

    ``bars`` (label -> value, in order) for funnels and "now" values, ``series`` for lines; a
    panel with neither says why in ``note``. ``source`` names where the numbers came from.
    """

    key: str
    title: str
    kind: str
    unit: str
    source: str
    bars: dict[str, float] = field(default_factory=dict)
    series: list[Series] = field(default_factory=list)
    note: str | None = None
    #: False when the local stack has nothing that produces this widget's metrics.
    has_local_source: bool = True


@dataclass
class DashboardFigures:
    """Every panel of one rendering, plus the window it covers."""

    dashboard: str
    endpoint_url: str
    generated_at: str
    since_seconds: float
    panels: list[Panel]

    def panel(self, key: str) -> Panel:
        """The panel of the widget ``key`` (KeyError when there is none)."""
        for panel in self.panels:
            if panel.key == key:
                return panel
        raise KeyError(key)

    def to_json(self) -> str:
        """The figures as pretty JSON."""
        return json.dumps(asdict(self), indent=2, sort_keys=False)

    @classmethod
    def from_json(cls, text: str) -> DashboardFigures:
        """Read what ``to_json`` wrote."""
        raw: dict[str, Any] = json.loads(text)
        panels = [
            Panel(**{**p, "series": [Series(**s) for s in p.get("series", [])]})
            for p in raw.pop("panels")
        ]
        return cls(panels=panels, **raw)
