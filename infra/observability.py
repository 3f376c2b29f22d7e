"""Alarms on what must never go unnoticed: poison messages in a DLQ, failed activations.

A seam for the dashboard construct: ``alarms`` lists every alarm so a later construct can add
actions (SNS, chat) or widgets without touching this one.
"""

from __future__ import annotations

from aws_cdk import Duration
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from .config import PipelineConfig

# CloudWatch evaluates SQS metrics every minute; one period is enough for "anything at all".
ALARM_PERIOD_S = 60


class Observability(Construct):
    """One alarm per DLQ (any message visible) and one on the ActivationFailed metric."""

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        dead_letter_queues: dict[str, sqs.IQueue],
        state_machine: sfn.IStateMachine,
    ) -> None:
        super().__init__(scope, construct_id)
        period = Duration.seconds(ALARM_PERIOD_S)
        self.alarms: list[cloudwatch.Alarm] = []
        for name, dlq in dead_letter_queues.items():
            self.alarms.append(
                dlq.metric_approximate_number_of_messages_visible(
                    period=period, statistic="Maximum"
                ).create_alarm(
                    self,
                    f"{name}DlqNotEmpty",
                    alarm_description=f"{name}: messages exhausted their retries (see the ledger)",
                    threshold=1,
                    evaluation_periods=1,
                    comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                    treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
                )
            )
        # Published by the state machine itself (PutMetricData, no dimensions).
        activation_failed = cloudwatch.Metric(
            namespace=config.metrics_namespace,
            metric_name="ActivationFailed",
            statistic="Sum",
            period=period,
        )
        self.alarms.append(
            activation_failed.create_alarm(
                self,
                "ActivationFailed",
                alarm_description="A user did not become ACTIVE (timeout or Rekognition error)",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
        # Executions that fail outside the definition's own error handling (timeouts, aborts).
        self.alarms.append(
            state_machine.metric_timed_out(period=period, statistic="Sum").create_alarm(
                self,
                "ActivationExecutionTimedOut",
                alarm_description="An activation execution hit its overall timeout",
                threshold=1,
                evaluation_periods=1,
                comparison_operator=cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD,
                treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
            )
        )
