"""Read the ledger table and show it: users, photos, what is still pending.

The ledger is the pipeline's record of what happened to every photo (see the README's "photo
outcomes"); the demo and the end-to-end tests read it through these functions.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer

from enroll_cli.tables import format_table

__all__ = ["LedgerSnapshot", "format_table", "photos_table", "read_ledger", "users_table"]

TERMINAL_PHOTO_STATES = frozenset({"ACTIVE", "REJECTED", "FAILED", "DELETED"})
TERMINAL_USER_STATES = frozenset({"ACTIVE", "FAILED", "DELETED"})

_deserializer = TypeDeserializer()


@dataclass(frozen=True)
class LedgerSnapshot:
    """Every item of the ledger, split by kind (plain Python values, numbers as float/int)."""

    users: list[dict[str, Any]]
    photos: list[dict[str, Any]]

    def users_by_id(self) -> dict[str, dict[str, Any]]:
        """User items keyed by user id."""
        return {str(u["user_id"]): u for u in self.users}

    def photos_by_key(self) -> dict[str, list[dict[str, Any]]]:
        """Photo items keyed by S3 key (a key overwritten with new versions has several)."""
        grouped: dict[str, list[dict[str, Any]]] = {}
        for photo in self.photos:
            grouped.setdefault(str(photo.get("key", "")), []).append(photo)
        return grouped

    def pending_keys(self, keys: Iterable[str]) -> list[str]:
        """The keys among ``keys`` with no photo item in a terminal state yet."""
        by_key = self.photos_by_key()
        return [
            key
            for key in keys
            if not any(p.get("status") in TERMINAL_PHOTO_STATES for p in by_key.get(key, []))
        ]


def _plain(value: Any) -> Any:
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | set):
        return [_plain(v) for v in value]
    return value


def read_ledger(dynamodb: Any, table: str) -> LedgerSnapshot:
    """Scan the whole ledger (a local table is small; the API queries per user instead)."""
    users: list[dict[str, Any]] = []
    photos: list[dict[str, Any]] = []
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ConsistentRead=True):
        for raw in page.get("Items", []):
            item = _plain({k: _deserializer.deserialize(v) for k, v in raw.items()})
            sort_key = str(item.get("sk", ""))
            if sort_key == "USER":
                users.append(item)
            elif sort_key.startswith("PHOTO#"):
                photos.append(item)
    users.sort(key=lambda u: str(u.get("user_id", "")))
    photos.sort(key=lambda p: (str(p.get("key", "")), str(p.get("updated_at", ""))))
    return LedgerSnapshot(users=users, photos=photos)


def users_table(snapshot: LedgerSnapshot) -> str:
    """One line per user: status, reason, faces, activation seconds."""
    rows = []
    for user in snapshot.users:
        seconds = user.get("activation_seconds")
        rows.append(
            (
                user.get("user_id"),
                user.get("status"),
                user.get("reason"),
                user.get("face_count"),
                f"{float(seconds):.1f}" if seconds is not None else None,
            )
        )
    return format_table(("user", "status", "reason", "faces", "activation s"), rows)


def photos_table(snapshot: LedgerSnapshot) -> str:
    """One line per photo item: key, status, reason."""
    rows = [
        (photo.get("key") or photo.get("photo_id"), photo.get("status"), photo.get("reason"))
        for photo in snapshot.photos
    ]
    return format_table(("key", "status", "reason"), rows)
