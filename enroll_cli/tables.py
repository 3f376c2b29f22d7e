"""Plain-text tables for the terminal, shared by the CLI and the local runner's reports."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any


def format_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A plain-text table with aligned columns (empty cells for None)."""
    text_rows = [["" if cell is None else str(cell) for cell in row] for row in rows]
    widths = [len(h) for h in headers]
    for row in text_rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)) for row in text_rows]
    return "\n".join(line.rstrip() for line in lines)


def format_fields(fields: Iterable[tuple[str, Any]]) -> str:
    """``name: value`` lines with the values aligned (fields whose value is None are left out)."""
    present = [(name, value) for name, value in fields if value is not None]
    width = max((len(name) for name, _ in present), default=0)
    return "\n".join(f"{(name + ':').ljust(width + 1)} {value}" for name, value in present)
