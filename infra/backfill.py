"""Bulk backfill in the stack: a Step Functions distributed map over an S3 Inventory report.

A bucket too large for a laptop's listing is backfilled by the stack itself. The photo bucket
publishes a daily S3 Inventory (CSV, every version, with size, dates and ETag) into the
``inventory`` bucket; an operator starts the state machine with a manifest of it::

    aws stepfunctions start-execution --state-machine-arn <BackfillStateMachineArn> \\
      --input '{"manifest": {"key": "<prefix>/.../manifest.json"}}'

The distributed map reads the manifest (ItemReader ``s3:getObject``, ``InputType: MANIFEST``:
Step Functions reads CSV inventories only), batches ``BACKFILL_ITEMS_PER_BATCH`` rows per child
workflow, and runs at most ``max_concurrency`` children at once. Each child invokes the backfill
function (``backfill.handler.handler`` -> ``enrollment.backfill.run_backfill``), which skips rows
already in the ledger and sends the rest to the upload queue as S3 notifications, paced at
``rate / max_concurrency``: together the children send at ``DEFAULT_QUOTA_SHARE`` of the
IndexFaces quota. The map drops its batches' results (a map over millions of rows would outgrow
the state's 256 KiB); each batch logs its counts and emits them as metrics.
"""

from __future__ import annotations

import math

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from aws_cdk import aws_stepfunctions_tasks as tasks
from constructs import Construct

from enrollment.backfill import DEFAULT_QUOTA_SHARE

from .config import PipelineConfig
from .ingest import private_bucket_props
from .lambda_function import PipelineFunction, log_retention

BACKFILL_SERVICE_NAME = "backfill"
#: Inventory rows per child workflow (one function invocation).
BACKFILL_ITEMS_PER_BATCH = 100
#: What one child aims at (messages/s): one SendMessageBatch of 10 a second. The map's
#: concurrency is the total rate over this, so each child paces at about this rate.
BACKFILL_RATE_PER_CHILD_TPS = 10.0
#: Seconds a function needs beyond its paced sends (ledger reads, a cold start, SQS retries).
BACKFILL_FUNCTION_MARGIN_S = 60
#: An Express child workflow ends after 5 minutes: the function's timeout must fit in it.
EXPRESS_CHILD_LIMIT_S = 300
#: Retries of a failed batch (the function raises when SQS refused a message for good).
BACKFILL_TASK_RETRIES = 3
#: Inventory reports expire after this many days (a new report comes daily).
INVENTORY_EXPIRY_DAYS = 14
INVENTORY_PREFIX = "inventory"
#: The ledger reads of run_backfill (BatchGetItem on photo keys), nothing else.
BACKFILL_LEDGER_ACTIONS = ("dynamodb:BatchGetItem",)


def backfill_rate_tps(config: PipelineConfig) -> float:
    """Messages per second the whole map sends: the quota share of IndexFaces' quota."""
    return DEFAULT_QUOTA_SHARE * config.rekognition_index_faces_tps


def backfill_max_concurrency(config: PipelineConfig) -> int:
    """Child workflows at once: the rate over what one child sends (at least 1)."""
    return max(1, math.ceil(backfill_rate_tps(config) / BACKFILL_RATE_PER_CHILD_TPS))


def backfill_rate_per_batch_tps(config: PipelineConfig) -> float:
    """The pace of one invocation, so that ``max_concurrency`` of them send the whole rate."""
    return backfill_rate_tps(config) / backfill_max_concurrency(config)


def backfill_function_timeout_s(config: PipelineConfig) -> int:
    """A batch's paced sends plus the margin."""
    paced = math.ceil(BACKFILL_ITEMS_PER_BATCH / backfill_rate_per_batch_tps(config))
    return paced + BACKFILL_FUNCTION_MARGIN_S


class Backfill(Construct):
    """The inventory bucket (``inventory``), the function (``function``), the ``state_machine``."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        table: dynamodb.ITable,
        photo_bucket: s3.Bucket,
        access_logs: s3.IBucket,
        upload_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        timeout_s = backfill_function_timeout_s(config)
        if timeout_s >= EXPRESS_CHILD_LIMIT_S:
            raise ValueError(
                f"a backfill batch needs {timeout_s} s, over an Express child's "
                f"{EXPRESS_CHILD_LIMIT_S} s: lower BACKFILL_ITEMS_PER_BATCH"
            )
        # Retained like the photo bucket: inventories name every object key (user ids).
        self.inventory = s3.Bucket(
            self,
            "Inventory",
            server_access_logs_bucket=access_logs,
            server_access_logs_prefix="inventory/",
            lifecycle_rules=[
                s3.LifecycleRule(
                    id="ExpireInventoriesAndResults",
                    expiration=Duration.days(INVENTORY_EXPIRY_DAYS),
                )
            ],
            removal_policy=RemovalPolicy.RETAIN,
            **private_bucket_props(),  # type: ignore[arg-type]
        )
        # Every version with what the backfill needs to name it as S3's notification would;
        # CSV because Step Functions' MANIFEST reader reads CSV inventories only.
        photo_bucket.add_inventory(
            destination=s3.InventoryDestination(bucket=self.inventory, prefix=INVENTORY_PREFIX),
            enabled=True,
            format=s3.InventoryFormat.CSV,
            frequency=s3.InventoryFrequency.DAILY,
            include_object_versions=s3.InventoryObjectVersion.ALL,
            objects_prefix=config.enroll_prefix,
            optional_fields=["Size", "LastModifiedDate", "ETag"],
        )
        rate_per_batch = backfill_rate_per_batch_tps(config)
        self.worker = PipelineFunction(
            self,
            "Backfill",
            config=config,
            handler="backfill.handler.handler",
            service_name=BACKFILL_SERVICE_NAME,
            description="Sends a batch of inventoried photos to the upload queue, paced",
            timeout_s=timeout_s,
            memory_mb=256,
            environment={
                **config.lambda_environment(
                    service_name=BACKFILL_SERVICE_NAME,
                    bucket_name=photo_bucket.bucket_name,
                    ledger_table=table.table_name,
                    upload_queue_url=upload_queue.queue_url,
                ),
                "BACKFILL_RATE_PER_BATCH_TPS": f"{rate_per_batch:.3f}",
            },
        )
        self.function = self.worker.function
        self.worker.role.add_to_policy(
            iam.PolicyStatement(
                sid="SkipEnrolledPhotos",
                actions=list(BACKFILL_LEDGER_ACTIONS),
                resources=[table.table_arn],
            )
        )
        # SendMessageBatch is authorized as sqs:SendMessage. The queue is SQS-managed SSE.
        self.worker.role.add_to_policy(
            iam.PolicyStatement(
                sid="EnqueuePhotos",
                actions=["sqs:SendMessage"],
                resources=[upload_queue.queue_arn],
            )
        )
        self.state_machine = self._state_machine(config)

    def _state_machine(self, config: PipelineConfig) -> sfn.StateMachine:
        enqueue = tasks.LambdaInvoke(
            self,
            "EnqueueBatch",
            lambda_function=self.function,
            payload_response_only=True,
        )
        # The function raises when SQS refused a message for good; a batch run again skips what
        # its first run got enrolled and resends the rest (at least once, like S3's own).
        enqueue.add_retry(
            errors=["States.TaskFailed"],
            interval=Duration.seconds(10),
            max_attempts=BACKFILL_TASK_RETRIES,
            backoff_rate=2,
        )
        reader = sfn.S3ManifestItemReader(
            bucket=self.inventory, key=sfn.JsonPath.string_at("$.manifest.key")
        )
        bulk = sfn.DistributedMap(
            self,
            "EnqueueInventory",
            comment="Every row of an S3 Inventory report, in batches, to the backfill function",
            item_reader=reader,
            item_batcher=sfn.ItemBatcher(max_items_per_batch=BACKFILL_ITEMS_PER_BATCH),
            max_concurrency=backfill_max_concurrency(config),
            # One batch that fails after its retries fails the execution: an operator looks,
            # then starts it again (the ledger skips what was enrolled).
            tolerated_failure_percentage=0,
            # Millions of rows: the batches' results are dropped, never carried in the state
            # (256 KiB at most). Each batch logs its counts and counts them as metrics.
            result_path=sfn.JsonPath.DISCARD,
            map_execution_type=sfn.StateMachineType.EXPRESS,
            label="Backfill",
        )
        bulk.item_processor(enqueue)
        self.log_group = logs.LogGroup(
            self,
            "Logs",
            retention=log_retention(config),
            removal_policy=RemovalPolicy.DESTROY,
        )
        return sfn.StateMachine(
            self,
            "StateMachine",
            # STANDARD: a map over a large inventory runs for hours (Express stops at 5 minutes).
            state_machine_type=sfn.StateMachineType.STANDARD,
            definition_body=sfn.DefinitionBody.from_chainable(bulk),
            tracing_enabled=True,
            logs=sfn.LogOptions(
                destination=self.log_group,
                level=sfn.LogLevel.ALL,
                # Rows name object keys (user ids): kept out of the logs.
                include_execution_data=False,
            ),
        )
