"""Alarms and the dashboard, asserted on the synthesized template (synthesized once).

Every alarm must reach the one SNS topic with its threshold and period from PipelineConfig; the
dashboard must draw every widget of infra/dashboard.py's definition with each metric's namespace
and dimensions pointing at the deployed resources.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

import pytest

from infra import dashboard as definition
from infra.config import PipelineConfig
from tests.infra.cdk_helpers import dashboard_body, resources, synthesize, token_text

CONFIG = PipelineConfig()
NAMESPACE = f"{CONFIG.metrics_namespace}/{CONFIG.stage}"


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return synthesize(tmp_path_factory.mktemp("cdk.out"))["dev"]


@pytest.fixture(scope="module")
def alarms(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Alarm properties by logical id."""
    return {
        lid: a["Properties"] for lid, a in resources(template, "AWS::CloudWatch::Alarm").items()
    }


def _topic(template: dict[str, Any]) -> str:
    (topic_id,) = resources(template, "AWS::SNS::Topic")
    return topic_id


def _alarm(alarms: dict[str, dict[str, Any]], name: str) -> dict[str, Any]:
    matching = [p for lid, p in alarms.items() if lid.startswith(f"Observability{name}")]
    assert len(matching) == 1, (name, list(alarms))
    return matching[0]


def _period(alarm: dict[str, Any]) -> int:
    """The alarm's period: its own, or that of its metric-math inputs (all equal)."""
    if "Period" in alarm:
        return int(alarm["Period"])
    periods = {m["MetricStat"]["Period"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert len(periods) == 1, alarm
    return int(periods.pop())


# --- alarms --------------------------------------------------------------------------------


def test_every_alarm_has_a_threshold_a_period_and_notifies_the_one_topic(
    template: dict[str, Any], alarms: dict[str, dict[str, Any]]
) -> None:
    topic = {"Ref": _topic(template)}
    assert len(alarms) >= 15
    for lid, alarm in alarms.items():
        assert alarm["AlarmActions"] == [topic], lid
        assert alarm["OKActions"] == [topic], lid
        assert isinstance(alarm["Threshold"], (int, float)), lid
        assert _period(alarm) >= 60, lid
        # "N periods in a row": every evaluated period must breach.
        assert alarm["DatapointsToAlarm"] == alarm["EvaluationPeriods"], lid
        assert alarm["TreatMissingData"] == "notBreaching", lid
        assert len(alarm["AlarmDescription"]) > 30, lid
        assert "AlarmName" not in alarm, lid  # CloudFormation names it: no clash between stages


def test_alarm_topic_is_encrypted_with_a_key_cloudwatch_may_use_and_refuses_plain_http(
    template: dict[str, Any],
) -> None:
    (topic,) = resources(template, "AWS::SNS::Topic").values()
    (key_id, key), *_ = resources(template, "AWS::KMS::Key").items()
    assert topic["Properties"]["KmsMasterKeyId"] == {"Fn::GetAtt": [key_id, "Arn"]}
    assert key["Properties"]["EnableKeyRotation"] is True
    key_statements = key["Properties"]["KeyPolicy"]["Statement"]
    assert any(
        s.get("Principal") == {"Service": "cloudwatch.amazonaws.com"}
        and {"kms:Decrypt", "kms:GenerateDataKey*"} <= set(s["Action"])
        for s in key_statements
    )
    (policy,) = resources(template, "AWS::SNS::TopicPolicy").values()
    statements = policy["Properties"]["PolicyDocument"]["Statement"]
    assert any(
        s["Effect"] == "Deny" and s["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
        for s in statements
    )
    (publish,) = [s for s in statements if s.get("Sid") == "AlarmsOfThisAccountPublish"]
    assert publish["Principal"] == {"Service": "cloudwatch.amazonaws.com"}
    assert publish["Condition"]["StringEquals"] == {"aws:SourceAccount": {"Ref": "AWS::AccountId"}}
    # No alarm_email context value: no subscription.
    assert resources(template, "AWS::SNS::Subscription") == {}


@pytest.mark.parametrize("dlq", ["IngestUploadQueueDlq", "AssociationQueueDlq", "ErasureQueueDlq"])
def test_a_dlq_holding_any_message_alarms(alarms: dict[str, dict[str, Any]], dlq: str) -> None:
    (alarm,) = [
        a
        for a in alarms.values()
        if a.get("MetricName") == "ApproximateNumberOfMessagesVisible"
        and dlq in json.dumps(a["Dimensions"])
    ]
    assert alarm["Namespace"] == "AWS/SQS"
    assert alarm["Statistic"] == "Maximum"
    assert alarm["Threshold"] == 1
    assert alarm["ComparisonOperator"] == "GreaterThanOrEqualToThreshold"
    assert alarm["Period"] == CONFIG.alarm_period_s


@pytest.mark.parametrize(
    ("name", "queue"), [("Upload", "IngestUploadQueue"), ("Association", "AssociationQueue")]
)
def test_an_old_message_on_the_upload_or_association_queue_alarms(
    alarms: dict[str, dict[str, Any]], name: str, queue: str
) -> None:
    alarm = _alarm(alarms, f"{name}QueueBacklogOld")
    assert alarm["MetricName"] == "ApproximateAgeOfOldestMessage"
    ((dimension,),) = [alarm["Dimensions"]]
    assert dimension["Name"] == "QueueName"
    assert dimension["Value"]["Fn::GetAtt"][0].startswith(queue)
    assert "Dlq" not in dimension["Value"]["Fn::GetAtt"][0]
    assert alarm["Threshold"] == CONFIG.alarm_queue_age_s
    assert alarm["ComparisonOperator"] == "GreaterThanThreshold"
    assert alarm["Period"] == CONFIG.alarm_period_s


def test_failed_and_timed_out_activations_alarm(alarms: dict[str, dict[str, Any]]) -> None:
    failed = _alarm(alarms, "ActivationFailed")
    # The stage's own namespace: another stage's failures never trip this alarm.
    assert (failed["Namespace"], failed["MetricName"]) == (NAMESPACE, "ActivationFailed")
    assert "Dimensions" not in failed
    timed_out = _alarm(alarms, "ActivationExecutionTimedOut")
    assert (timed_out["Namespace"], timed_out["MetricName"]) == ("AWS/States", "ExecutionsTimedOut")
    assert timed_out["Dimensions"][0]["Name"] == "StateMachineArn"
    assert timed_out["Threshold"] == 1
    # A failed activation publishes ActivationFailed, then ends in a Fail state: one alarm only.
    assert not any(a.get("MetricName") == "ExecutionsFailed" for a in alarms.values())


@pytest.mark.parametrize(
    ("name", "function"),
    [
        ("IndexPhoto", "IngestIndexPhotoFunction"),
        ("AssociateFaces", "AssociationAssociateFacesFunction"),
        ("QueryApi", "ApiHandlerFunction"),
        ("EraseUser", "ErasureEraseUserFunction"),
    ],
)
def test_a_function_error_rate_over_the_threshold_alarms_as_metric_math(
    alarms: dict[str, dict[str, Any]], name: str, function: str
) -> None:
    alarm = _alarm(alarms, f"{name}ErrorRate")
    (expression,) = [m for m in alarm["Metrics"] if "Expression" in m]
    assert expression["Expression"] == "100 * FILL(errors, 0) / invocations"
    assert expression["ReturnData"] is True
    inputs = {m["Id"]: m["MetricStat"] for m in alarm["Metrics"] if "MetricStat" in m}
    assert set(inputs) == {"errors", "invocations"}
    for metric_id, metric_name in (("errors", "Errors"), ("invocations", "Invocations")):
        stat = inputs[metric_id]
        assert stat["Metric"]["Namespace"] == "AWS/Lambda"
        assert stat["Metric"]["MetricName"] == metric_name
        (dimension,) = stat["Metric"]["Dimensions"]
        assert dimension["Name"] == "FunctionName"
        assert dimension["Value"]["Ref"].startswith(function)
        assert stat["Stat"] == "Sum"
    assert alarm["Threshold"] == CONFIG.alarm_function_error_rate_percent
    assert _period(alarm) == CONFIG.alarm_function_error_period_s
    assert alarm["EvaluationPeriods"] == CONFIG.alarm_function_error_periods


@pytest.mark.parametrize("operation", definition.REKOGNITION_OPERATIONS)
def test_sustained_rekognition_throttling_alarms_per_operation(
    alarms: dict[str, dict[str, Any]], operation: str
) -> None:
    alarm = _alarm(alarms, f"Rekognition{operation}Throttled")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/Rekognition", "ThrottledCount")
    assert alarm["Dimensions"] == [{"Name": "Operation", "Value": operation}]
    assert alarm["Period"] == CONFIG.alarm_rekognition_throttle_period_s
    # Several periods in a row, all of them breaching: a single spike never alarms.
    assert alarm["EvaluationPeriods"] == CONFIG.alarm_rekognition_throttle_periods > 1
    assert alarm["DatapointsToAlarm"] == CONFIG.alarm_rekognition_throttle_periods
    assert alarm["Threshold"] == CONFIG.alarm_rekognition_throttles_per_period


def test_api_5xx_alarms(alarms: dict[str, dict[str, Any]]) -> None:
    alarm = _alarm(alarms, "Api5xx")
    assert (alarm["Namespace"], alarm["MetricName"]) == ("AWS/ApiGateway", "5XXError")
    assert alarm["Dimensions"] == [{"Name": "ApiName", "Value": f"{CONFIG.api_name}-dev"}]
    assert alarm["Period"] == CONFIG.alarm_api_5xx_period_s
    assert alarm["Threshold"] == CONFIG.alarm_api_5xx_per_period


def test_alarm_email_subscribes_and_no_api_means_no_5xx_alarm() -> None:
    """The construct alone, on imported resources: the email context value and wiring."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_sqs as sqs
    from aws_cdk import aws_stepfunctions as sfn
    from aws_cdk.assertions import Template

    from infra.observability import Observability

    config = PipelineConfig(alarm_email="ops@example.com")
    stack = cdk.Stack(cdk.App(), "Alone")
    arn = "arn:aws:sqs:us-east-1:123456789012:"
    dlqs = {n: sqs.Queue.from_queue_arn(stack, n, arn + n) for n in ("A", "B", "C")}
    machine = sfn.StateMachine.from_state_machine_arn(
        stack, "M", "arn:aws:states:us-east-1:123456789012:stateMachine:m"
    )
    Observability(
        stack,
        "Observability",
        config=config,
        dead_letter_queues=dlqs,
        queues={},
        functions={"F": lambda_.Function.from_function_name(stack, "F", "f")},
        state_machine=machine,
        dashboard_targets=definition.targets_from_config(
            config, region="us-east-1", function_names={}, state_machine_arn="m"
        ),
    )
    template = Template.from_stack(stack)
    template.has_resource_properties(
        "AWS::SNS::Subscription", {"Protocol": "email", "Endpoint": "ops@example.com"}
    )
    described = json.dumps(template.find_resources("AWS::CloudWatch::Alarm"))
    assert "5XXError" not in described
    # One DLQ alarm per queue given: a DLQ appears by wiring, nothing else.
    assert described.count("ApproximateNumberOfMessagesVisible") == 3


# --- dashboard -----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def widgets(template: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The rendered widgets' properties by title."""
    body = dashboard_body(template)
    return {w["properties"]["title"]: w for w in body["widgets"]}


@pytest.fixture(scope="module")
def expected() -> definition.Dashboard:
    """The definition rendered with placeholder targets (titles and metrics do not depend on
    the targets' values, only the dimension values do)."""
    return definition.dashboard_definition(
        definition.targets_from_config(
            replace(CONFIG, metrics_namespace=NAMESPACE),
            region="us-east-1",
            function_names={
                s: s
                for s in (
                    CONFIG.index_service_name,
                    CONFIG.associate_service_name,
                    CONFIG.api_service_name,
                    CONFIG.erasure_service_name,
                )
            },
            state_machine_arn="arn",
            api_name="api",
        )
    )


def _rendered_metrics(widget: dict[str, Any]) -> list[tuple[str, str, dict[str, str], dict]]:
    """(namespace, name, dimensions, options) of each plain metric of a rendered widget."""
    found = []
    for entry in widget["properties"]["metrics"]:
        *fields, options = entry if isinstance(entry[-1], dict) else (*entry, {})
        if fields:
            namespace, name, *dims = fields
            found.append((namespace, name, dict(zip(dims[::2], dims[1::2], strict=True)), options))
    return found


def test_the_dashboard_draws_every_widget_of_the_definition_in_order(
    template: dict[str, Any], expected: definition.Dashboard
) -> None:
    body = dashboard_body(template)
    titles = [w["properties"]["title"] for w in body["widgets"]]
    assert titles == [w.title for w in expected.widgets]
    assert [w.key for w in expected.widgets] == list(definition.WIDGET_KEYS)  # the API included
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    assert (
        token_text(dashboard["Properties"]["DashboardName"]) == "FaceEnrollment-dev-<AWS::Region>"
    )


def test_every_metric_has_its_namespace_statistic_and_dimensions(
    widgets: dict[str, dict[str, Any]], expected: definition.Dashboard
) -> None:
    for widget in expected.widgets:
        rendered = widgets[widget.title]
        assert rendered["width"] == widget.width and rendered["height"] == widget.height
        plain = {
            options.get("id"): (ns, name, dims, options)
            for ns, name, dims, options in _rendered_metrics(rendered)
        }
        for metric in widget.metrics:
            if metric.expression is not None:
                continue
            namespace, name, dims, options = plain[metric.id]
            assert (namespace, name) == (metric.namespace, metric.metric_name), metric.id
            assert set(dims) == set(metric.dimensions), (widget.key, metric.id)
            assert options.get("stat", "Average") == metric.statistic, (widget.key, metric.id)
            assert options.get("visible", True) == metric.visible, (widget.key, metric.id)
        expressions = [
            m["expression"]
            for m in (e[0] for e in rendered["properties"]["metrics"] if len(e) == 1)
        ]
        assert expressions == [m.expression for m in widget.shown if m.expression], widget.key


def test_the_funnel_is_bars_over_the_whole_range_and_counts_the_pipeline_metrics(
    widgets: dict[str, dict[str, Any]],
) -> None:
    funnel = widgets["Enrollment funnel"]["properties"]
    assert funnel["view"] == "bar" and funnel["setPeriodToTimeRange"] is True
    metrics = {
        (ns, name, json.dumps(d))
        for ns, name, d, _ in _rendered_metrics(widgets["Enrollment funnel"])
    }
    for name, service in (
        ("PhotosIndexed", CONFIG.index_service_name),
        ("PhotosRejected", CONFIG.index_service_name),
        ("PhotosRejected", CONFIG.associate_service_name),
        ("FacesAssociated", CONFIG.associate_service_name),
    ):
        assert (NAMESPACE, name, json.dumps({"service": service})) in metrics
    assert (NAMESPACE, "ActivationSeconds", "{}") in metrics  # users activated
    labels = [m[-1].get("label") for m in funnel["metrics"]]
    for label in ("photos received", "indexed", "rejected", "associated", "users activated"):
        assert label in labels


def test_resource_dimensions_point_at_the_deployed_resources(
    widgets: dict[str, dict[str, Any]],
) -> None:
    def dimension_values(title: str, key: str) -> list[str]:
        return [d[key] for _, _, d, _ in _rendered_metrics(widgets[title])]

    queues = dimension_values("Queue depth (messages visible)", "QueueName")
    assert [q.split(".")[0][1:-8] for q in queues] == [
        "IngestUploadQueue",
        "AssociationQueue",
        "ErasureQueue",
    ]
    assert all(q.endswith(".QueueName>") for q in queues)
    dlqs = dimension_values("Dead-letter queue depth", "QueueName")
    assert all("Dlq" in q for q in dlqs) and len(dlqs) == 3
    functions = dimension_values("Function errors", "FunctionName")
    assert [f[1:-9] for f in functions] == [
        "IngestIndexPhotoFunction",
        "AssociationAssociateFacesFunction",
        "ApiHandlerFunction",
        "ErasureEraseUserFunction",
        "ReconcilerReconcileFunction",
    ]
    machines = set(dimension_values("Activation executions", "StateMachineArn"))
    assert len(machines) == 1 and machines.pop().startswith("<ActivationStateMachine")
    for title in (
        "Rekognition throttled",
        "Rekognition server errors",
        "Rekognition response time",
    ):
        assert dimension_values(title, "Operation") == list(definition.REKOGNITION_OPERATIONS)
    assert set(dimension_values("Query API", "ApiName")) == {f"{CONFIG.api_name}-dev"}
