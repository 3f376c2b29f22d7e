"""Read the dashboard definition's numbers from the local stack.

Sources, per widget (``infra.dashboard`` keys):
- the pipeline's own metrics (funnel, rejections by reason) and ``AWS/Lambda`` Errors/Duration:
  moto's CloudWatch, fed by the runner's EMF bridge (``enroll_local/runner/metrics_bridge.py``)
  and by the state machine's own PutMetricData;
- queue and DLQ depths: the queues' attributes, now;
- the state machine's executions: ListExecutions (moto publishes no ``AWS/States`` metrics);
- time from upload to ACTIVE: the ledger (photo ACTIVE time) and S3 (the version's upload time),
  because moto's CloudWatch computes no percentiles;
- nothing local produces Lambda throttles or concurrency, the age of a queue's oldest message,
  ``AWS/Rekognition`` or API Gateway metrics: those panels say so.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
from botocore.exceptions import BotoCoreError, ClientError

from enroll_local.dashboard.figures import DashboardFigures, Panel, Series
from enroll_local.runner.ledger_report import LedgerSnapshot, read_ledger
from enroll_local.runner.resources import Endpoints
from infra.config import PipelineConfig
from infra.dashboard import (
    ANY_VALUE,
    Dashboard,
    DashboardTargets,
    Metric,
    Widget,
    dashboard_definition,
    targets_from_config,
)

#: Period of the local time-series panels (seconds): a local run lasts minutes, so CloudWatch's
#: 5-minute dashboard period would draw a single point.
LOCAL_SERIES_PERIOD_S = 60
#: Data points are stamped when the handler flushed them; look this far past "now" so a point
#: published while the dashboard is read still counts (seconds).
END_TIME_SLACK_S = 60
#: CloudWatch's standard-resolution grain: whole-window periods are multiples of it (seconds).
CLOUDWATCH_PERIOD_GRAIN_S = 60
#: GetMetricData accepts at most this many queries per call.
GET_METRIC_DATA_MAX_QUERIES = 500
#: Statistics moto's CloudWatch computes (no percentiles): a percentile is drawn as Maximum.
MOTO_STATISTICS = frozenset({"Sum", "Average", "Minimum", "Maximum", "SampleCount"})
#: Percentiles of the upload-to-ACTIVE panel.
UPLOAD_TO_ACTIVE_PERCENTILES = (50, 90, 99)
#: The local stack's credentials (any are accepted).
LOCAL_CREDENTIALS = {"aws_access_key_id": "test", "aws_secret_access_key": "test"}

#: Widgets nothing local produces, and why, in words a person reads on the panel.
NO_LOCAL_SOURCE = {
    "queue_oldest_age": (
        "SQS computes ApproximateAgeOfOldestMessage itself; the local queues' attributes do not "
        "carry it."
    ),
    "lambda_throttles": (
        "The local runner never throttles: each event source's pollers invoke at most its "
        "concurrency at once, so no function reaches a concurrency limit."
    ),
    "rekognition_throttled": "The Rekognition emulator publishes no AWS/Rekognition metrics.",
    "rekognition_server_errors": "The Rekognition emulator publishes no AWS/Rekognition metrics.",
    "rekognition_response_time": "The Rekognition emulator publishes no AWS/Rekognition metrics.",
    "api": (
        "The local API server is not API Gateway: it publishes no AWS/ApiGateway metrics (the "
        "query API function's errors and duration are on the function panels)."
    ),
}
NO_LOCAL_SOURCE_PREFIX = "No local source."


def local_targets(endpoints: Endpoints, config: PipelineConfig) -> DashboardTargets:
    """The definition's targets on the local stack: the runner names each function after its
    service, and the queues and state machine are those of ``endpoints``."""
    services = (
        config.index_service_name,
        config.associate_service_name,
        config.api_service_name,
        config.erasure_service_name,
    )
    return targets_from_config(
        config,
        region=endpoints.region,
        function_names={service: service for service in services},
        state_machine_arn=endpoints.state_machine_arn,
        api_name=config.api_service_name,
        dashboard_name=f"{config.collection_id} (local)",
    )


def percentile(values: list[float], percent: float) -> float:
    """Nearest-rank percentile of ``values`` (not empty)."""
    ordered = sorted(values)
    rank = max(1, math.ceil(percent / 100 * len(ordered)))
    return ordered[rank - 1]


def _combine(statistic: str, values: list[float]) -> float:
    if statistic == "Maximum":
        return max(values)
    if statistic == "Minimum":
        return min(values)
    if statistic == "Average":
        return sum(values) / len(values)
    return sum(values)


def _parse_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _sum_inputs(expression: str) -> list[str]:
    """The ids of a ``FILL(a,0) + FILL(b,0)`` expression (the only math the definition uses)."""
    return re.findall(r"FILL\(\s*([A-Za-z_][A-Za-z0-9_]*)\s*,\s*0\s*\)", expression)


@dataclass
class LocalSources:
    """Clients on the local endpoint and the time window of one rendering."""

    endpoints: Endpoints
    since_seconds: float
    now: datetime

    def __post_init__(self) -> None:
        def client(service: str) -> Any:
            return boto3.client(  # type: ignore[call-overload]
                service,
                endpoint_url=self.endpoints.endpoint_url,
                region_name=self.endpoints.region,
                **LOCAL_CREDENTIALS,
            )

        self.cloudwatch = client("cloudwatch")
        self.sqs = client("sqs")
        self.dynamodb = client("dynamodb")
        self.s3 = client("s3")
        self.stepfunctions = client("stepfunctions")

    @property
    def start(self) -> datetime:
        """Start of the window."""
        return self.now - timedelta(seconds=self.since_seconds)

    @property
    def end(self) -> datetime:
        """End of the window (a little past now)."""
        return self.now + timedelta(seconds=END_TIME_SLACK_S)

    @property
    def window_period_s(self) -> int:
        """One period covering the whole window (a multiple of CloudWatch's grain)."""
        span = self.since_seconds + END_TIME_SLACK_S
        return int(math.ceil(span / CLOUDWATCH_PERIOD_GRAIN_S) * CLOUDWATCH_PERIOD_GRAIN_S)

    # -- CloudWatch ------------------------------------------------------------------------

    def metric_data(
        self, queries: list[tuple[str, str, dict[str, str], str]], period_s: int
    ) -> dict[str, list[tuple[datetime, float]]]:
        """GetMetricData for (namespace, name, dimensions, statistic) queries; by query index.

        Dimensions are sent sorted by name, as the bridge publishes them: moto compares the
        dimension lists of a query and a series in order.
        """
        results: dict[str, list[tuple[datetime, float]]] = {}
        for start in range(0, len(queries), GET_METRIC_DATA_MAX_QUERIES):
            chunk = queries[start : start + GET_METRIC_DATA_MAX_QUERIES]
            request = [
                {
                    "Id": f"q{start + i}",
                    "MetricStat": {
                        "Metric": {
                            "Namespace": namespace,
                            "MetricName": name,
                            "Dimensions": [
                                {"Name": k, "Value": v} for k, v in sorted(dimensions.items())
                            ],
                        },
                        "Period": period_s,
                        "Stat": statistic,
                    },
                }
                for i, (namespace, name, dimensions, statistic) in enumerate(chunk)
            ]
            response = self.cloudwatch.get_metric_data(
                MetricDataQueries=request, StartTime=self.start, EndTime=self.end
            )
            for result in response.get("MetricDataResults", []):
                points = [
                    (_parse_time(t) or self.now, float(v))
                    for t, v in zip(result["Timestamps"], result["Values"], strict=False)
                    if v is not None
                ]
                results[result["Id"]] = points
        return results

    def totals(self, metrics: list[Metric]) -> dict[str, float | None]:
        """Each plain metric's statistic over the whole window (None: no data point)."""
        queries = [
            (m.namespace, m.metric_name, dict(m.dimensions), _local_stat(m.statistic))
            for m in metrics
        ]
        data = self.metric_data(queries, self.window_period_s)
        totals: dict[str, float | None] = {}
        for i, metric in enumerate(metrics):
            values = [v for _, v in data.get(f"q{i}", [])]
            totals[metric.id] = _combine(_local_stat(metric.statistic), values) if values else None
        return totals

    def series(self, metrics: list[Metric], period_s: int) -> list[Series]:
        """One line per plain metric, ``period_s`` apart."""
        queries = [
            (m.namespace, m.metric_name, dict(m.dimensions), _local_stat(m.statistic))
            for m in metrics
        ]
        data = self.metric_data(queries, period_s)
        lines = []
        for i, metric in enumerate(metrics):
            points = sorted(data.get(f"q{i}", []))
            lines.append(
                Series(
                    label=metric.label,
                    timestamps=[t.timestamp() for t, _ in points],
                    values=[v for _, v in points],
                )
            )
        return lines

    def searched(self, metric: Metric) -> dict[tuple[tuple[str, str], ...], float]:
        """A SEARCH metric's series (those with exactly its dimension names) and their totals."""
        wanted = dict(metric.dimensions)
        found: list[dict[str, str]] = []
        pages = self.cloudwatch.get_paginator("list_metrics").paginate(
            Namespace=metric.namespace, MetricName=metric.metric_name
        )
        for page in pages:
            for listed in page.get("Metrics", []):
                dims = {d["Name"]: d["Value"] for d in listed.get("Dimensions", [])}
                if set(dims) != set(wanted):
                    continue
                if any(v != ANY_VALUE and dims[k] != v for k, v in wanted.items()):
                    continue
                if dims not in found:
                    found.append(dims)
        queries = [
            (metric.namespace, metric.metric_name, dims, _local_stat(metric.statistic))
            for dims in found
        ]
        data = self.metric_data(queries, self.window_period_s) if queries else {}
        totals = {}
        for i, dims in enumerate(found):
            values = [v for _, v in data.get(f"q{i}", [])]
            if values:
                totals[tuple(sorted(dims.items()))] = _combine(metric.statistic, values)
        return totals

    # -- other local sources ---------------------------------------------------------------

    def queue_attributes(self, queue_name: str) -> dict[str, int] | None:
        """The queue's message counts now (None when the queue does not exist locally)."""
        try:
            url = self.sqs.get_queue_url(QueueName=queue_name)["QueueUrl"]
            attributes = self.sqs.get_queue_attributes(
                QueueUrl=url,
                AttributeNames=[
                    "ApproximateNumberOfMessages",
                    "ApproximateNumberOfMessagesNotVisible",
                    "ApproximateNumberOfMessagesDelayed",
                ],
            )["Attributes"]
        except (ClientError, BotoCoreError):
            return None
        return {name: int(value) for name, value in attributes.items()}

    def executions(self, state_machine_arn: str) -> Counter[str]:
        """Executions started in the window, by status."""
        statuses: Counter[str] = Counter()
        try:
            pages = self.stepfunctions.get_paginator("list_executions").paginate(
                stateMachineArn=state_machine_arn
            )
            for page in pages:
                for execution in page.get("executions", []):
                    started = _parse_time(execution.get("startDate"))
                    if started is None or started >= self.start:
                        statuses[str(execution.get("status"))] += 1
        except (ClientError, BotoCoreError):
            pass
        return statuses

    def ledger(self) -> LedgerSnapshot:
        """The whole ledger now."""
        return read_ledger(self.dynamodb, self.endpoints.table)

    def upload_times(self) -> dict[tuple[str, str | None], datetime]:
        """Each photo version's upload time (S3 LastModified), by (key, version id)."""
        uploaded: dict[tuple[str, str | None], datetime] = {}
        pages = self.s3.get_paginator("list_object_versions").paginate(
            Bucket=self.endpoints.bucket, Prefix=self.endpoints.prefix
        )
        for page in pages:
            for version in page.get("Versions", []):
                when = _parse_time(version.get("LastModified"))
                if when is None:
                    continue
                uploaded[(version["Key"], version.get("VersionId"))] = when
                if version.get("IsLatest"):
                    uploaded[(version["Key"], None)] = when
        return uploaded


def _local_stat(statistic: str) -> str:
    return statistic if statistic in MOTO_STATISTICS else "Maximum"


# -- panels ------------------------------------------------------------------------------------


def _no_source(widget: Widget, reason: str) -> Panel:
    return Panel(
        key=widget.key,
        title=widget.title,
        kind=str(widget.kind),
        unit=widget.unit,
        source="none",
        note=f"{NO_LOCAL_SOURCE_PREFIX} {reason}",
        has_local_source=False,
    )


def _funnel_values(widget: Widget, totals: dict[str, float | None]) -> dict[str, float]:
    bars: dict[str, float] = {}
    for metric in widget.shown:
        if metric.expression is None:
            bars[metric.label] = totals.get(metric.id) or 0.0
        else:
            bars[metric.label] = sum(totals.get(i) or 0.0 for i in _sum_inputs(metric.expression))
    return bars


def _funnel_panel(widget: Widget, sources: LocalSources, ledger: LedgerSnapshot) -> Panel:
    plain = [m for m in widget.metrics if m.expression is None]
    bars = _funnel_values(widget, sources.totals(plain))
    active_users = sum(1 for u in ledger.users if u.get("status") == "ACTIVE")
    return Panel(
        key=widget.key,
        title=widget.title,
        kind=str(widget.kind),
        unit=widget.unit,
        source="CloudWatch (bridged EMF + the state machine's PutMetricData)",
        bars=bars,
        note=(
            f"Ledger now: {len(ledger.photos)} photo(s), {active_users} user(s) ACTIVE. "
            "'users activated' counts activations (one per association batch)."
        ),
    )


def _by_reason_panel(widget: Widget, sources: LocalSources) -> Panel:
    bars: dict[str, float] = {}
    for metric in widget.metrics:
        verb = metric.label.split(" ", 1)[0]
        by_reason: dict[str, float] = {}
        for dims, total in sources.searched(metric).items():
            reason = dict(dims).get("Reason", "?")
            by_reason[reason] = by_reason.get(reason, 0.0) + total
        for reason, total in sorted(by_reason.items()):
            bars[f"{verb} {reason}"] = total
    return Panel(
        key=widget.key,
        title=widget.title,
        kind=str(widget.kind),
        unit=widget.unit,
        source="CloudWatch (bridged EMF, Reason dimension, all services added up)",
        bars=bars,
        note=None if bars else "No photo rejected or failed in the window.",
    )


def _upload_to_active_panel(widget: Widget, sources: LocalSources, ledger: LedgerSnapshot) -> Panel:
    uploaded = sources.upload_times()
    seconds: list[float] = []
    for photo in ledger.photos:
        if photo.get("status") != "ACTIVE":
            continue
        active_at = _parse_time(photo.get("updated_at"))
        key = str(photo.get("key"))
        upload = uploaded.get((key, photo.get("version_id"))) or uploaded.get((key, None))
        if active_at is None or upload is None or active_at < sources.start:
            continue
        seconds.append(max(0.0, (active_at - upload).total_seconds()))
    bars = (
        {f"p{p}": percentile(seconds, p) for p in UPLOAD_TO_ACTIVE_PERCENTILES} if seconds else {}
    )
    activation = sources.totals(
        [
            Metric(f"a{s}", m.namespace, m.metric_name, dict(m.dimensions), s, s)
            for m in widget.metrics[:1]
            for s in ("Average", "Maximum", "SampleCount")
        ]
    )
    note = (
        f"Locally: from the S3 upload to the photo's ACTIVE time in the ledger, over "
        f"{len(seconds)} photo(s) (moto computes no percentiles). "
    )
    if activation.get("aSampleCount"):
        note += (
            f"UploadToActiveSeconds (state machine): average "
            f"{activation['aAverage'] or 0:.1f} s, max {activation['aMaximum'] or 0:.1f} s over "
            f"{activation['aSampleCount']:.0f} activation(s)."
        )
    return Panel(
        key=widget.key,
        title="Time from upload to ACTIVE",
        kind=str(widget.kind),
        unit=widget.unit,
        source="ledger + S3 upload times",
        bars=bars,
        note=note,
    )


def _queue_panel(widget: Widget, sources: LocalSources) -> Panel:
    bars: dict[str, float] = {}
    in_flight: list[str] = []
    for metric in widget.metrics:
        attributes = sources.queue_attributes(metric.dimensions["QueueName"])
        if attributes is None:
            continue
        bars[metric.label] = float(attributes.get("ApproximateNumberOfMessages", 0))
        hidden = attributes.get("ApproximateNumberOfMessagesNotVisible", 0)
        if hidden:
            in_flight.append(f"{metric.label}: {hidden}")
    note = "Now (queue attributes); in flight: " + (", ".join(in_flight) or "none") + "."
    return Panel(
        key=widget.key,
        title=widget.title + " - now",
        kind=str(widget.kind),
        unit=widget.unit,
        source="SQS queue attributes",
        bars=bars,
        note=note,
    )


def _lambda_panel(widget: Widget, sources: LocalSources) -> Panel:
    plain = [m for m in widget.metrics if m.expression is None]
    lines = [s for s in sources.series(plain, LOCAL_SERIES_PERIOD_S) if s.values]
    note = None
    if any(m.statistic not in MOTO_STATISTICS for m in plain):
        note = "Maximum per minute locally (moto computes no percentiles)."
    if not lines:
        note = (note + " " if note else "") + "No invocation in the window."
    return Panel(
        key=widget.key,
        title=widget.title,
        kind=str(widget.kind),
        unit=widget.unit,
        source="CloudWatch AWS/Lambda (published by the local runner per invocation)",
        series=lines,
        note=note,
    )


def _state_machine_panel(widget: Widget, sources: LocalSources, arn: str) -> Panel:
    statuses = sources.executions(arn)
    started = sum(statuses.values())
    bars = {
        "started": float(started),
        "succeeded": float(statuses.get("SUCCEEDED", 0)),
        "failed": float(statuses.get("FAILED", 0)),
        "timed out": float(statuses.get("TIMED_OUT", 0)),
    }
    running = statuses.get("RUNNING", 0)
    return Panel(
        key=widget.key,
        title=widget.title,
        kind="funnel",
        unit=widget.unit,
        source="Step Functions ListExecutions",
        bars=bars,
        note=(
            f"Executions started in the window, by status ({running} still running); moto "
            "publishes no AWS/States metrics."
        ),
    )


def _generic_panel(widget: Widget, sources: LocalSources) -> Panel:
    plain = [m for m in widget.metrics if m.expression is None and not m.searches]
    lines = [s for s in sources.series(plain, LOCAL_SERIES_PERIOD_S) if s.values]
    return Panel(
        key=widget.key,
        title=widget.title,
        kind=str(widget.kind),
        unit=widget.unit,
        source="CloudWatch",
        series=lines,
        note=None if lines else "No data point in the window.",
    )


def _ledger_panel(ledger: LedgerSnapshot) -> Panel:
    bars: dict[str, float] = {}
    for status, n in sorted(Counter(str(p.get("status")) for p in ledger.photos).items()):
        bars[f"photos {status}"] = float(n)
    for status, n in sorted(Counter(str(u.get("status")) for u in ledger.users).items()):
        bars[f"users {status}"] = float(n)
    return Panel(
        key="ledger",
        title="Ledger now (local view only)",
        kind="funnel",
        unit="items",
        source="DynamoDB ledger",
        bars=bars,
        note=None if bars else "The ledger is empty.",
    )


def collect_figures(
    endpoints: Endpoints,
    since_seconds: float,
    *,
    config: PipelineConfig | None = None,
    now: datetime | None = None,
    definition: Dashboard | None = None,
) -> DashboardFigures:
    """Every panel of the dashboard definition, read from the local stack at ``endpoints``."""
    config = config or PipelineConfig()
    targets = local_targets(endpoints, config)
    definition = definition or dashboard_definition(targets)
    sources = LocalSources(endpoints, since_seconds, now or datetime.now(UTC))
    ledger = sources.ledger()
    panels: list[Panel] = []
    for widget in definition.widgets:
        panels.append(_panel(widget, sources, ledger, targets))
    panels.append(_ledger_panel(ledger))
    return DashboardFigures(
        dashboard=definition.name,
        endpoint_url=endpoints.endpoint_url,
        generated_at=sources.now.isoformat(),
        since_seconds=since_seconds,
        panels=panels,
    )


def _panel(
    widget: Widget, sources: LocalSources, ledger: LedgerSnapshot, targets: DashboardTargets
) -> Panel:
    if widget.key in NO_LOCAL_SOURCE:
        return _no_source(widget, NO_LOCAL_SOURCE[widget.key])
    if widget.key == "funnel":
        return _funnel_panel(widget, sources, ledger)
    if widget.key == "rejected_by_reason":
        return _by_reason_panel(widget, sources)
    if widget.key == "upload_to_active":
        return _upload_to_active_panel(widget, sources, ledger)
    if widget.key in ("queue_depth", "dlq_depth"):
        return _queue_panel(widget, sources)
    if widget.key in ("lambda_errors", "lambda_duration"):
        return _lambda_panel(widget, sources)
    if widget.key == "state_machine":
        return _state_machine_panel(widget, sources, targets.state_machine_arn)
    return _generic_panel(widget, sources)


def no_local_source_keys() -> Iterable[str]:
    """The widget keys drawn as "no local source"."""
    return tuple(NO_LOCAL_SOURCE)
