"""Erasure: the erasure queue (+DLQ) and the worker that removes everything known of one user.

``DELETE /users/{userId}`` writes the ERASING tombstone and sends one message to this queue; the
worker (``erase_user.handler.handler``) deletes the user's faces and user vector, every version
and delete marker under the user's prefix, and the ledger items, leaving the tombstone with its
receipt. Each step is idempotent, so a redelivered message resumes where the last one stopped.
"""

from __future__ import annotations

from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from constructs import Construct

from .config import PipelineConfig
from .lambda_function import PipelineFunction
from .queues import QueueWithDlq

# What functions/enrollment/erasure.py's `run` calls, per service (pinned by tests/infra).
ERASURE_REKOGNITION_ACTIONS = (
    "rekognition:ListFaces",  # faces by UserId: the ones the ledger missed go too
    "rekognition:DeleteUser",  # disassociates the user's faces, then removes the user
    "rekognition:DeleteFaces",
    # A face a racing batch associated again (to this or another user) is released, then deleted.
    "rekognition:DisassociateFaces",
)
# ListObjectVersions is authorized by s3:ListBucketVersions (on the bucket, scoped by prefix).
ERASURE_S3_LIST_ACTIONS = ("s3:ListBucketVersions",)
# DeleteObjects with a VersionId per entry: S3 wants s3:DeleteObject always, plus
# s3:DeleteObjectVersion for a specific version (every version and delete marker is one).
ERASURE_S3_DELETE_ACTIONS = ("s3:DeleteObject", "s3:DeleteObjectVersion")
# Ledger calls of Erasure.run: get_user (GetItem), user_photos / user_partition_items (Query),
# update_erasure / finish_erasure (UpdateItem), delete_partition_item (DeleteItem).
ERASURE_LEDGER_ACTIONS = (
    "dynamodb:GetItem",
    "dynamodb:Query",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)


def prefix_condition(config: PipelineConfig) -> dict[str, dict[str, list[str]]]:
    """The s3:prefix condition that keeps a bucket listing under the enrollment prefix."""
    return {"StringLike": {"s3:prefix": [f"{config.enroll_prefix}*"]}}


class Erasure(Construct):
    """The erasure queue and DLQ (``queues``) and the worker function (``function``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        table: dynamodb.ITable,
        collection_arn: str,
        bucket: s3.IBucket,
    ) -> None:
        super().__init__(scope, construct_id)
        self.queues = QueueWithDlq(
            self,
            "Queue",
            # No fixed names, like the other queues: CloudFormation names them per stack
            # (config.erasure_queue_name / erasure_dlq_name are the local runner's).
            visibility_timeout_s=config.erasure_visibility_timeout_s,
            retention_s=config.queue_retention_s,
            dlq_retention_s=config.dlq_retention_s,
            max_receive_count=config.max_receive_count,
        )
        self.worker = PipelineFunction(
            self,
            "EraseUser",
            config=config,
            handler="erase_user.handler.handler",
            service_name=config.erasure_service_name,
            description="Erases one user: faces, user vector, every object version, ledger items",
            timeout_s=config.erasure_function_timeout_s,
            memory_mb=config.erasure_function_memory_mb,
            environment=config.lambda_environment(
                service_name=config.erasure_service_name,
                bucket_name=bucket.bucket_name,
                ledger_table=table.table_name,
                erasure_queue_url=self.queues.queue.queue_url,
            ),
        )
        self.function = self.worker.function
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queues.queue,
                batch_size=config.erasure_batch_size,
                # DeleteUser/DeleteFaces are 5 TPS per account in every region.
                max_concurrency=config.erasure_max_concurrency,
                report_batch_item_failures=True,
            )
        )
        role = self.worker.role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EraseFacesAndUser",
                actions=list(ERASURE_REKOGNITION_ACTIONS),
                resources=[collection_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ListUserPhotoVersions",
                actions=list(ERASURE_S3_LIST_ACTIONS),
                resources=[bucket.bucket_arn],
                conditions=prefix_condition(config),
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="DeleteUserPhotoVersions",
                actions=list(ERASURE_S3_DELETE_ACTIONS),
                resources=[bucket.arn_for_objects(f"{config.enroll_prefix}*")],
            )
        )
        # The table only: the worker reads a user's items by key (pk), never the users index.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="EraseLedgerItems",
                actions=list(ERASURE_LEDGER_ACTIONS),
                resources=[table.table_arn],
            )
        )
