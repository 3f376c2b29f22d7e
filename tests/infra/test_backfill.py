"""The bulk backfill in the synthesized stack: the distributed map, its function, its grants.

moto cannot run a distributed map with an ItemReader, so what the deployed map does is asserted
on its definition here, and the function it invokes is run on moto in tests/unit/backfill.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import pytest

from infra.backfill import (
    BACKFILL_ITEMS_PER_BATCH,
    EXPRESS_CHILD_LIMIT_S,
    backfill_function_timeout_s,
    backfill_max_concurrency,
    backfill_rate_per_batch_tps,
)
from infra.config import PipelineConfig
from tests.infra.cdk_helpers import resources, synthesize, token_text

CONFIG = PipelineConfig()
HANDLER = "backfill.handler.handler"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synthesize(Path(tmp_path_factory.mktemp("cdk")))["dev"]


def _function(template: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    [(lid, function)] = [
        (lid, f)
        for lid, f in resources(template, "AWS::Lambda::Function").items()
        if f["Properties"].get("Handler") == HANDLER
    ]
    return lid, function


def _definition(template: dict[str, Any]) -> dict[str, Any]:
    [machine] = [
        m
        for lid, m in resources(template, "AWS::StepFunctions::StateMachine").items()
        if lid.startswith("Backfill")
    ]
    return json.loads(token_text(machine["Properties"]["DefinitionString"]))


def test_the_map_reads_an_inventory_manifest_in_batches_at_the_quota(
    template: dict[str, Any],
) -> None:
    definition = _definition(template)
    [state] = definition["States"].values()
    assert state["Type"] == "Map"
    reader = state["ItemReader"]
    assert reader["Resource"].endswith(":states:::s3:getObject")
    assert reader["ReaderConfig"] == {"InputType": "MANIFEST"}
    assert reader["Parameters"]["Key.$"] == "$.manifest.key"
    assert reader["Parameters"]["Bucket"].startswith("<BackfillInventory")
    assert state["ItemBatcher"] == {"MaxItemsPerBatch": BACKFILL_ITEMS_PER_BATCH}
    # 90% of 50 TPS = 45 messages/s, 10 per child: 5 children at 9/s each.
    assert state["MaxConcurrency"] == 5 == backfill_max_concurrency(CONFIG)
    assert state["ResultPath"] is None
    processor = state["ItemProcessor"]
    assert processor["ProcessorConfig"] == {"Mode": "DISTRIBUTED", "ExecutionType": "EXPRESS"}
    [task] = processor["States"].values()
    function_lid, _ = _function(template)
    assert task["Resource"] == f"<{function_lid}.Arn>"
    assert any(r["ErrorEquals"] == ["States.TaskFailed"] for r in task["Retry"])


def test_the_function_paces_its_share_and_fits_an_express_child(template: dict[str, Any]) -> None:
    _, function = _function(template)
    props = function["Properties"]
    env = props["Environment"]["Variables"]
    assert float(env["BACKFILL_RATE_PER_BATCH_TPS"]) == pytest.approx(9.0)
    assert token_text(env["UPLOAD_QUEUE_URL"]).startswith("<IngestUploadQueue")
    assert token_text(env["LEDGER_TABLE"]).startswith("<Ledger")
    assert token_text(env["BUCKET_NAME"]).startswith("<IngestPhotos")
    assert env["ENROLL_PREFIX"] == CONFIG.enroll_prefix
    assert props["Timeout"] == math.ceil(100 / 9.0) + 60
    assert props["Timeout"] < EXPRESS_CHILD_LIMIT_S


def test_a_five_tps_region_runs_one_child_at_four_and_a_half_per_second() -> None:
    config = PipelineConfig.for_region("eu-central-1")
    assert backfill_max_concurrency(config) == 1
    assert backfill_rate_per_batch_tps(config) == pytest.approx(4.5)
    assert backfill_function_timeout_s(config) == math.ceil(100 / 4.5) + 60


def test_the_function_may_read_the_ledger_and_send_to_the_upload_queue_only(
    template: dict[str, Any],
) -> None:
    _, function = _function(template)
    role = function["Properties"]["Role"]["Fn::GetAtt"][0]
    statements = [
        s
        for p in resources(template, "AWS::IAM::Policy").values()
        if any(r.get("Ref") == role for r in p["Properties"]["Roles"])
        for s in p["Properties"]["PolicyDocument"]["Statement"]
    ]
    granted = set()
    for statement in statements:
        actions = (
            statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        )
        targets = (
            statement["Resource"]
            if isinstance(statement["Resource"], list)
            else [statement["Resource"]]
        )
        for action in actions:
            for target in targets:
                granted.add((action, token_text(target).split(".")[0].strip("<")))
    assert {a for a, _ in granted} == {
        "logs:CreateLogStream",
        "logs:PutLogEvents",
        "xray:PutTraceSegments",
        "xray:PutTelemetryRecords",
        "dynamodb:BatchGetItem",
        "sqs:SendMessage",
    }
    assert any(a == "sqs:SendMessage" and t.startswith("IngestUploadQueue") for a, t in granted)
    assert any(a == "dynamodb:BatchGetItem" and t.startswith("Ledger") for a, t in granted)


def test_the_photo_bucket_publishes_a_csv_inventory_of_every_version(
    template: dict[str, Any],
) -> None:
    [photos] = [
        b
        for lid, b in resources(template, "AWS::S3::Bucket").items()
        if lid.startswith("IngestPhotos")
    ]
    [inventory] = photos["Properties"]["InventoryConfigurations"]
    assert inventory["Destination"]["Format"] == "CSV"
    assert inventory["ScheduleFrequency"] == "Daily"
    assert inventory["IncludedObjectVersions"] == "All"
    assert inventory["Prefix"] == CONFIG.enroll_prefix
    assert set(inventory["OptionalFields"]) == {"Size", "LastModifiedDate", "ETag"}
    assert token_text(inventory["Destination"]["BucketArn"]).startswith("<BackfillInventory")


def test_the_stack_outputs_what_enroll_backfill_reads(template: dict[str, Any]) -> None:
    outputs = template["Outputs"]
    for name in (
        "BackfillStateMachineArn",
        "InventoryBucketName",
        "UploadQueueUrl",
        "PhotoBucketName",
        "EnrollPrefix",
        "LedgerTableName",
    ):
        assert name in outputs
