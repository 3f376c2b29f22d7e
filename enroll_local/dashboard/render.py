"""Draw DashboardFigures as one PNG: a panel per widget, funnels as bars (matplotlib, Agg)."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # no display: the picture goes to a file

import matplotlib.dates as mdates
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from enroll_local.dashboard.figures import DashboardFigures, Panel

#: Panels per row of the picture.
COLUMNS = 3
#: Size of one panel (inches) and the picture's resolution (dots per inch).
PANEL_WIDTH_IN = 6.4
PANEL_HEIGHT_IN = 3.6
DPI = 100
#: Characters per line of a panel's note.
NOTE_WRAP_CHARS = 80
#: Distance of a panel's note below its axes, clear of tick labels and axis label (points).
NOTE_OFFSET_PT = 34
#: Windows shorter than this get seconds on their time axis (seconds).
SECONDS_TICKS_BELOW_S = 10 * 60
#: Background of a panel with no local source.
NO_SOURCE_COLOUR = "#eeeeee"
BAR_COLOUR = "#3b75af"


def _bars(ax: Axes, panel: Panel) -> None:
    labels = list(panel.bars)
    values = [panel.bars[label] for label in labels]
    positions = range(len(labels))
    ax.barh(list(positions), values, color=BAR_COLOUR)
    ax.set_yticks(list(positions), labels=labels, fontsize=8)
    ax.invert_yaxis()  # first stage on top, as a funnel reads
    ax.set_xlabel(panel.unit, fontsize=8)
    top = max(values, default=0.0)
    ax.set_xlim(0, top * 1.25 if top > 0 else 1)
    for position, value in zip(positions, values, strict=True):
        text = f"{value:.0f}" if float(value).is_integer() else f"{value:.1f}"
        ax.text(value, position, f" {text}", va="center", fontsize=8)


def _lines(ax: Axes, panel: Panel, window: tuple[datetime, datetime]) -> None:
    for series in panel.series:
        times = [datetime.fromtimestamp(t, tz=UTC) for t in series.timestamps]
        ax.plot(times, series.values, marker="o", markersize=4, label=series.label)  # type: ignore[arg-type]
    ax.set_ylabel(panel.unit, fontsize=8)
    # The whole window, as CloudWatch draws it, so a short local run shows where it happened.
    ax.set_xlim(window[0], window[1])  # type: ignore[arg-type]
    short = (window[1] - window[0]).total_seconds() < SECONDS_TICKS_BELOW_S
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M:%S" if short else "%H:%M", tz=UTC))
    ax.set_xlabel("UTC", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7, loc="upper left")


def _message(ax: Axes, text: str, colour: str | None = None) -> None:
    if colour:
        ax.set_facecolor(colour)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.text(
        0.5,
        0.5,
        textwrap.fill(text, NOTE_WRAP_CHARS // 2),
        ha="center",
        va="center",
        fontsize=10,
        transform=ax.transAxes,
    )


def draw_panel(ax: Axes, panel: Panel, window: tuple[datetime, datetime]) -> None:
    """One panel: bars, lines, or the sentence saying why there is nothing to draw."""
    ax.set_title(textwrap.shorten(panel.title, 60), fontsize=10, loc="left")
    if not panel.has_local_source:
        _message(ax, panel.note or "No local source.", NO_SOURCE_COLOUR)
        return
    if panel.bars:
        _bars(ax, panel)
    elif panel.series:
        _lines(ax, panel, window)
    else:
        _message(ax, panel.note or "No data in the window.")
        return
    if panel.note:
        ax.annotate(
            textwrap.fill(panel.note, NOTE_WRAP_CHARS),
            xy=(0, 0),
            xycoords="axes fraction",
            xytext=(0, -NOTE_OFFSET_PT),
            textcoords="offset points",
            va="top",
            fontsize=7,
            color="#444444",
        )


def _duration(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        return f"{seconds / 60:.1f} min".replace(".0 min", " min")
    return f"{seconds / 3600:.1f} h".replace(".0 h", " h")


def render_png(figures: DashboardFigures, out: Path) -> Path:
    """Draw every panel of ``figures`` into ``out`` (PNG); return ``out``."""
    rows = -(-len(figures.panels) // COLUMNS)
    end = datetime.fromisoformat(figures.generated_at)
    window = (end - timedelta(seconds=figures.since_seconds), end)
    figure, axes = plt.subplots(
        rows,
        COLUMNS,
        figsize=(PANEL_WIDTH_IN * COLUMNS, PANEL_HEIGHT_IN * rows),
        squeeze=False,
    )
    try:
        for index, ax in enumerate(axes.flat):
            if index < len(figures.panels):
                draw_panel(ax, figures.panels[index], window)
            else:
                ax.set_axis_off()
        figure.suptitle(
            f"{figures.dashboard} - last {_duration(figures.since_seconds)}, at "
            f"{figures.generated_at[:19]}Z "
            f"({figures.endpoint_url})",
            fontsize=13,
        )
        figure.tight_layout(rect=(0, 0, 1, 0.97), h_pad=3.0)
        out.parent.mkdir(parents=True, exist_ok=True)
        figure.savefig(out, dpi=DPI, format="png")
    finally:
        plt.close(figure)
    return out
