"""The API's answers as readable text: tables for lists, aligned ``name: value`` lines otherwise.

The lists a person reads most (users, photos, matches, faces) show the columns that say what
happened, in a fixed order; ``--json`` has every field. Any other answer shows all its fields
(a new field in the API appears in the CLI's output without a change here).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from enroll_cli.tables import format_fields, format_table

USER_COLUMNS = ("user_id", "status", "face_count", "updated_at")
PHOTO_COLUMNS = ("key", "status", "reason", "version_id", "updated_at")
MATCH_COLUMNS = ("user_id", "similarity", "user_status")
FACE_COLUMNS = ("face_id", "key", "quality", "indexed_at")


def _cell(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.2f}"
    if isinstance(value, dict | list):
        return _inline(value)
    return value


def _inline(value: Any) -> str:
    if isinstance(value, dict):
        return ", ".join(f"{k}={_inline(v)}" for k, v in value.items() if v is not None)
    if isinstance(value, list):
        return ", ".join(_inline(v) for v in value)
    return str(_cell(value))


def rows_table(rows: Sequence[dict[str, Any]], columns: Sequence[str] = ()) -> str:
    """A table of dicts with these ``columns``; without any, every key in first-seen order."""
    columns = list(columns)
    if not columns:
        for row in rows:
            columns += [key for key in row if key not in columns]
    return format_table(columns, [[_cell(row.get(c)) for c in columns] for row in rows])


def document(answer: dict[str, Any], tables: dict[str, Sequence[str]] | None = None) -> str:
    """Scalars and small maps as ``name: value`` lines, lists of objects as titled tables."""
    tables = tables or {}
    fields: list[tuple[str, Any]] = []
    blocks: list[str] = []
    for name, value in answer.items():
        if isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            blocks.append(f"\n{name}\n" + rows_table(value, tables.get(name, ())))
        elif isinstance(value, list) and not value:
            fields.append((name, "(none)"))
        elif isinstance(value, dict):
            for key, inner in value.items():
                if inner is not None:
                    fields.append((f"{name}.{key}", _cell(inner)))
        else:
            fields.append((name, _cell(value)))
    return "\n".join([format_fields(fields), *blocks]).strip("\n")


def render(command: str, answer: Any) -> str:
    """The text ``enroll <command>`` prints for the API's ``answer``."""
    if not isinstance(answer, dict):
        return "" if answer is None else str(answer)
    if command == "users":
        text = rows_table(answer.get("users") or [], USER_COLUMNS)
        if not answer.get("users"):
            text = "no users"
        if answer.get("next_token"):
            text += f"\n\nmore: enroll users --next-token {answer['next_token']}"
        return text
    if command == "photos":
        photos = answer.get("photos") or []
        if not photos:
            return f"no photos for {answer.get('user_id', 'this user')}"
        return rows_table(photos, PHOTO_COLUMNS)
    if command == "search":
        matches = answer.get("matches") or []
        rest = {k: v for k, v in answer.items() if k != "matches"}
        head = rows_table(matches, MATCH_COLUMNS) if matches else "no user matched"
        return head + "\n\n" + document(rest)
    if command == "verify":
        verdict = "MATCH" if answer.get("match") else "NO MATCH"
        return f"{verdict}\n" + document(answer)
    return document(answer, {"faces": FACE_COLUMNS})
