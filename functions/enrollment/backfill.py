"""Backfill: objects already in the bucket -> the upload queue, as S3 would have notified them.

Existing objects fire no S3 event, so a bucket that held photos before the pipeline existed never
enrolls them. A backfill reads object records (a listing or an S3 Inventory), keeps the current
versions under the enrollment prefix, leaves out photos the ledger already holds, and sends one
``messages.s3_notification`` body per photo to the upload queue, paced by a token bucket at the
IndexFaces rate. The index stage cannot tell these messages from S3's own: same key encoding,
same version id (the photo's id is a function of bucket, key and version, ``keys.photo_id``, so
a version id left out would make a second photo of the same object), same ETag and size. Only
``s3.configurationId`` says where a message came from (``BACKFILL_CONFIGURATION_ID``); the index
stage does not read it.

Python API (the ``enroll backfill`` command, the bulk Lambda and the load benchmark use it)::

    from enrollment.backfill import BackfillTarget, ListingSource, run_backfill

    target = BackfillTarget(s3=s3, sqs=sqs, dynamodb=dynamodb, bucket="face-enrollment-photos",
                            prefix="enroll/", queue_url=upload_queue_url, table=ledger_table)
    result = run_backfill(ListingSource(s3, target.bucket, target.prefix), target, rate=45.0,
                          checkpoint=CheckpointFile(path), progress=callback, stop=event)
    result.enqueued, result.skipped_enrolled, result.as_dict()

- ``source``: ``ListingSource`` (ListObjectVersions: the current version of every key, with its
  version id), ``ManifestSource`` (an S3 Inventory manifest, CSV or Parquet) or ``ItemsSource``
  (records already in hand, e.g. a distributed map's batch).
- ``rate``: messages per second (each one is an IndexFaces call downstream).
- ``checkpoint``: where the position is saved after each sent batch (``CheckpointFile``); a run
  given a checkpoint holding a position of the same source continues after it. Cleared when the
  run completes, so the next run lists everything again (the ledger then skips what is enrolled).
- ``progress``: called with the running ``BackfillResult`` after each batch and at the end.
- ``stop``: a ``threading.Event``; once set, the run returns after the batch in hand, its
  checkpoint saved (``result.stopped``). Safe to call from a thread.

Delivery is at least once: a run interrupted after a SendMessageBatch and before its checkpoint
write sends that batch again on resume, which the index stage absorbs (its ledger writes are
conditional, and IndexFaces is deduplicated by ExternalImageId).
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import unquote_plus

from botocore.exceptions import BotoCoreError, ClientError

from . import keys
from .ledger import utc_now_iso
from .messages import s3_notification

#: ``s3.configurationId`` of the notifications a backfill sends (S3 puts the name of the bucket's
#: notification configuration there). The index stage ignores it; it tells an operator reading a
#: message (or a DLQ) that it came from a backfill, not from S3 or the associate stage's requeue.
BACKFILL_CONFIGURATION_ID = "enroll-backfill"
#: SendMessageBatch takes at most 10 entries (SQS quota).
SQS_MAX_BATCH = 10
#: BatchGetItem takes at most 100 keys.
DYNAMODB_MAX_BATCH_GET = 100
#: Attempts of one entry (or of the unprocessed keys of a BatchGetItem) before the run stops.
MAX_ATTEMPTS = 8
#: First pause between two attempts (seconds), doubled each time, at most BACKOFF_MAX_S.
BACKOFF_FIRST_S = 0.2
BACKOFF_MAX_S = 10.0
#: Share of the IndexFaces quota a backfill takes by default (``enroll backfill``, the stack's
#: distributed map). Live uploads draw on the same quota, and the index stage retries its
#: throttled calls within it: 10% headroom keeps them flowing while a backlog drains, instead of
#: every live upload waiting behind the backlog's throttling errors.
DEFAULT_QUOTA_SHARE = 0.9
#: S3 Inventory manifest fileFormat values this module reads (ORC is not).
MANIFEST_FORMATS = ("CSV", "Parquet")


class BackfillError(Exception):
    """The backfill cannot start or go on (a missing bucket, a bad manifest, refused sends)."""


class ManifestError(BackfillError):
    """The manifest is not an S3 Inventory manifest this module can read."""


@dataclass(frozen=True)
class ObjectRecord:
    """One object version as a listing or an inventory describes it (key decoded)."""

    bucket: str
    key: str
    version_id: str | None = None
    etag: str | None = None
    size: int | None = None
    last_modified: str | None = None  # ISO-8601, S3's time of the upload
    is_latest: bool = True
    is_delete_marker: bool = False


@dataclass
class BackfillResult:
    """What a run did; ``as_dict()`` is the summary the CLI prints and the Lambda returns."""

    listed: int = 0
    enqueued: int = 0
    skipped_enrolled: int = 0  # the ledger already holds the photo (any outcome)
    skipped_not_photo: int = 0  # outside the prefix, a folder marker, another bucket
    skipped_not_current: int = 0  # an old version or a delete marker (inventories list them)
    failed: int = 0  # entries SQS refused after every attempt (the run stopped there)
    seconds: float = 0.0
    stopped: bool = False  # interrupted by ``stop``; the checkpoint holds the position
    resumed: bool = False  # continued from a checkpoint
    error: str | None = None

    @property
    def rate(self) -> float:
        """Messages enqueued per second over the run."""
        return self.enqueued / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        """Every count, the duration and the rate (messages/s)."""
        return {**asdict(self), "seconds": round(self.seconds, 3), "rate": round(self.rate, 3)}


@dataclass(frozen=True)
class BackfillTarget:
    """Where a backfill reads and writes: boto3 clients and the stack's resource names."""

    s3: Any
    sqs: Any
    dynamodb: Any
    bucket: str
    prefix: str
    queue_url: str
    table: str


# -- sources ----------------------------------------------------------------------------------

#: A position in a source: JSON-serialisable; the source resumes right after it.
Cursor = dict[str, Any]


class Source(Protocol):
    """Object records in a stable order, each with the cursor that resumes after it."""

    def identity(self) -> str:
        """What the source reads (a checkpoint of another source is not used)."""
        ...

    def records(self, after: Cursor | None = None) -> Iterator[tuple[ObjectRecord, Cursor]]:
        """The records after ``after`` (all of them when None), with their cursors."""
        ...


class ListingSource:
    """The current version of every object under ``prefix`` (ListObjectVersions).

    ListObjectVersions rather than ListObjectsV2: the bucket is versioned and the index stage
    keys a photo by its version (S3's notification carries ``versionId``), so the backfill must
    name the same version. Keys come in lexicographic order, so the cursor is the last key; a
    resumed listing starts at ``KeyMarker`` and also drops keys up to it itself (an emulator
    that treats KeyMarker as inclusive would otherwise hand the last key again).
    """

    def __init__(self, s3: Any, bucket: str, prefix: str, *, page_size: int = 1000) -> None:
        self._s3 = s3
        self.bucket = bucket
        self.prefix = prefix
        self._page_size = page_size

    def identity(self) -> str:
        return f"listing s3://{self.bucket}/{self.prefix}"

    def records(self, after: Cursor | None = None) -> Iterator[tuple[ObjectRecord, Cursor]]:
        after_key = (after or {}).get("after_key")
        request: dict[str, Any] = {
            "Bucket": self.bucket,
            "Prefix": self.prefix,
            "MaxKeys": self._page_size,
        }
        if after_key:
            request["KeyMarker"] = after_key
        while True:
            try:
                page = self._s3.list_object_versions(**request)
            except ClientError as error:
                raise _bucket_error(error, self.bucket) from error
            for version in page.get("Versions", []):
                key = version["Key"]
                if not version.get("IsLatest", True) or (after_key and key <= after_key):
                    continue
                record = ObjectRecord(
                    bucket=self.bucket,
                    key=key,
                    version_id=_version_id(version.get("VersionId")),
                    etag=_etag(version.get("ETag")),
                    size=version.get("Size"),
                    last_modified=_iso(version.get("LastModified")),
                )
                yield record, {"after_key": key}
            if not page.get("IsTruncated"):
                return
            request["KeyMarker"] = page.get("NextKeyMarker")
            if page.get("NextVersionIdMarker"):
                request["VersionIdMarker"] = page["NextVersionIdMarker"]
            else:
                request.pop("VersionIdMarker", None)


#: Reads one Parquet inventory file (its bytes) into row dicts (Parquet column names).
ParquetReader = Callable[[bytes], Iterator[dict[str, Any]]]

# The inventory's CSV columns (fileSchema names) and their Parquet spellings.
_PARQUET_COLUMNS = {
    "bucket": "Bucket",
    "key": "Key",
    "version_id": "VersionId",
    "is_latest": "IsLatest",
    "is_delete_marker": "IsDeleteMarker",
    "size": "Size",
    "last_modified_date": "LastModifiedDate",
    "e_tag": "ETag",
}


class ManifestSource:
    """The objects of an S3 Inventory report: ``manifest.json`` and its data files.

    The manifest names the format (``fileFormat``), the columns (``fileSchema``) and the data
    files (``files[].key`` in ``destinationBucket``). CSV files are gzip-compressed, without a
    header, their columns in ``fileSchema``'s order, and keys URL-encoded (S3's inventory
    documentation: "the key name is URL-encoded and must be decoded before you can use it").
    Parquet files carry their own column names and plain keys; reading them needs
    ``parquet_reader`` (pyarrow, which the Lambda bundle does not ship). The cursor is the data
    file's index in ``files`` and the rows of it already handled.
    """

    def __init__(
        self,
        s3: Any,
        manifest: dict[str, Any],
        *,
        location: str,
        parquet_reader: ParquetReader | None = None,
    ) -> None:
        self._s3 = s3
        self.location = location
        self._parquet_reader = parquet_reader
        problems = manifest_problems(manifest)
        if problems:
            raise ManifestError(
                f"{location} is not an S3 Inventory manifest: {'; '.join(problems)}"
            )
        self.file_format = str(manifest["fileFormat"])
        if self.file_format not in MANIFEST_FORMATS:
            raise ManifestError(
                f"{location}: fileFormat {self.file_format!r} is not supported (only "
                f"{' and '.join(MANIFEST_FORMATS)}); configure the inventory with one of them"
            )
        if self.file_format == "Parquet" and parquet_reader is None:
            raise ManifestError(f"{location}: reading a Parquet inventory needs pyarrow")
        self.source_bucket = str(manifest["sourceBucket"])
        self.destination_bucket = _bucket_of(str(manifest["destinationBucket"]))
        self.columns = [part.strip() for part in str(manifest["fileSchema"]).split(",")]
        self.files = [str(entry["key"]) for entry in manifest["files"]]
        if self.file_format == "CSV" and "Key" not in self.columns:
            raise ManifestError(f"{location}: fileSchema has no Key column: {self.columns}")

    @classmethod
    def load(
        cls, s3: Any, location: str, *, parquet_reader: ParquetReader | None = None
    ) -> ManifestSource:
        """Read the manifest at ``s3://bucket/key`` or a local path."""
        if location.startswith("s3://"):
            bucket, _, key = location[len("s3://") :].partition("/")
            try:
                body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            except ClientError as error:
                raise ManifestError(f"cannot read {location}: {_describe(error)}") from error
        else:
            try:
                body = Path(location).read_bytes()
            except OSError as error:
                raise ManifestError(f"cannot read {location}: {error.strerror}") from error
        try:
            manifest = json.loads(body)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ManifestError(f"{location} is not JSON: {error}") from None
        if not isinstance(manifest, dict):
            raise ManifestError(f"{location} is not an S3 Inventory manifest (not an object)")
        return cls(s3, manifest, location=location, parquet_reader=parquet_reader)

    def identity(self) -> str:
        return f"manifest {self.location}"

    def records(self, after: Cursor | None = None) -> Iterator[tuple[ObjectRecord, Cursor]]:
        start_file = int((after or {}).get("file", 0))
        start_row = int((after or {}).get("row", 0))
        for index, file_key in enumerate(self.files):
            if index < start_file:
                continue
            skip = start_row if index == start_file else 0
            for row_number, row in enumerate(self._rows(file_key)):
                if row_number < skip:
                    continue
                yield self._record(row), {"file": index, "row": row_number + 1}

    def _rows(self, file_key: str) -> Iterator[dict[str, Any]]:
        try:
            body = self._s3.get_object(Bucket=self.destination_bucket, Key=file_key)["Body"]
        except ClientError as error:
            raise ManifestError(
                f"cannot read inventory file s3://{self.destination_bucket}/{file_key}: "
                f"{_describe(error)}"
            ) from error
        if self.file_format == "Parquet":
            assert self._parquet_reader is not None
            for row in self._parquet_reader(body.read()):
                yield {_PARQUET_COLUMNS.get(name, name): value for name, value in row.items()}
            return
        with gzip.GzipFile(fileobj=body) as raw:
            text = io.TextIOWrapper(raw, encoding="utf-8", newline="")
            try:
                for values in csv.reader(text):
                    if len(values) != len(self.columns):
                        raise ManifestError(
                            f"{file_key}: a row has {len(values)} columns, fileSchema "
                            f"{len(self.columns)}"
                        )
                    row = dict(zip(self.columns, values, strict=True))
                    # CSV inventories URL-encode keys (form encoding: '+' is a space).
                    row["Key"] = unquote_plus(row["Key"])
                    yield row
            except (OSError, EOFError) as error:
                raise ManifestError(f"{file_key} is not a gzip CSV file: {error}") from None

    def _record(self, row: dict[str, Any]) -> ObjectRecord:
        return record_from_inventory(row, default_bucket=self.source_bucket)


class ItemsSource:
    """Records already in hand (a distributed map's batch of inventory rows, a test's list).

    ``url_encoded_keys``: the items are CSV inventory rows, whose keys are URL-encoded.
    """

    def __init__(self, items: Iterable[dict[str, Any]], *, url_encoded_keys: bool = False) -> None:
        self._items = list(items)
        self._url_encoded = url_encoded_keys

    def identity(self) -> str:
        digest = hashlib.sha256(json.dumps(self._items, sort_keys=True).encode()).hexdigest()
        return f"items {digest[:16]}"

    def records(self, after: Cursor | None = None) -> Iterator[tuple[ObjectRecord, Cursor]]:
        start = int((after or {}).get("item", 0))
        for index, item in enumerate(self._items):
            if index < start:
                continue
            row = dict(item)
            if self._url_encoded and isinstance(row.get("Key"), str):
                row["Key"] = unquote_plus(row["Key"])
            yield record_from_inventory(row), {"item": index + 1}


def manifest_problems(manifest: dict[str, Any]) -> list[str]:
    """What keeps ``manifest`` from being an S3 Inventory manifest (empty when it is one)."""
    problems = []
    for name in ("sourceBucket", "destinationBucket", "fileFormat", "fileSchema"):
        if not isinstance(manifest.get(name), str) or not manifest.get(name):
            problems.append(f"no {name}")
    files = manifest.get("files")
    if not isinstance(files, list):
        problems.append("no files list")
    elif not all(isinstance(entry, dict) and isinstance(entry.get("key"), str) for entry in files):
        problems.append("files[] entries must each have a key")
    return problems


def record_from_inventory(row: dict[str, Any], *, default_bucket: str = "") -> ObjectRecord:
    """An inventory row (CSV fileSchema column names, key already decoded) as a record."""
    key = row.get("Key")
    if not isinstance(key, str) or not key:
        raise ManifestError(f"inventory row without a Key: {row}")
    size = row.get("Size")
    return ObjectRecord(
        bucket=str(row.get("Bucket") or default_bucket),
        key=key,
        version_id=_version_id(row.get("VersionId")),
        etag=_etag(row.get("ETag")),
        size=int(size) if size not in (None, "") else None,
        last_modified=_iso(row.get("LastModifiedDate")),
        is_latest=_flag(row.get("IsLatest"), default=True),
        is_delete_marker=_flag(row.get("IsDeleteMarker"), default=False),
    )


# -- pacing -----------------------------------------------------------------------------------


class TokenBucket:
    """``rate`` tokens a second, at most ``capacity`` saved up; ``acquire`` waits for them.

    One token is one message (one IndexFaces call downstream). The bucket starts full, so a run
    sends its first batch at once; ``capacity`` must hold a whole batch.
    """

    def __init__(
        self,
        rate: float,
        capacity: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if not rate > 0:
            raise ValueError(f"rate must be positive, got {rate!r}")
        if not capacity >= 1:
            raise ValueError(f"capacity must be at least 1, got {capacity!r}")
        self.rate = float(rate)
        self.capacity = float(capacity)
        self._clock = clock
        self._sleep = sleep
        self._tokens = self.capacity
        self._stamp = clock()

    def _refill(self) -> None:
        now = self._clock()
        self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
        self._stamp = now

    def wait_time(self, n: float) -> float:
        """Seconds until ``n`` tokens are there (0 when they are now)."""
        if n > self.capacity:
            raise ValueError(f"cannot take {n} tokens from a bucket of {self.capacity}")
        self._refill()
        return max(0.0, (n - self._tokens) / self.rate)

    def acquire(self, n: float, stop: threading.Event | None = None) -> bool:
        """Take ``n`` tokens, waiting as long as needed; False if ``stop`` was set meanwhile."""
        while True:
            delay = self.wait_time(n)
            if delay <= 0:
                self._tokens -= n
                return True
            if stop is not None:
                if stop.wait(delay):
                    return False
            else:
                self._sleep(delay)


# -- checkpoint -------------------------------------------------------------------------------


class CheckpointFile:
    """The position of a run in a JSON file, replaced atomically (write, fsync, rename)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)

    def load(self, identity: str) -> Cursor | None:
        """The saved cursor for the source ``identity``; None when none (or another source's)."""
        try:
            saved = json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as error:
            raise BackfillError(
                f"checkpoint {self.path} is unreadable ({error}); pass --restart"
            ) from None
        if not isinstance(saved, dict) or saved.get("source") != identity:
            return None
        cursor = saved.get("cursor")
        return cursor if isinstance(cursor, dict) else None

    def save(self, identity: str, cursor: Cursor, result: BackfillResult) -> None:
        """Record ``cursor`` as the position of the source ``identity``."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        document = {
            "source": identity,
            "cursor": cursor,
            "enqueued": result.enqueued,
            "saved_at": utc_now_iso(),
        }
        partial = self.path.with_name(self.path.name + ".tmp")
        with open(partial, "w", encoding="utf-8") as handle:
            json.dump(document, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(partial, self.path)

    def clear(self) -> None:
        """Forget the position (the run completed)."""
        self.path.unlink(missing_ok=True)


# -- the run ----------------------------------------------------------------------------------


@dataclass
class _Candidate:
    record: ObjectRecord
    cursor: Cursor
    user_id: str | None
    photo_id: str


@dataclass
class _Run:
    source: Source
    target: BackfillTarget
    bucket: TokenBucket
    checkpoint: CheckpointFile | None
    progress: Callable[[BackfillResult], None] | None
    stop: threading.Event | None
    sleep: Callable[[float], None]
    result: BackfillResult = field(default_factory=BackfillResult)

    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()


def run_backfill(
    source: Source,
    target: BackfillTarget,
    *,
    rate: float,
    checkpoint: CheckpointFile | None = None,
    progress: Callable[[BackfillResult], None] | None = None,
    stop: threading.Event | None = None,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> BackfillResult:
    """Enqueue the photos of ``source`` that the ledger does not hold; see the module docstring.

    Raises BackfillError before anything is sent when the source cannot be read at all (a
    missing bucket, a bad manifest). A send that fails for good stops the run with
    ``result.error`` and ``result.failed`` set; the checkpoint stays before it.
    """
    started = clock()
    run = _Run(
        source=source,
        target=target,
        bucket=TokenBucket(rate, max(float(SQS_MAX_BATCH), rate), clock=clock, sleep=sleep),
        checkpoint=checkpoint,
        progress=progress,
        stop=stop,
        sleep=sleep,
    )
    identity = source.identity()
    after = checkpoint.load(identity) if checkpoint is not None else None
    run.result.resumed = after is not None
    chunk: list[tuple[ObjectRecord, Cursor]] = []
    last_cursor: Cursor | None = after
    try:
        for record, cursor in source.records(after):
            chunk.append((record, cursor))
            if len(chunk) >= DYNAMODB_MAX_BATCH_GET:
                last_cursor = _handle_chunk(run, chunk, last_cursor, identity)
                chunk = []
                if run.stopped() or run.result.error:
                    break
        else:
            if chunk:
                last_cursor = _handle_chunk(run, chunk, last_cursor, identity)
    finally:
        run.result.seconds = clock() - started
    if run.stopped() and not run.result.error:
        run.result.stopped = True
    elif checkpoint is not None and not run.result.error:
        checkpoint.clear()
    if progress is not None:
        progress(run.result)
    return run.result


def _handle_chunk(
    run: _Run, chunk: list[tuple[ObjectRecord, Cursor]], last_cursor: Cursor | None, identity: str
) -> Cursor | None:
    """Classify, check the ledger, send; the cursor everything up to which is handled."""
    result, target = run.result, run.target
    candidates: list[_Candidate] = []
    for record, cursor in chunk:
        result.listed += 1
        if not record.is_latest or record.is_delete_marker:
            result.skipped_not_current += 1
            continue
        enroll = keys.parse_enroll_key(record.key, target.prefix)
        if record.bucket != target.bucket or enroll is None or keys.is_folder_marker(record.key):
            result.skipped_not_photo += 1
            continue
        # A key without a valid UserId is still sent: the index stage records it REJECTED
        # (INVALID_USER_ID) exactly as for a live upload, so no object is left without outcome.
        photo = keys.photo_id(record.bucket, record.key, record.version_id)
        candidates.append(_Candidate(record, cursor, enroll.user_id, photo))
    held = _held_photo_ids(run, candidates)
    to_send = [c for c in candidates if c.photo_id not in held]
    result.skipped_enrolled += len(candidates) - len(to_send)
    for start in range(0, len(to_send), SQS_MAX_BATCH):
        batch = to_send[start : start + SQS_MAX_BATCH]
        if run.stopped() or not run.bucket.acquire(len(batch), run.stop):
            return last_cursor
        if not _send(run, batch):
            return last_cursor
        result.enqueued += len(batch)
        last_cursor = batch[-1].cursor
        if run.checkpoint is not None:
            run.checkpoint.save(identity, last_cursor, result)
        if run.progress is not None:
            run.progress(result)
    # Every record of the chunk is handled: skipped ones after the last sent photo too.
    last_cursor = chunk[-1][1]
    if run.checkpoint is not None:
        run.checkpoint.save(identity, last_cursor, result)
    if run.progress is not None and not to_send:
        run.progress(result)
    return last_cursor


def _held_photo_ids(run: _Run, candidates: list[_Candidate]) -> set[str]:
    """The photo ids among ``candidates`` that the ledger holds an item for (BatchGetItem)."""
    if not candidates:
        return set()
    target = run.target
    pending: list[dict[str, Any]] = [
        {"pk": {"S": keys.photo_pk(c.user_id)}, "sk": {"S": keys.photo_sk(c.photo_id)}}
        for c in candidates
    ]
    # One key can appear only once per BatchGetItem (a listing never repeats a version).
    unique = list({(k["pk"]["S"], k["sk"]["S"]): k for k in pending}.values())
    held: set[str] = set()
    request: dict[str, Any] = {target.table: {"Keys": unique, "ProjectionExpression": "pk, sk"}}
    for attempt in range(MAX_ATTEMPTS):
        try:
            answer = target.dynamodb.batch_get_item(RequestItems=request)
        except ClientError as error:
            if _error_code(error) == "ResourceNotFoundException":
                raise BackfillError(f"ledger table {target.table} does not exist") from error
            raise
        for item in answer.get("Responses", {}).get(target.table, []):
            held.add(item["sk"]["S"][len(keys.photo_sk("")) :])
        request = answer.get("UnprocessedKeys") or {}
        if not request:
            return held
        run.sleep(_backoff(attempt))
    raise BackfillError(
        f"the ledger left keys unprocessed after {MAX_ATTEMPTS} BatchGetItem attempts"
    )


def _send(run: _Run, batch: list[_Candidate]) -> bool:
    """SendMessageBatch, retrying the failed entries; False (result.error set) if some never go."""
    target, result = run.target, run.result
    bodies = {
        str(index): s3_notification(
            c.record.bucket,
            c.record.key,
            version_id=c.record.version_id,
            etag=c.record.etag,
            size=c.record.size,
            event_time=c.record.last_modified,
            configuration_id=BACKFILL_CONFIGURATION_ID,
        )
        for index, c in enumerate(batch)
    }
    pending = dict(bodies)
    last_problem = ""
    for attempt in range(MAX_ATTEMPTS):
        try:
            answer = target.sqs.send_message_batch(
                QueueUrl=target.queue_url,
                Entries=[
                    {"Id": entry_id, "MessageBody": body} for entry_id, body in pending.items()
                ],
            )
        except ClientError as error:
            if _error_code(error) in (
                "AWS.SimpleQueueService.NonExistentQueue",
                "QueueDoesNotExist",
            ):
                raise BackfillError(f"queue {target.queue_url} does not exist") from error
            last_problem = _describe(error)
        except BotoCoreError as error:
            last_problem = str(error)
        else:
            failed = answer.get("Failed", [])
            # A sender fault (a malformed entry) fails the same way every time: no retry.
            permanent = [f for f in failed if f.get("SenderFault")]
            if permanent:
                result.failed += len(pending)
                result.error = "SQS refused: " + "; ".join(
                    f"{bodies[f['Id']][:80]}...: {f.get('Code')} {f.get('Message', '')}"
                    for f in permanent
                )
                return False
            pending = {f["Id"]: pending[f["Id"]] for f in failed}
            if not pending:
                return True
            last_problem = "; ".join(f"{f.get('Code')}: {f.get('Message', '')}" for f in failed)
        run.sleep(_backoff(attempt))
    result.failed += len(pending)
    result.error = (
        f"{len(pending)} message(s) not sent after {MAX_ATTEMPTS} attempts: {last_problem}"
    )
    return False


# -- small helpers ----------------------------------------------------------------------------


def _backoff(attempt: int) -> float:
    return float(min(BACKOFF_MAX_S, BACKOFF_FIRST_S * 2**attempt))


def _error_code(error: ClientError) -> str:
    return str(error.response.get("Error", {}).get("Code", ""))


def _describe(error: ClientError) -> str:
    details = error.response.get("Error", {})
    return f"{details.get('Code', 'Error')}: {details.get('Message', '')}".rstrip(": ")


def _bucket_error(error: ClientError, bucket: str) -> BackfillError:
    if _error_code(error) == "NoSuchBucket":
        return BackfillError(f"bucket {bucket} does not exist")
    return BackfillError(f"cannot list s3://{bucket}: {_describe(error)}")


def _bucket_of(destination: str) -> str:
    """The bucket name of a manifest's destinationBucket (an ARN, ``arn:aws:s3:::name``)."""
    return destination.rsplit(":", 1)[-1]


def _version_id(value: Any) -> str | None:
    # An object written while versioning was off has the version id "null" in listings and
    # inventories, and S3's notifications leave versionId out for it.
    return None if value in (None, "", "null") else str(value)


def _etag(value: Any) -> str | None:
    # Listings quote ETags; S3 notifications and inventories do not.
    if not value:
        return None
    return str(value).strip('"') or None


def _flag(value: Any, *, default: bool) -> bool:
    if value is None or value == "":
        return default
    if isinstance(value, bool):
        return value
    return str(value).strip().lower() == "true"


def _iso(value: Any) -> str | None:
    """An ISO-8601 UTC time with milliseconds, as S3 notifications give ``eventTime``."""
    if value is None or value == "":
        return None
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    if isinstance(value, int | float):  # Parquet's TIMESTAMP_MILLIS read as a number
        return _iso(datetime.fromtimestamp(value / 1000, tz=UTC))
    return str(value)


def checkpoint_name(identity: str, queue_url: str) -> str:
    """A checkpoint file name for one source and one queue: ``backfill-<12 hex>.json``."""
    digest = hashlib.sha256(f"{identity}\n{queue_url}".encode()).hexdigest()[:12]
    return f"backfill-{digest}.json"
