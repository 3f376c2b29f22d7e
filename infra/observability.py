"""Alarms (all to one SNS topic) and the CloudWatch dashboard of the pipeline.

Alarms watch what must never go unnoticed, each with a threshold from ``PipelineConfig``:

- a DLQ holds a message (``<Name>DlqNotEmpty``: upload, association, erasure ...);
- the upload or association queue's oldest message is older than ``alarm_queue_age_s``;
- an activation failed (the state machine's ``ActivationFailed`` metric: its own error handling
  publishes it) or an execution hit its overall timeout (which no Catch sees);
- a function's error rate (errors / invocations x 100, metric math) is over
  ``alarm_function_error_rate_percent``;
- Rekognition throttled an operation in each of ``alarm_rekognition_throttle_periods`` periods
  in a row (a burst is retried by the functions; sustained throttling is a quota problem);
- the query API answered 5XX.

The dashboard is ``infra/dashboard.py``'s plain-data definition (the one ``enroll dashboard``
draws locally) rendered as CloudWatch widgets: one place decides what is on it.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Aws, Duration, RemovalPolicy, Stack
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_cloudwatch as cloudwatch
from aws_cdk import aws_cloudwatch_actions as cloudwatch_actions
from aws_cdk import aws_iam as iam
from aws_cdk import aws_kms as kms
from aws_cdk import aws_lambda as lambda_
from aws_cdk import aws_sns as sns
from aws_cdk import aws_sns_subscriptions as subscriptions
from aws_cdk import aws_sqs as sqs
from aws_cdk import aws_stepfunctions as sfn
from constructs import Construct

from . import dashboard as definition
from .config import PipelineConfig

_AT_LEAST = cloudwatch.ComparisonOperator.GREATER_THAN_OR_EQUAL_TO_THRESHOLD
_OVER = cloudwatch.ComparisonOperator.GREATER_THAN_THRESHOLD


class Observability(Construct):
    """The alarm ``topic``, every alarm (``alarms``, by name) and the ``dashboard``.

    ``dead_letter_queues`` and ``queues`` (the ones whose backlog age is watched) and
    ``functions`` are keyed by a display name; a later construct's DLQ or function is watched by
    adding it to the dict in the stack. ``function_error_periods_s`` gives a function its own
    error-rate period (by display name; default ``alarm_function_error_period_s``): a scheduled
    function runs once per interval, so "N periods in a row" needs periods of that interval.
    ``rest_api`` is optional (no API, no 5XX alarm).
    ``dashboard_targets`` maps the definition's names to the deployed resources.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        config: PipelineConfig,
        dead_letter_queues: Mapping[str, sqs.IQueue],
        queues: Mapping[str, sqs.IQueue],
        functions: Mapping[str, lambda_.IFunction],
        state_machine: sfn.IStateMachine,
        dashboard_targets: definition.DashboardTargets,
        rest_api: apigw.RestApi | None = None,
        function_error_periods_s: Mapping[str, int] | None = None,
    ) -> None:
        super().__init__(scope, construct_id)
        self.topic = self._alarm_topic(config)
        self.alarms: dict[str, cloudwatch.Alarm] = {}
        period = Duration.seconds(config.alarm_period_s)

        for name, dlq in dead_letter_queues.items():
            self._alarm(
                f"{name}DlqNotEmpty",
                dlq.metric_approximate_number_of_messages_visible(
                    period=period, statistic="Maximum"
                ),
                threshold=1,
                comparison=_AT_LEAST,
                description=(
                    f"{name} DLQ holds messages that exhausted their retries: the ledger says "
                    "why (photo FAILED with a reason, or the erasure's step); fix the cause in "
                    "the function's logs, then redrive the DLQ."
                ),
            )
        for name, queue in queues.items():
            self._alarm(
                f"{name}QueueBacklogOld",
                queue.metric_approximate_age_of_oldest_message(period=period, statistic="Maximum"),
                threshold=config.alarm_queue_age_s,
                comparison=_OVER,
                description=(
                    f"{name} queue: a message waited over {config.alarm_queue_age_s} s. Photos "
                    "are not flowing: check the function's errors/throttles and its concurrency."
                ),
            )
        self._alarm(
            "ActivationFailed",
            # Published by the state machine itself (PutMetricData, no dimensions).
            cloudwatch.Metric(
                namespace=config.metrics_namespace,
                metric_name=definition.ACTIVATION_FAILED,
                statistic="Sum",
                period=period,
            ),
            threshold=1,
            comparison=_AT_LEAST,
            description="A user did not become ACTIVE (timeout or Rekognition error): see the "
            "user's ledger item (reason) and the execution history.",
        )
        # The execution's overall timeout ends it outside the definition's error handling (no
        # ActivationFailed then). No alarm on ExecutionsFailed: a failed activation ends in a
        # Fail state after publishing ActivationFailed, so it would page twice for one event.
        self._alarm(
            "ActivationExecutionTimedOut",
            state_machine.metric_timed_out(period=period, statistic="Sum"),
            threshold=1,
            comparison=_AT_LEAST,
            description="An activation execution hit its overall timeout without recording an "
            "outcome; the user may stay UPDATING (see the execution's history).",
        )
        for name, function in functions.items():
            error_period = Duration.seconds(
                (function_error_periods_s or {}).get(name, config.alarm_function_error_period_s)
            )
            self._alarm(
                f"{name}ErrorRate",
                cloudwatch.MathExpression(
                    # No invocation, no data point (treated as not breaching): never 0 / 0.
                    expression="100 * FILL(errors, 0) / invocations",
                    using_metrics={
                        "errors": function.metric_errors(period=error_period, statistic="Sum"),
                        "invocations": function.metric_invocations(
                            period=error_period, statistic="Sum"
                        ),
                    },
                    label=f"{name} error rate (%)",
                    period=error_period,
                ),
                threshold=config.alarm_function_error_rate_percent,
                comparison=_OVER,
                periods=config.alarm_function_error_periods,
                description=(
                    f"{name} function: over {config.alarm_function_error_rate_percent}% of "
                    "invocations failed; its log group has the stack traces."
                ),
            )
        throttle_period = Duration.seconds(config.alarm_rekognition_throttle_period_s)
        for operation in definition.REKOGNITION_OPERATIONS:
            self._alarm(
                f"Rekognition{operation}Throttled",
                cloudwatch.Metric(
                    namespace=definition.REKOGNITION_NAMESPACE,
                    metric_name="ThrottledCount",
                    dimensions_map={"Operation": operation},
                    statistic="Sum",
                    period=throttle_period,
                ),
                threshold=config.alarm_rekognition_throttles_per_period,
                comparison=_AT_LEAST,
                # Every period of the window: sustained, not a burst the retries absorb.
                periods=config.alarm_rekognition_throttle_periods,
                description=(
                    f"Rekognition throttled {operation} for "
                    f"{config.alarm_rekognition_throttle_periods} periods in a row: lower the "
                    "functions' concurrency or ask for a higher TPS quota (account-wide metric)."
                ),
            )
        if rest_api is not None:
            self._alarm(
                "Api5xx",
                rest_api.metric_server_error(
                    period=Duration.seconds(config.alarm_api_5xx_period_s), statistic="Sum"
                ),
                threshold=config.alarm_api_5xx_per_period,
                comparison=_AT_LEAST,
                description="The query API answered 5XX: see the API function's errors and logs "
                "and the API's access log group.",
            )
        self.dashboard = render_dashboard(
            self, "Dashboard", definition.dashboard_definition(dashboard_targets)
        )

    def _alarm_topic(self, config: PipelineConfig) -> sns.Topic:
        # A customer managed key: CloudWatch cannot publish to a topic encrypted with the AWS
        # managed SNS key (its key policy cannot be changed to let CloudWatch use it).
        key = kms.Key(
            self,
            "AlarmTopicKey",
            description="Encrypts the face-enrollment alarm topic",
            enable_key_rotation=True,
            # Holds nothing but alarm notifications in flight: nothing to keep.
            removal_policy=RemovalPolicy.DESTROY,
        )
        cloudwatch_principal = iam.ServicePrincipal("cloudwatch.amazonaws.com")
        key.grant(cloudwatch_principal, "kms:Decrypt", "kms:GenerateDataKey*")
        topic = sns.Topic(
            self,
            "AlarmTopic",
            display_name=f"Face enrollment alarms ({config.stage})",
            master_key=key,
            enforce_ssl=True,
        )
        # The topic policy replaces SNS's default one: say explicitly that this account's
        # alarms may publish.
        topic.add_to_resource_policy(
            iam.PolicyStatement(
                sid="AlarmsOfThisAccountPublish",
                principals=[cloudwatch_principal],
                actions=["sns:Publish"],
                resources=[topic.topic_arn],
                conditions={
                    "ArnLike": {
                        "aws:SourceArn": f"arn:{Aws.PARTITION}:cloudwatch:{Aws.REGION}:"
                        f"{Aws.ACCOUNT_ID}:alarm:*"
                    },
                    "StringEquals": {"aws:SourceAccount": Aws.ACCOUNT_ID},
                },
            )
        )
        if config.alarm_email:
            # The address must confirm the subscription (a mail from AWS) before it gets alarms.
            topic.add_subscription(subscriptions.EmailSubscription(config.alarm_email))
        return topic

    def _alarm(
        self,
        name: str,
        metric: cloudwatch.IMetric,
        *,
        threshold: float,
        comparison: cloudwatch.ComparisonOperator,
        description: str,
        periods: int = 1,
    ) -> cloudwatch.Alarm:
        alarm = cloudwatch.Alarm(
            self,
            name,
            metric=metric,
            threshold=threshold,
            comparison_operator=comparison,
            evaluation_periods=periods,
            # All N periods must breach: "N in a row", never "any M of N".
            datapoints_to_alarm=periods,
            alarm_description=description,
            # No traffic is not a failure (queues and functions are idle most of the time).
            treat_missing_data=cloudwatch.TreatMissingData.NOT_BREACHING,
        )
        action = cloudwatch_actions.SnsAction(self.topic)
        alarm.add_alarm_action(action)
        # The all-clear goes to the same topic: whoever was woken up learns it is over.
        alarm.add_ok_action(action)
        self.alarms[name] = alarm
        return alarm


def dashboard_name(stack: Stack) -> str:
    """``<stack name>-<region>``: dashboard names are per account (all regions share them)."""
    return f"{stack.stack_name}-{Aws.REGION}"


def render_dashboard(
    scope: Construct, construct_id: str, dashboard: definition.Dashboard
) -> cloudwatch.Dashboard:
    """An ``AWS::CloudWatch::Dashboard`` drawing every widget of ``dashboard``, in its order."""
    rendered = cloudwatch.Dashboard(
        scope,
        construct_id,
        dashboard_name=dashboard.name,
        default_interval=Duration.hours(3),
    )
    rendered.add_widgets(*(_widget(widget) for widget in dashboard.widgets))
    return rendered


def _widget(widget: definition.Widget) -> cloudwatch.IWidget:
    metrics = [_metric(widget, metric) for metric in widget.shown]
    if widget.kind is definition.WidgetKind.NUMBER:
        return cloudwatch.SingleValueWidget(
            title=widget.title, metrics=metrics, width=widget.width, height=widget.height
        )
    funnel = widget.kind is definition.WidgetKind.FUNNEL
    return cloudwatch.GraphWidget(
        title=widget.title,
        left=metrics,
        left_y_axis=cloudwatch.YAxisProps(label=widget.unit, show_units=False),
        width=widget.width,
        height=widget.height,
        # A funnel's bars are totals over the whole time range the reader picked.
        view=cloudwatch.GraphWidgetView.BAR if funnel else cloudwatch.GraphWidgetView.TIME_SERIES,
        set_period_to_time_range=funnel or None,
    )


def _metric(widget: definition.Widget, metric: definition.Metric) -> cloudwatch.IMetric:
    period = Duration.seconds(widget.period_s)
    if metric.expression is not None:
        return cloudwatch.MathExpression(
            expression=metric.expression,
            label=metric.label,
            period=period,
            using_metrics={
                used.id: _plain_metric(used, period, visible=False)
                for used in widget.expression_inputs(metric)
            },
        )
    return _plain_metric(metric, period, visible=metric.visible)


def _plain_metric(
    metric: definition.Metric, period: Duration, *, visible: bool
) -> cloudwatch.Metric:
    return cloudwatch.Metric(
        id=metric.id,
        namespace=metric.namespace,
        metric_name=metric.metric_name,
        dimensions_map=dict(metric.dimensions),
        statistic=metric.statistic,
        label=metric.label,
        period=period,
        visible=visible,
    )
