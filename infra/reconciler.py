"""Reconciler: a scheduled function that makes the pipeline's invariants true again.

Every ``reconcile_interval_s`` an EventBridge rule invokes ``reconcile.handler.handler``
(domain: ``enrollment.reconciler``). It finishes or fails photos stuck in a non-terminal state,
deletes faces no ledger item owns and no user holds (after a grace period), checks users whose
activation failed again, and gives every message in the upload and association DLQs a ledger
outcome. Each repair is idempotent, so a second run right after the first repairs nothing.

One reconciler at a time: reserved concurrency 1. Two overlapping runs would find the same
repairs; each repair is conditional, so the second would only fail its writes, but it would spend
the same Rekognition calls (DeleteFaces and SearchUsers are 5 TPS quotas shared with the
pipeline) for nothing. A tick that finds the previous run
still going waits in Lambda's asynchronous queue at most one interval, then is dropped: the next
tick does the same work from fresh state, so nothing is lost by dropping it.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_dynamodb as dynamodb
from aws_cdk import aws_events as events
from aws_cdk import aws_events_targets as targets
from aws_cdk import aws_iam as iam
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .config import PipelineConfig
from .lambda_function import PipelineFunction
from .queues import QueueWithDlq

# Two reconcilers must never run at once (see the module docstring).
RECONCILE_RESERVED_CONCURRENCY = 1
# Lambda asynchronous invocation: an error is not retried (the next tick runs anyway).
RECONCILE_ASYNC_RETRY_ATTEMPTS = 0

# What functions/reconcile and enrollment/reconciler.py call, per resource (pinned by
# tests/infra/test_reconciler.py).
RECONCILE_REKOGNITION_ACTIONS = (
    "rekognition:ListFaces",  # every face of the collection, page by page
    "rekognition:SearchUsers",  # a user's status (ACTIVE?), as the activation asks it
    "rekognition:DeleteFaces",  # an orphan past its grace period
)
# Scan finds stuck photos, failed users and orphan markers (no status index: one paged Scan per
# run); GetItem reads a DLQ message's photo; PutItem writes the outcome of a photo the ledger
# never saw and the first-seen marker of an unowned face (DeleteItem drops it); UpdateItem moves
# photos and users on. No Query: the reconciler reads no partition by key.
RECONCILE_LEDGER_ACTIONS = (
    "dynamodb:Scan",
    "dynamodb:GetItem",
    "dynamodb:PutItem",
    "dynamodb:UpdateItem",
    "dynamodb:DeleteItem",
)
# The DLQs are read, never emptied: a message stays for the operator's redrive (no
# DeleteMessage); the run makes what it read visible again when it ends.
RECONCILE_DLQ_ACTIONS = ("sqs:ReceiveMessage", "sqs:ChangeMessageVisibility")
# A photo stuck INDEXED gets its association message again.
RECONCILE_ASSOCIATION_QUEUE_ACTIONS = ("sqs:SendMessage",)
# A user whose activation failed is activated again.
RECONCILE_STATE_MACHINE_ACTIONS = ("states:StartExecution",)


class Reconciler(Construct):
    """The reconciler function (``function``, in ``worker``) and its schedule (``rule``)."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        table: dynamodb.ITable,
        collection_arn: str,
        bucket_name: str,
        upload_queues: QueueWithDlq,
        association_queues: QueueWithDlq,
        state_machine: sfn.IStateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        service_name = config.reconcile_service_name
        interval_s = config.reconcile_interval_s
        self.worker = PipelineFunction(
            self,
            "Reconcile",
            config=config,
            handler="reconcile.handler.handler",
            service_name=service_name,
            description="Repairs stuck photos, orphan faces, failed activations and DLQ messages",
            timeout_s=config.reconcile_function_timeout_s,
            memory_mb=config.reconcile_function_memory_mb,
            environment=config.lambda_environment(
                service_name=service_name,
                bucket_name=bucket_name,
                ledger_table=table.table_name,
                association_queue_url=association_queues.queue.queue_url,
                activation_state_machine_arn=state_machine.state_machine_arn,
                upload_dlq_url=upload_queues.dlq.queue_url,
                association_dlq_url=association_queues.dlq.queue_url,
            ),
        )
        self.function = self.worker.function
        # PipelineFunction takes no reserved concurrency: set it on the resource itself.
        function_resource = self.function.node.default_child
        assert isinstance(function_resource, lambda_.CfnFunction)
        function_resource.reserved_concurrent_executions = RECONCILE_RESERVED_CONCURRENCY
        self.function.configure_async_invoke(
            max_event_age=Duration.seconds(interval_s),
            retry_attempts=RECONCILE_ASYNC_RETRY_ATTEMPTS,
        )
        self.rule = events.Rule(
            self,
            "Schedule",
            description=f"Runs the {service_name} function every {interval_s} s",
            schedule=events.Schedule.rate(Duration.seconds(interval_s)),
            targets=[targets.LambdaFunction(self.function)],
        )
        self._grant(
            table=table,
            collection_arn=collection_arn,
            dlqs=(upload_queues.dlq, association_queues.dlq),
            association_queue=association_queues.queue,
            state_machine=state_machine,
        )

    def _grant(
        self,
        *,
        table: dynamodb.ITable,
        collection_arn: str,
        dlqs: tuple[sqs.IQueue, ...],
        association_queue: sqs.IQueue,
        state_machine: sfn.IStateMachine,
    ) -> None:
        role = self.worker.role
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RepairCollection",
                actions=list(RECONCILE_REKOGNITION_ACTIONS),
                resources=[collection_arn],
            )
        )
        # The table only (table.grant would add its indexes): photo, user, content and marker
        # items all live in the base table.
        role.add_to_policy(
            iam.PolicyStatement(
                sid="RepairLedger",
                actions=list(RECONCILE_LEDGER_ACTIONS),
                resources=[table.table_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReadDeadLetters",
                actions=list(RECONCILE_DLQ_ACTIONS),
                resources=[dlq.queue_arn for dlq in dlqs],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReassociateFaces",
                actions=list(RECONCILE_ASSOCIATION_QUEUE_ACTIONS),
                resources=[association_queue.queue_arn],
            )
        )
        role.add_to_policy(
            iam.PolicyStatement(
                sid="ReactivateUsers",
                actions=list(RECONCILE_STATE_MACHINE_ACTIONS),
                resources=[state_machine.state_machine_arn],
            )
        )
