"""A work queue with its dead-letter queue, configured the same way for both pipeline stages."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_sqs as sqs
from constructs import Construct


class QueueWithDlq(Construct):
    """A standard SQS queue (``queue``) whose poison messages land in ``dlq`` after N deliveries.

    Standard, not FIFO: S3 notifications cannot target FIFO queues, and every consumer is
    idempotent, so at-least-once, unordered delivery is all the pipeline needs. CloudFormation
    names both queues (stack name + id + suffix): no fixed name, so stages and redeploys never
    collide (PipelineConfig's queue names are the local runner's).
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        visibility_timeout_s: int,
        retention_s: int,
        dlq_retention_s: int,
        max_receive_count: int,
    ) -> None:
        super().__init__(scope, construct_id)
        self.dlq = sqs.Queue(
            self,
            "Dlq",
            retention_period=Duration.seconds(dlq_retention_s),
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
        )
        self.queue = sqs.Queue(
            self,
            "Queue",
            visibility_timeout=Duration.seconds(visibility_timeout_s),
            retention_period=Duration.seconds(retention_s),
            # SQS-managed SSE: S3 can deliver notifications to it without a KMS key policy.
            encryption=sqs.QueueEncryption.SQS_MANAGED,
            enforce_ssl=True,
            dead_letter_queue=sqs.DeadLetterQueue(
                queue=self.dlq, max_receive_count=max_receive_count
            ),
        )
