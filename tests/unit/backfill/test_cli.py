"""``enroll backfill`` on moto: exit statuses, bad input, the summary and the progress line."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from enroll_cli.backfill import ProgressReporter, render_summary
from enroll_cli.main import main
from enroll_local.testing import aws_test_environment
from enrollment.backfill import BackfillResult
from enrollment.ledger import table_definition

REGION = "us-east-1"
BUCKET = "face-enrollment-photos"
TABLE = "face-enrollment-ledger"


@pytest.fixture
def deployed(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A "deployed" stack on moto and the options naming it; checkpoints under tmp_path."""
    from moto import mock_aws

    monkeypatch.setattr("enroll_cli.backfill.CHECKPOINT_DIR", tmp_path / "checkpoints")
    with aws_test_environment(), mock_aws():
        s3 = boto3.client("s3", region_name=REGION)
        s3.create_bucket(Bucket=BUCKET)
        boto3.client("dynamodb", region_name=REGION).create_table(**table_definition(TABLE))
        url = boto3.client("sqs", region_name=REGION).create_queue(QueueName="upload")["QueueUrl"]
        options = ["--bucket", BUCKET, "--queue-url", url, "--table", TABLE, "--region", REGION]
        yield {"s3": s3, "options": options, "queue_url": url, "tmp": tmp_path}


def test_a_listing_run_prints_its_summary_as_json_and_exits_0(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    for n in range(3):
        deployed["s3"].put_object(Bucket=BUCKET, Key=f"enroll/amy/{n}.jpg", Body=b"x")
    assert main(["--json", "backfill", *deployed["options"], "--rate", "1000"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["enqueued"] == 3 and summary["listed"] == 3


def test_a_missing_bucket_exits_2_with_a_clear_error(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    options = list(deployed["options"])
    options[1] = "no-such-bucket"
    assert main(["backfill", *options]) == 2
    assert "bucket no-such-bucket does not exist" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("manifest", "message"),
    [
        ({"not": "a manifest"}, "is not an S3 Inventory manifest"),
        (
            {
                "sourceBucket": BUCKET,
                "destinationBucket": "arn:aws:s3:::inventory",
                "fileFormat": "ORC",
                "fileSchema": "struct<bucket:string,key:string>",
                "files": [],
            },
            "fileFormat 'ORC' is not supported",
        ),
        (
            {
                "sourceBucket": "someone-elses-bucket",
                "destinationBucket": "arn:aws:s3:::inventory",
                "fileFormat": "CSV",
                "fileSchema": "Bucket, Key",
                "files": [],
            },
            "lists bucket someone-elses-bucket",
        ),
    ],
)
def test_a_bad_manifest_exits_2(
    deployed: dict[str, Any],
    capsys: pytest.CaptureFixture[str],
    manifest: dict[str, Any],
    message: str,
) -> None:
    path = deployed["tmp"] / "manifest.json"
    path.write_text(json.dumps(manifest))
    assert main(["backfill", *deployed["options"], "--manifest", str(path)]) == 2
    assert message in capsys.readouterr().err


def test_a_manifest_missing_in_s3_exits_2(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    location = f"s3://{BUCKET}/inventory/manifest.json"
    assert main(["backfill", *deployed["options"], "--manifest", location]) == 2
    assert f"cannot read {location}: NoSuchKey" in capsys.readouterr().err


def test_no_local_stack_and_no_deployed_one_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "endpoints.json"
    assert main(["backfill", "--endpoints", str(missing)]) == 2
    assert "start the local stack" in capsys.readouterr().err


def test_incomplete_explicit_names_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with aws_test_environment():
        assert main(["backfill", "--bucket", BUCKET, "--region", REGION]) == 2
    assert "go together" in capsys.readouterr().err


def test_in_stack_needs_an_s3_manifest(
    deployed: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["backfill", *deployed["options"], "--in-stack"]) == 2
    assert "--in-stack needs --manifest s3://" in capsys.readouterr().err


def test_the_plain_progress_line_shows_rate_and_time_left() -> None:
    now = [0.0]
    stream = io.StringIO()
    reporter = ProgressReporter(1000, 50.0, stream, clock=lambda: now[0])
    now[0] = 20.0
    reporter(BackfillResult(listed=400, enqueued=300))
    assert stream.getvalue().strip() == (
        "400/1000 objects, 300 enqueued, 15.0 msg/s, about 30 s left"
    )


def test_the_summary_names_every_count() -> None:
    text = render_summary(BackfillResult(listed=5, enqueued=3, skipped_enrolled=2).as_dict())
    for label in (
        "listed",
        "already in the ledger",
        "not a photo key",
        "enqueued",
        "failed",
        "seconds",
        "rate",
    ):
        assert label in text
