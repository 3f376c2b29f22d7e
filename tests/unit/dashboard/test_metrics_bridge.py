"""The EMF parser and the bridge that turns a handler's EMF output into PutMetricData calls."""

from __future__ import annotations

import io
import json
import os
import sys
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
from aws_lambda_powertools import Metrics
from aws_lambda_powertools.metrics import MetricUnit, single_metric

from enroll_local.runner.metrics_bridge import (
    MetricPoint,
    MetricsBridge,
    call_handler,
    captured_stdout,
    parse_emf,
    put_metric_requests,
    split_emf,
)

TIMESTAMP_MS = 1_780_000_000_000


def emf(metrics: list[dict[str, Any]], dimensions: list[list[str]], **members: Any) -> str:
    document = {
        "_aws": {
            "Timestamp": TIMESTAMP_MS,
            "CloudWatchMetrics": [
                {"Namespace": "FaceEnrollment", "Dimensions": dimensions, "Metrics": metrics}
            ],
        },
        **members,
    }
    return json.dumps(document)


class FakeCloudWatch:
    def __init__(self, fail: bool = False) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail = fail

    def put_metric_data(self, **request: Any) -> None:
        if self.fail:
            raise ConnectionError("endpoint gone")
        self.requests.append(request)


def test_a_single_metric() -> None:
    line = emf(
        [{"Name": "PhotosIndexed", "Unit": "Count"}],
        [["service"]],
        service="index-photo",
        PhotosIndexed=1.0,
    )
    assert parse_emf(line) == [
        MetricPoint(
            "FaceEnrollment",
            "PhotosIndexed",
            (("service", "index-photo"),),
            (1.0,),
            "Count",
            TIMESTAMP_MS,
        )
    ]


def test_several_metrics_share_the_dimensions() -> None:
    line = emf(
        [{"Name": "NotificationsReceived", "Unit": "Count"}, {"Name": "PhotosIndexed"}],
        [["service"]],
        service="index-photo",
        NotificationsReceived=3,
        PhotosIndexed=2,
    )
    points = parse_emf(line)
    assert points is not None
    assert [(p.metric_name, p.values, p.unit) for p in points] == [
        ("NotificationsReceived", (3.0,), "Count"),
        ("PhotosIndexed", (2.0,), "None"),
    ]


def test_each_dimension_set_is_a_series_of_its_own() -> None:
    line = emf(
        [{"Name": "PhotosRejected", "Unit": "Count"}],
        [["service"], ["service", "Reason"], []],
        service="index-photo",
        Reason="NO_FACE",
        PhotosRejected=1,
    )
    points = parse_emf(line)
    assert points is not None
    assert [p.dimensions for p in points] == [
        (("service", "index-photo"),),
        # Sorted by name, so one series always has one spelling.
        (("Reason", "NO_FACE"), ("service", "index-photo")),
        (),
    ]


def test_arrays_of_values_become_values_and_counts() -> None:
    line = emf([{"Name": "Latency", "Unit": "Milliseconds"}], [[]], Latency=[10, 20.5, 10])
    points = parse_emf(line)
    assert points is not None and points[0].values == (10.0, 20.5, 10.0)
    entry = points[0].to_metric_data()
    assert entry["Values"] == [10.0, 20.5, 10.0] and entry["Counts"] == [1.0, 1.0, 1.0]
    assert entry["Timestamp"] == datetime.fromtimestamp(TIMESTAMP_MS / 1000, tz=UTC)
    assert "Value" not in entry


@pytest.mark.parametrize(
    "line",
    [
        "",
        "plain text",
        '{"level": "INFO", "message": "photo indexed"}',  # a Powertools log line
        '{"_aws": {"Timestamp": 1}}',  # no CloudWatchMetrics
        "[1, 2]",
        "{not json",
    ],
)
def test_lines_that_are_not_emf(line: str) -> None:
    assert parse_emf(line) is None


def test_invalid_parts_are_dropped_not_the_document() -> None:
    line = emf(
        [
            {"Name": "Good"},
            {"Name": "Missing"},
            {"Name": "Text"},
            {"Name": "Bad", "Unit": "Parsecs"},
        ],
        [["service"], ["absent"]],
        service="svc",
        Good=1,
        Text="seven",
        Bad=2,
    )
    points = parse_emf(line)
    assert points is not None
    assert [(p.metric_name, p.dimensions, p.unit) for p in points] == [
        ("Good", (("service", "svc"),), "None"),
        ("Bad", (("service", "svc"),), "None"),  # unknown unit -> None, as CloudWatch does
    ]


def test_what_powertools_prints_is_understood(capsys: pytest.CaptureFixture[str]) -> None:
    metrics = Metrics(namespace="FaceEnrollment", service="index-photo")
    # Powertools keeps one metric set per process: start from none of another test's metrics
    # (e.g. a backfill run in this process, whose counts nothing flushes outside Lambda).
    metrics.clear_metrics()
    metrics.add_metric(name="PhotosIndexed", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="PhotosIndexed", unit=MetricUnit.Count, value=1)
    metrics.add_metric(name="PhotosRejected", unit=MetricUnit.Count, value=1)
    metrics.flush_metrics()
    with single_metric(
        name="PhotosRejected",
        unit=MetricUnit.Count,
        value=1,
        namespace="FaceEnrollment",
        default_dimensions={"service": "index-photo"},
    ) as metric:
        metric.add_dimension(name="Reason", value="NO_FACE")
    points, rest = split_emf(capsys.readouterr().out)
    assert rest == ""
    summary = {(p.metric_name, p.dimensions): sum(p.values) for p in points}
    assert summary == {
        ("PhotosIndexed", (("service", "index-photo"),)): 2.0,
        ("PhotosRejected", (("service", "index-photo"),)): 1.0,
        ("PhotosRejected", (("Reason", "NO_FACE"), ("service", "index-photo"))): 1.0,
    }


def test_requests_are_grouped_by_namespace() -> None:
    points = [
        MetricPoint("A", "m1", (), (1.0,)),
        MetricPoint("B", "m2", (), (1.0,)),
        MetricPoint("A", "m3", (), (2.0,)),
    ]
    requests = put_metric_requests(points)
    assert [(r["Namespace"], [d["MetricName"] for d in r["MetricData"]]) for r in requests] == [
        ("A", ["m1", "m3"]),
        ("B", ["m2"]),
    ]


def test_invoke_bridges_emf_and_passes_other_output_on(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")
    cloudwatch, console = FakeCloudWatch(), io.StringIO()
    bridge = MetricsBridge(cloudwatch, passthrough=console)
    seen_env: list[str | None] = []

    def handler(event: Any, context: Any) -> dict[str, Any]:
        seen_env.append(os.environ.get("POWERTOOLS_METRICS_DISABLED"))
        print("a log line")
        print(emf([{"Name": "PhotosIndexed"}], [["service"]], service="s", PhotosIndexed=1))
        return {"batchItemFailures": []}

    assert call_handler(bridge, "index-fn", handler, {}, None) == {"batchItemFailures": []}
    # Metrics are on while the handler runs (else nothing to bridge), and restored after.
    assert seen_env == ["false"]
    assert os.environ["POWERTOOLS_METRICS_DISABLED"] == "true"
    assert console.getvalue() == "a log line\n"
    published = {
        (r["Namespace"], d["MetricName"]): d.get("Value")
        for r in cloudwatch.requests
        for d in r["MetricData"]
    }
    assert published[("FaceEnrollment", "PhotosIndexed")] == 1.0
    assert published[("AWS/Lambda", "Invocations")] == 1.0
    assert published[("AWS/Lambda", "Errors")] == 0.0
    assert published[("AWS/Lambda", "Duration")] is not None
    assert bridge.stats.documents == 1


def test_a_raising_handler_counts_as_a_lambda_error() -> None:
    cloudwatch = FakeCloudWatch()
    bridge = MetricsBridge(cloudwatch, passthrough=io.StringIO())

    def handler(event: Any, context: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        bridge.invoke("index-fn", handler, {}, None)
    errors = [
        d for r in cloudwatch.requests for d in r["MetricData"] if d["MetricName"] == "Errors"
    ]
    assert errors[0]["Value"] == 1.0
    assert errors[0]["Dimensions"] == [{"Name": "FunctionName", "Value": "index-fn"}]


def test_a_publish_failure_never_fails_the_invocation() -> None:
    bridge = MetricsBridge(FakeCloudWatch(fail=True), passthrough=io.StringIO())
    assert bridge.invoke("fn", lambda e, c: "ok", {}, None) == "ok"
    assert bridge.stats.publish_errors


def test_only_the_invoking_thread_is_captured() -> None:
    original = sys.stdout
    other_thread_output = io.StringIO()
    sys.stdout = other_thread_output
    try:
        with captured_stdout() as buffer:
            print("mine")
            worker = threading.Thread(target=lambda: print("theirs"))
            worker.start()
            worker.join()
        assert sys.stdout is other_thread_output  # restored
    finally:
        sys.stdout = original
    assert buffer.getvalue() == "mine\n"
    assert other_thread_output.getvalue() == "theirs\n"
