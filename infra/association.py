"""Association stage: association queue (+DLQ) -> associate function -> activation executions."""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda_event_sources as event_sources
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .config import PipelineConfig
from .lambda_function import ASSOCIATE_LEDGER_ACTIONS, PipelineFunction
from .queues import QueueWithDlq


class Association(Construct):
    """The association queue (``queues``) and the associate function (``function``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        table: dynamodb.ITable,
        collection_arn: str,
        state_machine: sfn.IStateMachine,
        bucket_name: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.queues = QueueWithDlq(
            self,
            "Queue",
            visibility_timeout_s=config.associate_visibility_timeout_s,
            retention_s=config.queue_retention_s,
            dlq_retention_s=config.dlq_retention_s,
            max_receive_count=config.max_receive_count,
        )
        self.function = PipelineFunction(
            self,
            "AssociateFaces",
            config=config,
            handler="associate_faces.handler.handler",
            service_name=config.associate_service_name,
            description="Groups faces by user, AssociateFaces <=100 ids, starts activation",
            timeout_s=config.associate_function_timeout_s,
            memory_mb=config.associate_function_memory_mb,
            environment=config.lambda_environment(
                service_name=config.associate_service_name,
                bucket_name=bucket_name,
                ledger_table=table.table_name,
                association_queue_url=self.queues.queue.queue_url,
                activation_state_machine_arn=state_machine.state_machine_arn,
            ),
        ).function
        self.function.add_event_source(
            event_sources.SqsEventSource(
                self.queues.queue,
                batch_size=config.associate_batch_size,
                max_batching_window=Duration.seconds(config.associate_batching_window_s),
                # AssociateFaces/CreateUser are 5 TPS per account: keep the pollers few.
                max_concurrency=config.associate_max_concurrency,
                report_batch_item_failures=True,
            )
        )
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="ManageUserVectors",
                actions=[
                    "rekognition:CreateUser",
                    "rekognition:AssociateFaces",
                    "rekognition:DisassociateFaces",
                    "rekognition:ListFaces",
                    # Faces left with no user (over the cap, rejected) are deleted: no orphans.
                    "rekognition:DeleteFaces",
                ],
                resources=[collection_arn],
            )
        )
        # The table only (table.grant would add its indexes): this code reads items by key.
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="RecordAssociations",
                actions=list(ASSOCIATE_LEDGER_ACTIONS),
                resources=[table.table_arn],
            )
        )
        # A user's records that met a ConflictException (user UPDATING) are re-sent to this
        # queue with a short DelaySeconds (enrollment/backoff.py). SendMessage only: the
        # polling grants already hold the rest, and the queue is SQS-managed SSE (no KMS).
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="RetryConflictsSoon",
                actions=["sqs:SendMessage"],
                resources=[self.queues.queue.queue_arn],
            )
        )
        state_machine.grant_start_execution(self.function)
        # A replay checks whether its batch's execution already exists before touching the user.
        state_machine.grant_execution(self.function, "states:DescribeExecution")

    def send_failed_photos_to(self, upload_queue: sqs.IQueue) -> None:
        """Let the function send FAILED photos back to the index stage through ``upload_queue``.

        A message for a FAILED photo (an association DLQ redrive) becomes an S3 notification
        for the photo on the upload queue (enrollment/association.py). Set after the ingest
        stage exists, as that stage needs this construct's queue first: UPLOAD_QUEUE_URL, and
        SendMessage on that queue only (SQS-managed SSE: no KMS grant).
        """
        self.function.add_environment("UPLOAD_QUEUE_URL", upload_queue.queue_url)
        self.function.add_to_role_policy(
            iam.PolicyStatement(
                sid="RequeueFailedPhotos",
                actions=["sqs:SendMessage"],
                resources=[upload_queue.queue_arn],
            )
        )
