"""The one dashboard definition: every widget of issue 7, each metric with its namespace and
dimensions."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from infra.config import PipelineConfig
from infra.dashboard import (
    ANY_VALUE,
    REKOGNITION_OPERATIONS,
    WIDGET_KEYS,
    Dashboard,
    Metric,
    Widget,
    WidgetKind,
    dashboard_definition,
    targets_from_config,
)

CONFIG = PipelineConfig()
FUNCTIONS = {
    CONFIG.index_service_name: "stack-IndexFn",
    CONFIG.associate_service_name: "stack-AssociateFn",
    CONFIG.api_service_name: "stack-ApiFn",
    CONFIG.erasure_service_name: "stack-EraseFn",
}
STATE_MACHINE = "arn:aws:states:eu-west-1:123456789012:stateMachine:activation"


def definition(api_name: str | None = "face-enrollment-api") -> Dashboard:
    targets = targets_from_config(
        CONFIG,
        region="eu-west-1",
        function_names=FUNCTIONS,
        state_machine_arn=STATE_MACHINE,
        api_name=api_name,
    )
    return dashboard_definition(targets)


def by_name(widget: Widget) -> dict[str, list[Metric]]:
    found: dict[str, list[Metric]] = {}
    for metric in widget.metrics:
        found.setdefault(metric.metric_name, []).append(metric)
    return found


def test_every_widget_is_present_in_order() -> None:
    assert tuple(w.key for w in definition().widgets) == WIDGET_KEYS
    assert "api" not in {w.key for w in definition(api_name=None).widgets}


def test_every_plain_metric_has_namespace_dimensions_and_statistic() -> None:
    for widget in definition().widgets:
        assert widget.metrics, widget.key
        for metric in widget.metrics:
            assert re.fullmatch(
                r"(Sum|Average|Maximum|Minimum|SampleCount|p\d\d)", metric.statistic
            )
            if metric.expression is None:
                assert metric.namespace and metric.metric_name, (widget.key, metric.id)
                assert ANY_VALUE not in metric.dimensions.values()
            elif metric.expression.startswith("SEARCH("):
                assert metric.namespace and metric.metric_name and metric.searches
            else:
                # A sum of the widget's own metrics, every input a plain metric.
                inputs = widget.expression_inputs(metric)
                assert inputs and all(i.expression is None for i in inputs)


def test_funnel_reads_the_pipeline_metrics_per_service() -> None:
    ns, index, associate = (
        CONFIG.metrics_namespace,
        CONFIG.index_service_name,
        CONFIG.associate_service_name,
    )
    funnel = definition().widget("funnel")
    assert funnel.kind is WidgetKind.FUNNEL
    assert [m.label for m in funnel.shown] == [
        "photos received",
        "indexed",
        "rejected",
        "associated",
        "users activated",
        "photos failed",
        "activations failed",
    ]
    metrics = {m.id: m for m in funnel.metrics}
    assert (metrics["indexed"].namespace, metrics["indexed"].metric_name) == (ns, "PhotosIndexed")
    assert metrics["indexed"].dimensions == {"service": index}
    assert metrics["rejAssoc"].dimensions == {"service": associate}
    assert metrics["associated"].metric_name == "FacesAssociated"
    assert metrics["associated"].dimensions == {"service": associate}
    # The state machine publishes without dimensions: one data point per activation.
    assert (metrics["activated"].metric_name, metrics["activated"].statistic) == (
        "ActivationSeconds",
        "SampleCount",
    )
    assert metrics["activated"].dimensions == {}
    assert metrics["activationFailed"].metric_name == "ActivationFailed"
    received = [i.id for i in funnel.expression_inputs(metrics["received"])]
    assert received == ["indexed", "rejIndex", "failIndex"]
    assert all(not m.visible for m in funnel.metrics if m.id in received)


def test_rejections_by_reason_are_one_search_per_metric() -> None:
    widget = definition().widget("rejected_by_reason")
    for metric, name in zip(widget.metrics, ("PhotosRejected", "PhotosFailed"), strict=True):
        assert metric.metric_name == name
        assert metric.dimensions == {"Reason": ANY_VALUE, "service": ANY_VALUE}
        assert metric.expression == (
            f"SEARCH('{{{CONFIG.metrics_namespace},Reason,service}} MetricName=\"{name}\"', "
            f"'Sum', {widget.period_s})"
        )


def test_time_to_active_percentiles() -> None:
    widget = definition().widget("upload_to_active")
    assert [(m.metric_name, m.statistic) for m in widget.metrics] == [
        ("UploadToActiveSeconds", "p50"),
        ("UploadToActiveSeconds", "p90"),
        ("UploadToActiveSeconds", "p99"),
    ]
    assert all(m.dimensions == {} for m in widget.metrics)  # as the state machine publishes it


@pytest.mark.parametrize(
    ("key", "metric_name", "dlq"),
    [
        ("queue_depth", "ApproximateNumberOfMessagesVisible", False),
        ("queue_oldest_age", "ApproximateAgeOfOldestMessage", False),
        ("dlq_depth", "ApproximateNumberOfMessagesVisible", True),
    ],
)
def test_queue_widgets_cover_every_queue(key: str, metric_name: str, dlq: bool) -> None:
    widget = definition().widget(key)
    names = (
        (CONFIG.upload_dlq_name, CONFIG.association_dlq_name, CONFIG.erasure_dlq_name)
        if dlq
        else (CONFIG.upload_queue_name, CONFIG.association_queue_name, CONFIG.erasure_queue_name)
    )
    assert [(m.namespace, m.metric_name, dict(m.dimensions)) for m in widget.metrics] == [
        ("AWS/SQS", metric_name, {"QueueName": name}) for name in names
    ]


@pytest.mark.parametrize(
    ("key", "metric_name", "statistic"),
    [
        ("lambda_errors", "Errors", "Sum"),
        ("lambda_throttles", "Throttles", "Sum"),
        ("lambda_duration", "Duration", "p99"),
        ("lambda_concurrency", "ConcurrentExecutions", "Maximum"),
    ],
)
def test_function_widgets_cover_every_function(key: str, metric_name: str, statistic: str) -> None:
    widget = definition().widget(key)
    assert [
        (m.namespace, m.metric_name, m.statistic, dict(m.dimensions)) for m in widget.metrics
    ] == [
        ("AWS/Lambda", metric_name, statistic, {"FunctionName": name})
        for name in FUNCTIONS.values()
    ]


def test_state_machine_executions() -> None:
    widget = definition().widget("state_machine")
    assert [(m.namespace, m.metric_name, dict(m.dimensions)) for m in widget.metrics] == [
        ("AWS/States", name, {"StateMachineArn": STATE_MACHINE})
        for name in (
            "ExecutionsStarted",
            "ExecutionsSucceeded",
            "ExecutionsFailed",
            "ExecutionsTimedOut",
        )
    ]


@pytest.mark.parametrize(
    ("key", "metric_name"),
    [
        ("rekognition_throttled", "ThrottledCount"),
        ("rekognition_server_errors", "ServerErrorCount"),
        ("rekognition_response_time", "ResponseTime"),
    ],
)
def test_rekognition_per_operation(key: str, metric_name: str) -> None:
    widget = definition().widget(key)
    assert REKOGNITION_OPERATIONS == (
        "IndexFaces",
        "AssociateFaces",
        "SearchUsers",
        "SearchUsersByImage",
        "CreateUser",
    )
    assert [(m.namespace, m.metric_name, dict(m.dimensions)) for m in widget.metrics] == [
        ("AWS/Rekognition", metric_name, {"Operation": op}) for op in REKOGNITION_OPERATIONS
    ]


def test_api_requests_errors_and_latency() -> None:
    widget = definition().widget("api")
    assert [
        (m.namespace, m.metric_name, m.statistic, dict(m.dimensions)) for m in widget.metrics
    ] == [
        ("AWS/ApiGateway", name, stat, {"ApiName": "face-enrollment-api"})
        for name, stat in (
            ("Count", "Sum"),
            ("4XXError", "Sum"),
            ("5XXError", "Sum"),
            ("Latency", "p95"),
        )
    ]


def test_functions_left_out_of_the_targets_are_left_off() -> None:
    targets = targets_from_config(
        CONFIG,
        region="us-east-1",
        function_names={CONFIG.index_service_name: "only-index"},
        state_machine_arn=STATE_MACHINE,
    )
    widget = dashboard_definition(targets).widget("lambda_errors")
    assert [dict(m.dimensions) for m in widget.metrics] == [{"FunctionName": "only-index"}]


def test_bad_metric_ids_and_duplicate_ids_are_refused() -> None:
    with pytest.raises(ValueError, match="metric id"):
        Metric("1bad", "ns", "m", {}, "Sum", "label")
    metric = Metric("a", "ns", "m", {}, "Sum", "label")
    with pytest.raises(ValueError, match="unique"):
        Widget("w", "title", WidgetKind.NUMBER, "u", (metric, metric))


def test_the_definition_does_not_import_aws_cdk() -> None:
    # The local runner imports it without CDK installed.
    code = "import sys, infra.dashboard; print('aws_cdk' in sys.modules)"
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == "False"
