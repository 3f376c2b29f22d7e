"""The ledger: one DynamoDB table recording every photo's and every user's state.

Every write is conditional on the state it moves from, so a replayed message can never move a
photo backwards (ACTIVE -> ASSOCIATED) or overwrite a terminal outcome, and two concurrent
workers cannot both claim the same photo content.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from boto3.dynamodb.types import TypeDeserializer, TypeSerializer
from botocore.exceptions import ClientError

from . import keys
from .photo_policy import is_final


class PhotoStatus:
    """Photo states; ACTIVE, REJECTED, FAILED and DELETED are terminal."""

    INDEXED = "INDEXED"
    ASSOCIATED = "ASSOCIATED"
    ACTIVE = "ACTIVE"
    REJECTED = "REJECTED"
    FAILED = "FAILED"
    DELETED = "DELETED"

    TERMINAL = frozenset({ACTIVE, REJECTED, FAILED, DELETED})


class UserStatus:
    """User states as the ledger records them."""

    CREATED = "CREATED"
    UPDATING = "UPDATING"
    ACTIVE = "ACTIVE"
    FAILED = "FAILED"
    DELETED = "DELETED"
    # A right-to-be-forgotten erasure is running: nothing may be enrolled for the user meanwhile.
    ERASING = "ERASING"


@dataclass(frozen=True)
class PhotoRef:
    """Where a photo lives in S3 and in the ledger."""

    photo_id: str
    user_id: str | None
    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    uploaded_at: str | None = None  # S3's event time for the object

    @property
    def pk(self) -> str:
        return keys.photo_pk(self.user_id)

    @property
    def sk(self) -> str:
        return keys.photo_sk(self.photo_id)


# A photo in these states no longer holds its content: a new upload of it is not a duplicate.
# A REJECTED photo holds it only for a final reason (photo_policy.FINAL_REASONS): see
# ``_holds_content``.
_RELEASED_CONTENT = frozenset({PhotoStatus.DELETED, PhotoStatus.FAILED})


def _holds_content(
    photo: dict[str, Any] | None, claim: dict[str, Any], index_policy: str | None
) -> bool:
    """Whether the photo that owns ``claim`` still holds its content.

    No photo item yet: the owner is still being indexed and holds it (the race the claim
    exists for). DELETED or FAILED: released. REJECTED: held only for a final reason
    (photo_policy.FINAL_REASONS) reached under the index policy still in force; a claim
    recorded under another (or no) policy is released, so that changed settings can give the
    same bytes another answer. Without a current ``index_policy``, a final reason holds.
    """
    if photo is None:
        return True
    status = photo.get("status")
    if status in _RELEASED_CONTENT:
        return False
    if status != PhotoStatus.REJECTED:
        return True  # INDEXED, ASSOCIATED, ACTIVE: the content is enrolled or on its way
    if not is_final(photo.get("reason")):
        return False
    return index_policy is None or claim.get("index_policy") == index_policy


# The sparse GSI over user items: only they carry ``kind`` (= USER_KIND), so the index holds
# exactly the users, sorted by UserId, and GET /users pages it without scanning photo items.
USERS_INDEX = "users"
USER_KIND = "USER"


def table_definition(table_name: str) -> dict[str, Any]:
    """CreateTable arguments for the ledger: ``pk``/``sk`` strings, on-demand.

    The one description of the table's keys for everything that creates it outside CloudFormation
    (the local runner, tests); the CDK construct declares the same keys.
    """
    return {
        "TableName": table_name,
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
        "AttributeDefinitions": [
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
            {"AttributeName": "kind", "AttributeType": "S"},
            {"AttributeName": "user_id", "AttributeType": "S"},
        ],
        "GlobalSecondaryIndexes": [
            {
                "IndexName": USERS_INDEX,
                "KeySchema": [
                    {"AttributeName": "kind", "KeyType": "HASH"},
                    {"AttributeName": "user_id", "KeyType": "RANGE"},
                ],
                "Projection": {"ProjectionType": "ALL"},
            }
        ],
        "BillingMode": "PAY_PER_REQUEST",
    }


def utc_now_iso() -> str:
    """Current time as an ISO-8601 UTC string with milliseconds, e.g. 2026-01-02T03:04:05.678Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


_serializer = TypeSerializer()
_deserializer = TypeDeserializer()


def to_item(values: dict[str, Any]) -> dict[str, Any]:
    """Plain values -> a DynamoDB item (None values left out, floats as rounded Decimals)."""
    return {k: _serializer.serialize(_ddb_value(v)) for k, v in values.items() if v is not None}


def _ddb_value(value: Any) -> Any:
    # DynamoDB numbers must be Decimal; round floats so a quality of 87.12345678 stays readable.
    if isinstance(value, float):
        return Decimal(str(round(value, 3)))
    return value


def from_item(item: dict[str, Any]) -> dict[str, Any]:
    """A DynamoDB item -> plain values (numbers as int or float)."""
    out: dict[str, Any] = {}
    for k, v in item.items():
        value = _deserializer.deserialize(v)
        if isinstance(value, Decimal):
            value = int(value) if value == value.to_integral_value() else float(value)
        out[k] = value
    return out


def _is_condition_failure(error: ClientError) -> bool:
    return error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException"


class Ledger:
    """Conditional reads and writes of photo, content-claim and user items."""

    def __init__(self, client: Any, table_name: str, *, now: Callable[[], str] = utc_now_iso):
        self._ddb = client
        self._table = table_name
        self._now = now

    # ---- photos -------------------------------------------------------------------------

    def get_photo(self, user_id: str | None, photo_id: str) -> dict[str, Any] | None:
        """The photo item, or None when the ledger has never seen the photo."""
        return self._get(keys.photo_pk(user_id), keys.photo_sk(photo_id))

    def record_photo(
        self,
        photo: PhotoRef,
        status: str,
        *,
        reason: str | None = None,
        detail: str | None = None,
        face_id: str | None = None,
        quality: float | None = None,
        indexed_at: str | None = None,
        replaceable: Iterable[str] = (PhotoStatus.FAILED,),
    ) -> bool:
        """Write the photo's item if it is new or in one of the ``replaceable`` states.

        Returns False (and writes nothing) when the photo already has another state, which is
        what a replayed notification sees. FAILED is replaceable by default so that a message
        redriven from the DLQ can still reach a real outcome.
        """
        item = {
            "pk": photo.pk,
            "sk": photo.sk,
            "photo_id": photo.photo_id,
            "user_id": photo.user_id,
            "bucket": photo.bucket,
            "key": photo.key,
            "version_id": photo.version_id,
            "etag": photo.etag,
            "status": status,
            "reason": reason,
            "detail": detail,
            "face_id": face_id,
            "quality": quality,
            "indexed_at": indexed_at,
            "uploaded_at": photo.uploaded_at,
            "updated_at": self._now(),
        }
        allowed = sorted(set(replaceable))
        values = {f":s{i}": {"S": s} for i, s in enumerate(allowed)}
        condition = "attribute_not_exists(pk)"
        if allowed:
            condition += f" OR #status IN ({', '.join(values)})"
        extra: dict[str, Any] = {}
        if allowed:
            extra = {"ExpressionAttributeNames": {"#status": "status"}}
            extra["ExpressionAttributeValues"] = values
        try:
            self._ddb.put_item(
                TableName=self._table, Item=to_item(item), ConditionExpression=condition, **extra
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def transition_photo(
        self,
        user_id: str | None,
        photo_id: str,
        status: str,
        *,
        from_statuses: Iterable[str],
        reason: str | None = None,
        detail: str | None = None,
        face_id: str | None = None,
        activation: str | None = None,
    ) -> bool:
        """Move an existing photo to ``status`` if it is in one of ``from_statuses``.

        With ``face_id``, only while the photo still records that face: a message about a face
        the photo no longer has (it was indexed again since) must not move it. ``activation``
        records the name of the activation execution that will settle the photo.
        Returns False when the photo is missing or in another state (nothing written).
        """
        allowed = sorted(set(from_statuses))
        names = {"#status": "status"}
        values: dict[str, Any] = {":new": {"S": status}, ":now": {"S": self._now()}}
        values.update({f":f{i}": {"S": s} for i, s in enumerate(allowed)})
        sets = ["#status = :new", "updated_at = :now"]
        removes = []
        for attr, value in (("reason", reason), ("detail", detail)):
            if value is None:
                removes.append(attr)
            else:
                values[f":{attr}"] = {"S": value}
                sets.append(f"{attr} = :{attr}")
        if activation is not None:
            values[":activation"] = {"S": activation}
            sets.append("activation = :activation")
        expression = "SET " + ", ".join(sets) + (" REMOVE " + ", ".join(removes) if removes else "")
        from_values = ", ".join(f":f{i}" for i in range(len(allowed)))
        condition = f"attribute_exists(pk) AND #status IN ({from_values})"
        if face_id is not None:
            condition += " AND face_id = :face_id"
            values[":face_id"] = {"S": face_id}
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=to_item({"pk": keys.photo_pk(user_id), "sk": keys.photo_sk(photo_id)}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    def user_photos(self, user_id: str) -> list[dict[str, Any]]:
        """Every photo item of the user (O(user's photos), one Query page per 1 MB)."""
        return self._query_prefix(keys.user_pk(user_id), "PHOTO#")

    # ---- content claims -----------------------------------------------------------------

    def claim_content(
        self,
        user_id: str,
        etag: str,
        photo_id: str,
        key: str,
        *,
        index_policy: str | None = None,
    ) -> str | None:
        """Claim one photo content (S3 ETag) for ``photo_id`` inside the user's partition.

        Returns None when ``photo_id`` holds the claim (newly, from an earlier delivery, or
        taken over from a photo that no longer holds it: deleted, failed, or rejected for a
        reason that is not final, see ``_holds_content``), else the object key of the photo
        that claimed the same content first. ``index_policy`` (photo_policy.index_policy) is
        recorded on the claim. The conditional writes make two concurrent uploads of the same
        content agree on a single winner, a takeover included: it is conditional on the owner
        it read, so of two photos taking over one released claim only one succeeds and the
        other finds the winner still being indexed.
        """
        sk = keys.content_sk(etag)
        claim = {
            "pk": keys.user_pk(user_id),
            "sk": sk,
            "photo_id": photo_id,
            "key": key,
            "etag": etag,
            "index_policy": index_policy,
            "created_at": self._now(),
        }
        for _ in range(2):  # second round only if the owner changed under us
            owner = self._get(keys.user_pk(user_id), sk, consistent=True)
            if owner is None or owner.get("photo_id") == photo_id:
                condition = "attribute_not_exists(pk) OR photo_id = :pid"
                values = {":pid": {"S": photo_id}}
            else:
                first = self.get_photo(user_id, str(owner.get("photo_id")))
                if _holds_content(first, owner, index_policy):
                    return str(owner.get("key", "?"))
                # The first photo let its content go: it is free for this one.
                condition = "photo_id = :owner"
                values = {":owner": {"S": str(owner.get("photo_id"))}}
            try:
                self._ddb.put_item(
                    TableName=self._table,
                    Item=to_item(claim),
                    ConditionExpression=condition,
                    ExpressionAttributeValues=values,
                )
            except ClientError as error:
                if not _is_condition_failure(error):
                    raise
                continue
            return None
        owner = self._get(keys.user_pk(user_id), sk, consistent=True) or {}
        return str(owner.get("key", "?"))

    # ---- users --------------------------------------------------------------------------

    def get_user(self, user_id: str) -> dict[str, Any] | None:
        """The user item, or None."""
        return self._get(keys.user_pk(user_id), keys.USER_SK, consistent=True)

    def list_users(
        self, limit: int, exclusive_start: dict[str, Any] | None = None
    ) -> tuple[list[dict[str, Any]], dict[str, Any] | None]:
        """One page of user items in UserId order from the ``users`` GSI, and the page's end.

        Returns (items, last key): pass the last key back as ``exclusive_start`` for the next
        page; None means there is none. One more item than asked is read so that the last page
        says so (no empty extra page). A GSI read is eventually consistent: a user created a
        moment ago may show up a moment later.
        """
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "IndexName": USERS_INDEX,
            "KeyConditionExpression": "kind = :kind",
            "ExpressionAttributeValues": {":kind": {"S": USER_KIND}},
            "Limit": limit + 1,
        }
        if exclusive_start:
            kwargs["ExclusiveStartKey"] = to_item(exclusive_start)
        page = self._ddb.query(**kwargs)
        items = [from_item(i) for i in page.get("Items", [])]
        if len(items) > limit:
            items = items[:limit]
            last = items[-1]
            return items, {k: last[k] for k in ("pk", "sk", "kind", "user_id")}
        # Fewer than asked yet a LastEvaluatedKey: DynamoDB stopped at its 1 MB page size.
        end = page.get("LastEvaluatedKey")
        return items, (from_item(end) if end else None)

    def ensure_user(self, user_id: str) -> dict[str, Any]:
        """Create the user item (CREATED) unless a live one exists; return the stored item.

        A user item left DELETED by a right-to-be-forgotten request is started afresh (new
        ``created_at``), so a later enrollment under the same id is a new user.
        """
        now = self._now()
        item = {
            "pk": keys.user_pk(user_id),
            "sk": keys.USER_SK,
            "kind": USER_KIND,
            "user_id": user_id,
            "status": UserStatus.CREATED,
            "face_count": 0,
            "created_at": now,
            "updated_at": now,
        }
        try:
            self._ddb.put_item(
                TableName=self._table,
                Item=to_item(item),
                ConditionExpression="attribute_not_exists(pk) OR #status = :deleted",
                ExpressionAttributeNames={"#status": "status"},
                ExpressionAttributeValues={":deleted": {"S": UserStatus.DELETED}},
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise
            existing = self.get_user(user_id)
            if existing is not None:
                return existing
            raise  # deleted between the two calls: let the message be retried
        return item

    def mark_user_updating(
        self, user_id: str, face_count: int, counted_at: int | None = None
    ) -> None:
        """Record that associations for the user are in flight (UPDATING, with its face count
        as observed at ``counted_at``, epoch microseconds; see record_face_count)."""
        self._ddb.update_item(
            TableName=self._table,
            Key=to_item({"pk": keys.user_pk(user_id), "sk": keys.USER_SK}),
            UpdateExpression=(
                "SET #status = :updating, updated_at = :now "
                "REMOVE reason, activated_at, activation_seconds"
            ),
            # An erased or erasing user must not be flipped back to UPDATING by a late batch.
            ConditionExpression="attribute_exists(pk) AND NOT (#status IN (:deleted, :erasing))",
            ExpressionAttributeNames={"#status": "status"},
            ExpressionAttributeValues={
                ":updating": {"S": UserStatus.UPDATING},
                ":now": {"S": self._now()},
                ":deleted": {"S": UserStatus.DELETED},
                ":erasing": {"S": UserStatus.ERASING},
            },
        )
        self.record_face_count(user_id, face_count, counted_at)

    def record_face_count(self, user_id: str, face_count: int, counted_at: int | None) -> bool:
        """Store the user's face count unless a later observation is already stored.

        Two associate functions can handle one user at once; each counts the user's faces
        (ListFaces) after its own association and writes the count. The count observed last
        includes every association finished before it, so it wins whatever order the writes
        arrive in: ``face_count_counted_at`` (epoch microseconds, taken before the ListFaces
        call) only moves forward. False when a later count was already there.
        """
        counted_at = time.time_ns() // 1000 if counted_at is None else counted_at
        return self._update_user_if(
            user_id,
            "SET face_count = :count, face_count_counted_at = :at",
            "attribute_exists(pk) AND NOT (#status IN (:deleted, :erasing)) AND "
            "(attribute_not_exists(face_count_counted_at) OR face_count_counted_at < :at)",
            {"#status": "status"},
            {
                ":count": {"N": str(face_count)},
                ":at": {"N": str(counted_at)},
                ":deleted": {"S": UserStatus.DELETED},
                ":erasing": {"S": UserStatus.ERASING},
            },
        )

    # The user item remembers that its Rekognition user exists (``rekognition_user_created_at``),
    # so a batch for a known user skips CreateUser (5 TPS per account). The mark belongs to one
    # incarnation of the item: a DELETED tombstone restarted by ensure_user is a fresh item
    # without it. Clearing it is always safe (it costs one CreateUser, answered Conflict at worst).

    def mark_rekognition_user(self, user_id: str, user_created_at: str) -> bool:
        """Record that the Rekognition user exists (CreateUser succeeded or was Conflict).

        Conditional on the item's ``created_at`` (the same incarnation) and on no erasure having
        started meanwhile; False (nothing written) otherwise.
        """
        return self._update_user_if(
            user_id,
            "SET rekognition_user_created_at = :now",
            "created_at = :created AND NOT (#status IN (:deleted, :erasing))",
            {"#status": "status"},
            {
                ":now": {"S": self._now()},
                ":created": {"S": user_created_at},
                ":deleted": {"S": UserStatus.DELETED},
                ":erasing": {"S": UserStatus.ERASING},
            },
        )

    def forget_rekognition_user(self, user_id: str) -> None:
        """The Rekognition user is gone (erased, or deleted behind our back): drop the mark so
        the next batch calls CreateUser again.

        ``rekognition_user_forgotten_at`` records when: the next CreateUser's token includes
        it, since the old token would only replay the cached "created" answer.
        """
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=to_item({"pk": keys.user_pk(user_id), "sk": keys.USER_SK}),
                UpdateExpression=(
                    "SET rekognition_user_forgotten_at = :now REMOVE rekognition_user_created_at"
                ),
                ConditionExpression="attribute_exists(pk)",
                ExpressionAttributeValues={":now": {"S": self._now()}},
            )
        except ClientError as error:
            if not _is_condition_failure(error):
                raise

    # ---- erasure ------------------------------------------------------------------------
    # The user item doubles as the erasure's tombstone: status ERASING then DELETED, and an
    # ``erasure`` map (requested_at, step, face_ids, receipt, completed_at). Every update is
    # conditional on the map's requested_at, so a worker of a superseded erasure writes nothing,
    # and re-asserts ERASING (a late activation may have flipped the status meanwhile).

    def start_erasure(self, user_id: str, erasure: dict[str, Any]) -> dict[str, Any] | None:
        """Make the user item an ERASING tombstone carrying ``erasure``; return the stored item.

        Creates the item when missing (listable: ``kind`` and ``user_id``) and keeps its other
        attributes. None when an erasure is already running (nothing written): resume that one.
        """
        now = self._now()
        try:
            response = self._ddb.update_item(
                TableName=self._table,
                Key=to_item({"pk": keys.user_pk(user_id), "sk": keys.USER_SK}),
                UpdateExpression=(
                    "SET #status = :erasing, #kind = :kind, user_id = :uid, erasure = :erasure, "
                    "updated_at = :now, created_at = if_not_exists(created_at, :now), "
                    "face_count = if_not_exists(face_count, :zero)"
                ),
                ConditionExpression="attribute_not_exists(pk) OR #status <> :erasing",
                ExpressionAttributeNames={"#status": "status", "#kind": "kind"},
                ExpressionAttributeValues={
                    ":erasing": {"S": UserStatus.ERASING},
                    ":kind": {"S": USER_KIND},
                    ":uid": {"S": user_id},
                    ":erasure": _serializer.serialize(erasure),
                    ":now": {"S": now},
                    ":zero": {"N": "0"},
                },
                ReturnValues="ALL_NEW",
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return None
            raise
        return from_item(response["Attributes"])

    def update_erasure(
        self,
        user_id: str,
        requested_at: str,
        *,
        step: str | None = None,
        face_ids: list[str] | None = None,
        add_counts: dict[str, int] | None = None,
        receipt: dict[str, Any] | None = None,
        fields: dict[str, Any] | None = None,
    ) -> bool:
        """Record the erasure's progress: its ``step``, ``face_ids``, counts added to the receipt
        (atomic increments: concurrent deliveries never lose a count), ``receipt`` and erasure
        ``fields`` set as given. False when the tombstone belongs to another request or is
        already DELETED (nothing written).
        """
        names = {"#status": "status"}
        values: dict[str, Any] = {
            ":erasing": {"S": UserStatus.ERASING},
            ":deleted": {"S": UserStatus.DELETED},
            ":req": {"S": requested_at},
            ":now": {"S": self._now()},
        }
        sets = ["#status = :erasing", "updated_at = :now"]
        assignments: list[tuple[str, Any]] = [("step", step), ("face_ids", face_ids)]
        assignments += list((fields or {}).items())
        for i, (name, value) in enumerate(assignments):
            if value is not None:
                names[f"#e{i}"] = name
                values[f":e{i}"] = _serializer.serialize(value)
                sets.append(f"erasure.#e{i} = :e{i}")
        for i, (name, value) in enumerate((receipt or {}).items()):
            names[f"#r{i}"] = name
            values[f":r{i}"] = _serializer.serialize(value)
            sets.append(f"erasure.receipt.#r{i} = :r{i}")
        for i, (name, amount) in enumerate((add_counts or {}).items()):
            if amount:
                names[f"#c{i}"] = name
                values[f":c{i}"] = {"N": str(amount)}
                sets.append(f"erasure.receipt.#c{i} = erasure.receipt.#c{i} + :c{i}")
        return self._update_user_if(
            user_id,
            "SET " + ", ".join(sets),
            "erasure.requested_at = :req AND #status <> :deleted",
            names,
            values,
        )

    def finish_erasure(
        self,
        user_id: str,
        requested_at: str,
        *,
        step: str,
        completed_at: str,
        drop: tuple[str, ...] = (),
    ) -> bool:
        """Turn the ERASING tombstone into DELETED with the final ``step`` and completion time,
        removing the erasure's bookkeeping ``drop`` fields.

        False when it belongs to another request or is already DELETED (nothing written).
        """
        names = {"#status": "status"}
        names.update({f"#d{i}": name for i, name in enumerate(drop)})
        removes = ", ".join(
            ["reason", "activated_at", "activation_seconds"]
            + [f"erasure.#d{i}" for i in range(len(drop))]
        )
        return self._update_user_if(
            user_id,
            "SET #status = :deleted, updated_at = :done, face_count = :zero, "
            "erasure.step = :step, erasure.completed_at = :done, "
            f"erasure.receipt.completed_at = :done REMOVE {removes}",
            "erasure.requested_at = :req AND #status <> :deleted",
            names,
            {
                ":deleted": {"S": UserStatus.DELETED},
                ":req": {"S": requested_at},
                ":done": {"S": completed_at},
                ":zero": {"N": "0"},
                ":step": {"S": step},
            },
        )

    def user_partition_items(self, user_id: str) -> list[dict[str, Any]]:
        """Every item of the user's partition but the user item: photos, content claims..."""
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk",
            "ExpressionAttributeValues": {":pk": {"S": keys.user_pk(user_id)}},
            "ConsistentRead": True,
        }
        while True:
            page = self._ddb.query(**kwargs)
            items.extend(from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return [i for i in items if i.get("sk") != keys.USER_SK]
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    def has_user_items(self, user_id: str) -> bool:
        """Whether the user's partition holds anything besides the user item."""
        page = self._ddb.query(
            TableName=self._table,
            KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": keys.user_pk(user_id)}},
            ProjectionExpression="sk",
            Limit=2,  # the user item and one more at most
            ConsistentRead=True,
        )
        return any(from_item(i).get("sk") != keys.USER_SK for i in page.get("Items", []))

    def delete_partition_item(self, user_id: str, sk: str) -> bool:
        """Delete one item of the user's partition (never the user item); True if it existed."""
        if sk == keys.USER_SK:
            raise ValueError("the user item is the erasure's tombstone and is never deleted")
        response = self._ddb.delete_item(
            TableName=self._table,
            Key=to_item({"pk": keys.user_pk(user_id), "sk": sk}),
            ReturnValues="ALL_OLD",
        )
        return bool(response.get("Attributes"))

    def _update_user_if(
        self,
        user_id: str,
        expression: str,
        condition: str,
        names: dict[str, str],
        values: dict[str, Any],
    ) -> bool:
        """A conditional update of the user item; False (nothing written) when the condition
        does not hold."""
        try:
            self._ddb.update_item(
                TableName=self._table,
                Key=to_item({"pk": keys.user_pk(user_id), "sk": keys.USER_SK}),
                UpdateExpression=expression,
                ConditionExpression=condition,
                ExpressionAttributeNames=names,
                ExpressionAttributeValues=values,
            )
        except ClientError as error:
            if _is_condition_failure(error):
                return False
            raise
        return True

    # ---- plumbing -----------------------------------------------------------------------

    def _get(self, pk: str, sk: str, *, consistent: bool = True) -> dict[str, Any] | None:
        response = self._ddb.get_item(
            TableName=self._table,
            Key=to_item({"pk": pk, "sk": sk}),
            ConsistentRead=consistent,
        )
        item = response.get("Item")
        return from_item(item) if item else None

    def _query_prefix(self, pk: str, sk_prefix: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        kwargs: dict[str, Any] = {
            "TableName": self._table,
            "KeyConditionExpression": "pk = :pk AND begins_with(sk, :prefix)",
            "ExpressionAttributeValues": {":pk": {"S": pk}, ":prefix": {"S": sk_prefix}},
            "ConsistentRead": True,
        }
        while True:
            page = self._ddb.query(**kwargs)
            items.extend(from_item(i) for i in page.get("Items", []))
            if "LastEvaluatedKey" not in page:
                return items
            kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]
