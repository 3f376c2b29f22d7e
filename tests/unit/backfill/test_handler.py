"""The backfill function (the distributed map's item processor) on moto, with the sample event."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import boto3
import pytest

# Imported at collection: Powertools' tracer opens X-Ray's UDP socket once, on first import,
# and unit tests run with sockets disabled.
from backfill.handler import handler
from enroll_local.testing import aws_test_environment
from enrollment.ledger import table_definition
from enrollment.messages import parse_s3_notification
from enrollment.settings import SettingsError
from tests.conftest import load_event

REGION = "us-east-1"
BUCKET = "face-enrollment-photos"
TABLE = "face-enrollment-ledger"


@dataclass
class FakeContext:
    function_name: str = "backfill"
    memory_limit_in_mb: int = 256
    invoked_function_arn: str = "arn:aws:lambda:us-east-1:123456789012:function:backfill"
    aws_request_id: str = "req-1"


@pytest.fixture
def lambda_context() -> FakeContext:
    return FakeContext()


@pytest.fixture
def function_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    from moto import mock_aws

    with aws_test_environment(), mock_aws():
        sqs = boto3.client("sqs", region_name=REGION)
        boto3.client("dynamodb", region_name=REGION).create_table(**table_definition(TABLE))
        url = sqs.create_queue(QueueName="upload")["QueueUrl"]
        for name, value in {
            "BUCKET_NAME": BUCKET,
            "LEDGER_TABLE": TABLE,
            "UPLOAD_QUEUE_URL": url,
            "BACKFILL_RATE_PER_BATCH_TPS": "1000",
            "POWERTOOLS_METRICS_DISABLED": "true",
            "AWS_DEFAULT_REGION": REGION,
        }.items():
            monkeypatch.setenv(name, value)
        yield {"sqs": sqs, "url": url}


def test_a_batch_of_inventory_rows_is_sent_once_and_twice_is_harmless(
    function_env: dict[str, Any], lambda_context: Any
) -> None:
    event = load_event("backfill_batch")
    summary = handler(event, lambda_context)
    assert (summary["listed"], summary["enqueued"], summary["skipped_not_current"]) == (2, 1, 1)
    [message] = function_env["sqs"].receive_message(QueueUrl=function_env["url"])["Messages"]
    [obj] = parse_s3_notification(message["Body"])
    # The CSV inventory's URL-encoded key arrives decoded, with its version, ETag and size.
    assert obj.key == "enroll/alice/summer holiday été 1+1.jpg"
    assert obj.version_id == "3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY"
    assert (obj.etag, obj.size) == ("d41d8cd98f00b204e9800998ecf8427e", 48213)
    # Run twice on the same batch (the map's retry): it sends again (at least once), no error.
    assert handler(event, lambda_context)["enqueued"] == 1


def test_a_missing_rate_is_a_settings_error(
    function_env: dict[str, Any], lambda_context: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BACKFILL_RATE_PER_BATCH_TPS", "fast")
    with pytest.raises(SettingsError, match="BACKFILL_RATE_PER_BATCH_TPS"):
        handler(load_event("backfill_batch"), lambda_context)


def test_an_event_that_is_not_a_batch_is_refused(
    function_env: dict[str, Any], lambda_context: Any
) -> None:
    from enrollment.backfill import BackfillError

    with pytest.raises(BackfillError, match="ItemBatcher batch"):
        handler({"Records": []}, lambda_context)
