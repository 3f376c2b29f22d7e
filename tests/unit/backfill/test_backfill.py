"""The backfill library on moto (in-process): what it sends, skips, retries and resumes."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest

from enroll_local.testing import aws_test_environment
from enrollment import keys
from enrollment.backfill import (
    BACKFILL_CONFIGURATION_ID,
    BackfillError,
    BackfillTarget,
    CheckpointFile,
    ItemsSource,
    ListingSource,
    ManifestError,
    ManifestSource,
    TokenBucket,
    run_backfill,
)
from enrollment.ledger import Ledger, PhotoRef, PhotoStatus, table_definition
from enrollment.messages import parse_s3_notification

from .inventory import inventory_rows, write_inventory

REGION = "us-east-1"
BUCKET = "face-enrollment-photos"
INVENTORY_BUCKET = "face-enrollment-inventory"
TABLE = "face-enrollment-ledger"
PREFIX = "enroll/"
#: A key that needs every part of S3's form-URL encoding: space, '+', non-ASCII.
AWKWARD_KEY = "enroll/alice/été 1+1.jpg"


class FakeClock:
    """time.monotonic and time.sleep for a test: sleeping advances the clock, nothing waits."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


@dataclass
class World:
    s3: Any
    sqs: Any
    ddb: Any
    queue_url: str
    target: BackfillTarget
    ledger: Ledger

    def put(self, key: str, body: bytes = b"photo") -> str:
        return str(
            self.s3.put_object(Bucket=BUCKET, Key=key, Body=body + key.encode())["VersionId"]
        )

    def messages(self) -> list[str]:
        bodies: list[str] = []
        while True:
            got = self.sqs.receive_message(
                QueueUrl=self.queue_url, MaxNumberOfMessages=10, VisibilityTimeout=600
            ).get("Messages", [])
            if not got:
                return bodies
            bodies += [m["Body"] for m in got]


@pytest.fixture
def world() -> Iterator[World]:
    from moto import mock_aws

    with aws_test_environment(), mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        sqs = boto3.client("sqs", region_name=REGION)
        ddb = boto3.client("dynamodb", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        s3.create_bucket(Bucket=INVENTORY_BUCKET)
        ddb.create_table(**table_definition(TABLE))
        queue_url = sqs.create_queue(QueueName="face-enrollment-upload")["QueueUrl"]
        target = BackfillTarget(
            s3=s3,
            sqs=sqs,
            dynamodb=ddb,
            bucket=BUCKET,
            prefix=PREFIX,
            queue_url=queue_url,
            table=TABLE,
        )
        yield World(s3, sqs, ddb, queue_url, target, Ledger(ddb, TABLE))


def sent_objects(bodies: list[str]) -> list[tuple[str, str | None]]:
    found = []
    for body in bodies:
        found += [(o.key, o.version_id) for o in parse_s3_notification(body)]
    return found


# -- the token bucket ---------------------------------------------------------------------------


def test_token_bucket_holds_the_rate_on_a_fake_clock() -> None:
    clock = FakeClock()
    bucket = TokenBucket(5.0, 10.0, clock=clock, sleep=clock.sleep)
    # Given a full bucket, a batch goes at once...
    assert bucket.acquire(10)
    assert clock.now == 0.0
    # ...and the next waits for 10 new tokens at 5 a second.
    assert bucket.wait_time(10) == pytest.approx(2.0)
    for _ in range(9):
        assert bucket.acquire(10)
    # 100 messages: 10 at once, 90 more at 5/s.
    assert clock.now == pytest.approx(18.0)
    assert all(s > 0 for s in clock.slept)


def test_token_bucket_saves_up_no_more_than_its_capacity() -> None:
    clock = FakeClock()
    bucket = TokenBucket(2.0, 10.0, clock=clock, sleep=clock.sleep)
    bucket.acquire(10)
    clock.now += 3600  # an hour idle earns 10 tokens, not 7,200
    assert bucket.acquire(10)
    assert bucket.wait_time(1) == pytest.approx(0.5)


def test_token_bucket_returns_false_when_stopped_while_waiting() -> None:
    clock = FakeClock()
    bucket = TokenBucket(1.0, 10.0, clock=clock, sleep=clock.sleep)
    bucket.acquire(10)
    stop = threading.Event()
    stop.set()
    assert bucket.acquire(10, stop) is False


def test_token_bucket_refuses_nonsense() -> None:
    with pytest.raises(ValueError):
        TokenBucket(0, 10)
    with pytest.raises(ValueError):
        TokenBucket(1, 10).wait_time(11)


# -- a listing --------------------------------------------------------------------------------


def test_listing_sends_current_photos_as_s3_would_and_skips_the_rest(world: World) -> None:
    # Given photos, an overwritten key, a deleted key, a folder marker, a key outside the prefix,
    # a key without a valid UserId, and one photo the ledger already holds.
    world.put("enroll/alice/1.jpg")
    world.put("enroll/alice/2.jpg", b"old")
    latest = world.put("enroll/alice/2.jpg", b"new")
    awkward = world.put(AWKWARD_KEY)
    world.put("enroll/bob/gone.jpg")
    world.s3.delete_object(Bucket=BUCKET, Key="enroll/bob/gone.jpg")
    world.put("enroll/bob/")
    world.put("exports/report.csv")
    world.put("enroll/not a user/x.jpg")
    enrolled = world.put("enroll/carol/1.jpg")
    world.ledger.record_photo(
        PhotoRef(
            photo_id=keys.photo_id(BUCKET, "enroll/carol/1.jpg", enrolled),
            user_id="carol",
            bucket=BUCKET,
            key="enroll/carol/1.jpg",
            version_id=enrolled,
        ),
        PhotoStatus.ACTIVE,
    )

    result = run_backfill(ListingSource(world.s3, BUCKET, PREFIX), world.target, rate=1000)

    bodies = world.messages()
    objects = [o for body in bodies for o in parse_s3_notification(body)]
    assert sorted(o.key for o in objects) == sorted(
        ["enroll/alice/1.jpg", "enroll/alice/2.jpg", AWKWARD_KEY, "enroll/not a user/x.jpg"]
    )
    by_key = {o.key: o for o in objects}
    # The current version only, named as S3's notification names it.
    assert by_key["enroll/alice/2.jpg"].version_id == latest
    assert by_key[AWKWARD_KEY].version_id == awkward
    head = world.s3.head_object(Bucket=BUCKET, Key=AWKWARD_KEY)
    assert by_key[AWKWARD_KEY].etag == head["ETag"].strip('"')
    assert by_key[AWKWARD_KEY].size == head["ContentLength"]
    assert by_key[AWKWARD_KEY].event_time and by_key[AWKWARD_KEY].event_time.endswith("Z")
    # The raw body carries the key form-URL encoded and the backfill's configuration id.
    record = json.loads(next(b for b in bodies if "%C3%A9t%C3%A9+1%2B1" in b))["Records"][0]
    assert record["s3"]["configurationId"] == BACKFILL_CONFIGURATION_ID
    assert record["eventName"] == "ObjectCreated:Put"
    assert (result.listed, result.enqueued, result.skipped_enrolled) == (6, 4, 1)
    assert result.skipped_not_photo == 1  # the folder marker
    assert result.failed == 0 and result.error is None and not result.stopped


def test_a_second_run_sends_nothing_once_the_ledger_holds_every_photo(world: World) -> None:
    for n in range(3):
        version = world.put(f"enroll/dan/{n}.jpg")
        world.ledger.record_photo(
            PhotoRef(
                photo_id=keys.photo_id(BUCKET, f"enroll/dan/{n}.jpg", version),
                user_id="dan",
                bucket=BUCKET,
                key=f"enroll/dan/{n}.jpg",
                version_id=version,
            ),
            PhotoStatus.REJECTED,
            reason="NO_FACE",
        )
    result = run_backfill(ListingSource(world.s3, BUCKET, PREFIX), world.target, rate=1000)
    assert (result.enqueued, result.skipped_enrolled) == (0, 3)
    assert world.messages() == []


def test_a_missing_bucket_is_a_clear_error(world: World) -> None:
    with pytest.raises(BackfillError, match="bucket no-such-bucket does not exist"):
        run_backfill(ListingSource(world.s3, "no-such-bucket", PREFIX), world.target, rate=10)


def test_pacing_spaces_the_batches_at_the_rate(world: World) -> None:
    for n in range(30):
        world.put(f"enroll/erin/{n:02}.jpg")
    clock = FakeClock()
    result = run_backfill(
        ListingSource(world.s3, BUCKET, PREFIX),
        world.target,
        rate=5.0,
        clock=clock,
        sleep=clock.sleep,
    )
    # 30 messages at 5/s with a bucket of 10: the first 10 at once, 20 more take 4 s.
    assert result.enqueued == 30
    assert result.seconds == pytest.approx(4.0)
    assert result.rate == pytest.approx(7.5)


# -- partial batch failures -----------------------------------------------------------------------


class FlakySqs:
    """SQS whose SendMessageBatch fails chosen entries (by body) a number of times."""

    def __init__(self, sqs: Any, failures: int, *, sender_fault: bool = False) -> None:
        self._sqs = sqs
        self.failures = failures
        self.sender_fault = sender_fault
        self.calls = 0

    def send_message_batch(self, QueueUrl: str, Entries: list[dict[str, str]]) -> dict[str, Any]:
        self.calls += 1
        if self.failures > 0:
            self.failures -= 1
            bad, good = Entries[::2], Entries[1::2]
            answer = self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=good)
            answer["Failed"] = [
                {
                    "Id": entry["Id"],
                    "SenderFault": self.sender_fault,
                    "Code": "InvalidParameterValue" if self.sender_fault else "InternalError",
                    "Message": "planted",
                }
                for entry in bad
            ]
            return answer
        return dict(self._sqs.send_message_batch(QueueUrl=QueueUrl, Entries=Entries))


def test_failed_entries_are_retried_until_every_photo_is_sent_once(world: World) -> None:
    for n in range(15):
        world.put(f"enroll/fay/{n:02}.jpg")
    flaky = FlakySqs(world.sqs, failures=2)
    clock = FakeClock()
    target = BackfillTarget(**{**world.target.__dict__, "sqs": flaky})
    result = run_backfill(
        ListingSource(world.s3, BUCKET, PREFIX), target, rate=1000, clock=clock, sleep=clock.sleep
    )
    sent = sent_objects(world.messages())
    assert len(sent) == 15 and len(set(sent)) == 15
    assert result.enqueued == 15 and result.failed == 0
    assert flaky.calls >= 4  # the failed halves went again


def test_an_entry_sqs_refuses_for_good_stops_the_run_without_losing_it(
    world: World, tmp_path: Path
) -> None:
    for n in range(25):
        world.put(f"enroll/gus/{n:02}.jpg")
    checkpoint = CheckpointFile(tmp_path / "checkpoint.json")
    source = ListingSource(world.s3, BUCKET, PREFIX)
    target = BackfillTarget(
        **{**world.target.__dict__, "sqs": FlakySqs(world.sqs, failures=1, sender_fault=True)}
    )
    result = run_backfill(source, target, rate=1000, checkpoint=checkpoint)
    assert result.error and "InvalidParameterValue" in result.error
    assert result.failed == 10 and result.enqueued == 0
    # Nothing was marked done: the next run sends the whole batch again (at least once).
    assert checkpoint.load(source.identity()) is None
    again = run_backfill(source, world.target, rate=1000, checkpoint=checkpoint)
    assert again.enqueued == 25
    assert {k for k, _ in sent_objects(world.messages())} == {
        f"enroll/gus/{n:02}.jpg" for n in range(25)
    }


# -- resumption -----------------------------------------------------------------------------------


def test_an_interrupted_run_continues_after_its_checkpoint(world: World, tmp_path: Path) -> None:
    for n in range(40):
        world.put(f"enroll/hal/{n:02}.jpg")
    checkpoint = CheckpointFile(tmp_path / "backfill.json")
    source = ListingSource(world.s3, BUCKET, PREFIX)
    stop = threading.Event()

    def stop_after_two_batches(result: Any) -> None:
        if result.enqueued >= 20:
            stop.set()

    first = run_backfill(
        source,
        world.target,
        rate=1000,
        checkpoint=checkpoint,
        progress=stop_after_two_batches,
        stop=stop,
    )
    assert first.stopped and first.enqueued == 20
    assert checkpoint.load(source.identity()) == {"after_key": "enroll/hal/19.jpg"}
    second = run_backfill(source, world.target, rate=1000, checkpoint=checkpoint)
    assert second.resumed and not second.stopped and second.enqueued == 20
    sent = [k for k, _ in sent_objects(world.messages())]
    assert sorted(sent) == [f"enroll/hal/{n:02}.jpg" for n in range(40)]  # each exactly once
    assert not checkpoint.path.exists()  # a completed run leaves no checkpoint


def test_a_checkpoint_of_another_source_is_not_used(world: World, tmp_path: Path) -> None:
    checkpoint = CheckpointFile(tmp_path / "backfill.json")
    checkpoint.save("listing s3://other/enroll/", {"after_key": "enroll/zzz"}, Any_result())
    assert checkpoint.load(ListingSource(world.s3, BUCKET, PREFIX).identity()) is None


def Any_result() -> Any:
    from enrollment.backfill import BackfillResult

    return BackfillResult()


# -- S3 Inventory manifests -------------------------------------------------------------------


@pytest.mark.parametrize("file_format", ["CSV", "Parquet"])
def test_a_manifest_yields_the_current_versions_with_decoded_keys(
    world: World, file_format: str
) -> None:
    from enroll_cli.backfill import read_parquet

    world.put("enroll/ivy/1.jpg", b"old")
    current = world.put("enroll/ivy/1.jpg", b"new")
    world.put(AWKWARD_KEY)
    world.put("enroll/ivy/gone.jpg")
    world.s3.delete_object(Bucket=BUCKET, Key="enroll/ivy/gone.jpg")
    location = write_inventory(
        world.s3,
        source_bucket=BUCKET,
        destination_bucket=INVENTORY_BUCKET,
        rows=inventory_rows(world.s3, BUCKET),
        file_format=file_format,
        rows_per_file=2,
    )
    source = ManifestSource.load(world.s3, location, parquet_reader=read_parquet)
    result = run_backfill(source, world.target, rate=1000)
    objects = {o.key: o for b in world.messages() for o in parse_s3_notification(b)}
    assert set(objects) == {"enroll/ivy/1.jpg", AWKWARD_KEY}
    assert objects["enroll/ivy/1.jpg"].version_id == current
    assert objects[AWKWARD_KEY].size == len(b"photo" + AWKWARD_KEY.encode())
    # old version of 1.jpg, gone.jpg's version and its delete marker
    assert result.skipped_not_current == 3
    assert result.listed == 5 and result.enqueued == 2


def test_a_manifest_resumes_at_its_file_and_row(world: World, tmp_path: Path) -> None:
    for n in range(12):
        world.put(f"enroll/jo/{n:02}.jpg")
    location = write_inventory(
        world.s3,
        source_bucket=BUCKET,
        destination_bucket=INVENTORY_BUCKET,
        rows=inventory_rows(world.s3, BUCKET),
        rows_per_file=5,
    )
    source = ManifestSource.load(world.s3, location)
    records = list(source.records())
    assert [c for _, c in records][5:7] == [{"file": 1, "row": 1}, {"file": 1, "row": 2}]
    assert [r.key for r, _ in source.records({"file": 1, "row": 2})] == [
        r.key for r, _ in records[7:]
    ]


def test_local_manifest_path_reads_its_data_files_from_the_destination_bucket(
    world: World, tmp_path: Path
) -> None:
    world.put("enroll/kim/1.jpg")
    location = write_inventory(
        world.s3,
        source_bucket=BUCKET,
        destination_bucket=INVENTORY_BUCKET,
        rows=inventory_rows(world.s3, BUCKET),
    )
    bucket, _, key = location[len("s3://") :].partition("/")
    local = tmp_path / "manifest.json"
    local.write_bytes(world.s3.get_object(Bucket=bucket, Key=key)["Body"].read())
    source = ManifestSource.load(world.s3, str(local))
    assert [r.key for r, _ in source.records()] == ["enroll/kim/1.jpg"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"PK\x03\x04 not json", "is not JSON"),
        (b"[1, 2]", "not an object"),
        (b'{"hello": "world"}', "no sourceBucket"),
        (
            json.dumps(
                {
                    "sourceBucket": BUCKET,
                    "destinationBucket": "arn:aws:s3:::x",
                    "fileFormat": "ORC",
                    "fileSchema": "struct<bucket:string,key:string>",
                    "files": [],
                }
            ).encode(),
            "fileFormat 'ORC' is not supported",
        ),
    ],
)
def test_what_is_not_a_manifest_is_refused_clearly(
    world: World, tmp_path: Path, content: bytes, message: str
) -> None:
    path = tmp_path / "manifest.json"
    path.write_bytes(content)
    with pytest.raises(ManifestError, match=message):
        ManifestSource.load(world.s3, str(path))


def test_a_data_file_that_is_not_gzip_csv_is_a_manifest_error(world: World) -> None:
    world.s3.put_object(Bucket=INVENTORY_BUCKET, Key="data/x.csv.gz", Body=b"plain text")
    manifest = {
        "sourceBucket": BUCKET,
        "destinationBucket": f"arn:aws:s3:::{INVENTORY_BUCKET}",
        "fileFormat": "CSV",
        "fileSchema": "Bucket, Key",
        "files": [{"key": "data/x.csv.gz"}],
    }
    source = ManifestSource(world.s3, manifest, location="test")
    with pytest.raises(ManifestError, match="not a gzip CSV"):
        list(source.records())


def test_items_source_decodes_csv_inventory_keys() -> None:
    items = [{"Bucket": BUCKET, "Key": "enroll/alice/%C3%A9t%C3%A9+1%2B1.jpg", "Size": "12"}]
    [(record, cursor)] = list(ItemsSource(items, url_encoded_keys=True).records())
    assert record.key == AWKWARD_KEY and record.size == 12 and cursor == {"item": 1}
