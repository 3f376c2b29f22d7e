"""Message shapes crossing a queue: S3 notifications in, association messages between stages."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from typing import Any

from .keys import decode_event_key, encode_event_key


class MessageError(ValueError):
    """A message body is not what the stage expects; retrying it cannot help."""


@dataclass(frozen=True)
class UploadedObject:
    """One ObjectCreated record of an S3 notification, key already decoded."""

    bucket: str
    key: str
    version_id: str | None
    etag: str | None
    size: int | None
    event_name: str
    sequencer: str | None
    event_time: str | None = None  # when S3 received the object (ISO-8601), start of upload->ACTIVE


def parse_s3_notification(body: str) -> list[UploadedObject]:
    """The ObjectCreated records of one S3 notification body.

    ``s3:TestEvent`` (sent when the notification is configured) and other event types give an
    empty list. Keys are decoded from S3's form-URL encoding ('+' = space).
    """
    try:
        document = json.loads(body)
    except (TypeError, json.JSONDecodeError) as error:
        raise MessageError(f"message body is not JSON: {error}") from None
    if not isinstance(document, dict):
        raise MessageError("S3 notification must be a JSON object")
    if document.get("Event") == "s3:TestEvent":
        return []
    records = document.get("Records")
    if not isinstance(records, list):
        raise MessageError("S3 notification has no Records list")
    objects = []
    for record in records:
        if not isinstance(record, dict):
            raise MessageError("S3 notification record must be an object")
        event_name = str(record.get("eventName", ""))
        if not event_name.startswith("ObjectCreated:"):
            continue
        try:
            s3 = record["s3"]
            obj = s3["object"]
            bucket = s3["bucket"]["name"]
            raw_key = obj["key"]
        except (KeyError, TypeError):
            raise MessageError("S3 record lacks s3.bucket.name or s3.object.key") from None
        objects.append(
            UploadedObject(
                bucket=bucket,
                key=decode_event_key(raw_key),
                version_id=obj.get("versionId") or None,
                etag=obj.get("eTag") or None,
                size=obj.get("size"),
                event_name=event_name,
                sequencer=obj.get("sequencer"),
                event_time=record.get("eventTime") or None,
            )
        )
    return objects


#: ``s3.configurationId`` of the notifications the pipeline writes itself (S3 puts the name of
#: the bucket's notification configuration there): a FAILED photo sent back to the index stage.
REQUEUE_CONFIGURATION_ID = "face-enrollment-requeue"


def s3_notification(
    bucket: str,
    key: str,
    *,
    version_id: str | None = None,
    etag: str | None = None,
    size: int | None = None,
    event_time: str | None = None,
    configuration_id: str = REQUEUE_CONFIGURATION_ID,
) -> str:
    """An S3 ObjectCreated notification body for one object, as S3 would send it.

    The index stage cannot tell it from S3's own: the key is form-URL encoded
    (``keys.encode_event_key``), and ``parse_s3_notification`` gives back exactly ``bucket``,
    ``key``, ``version_id``, ``etag``, ``size`` and ``event_time`` (absent ones stay None).
    """
    obj: dict[str, Any] = {"key": encode_event_key(key)}
    if size is not None:
        obj["size"] = size
    if etag:
        obj["eTag"] = etag
    if version_id:
        obj["versionId"] = version_id
    record: dict[str, Any] = {
        "eventVersion": "2.1",
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {
            "s3SchemaVersion": "1.0",
            "configurationId": configuration_id,
            "bucket": {"name": bucket},
            "object": obj,
        },
    }
    if event_time:
        record["eventTime"] = event_time
    return json.dumps({"Records": [record]}, separators=(",", ":"))


@dataclass(frozen=True)
class AssociationMessage:
    """One accepted face waiting to be associated to its user (index -> associate queue)."""

    user_id: str
    face_id: str
    photo_id: str
    bucket: str
    key: str
    quality: float  # 0..100, see photo_policy.face_quality
    indexed_at: str  # ISO-8601 UTC
    # When S3 received the photo (ISO-8601); None in messages sent before it was carried.
    uploaded_at: str | None = None
    # Times this message was re-sent because its user was UPDATING (backoff.py); 0 when absent.
    conflict_retries: int = 0

    def to_json(self) -> str:
        """The queue message body."""
        return json.dumps(asdict(self), separators=(",", ":"), ensure_ascii=False)

    @classmethod
    def from_json(cls, body: str) -> AssociationMessage:
        """Parse and validate a queue message body; raise MessageError when malformed."""
        try:
            data: Any = json.loads(body)
        except (TypeError, json.JSONDecodeError) as error:
            raise MessageError(f"association message is not JSON: {error}") from None
        if not isinstance(data, dict):
            raise MessageError("association message must be a JSON object")
        strings = ("user_id", "face_id", "photo_id", "bucket", "key", "indexed_at")
        missing = [f for f in (*strings, "quality") if f not in data]
        if missing:
            raise MessageError(f"association message lacks {', '.join(missing)}")
        bad = [f for f in strings if not isinstance(data[f], str) or not data[f]]
        if bad:
            raise MessageError(f"association message fields must be non-empty strings: {bad}")
        quality = data["quality"]
        if (
            isinstance(quality, bool)
            or not isinstance(quality, int | float)
            or not math.isfinite(quality)
        ):
            raise MessageError(f"association message quality must be a number, got {quality!r}")
        uploaded_at = data.get("uploaded_at")
        if uploaded_at is not None and (not isinstance(uploaded_at, str) or not uploaded_at):
            raise MessageError("association message uploaded_at must be a string or null")
        conflict_retries = data.get("conflict_retries", 0)
        if (
            isinstance(conflict_retries, bool)
            or not isinstance(conflict_retries, int)
            or conflict_retries < 0
        ):
            raise MessageError(
                "association message conflict_retries must be a whole number >= 0, "
                f"got {conflict_retries!r}"
            )
        return cls(
            user_id=data["user_id"],
            face_id=data["face_id"],
            photo_id=data["photo_id"],
            bucket=data["bucket"],
            key=data["key"],
            quality=float(quality),
            indexed_at=data["indexed_at"],
            uploaded_at=uploaded_at,
            conflict_retries=conflict_retries,
        )
