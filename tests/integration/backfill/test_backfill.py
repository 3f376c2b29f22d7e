"""Acceptance of ``enroll backfill`` on the local stack (issue #9): photos that were in the bucket
before the pipeline reach ACTIVE through the running pipeline, from a listing or an S3 Inventory
manifest (CSV and Parquet), a second run sends nothing, and an interrupted run resumes.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from enroll_cli.main import main
from enrollment.backfill import (
    BackfillResult,
    BackfillTarget,
    CheckpointFile,
    ListingSource,
    run_backfill,
)
from tests.unit.backfill.inventory import inventory_rows, write_inventory

from .conftest import (
    delivered_objects,
    existing_photos,
    settle,
    start_pipeline,
    statuses,
)

#: The inventory report's own bucket (S3 Inventory writes to a destination bucket).
INVENTORY_BUCKET = "face-enrollment-inventory"
#: Fast enough for a test, slow enough that pacing and interruption have something to pace.
TEST_RATE = 20.0


def target_of(stack: Any) -> BackfillTarget:
    clients, endpoints = stack.clients, stack.endpoints
    return BackfillTarget(
        s3=clients.s3,
        sqs=clients.sqs,
        dynamodb=clients.dynamodb,
        bucket=endpoints.bucket,
        prefix=endpoints.prefix,
        queue_url=endpoints.upload_queue_url,
        table=endpoints.table,
    )


def test_a_listing_backfill_enrolls_existing_photos_and_a_rerun_sends_nothing(stack: Any) -> None:
    # Given 12 photos of 3 users that S3 never notified, and a running pipeline.
    keys = existing_photos(stack, {"ann": 4, "ben": 4, "cid": 4})
    start_pipeline(stack)
    # When the bucket is backfilled from its listing.
    source = ListingSource(stack.clients.s3, stack.endpoints.bucket, stack.endpoints.prefix)
    first = run_backfill(source, target_of(stack), rate=TEST_RATE)
    # Then every photo is ACTIVE, every invariant holds, and each was sent once.
    assert (first.listed, first.enqueued, first.skipped_enrolled) == (12, 12, 0)
    snapshot = settle(stack, keys)
    assert set(statuses(snapshot, keys).values()) == {"ACTIVE"}
    assert sorted(delivered_objects(stack)) == sorted(keys)
    # And a second run finds every photo in the ledger and sends nothing.
    second = run_backfill(source, target_of(stack), rate=TEST_RATE)
    assert (second.listed, second.enqueued, second.skipped_enrolled) == (12, 0, 12)
    assert stack.wait_until_idle(30)
    assert sorted(delivered_objects(stack)) == sorted(keys)


@pytest.mark.parametrize("file_format", ["CSV", "Parquet"])
def test_a_manifest_backfill_through_the_cli_enrolls_the_inventoried_photos(
    stack: Any,
    file_format: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Given 6 existing photos, one overwritten (the inventory lists both versions), and the
    # bucket's S3 Inventory report in its own bucket.
    keys = existing_photos(stack, {"dee": 3, "eve": 3})
    s3 = stack.clients.s3
    s3.create_bucket(Bucket=INVENTORY_BUCKET)
    location = write_inventory(
        s3,
        source_bucket=stack.endpoints.bucket,
        destination_bucket=INVENTORY_BUCKET,
        rows=inventory_rows(s3, stack.endpoints.bucket),
        file_format=file_format,
        rows_per_file=4,
    )
    endpoints = tmp_path / "endpoints.json"
    stack.write_endpoints(endpoints)
    monkeypatch.setattr("enroll_cli.backfill.CHECKPOINT_DIR", tmp_path / "checkpoints")
    start_pipeline(stack)
    # When `enroll backfill --manifest` runs against the local stack.
    status = main(
        [
            "--json",
            "backfill",
            "--endpoints",
            str(endpoints),
            "--manifest",
            location,
            "--rate",
            str(TEST_RATE),
        ]
    )
    # Then it exits 0, every inventoried photo is ACTIVE and each was sent once.
    assert status == 0
    summary = json.loads(capsys.readouterr().out)
    assert (summary["listed"], summary["enqueued"]) == (6, 6)
    snapshot = settle(stack, keys)
    assert set(statuses(snapshot, keys).values()) == {"ACTIVE"}
    assert sorted(delivered_objects(stack)) == sorted(keys)
    assert not list((tmp_path / "checkpoints").glob("*.json"))  # done: no checkpoint left


def test_an_interrupted_backfill_resumes_and_sends_each_photo_once(
    stack: Any, tmp_path: Path
) -> None:
    # Given 30 existing photos and a backfill running in a thread at 20 messages/s.
    keys = existing_photos(stack, {"fin": 10, "gil": 10, "hua": 10})
    start_pipeline(stack)
    source = ListingSource(stack.clients.s3, stack.endpoints.bucket, stack.endpoints.prefix)
    checkpoint = CheckpointFile(tmp_path / "backfill.json")
    stop = threading.Event()
    progress: list[int] = []
    results: list[BackfillResult] = []
    runner = threading.Thread(
        target=lambda: results.append(
            run_backfill(
                source,
                target_of(stack),
                rate=TEST_RATE,
                checkpoint=checkpoint,
                progress=lambda r: progress.append(r.enqueued),
                stop=stop,
            )
        )
    )
    runner.start()
    # When it is stopped once its first batches are out.
    deadline = time.monotonic() + 30
    while not (progress and progress[-1] >= 10) and time.monotonic() < deadline:
        time.sleep(0.01)
    stop.set()
    runner.join(30)
    [first] = results
    assert first.stopped and 10 <= first.enqueued < 30
    saved = json.loads(checkpoint.path.read_text())
    assert saved["cursor"]["after_key"] == sorted(keys)[first.enqueued - 1]
    # Then a second run continues after the checkpoint...
    second = run_backfill(source, target_of(stack), rate=TEST_RATE, checkpoint=checkpoint)
    assert second.resumed and not second.stopped
    assert first.enqueued + second.enqueued == 30
    assert not checkpoint.path.exists()
    # ...every photo ends ACTIVE, and none was sent twice.
    snapshot = settle(stack, keys)
    assert set(statuses(snapshot, keys).values()) == {"ACTIVE"}
    assert Counter(delivered_objects(stack)) == Counter(keys)
