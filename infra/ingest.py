"""Ingest stage: photo bucket -> upload queue (+DLQ) -> index function (IndexFaces)."""

from __future__ import annotations

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_s3 as s3
from aws_cdk import aws_s3_notifications as s3n
from aws_cdk import aws_sqs as sqs
from constructs import Construct

from .config import PipelineConfig
from .lambda_function import INDEX_LEDGER_ACTIONS, PipelineFunction
from .queues import QueueWithDlq


def private_bucket_props() -> dict[str, object]:
    """Properties every bucket of the stack shares: private, TLS only, encrypted at rest."""
    return {
        "block_public_access": s3.BlockPublicAccess.BLOCK_ALL,
        "enforce_ssl": True,
        "encryption": s3.BucketEncryption.S3_MANAGED,
        "object_ownership": s3.ObjectOwnership.BUCKET_OWNER_ENFORCED,
    }


def photo_lifecycle_rules(config: PipelineConfig) -> list[s3.LifecycleRule]:
    """Expire old versions of photos after the configured days; abort stale multipart uploads."""
    return [
        s3.LifecycleRule(
            id="ExpireNoncurrentPhotoVersions",
            noncurrent_version_expiration=Duration.days(
                config.photo_noncurrent_version_expiry_days
            ),
            # Delete markers left with no version behind them are removed too.
            expired_object_delete_marker=True,
        ),
        s3.LifecycleRule(
            id="AbortIncompleteMultipartUploads",
            abort_incomplete_multipart_upload_after=Duration.days(
                config.multipart_upload_abort_days
            ),
        ),
    ]


class Ingest(Construct):
    """The photo bucket (``bucket``), upload queues (``queues``), index function (``function``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        table: dynamodb.ITable,
        collection_arn: str,
        association_queue: sqs.IQueue,
    ) -> None:
        super().__init__(scope, construct_id)
        # Retained, like the photo bucket (the logs are the audit trail of who read which photo).
        # No bucket names: CloudFormation derives them from the stack name (unique per stage),
        # so a redeploy after `cdk destroy` never meets the retained buckets' names.
        self.access_logs = s3.Bucket(
            self,
            "AccessLogs",
            removal_policy=RemovalPolicy.RETAIN,
            **private_bucket_props(),  # type: ignore[arg-type]
        )
        self.bucket = s3.Bucket(
            self,
            "Photos",
            # The ExternalImageId is a function of (bucket, key, version): versioning makes a
            # re-upload under the same key a new photo instead of silently replacing the old one.
            versioned=True,
            server_access_logs_bucket=self.access_logs,
            server_access_logs_prefix="photos/",
            lifecycle_rules=photo_lifecycle_rules(config),
            removal_policy=RemovalPolicy.RETAIN,
            **private_bucket_props(),  # type: ignore[arg-type]
        )
        self.queues = QueueWithDlq(
            self,
            "UploadQueue",
            visibility_timeout_s=config.index_visibility_timeout_s,
            retention_s=config.queue_retention_s,
            dlq_retention_s=config.dlq_retention_s,
            max_receive_count=config.max_receive_count,
        )
        # Only the enrollment prefix: other keys in the bucket (exports, tooling) never trigger.
        self.bucket.add_event_notification(
            s3.EventType.OBJECT_CREATED,
            s3n.SqsDestination(self.queues.queue),
            s3.NotificationKeyFilter(prefix=config.enroll_prefix),
        )
        self.function = PipelineFunction(
            self,
            "IndexPhoto",
            config=config,
            handler="index_photo.handler.handler",
            service_name=config.index_service_name,
            description="IndexFaces for each uploaded photo; ledger INDEXED/REJECTED",
            timeout_s=config.index_function_timeout_s,
            memory_mb=config.index_function_memory_mb,
            environment=config.lambda_environment(
                service_name=config.index_service_name,
                bucket_name=self.bucket.bucket_name,
                ledger_table=table.table_name,
                association_queue_url=association_queue.queue_url,
            ),
        ).function
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queues.queue,
                batch_size=config.index_batch_size,
                max_batching_window=(
                    Duration.seconds(config.index_batching_window_s)
                    if config.index_batching_window_s
                    else None
                ),
                # TPS x latency: more concurrent functions would only collect throttling errors.
                max_concurrency=config.index_max_concurrency,
                report_batch_item_failures=True,
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="IndexFaces",
                # DeleteFaces: faces of a photo that is rejected after indexing (group photo).
                actions=["rekognition:IndexFaces", "rekognition:DeleteFaces"],
                resources=[collection_arn],
            )
        )
        # Rekognition reads the S3Object with the caller's credentials: the function's role
        # needs the photo (and its version, which the ExternalImageId pins), nothing else.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ReadEnrollmentPhotos",
                actions=["s3:GetObject", "s3:GetObjectVersion"],
                resources=[self.bucket.arn_for_objects(f"{config.enroll_prefix}*")],
            )
        )
        # The table only (table.grant would add its indexes): this code reads items by key.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="RecordPhotos", actions=list(INDEX_LEDGER_ACTIONS), resources=[table.table_arn]
            )
        )
        # SendMessage only (grant_send_messages would add GetQueueAttributes/GetQueueUrl, which
        # the code never calls: it has the queue URL). The queue is SQS-managed SSE: no KMS.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="SendToAssociationQueue",
                actions=["sqs:SendMessage"],
                resources=[association_queue.queue_arn],
            )
        )
