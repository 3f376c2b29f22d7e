"""The ONE dashboard definition, as plain data: CDK renders it, and so does ``enroll dashboard``.

This module must never import ``aws_cdk`` (the local runner imports it, like ``config.py``).
``dashboard_definition(targets)`` returns a :class:`Dashboard`; what differs between the cloud and
the local stack (function names, queue names, the state machine's ARN, the API's name...) comes in
through :class:`DashboardTargets`, everything else (which widgets, which metrics, which
statistics) is decided here once.

Data shape
----------
``Dashboard(name, period_s, widgets: tuple[Widget, ...])``

``Widget``:
  - ``key``: a stable identifier (``"funnel"``, ``"queue_depth"``...; :data:`WIDGET_KEYS`), used
    by tests and by the local renderer to pick the local source of each panel;
  - ``title``, ``unit`` (axis label: ``"photos"``, ``"seconds"``, ``"messages"``...);
  - ``kind``: :class:`WidgetKind` -- ``funnel`` (bars, one per metric, each statistic taken over
    the dashboard's whole time range: CDK ``GraphWidget(view=BAR,
    set_period_to_time_range=True)``), ``timeseries`` (lines: ``GraphWidget``), ``number``
    (``SingleValueWidget``);
  - ``width``/``height`` in CloudWatch grid units (24 columns); widgets flow left to right;
  - ``period_s``: the period of every metric of the widget (seconds);
  - ``metrics``: a tuple of :class:`Metric`.

``Metric`` -- one line/bar, or one input of an expression:
  - ``id``: unique within the widget, ``[a-z][a-zA-Z0-9_]*`` (CloudWatch metric-math id);
  - ``namespace``, ``metric_name``, ``dimensions`` (dict name -> value), ``statistic``
    (``Sum``, ``Average``, ``Maximum``, ``SampleCount``, or a percentile ``p50``/``p90``/``p95``/
    ``p99``), ``label``;
  - ``expression``: None for a plain metric. Otherwise a CloudWatch metric-math or ``SEARCH``
    expression: render it as ``MathExpression(expression=..., label=..., period=...,
    using_metrics={i.id: <metric i> for i in widget.expression_inputs(m)})``. Two forms only:
    - a sum of other metrics of the widget, ``FILL(a,0) + FILL(b,0)`` (``namespace`` and
      ``metric_name`` empty, ``dimensions`` {}; its inputs are ``expression_inputs``);
    - a ``SEARCH`` (no inputs): ``namespace``/``metric_name``/``dimensions`` say what it
      searches, a dimension whose value is :data:`ANY_VALUE` meaning "one series per value",
      so a reader -- the local renderer, a test -- need not parse the expression;
  - ``visible``: False for a metric that is only an input of an expression of the same widget
    (render it through ``using_metrics``, not as a line of its own).

A metric the cloud has but the local stack cannot produce (Lambda throttles, ``AWS/Rekognition``,
API Gateway...) is still in the definition; the local renderer says "no local source" on its
panel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from .config import PipelineConfig

#: Period of the dashboard's metrics (seconds): CloudWatch's 5-minute grain, enough to see a
#: backlog build up without the cost of high-resolution metrics.
DEFAULT_PERIOD_S = 300
#: Columns of CloudWatch's dashboard grid.
GRID_COLUMNS = 24
#: A dimension value meaning "every value, one series each" (a SEARCH expression's dimension).
ANY_VALUE = "*"

#: The Rekognition operations this pipeline and its API call (``AWS/Rekognition`` ``Operation``).
REKOGNITION_OPERATIONS = (
    "IndexFaces",
    "AssociateFaces",
    "SearchUsers",
    "SearchUsersByImage",
    "CreateUser",
)

# Namespaces AWS publishes to.
SQS_NAMESPACE = "AWS/SQS"
LAMBDA_NAMESPACE = "AWS/Lambda"
STATES_NAMESPACE = "AWS/States"
REKOGNITION_NAMESPACE = "AWS/Rekognition"
API_GATEWAY_NAMESPACE = "AWS/ApiGateway"

# Metric names the pipeline publishes (functions/enrollment/observability.py and the ASL).
PHOTOS_INDEXED = "PhotosIndexed"
PHOTOS_REJECTED = "PhotosRejected"
PHOTOS_FAILED = "PhotosFailed"
FACES_ASSOCIATED = "FacesAssociated"
ACTIVATION_SECONDS = "ActivationSeconds"
UPLOAD_TO_ACTIVE_SECONDS = "UploadToActiveSeconds"
ACTIVATION_FAILED = "ActivationFailed"
#: Powertools' dimension carrying POWERTOOLS_SERVICE_NAME; the per-reason series add ``Reason``.
SERVICE_DIMENSION = "service"
REASON_DIMENSION = "Reason"

_METRIC_ID = re.compile(r"^[a-z][a-zA-Z0-9_]*$")


class WidgetKind(StrEnum):
    """How a widget draws its metrics."""

    FUNNEL = "funnel"  # bars, each over the whole time range
    TIMESERIES = "timeseries"  # lines over time
    NUMBER = "number"  # the latest value of each metric


@dataclass(frozen=True)
class Metric:
    """One metric (or metric-math/SEARCH expression) of a widget; see the module docstring."""

    id: str
    namespace: str
    metric_name: str
    dimensions: Mapping[str, str]
    statistic: str
    label: str
    expression: str | None = None
    visible: bool = True

    def __post_init__(self) -> None:
        if not _METRIC_ID.match(self.id):
            raise ValueError(f"metric id {self.id!r} must match {_METRIC_ID.pattern}")

    @property
    def searches(self) -> bool:
        """True when the metric stands for one series per value of an ANY_VALUE dimension."""
        return any(value == ANY_VALUE for value in self.dimensions.values())


@dataclass(frozen=True)
class Widget:
    """One panel of the dashboard; see the module docstring."""

    key: str
    title: str
    kind: WidgetKind
    unit: str
    metrics: tuple[Metric, ...]
    width: int = 12
    height: int = 6
    period_s: int = DEFAULT_PERIOD_S

    def __post_init__(self) -> None:
        ids = [m.id for m in self.metrics]
        if len(set(ids)) != len(ids):
            raise ValueError(f"widget {self.key}: metric ids must be unique, got {ids}")
        if not 1 <= self.width <= GRID_COLUMNS:
            raise ValueError(f"widget {self.key}: width must be 1..{GRID_COLUMNS}")

    @property
    def shown(self) -> tuple[Metric, ...]:
        """The metrics drawn as lines/bars (expression inputs left out)."""
        return tuple(m for m in self.metrics if m.visible)

    def expression_inputs(self, metric: Metric) -> tuple[Metric, ...]:
        """The plain metrics of this widget that ``metric``'s expression refers to by id."""
        if metric.expression is None:
            return ()
        used = set(re.findall(r"[A-Za-z_][A-Za-z0-9_]*", metric.expression))
        return tuple(
            m for m in self.metrics if m.id in used and m.expression is None and m is not metric
        )


@dataclass(frozen=True)
class Dashboard:
    """The whole dashboard: a name and its widgets in display order."""

    name: str
    widgets: tuple[Widget, ...]
    period_s: int = DEFAULT_PERIOD_S

    def widget(self, key: str) -> Widget:
        """The widget with this key (KeyError when there is none)."""
        for widget in self.widgets:
            if widget.key == key:
                return widget
        raise KeyError(key)


@dataclass(frozen=True)
class FunctionTarget:
    """A Lambda function on the dashboard: legend title, its FunctionName, its service name."""

    title: str
    function_name: str
    service_name: str


@dataclass(frozen=True)
class QueueTarget:
    """An SQS queue on the dashboard: legend title, its QueueName, its DLQ's QueueName."""

    title: str
    queue_name: str
    dlq_name: str | None = None


@dataclass(frozen=True)
class DashboardTargets:
    """What differs between the cloud and the local stack (CDK tokens are fine as values)."""

    region: str
    metrics_namespace: str
    #: Services whose PhotosIndexed/PhotosRejected/... the funnel reads (POWERTOOLS_SERVICE_NAME).
    index_service_name: str
    associate_service_name: str
    functions: tuple[FunctionTarget, ...]
    queues: tuple[QueueTarget, ...]
    state_machine_arn: str
    #: The REST API's name (AWS/ApiGateway ApiName); None leaves the API widgets out.
    api_name: str | None = None
    rekognition_operations: tuple[str, ...] = REKOGNITION_OPERATIONS
    dashboard_name: str = "face-enrollment"
    period_s: int = DEFAULT_PERIOD_S


#: Every widget key dashboard_definition can produce, in display order.
WIDGET_KEYS = (
    "funnel",
    "rejected_by_reason",
    "upload_to_active",
    "queue_depth",
    "queue_oldest_age",
    "dlq_depth",
    "lambda_errors",
    "lambda_throttles",
    "lambda_duration",
    "lambda_concurrency",
    "state_machine",
    "rekognition_throttled",
    "rekognition_server_errors",
    "rekognition_response_time",
    "api",
)


def _metric_id(prefix: str, index: int) -> str:
    return f"{prefix}{index}"


def _search(
    namespace: str, dimension_keys: tuple[str, ...], metric_name: str, stat: str, period_s: int
) -> str:
    schema = ",".join((namespace, *dimension_keys))
    return f"SEARCH('{{{schema}}} MetricName=\"{metric_name}\"', '{stat}', {period_s})"


def _sum(metric_id: str, label: str, *inputs: str) -> Metric:
    """A math expression adding other metrics of the widget, a missing data point counting 0."""
    return Metric(
        metric_id,
        "",
        "",
        {},
        "Sum",
        label,
        expression=" + ".join(f"FILL({i},0)" for i in inputs),
    )


def _funnel(t: DashboardTargets) -> Widget:
    ns = t.metrics_namespace
    index = {SERVICE_DIMENSION: t.index_service_name}
    associate = {SERVICE_DIMENSION: t.associate_service_name}

    def pipeline(
        mid: str,
        name: str,
        dims: Mapping[str, str],
        label: str,
        *,
        visible: bool = True,
        stat: str = "Sum",
    ) -> Metric:
        return Metric(mid, ns, name, dict(dims), stat, label, visible=visible)

    return Widget(
        key="funnel",
        title="Enrollment funnel",
        kind=WidgetKind.FUNNEL,
        unit="photos / users",
        width=12,
        period_s=t.period_s,
        metrics=(
            pipeline("indexed", PHOTOS_INDEXED, index, "indexed", visible=False),
            pipeline("rejIndex", PHOTOS_REJECTED, index, "rejected at index", visible=False),
            pipeline(
                "rejAssoc", PHOTOS_REJECTED, associate, "rejected at association", visible=False
            ),
            pipeline("failIndex", PHOTOS_FAILED, index, "failed at index", visible=False),
            pipeline("failAssoc", PHOTOS_FAILED, associate, "failed at association", visible=False),
            # A photo reaches exactly one outcome at the index stage (replays are not counted),
            # so the outcomes add up to the photos received.
            _sum("received", "photos received", "indexed", "rejIndex", "failIndex"),
            _sum("indexedShown", "indexed", "indexed"),
            _sum("rejected", "rejected", "rejIndex", "rejAssoc"),
            pipeline("associated", FACES_ASSOCIATED, associate, "associated"),
            # One ActivationSeconds data point per activation that reached ACTIVE.
            Metric("activated", ns, ACTIVATION_SECONDS, {}, "SampleCount", "users activated"),
            _sum("failed", "photos failed", "failIndex", "failAssoc"),
            Metric("activationFailed", ns, ACTIVATION_FAILED, {}, "Sum", "activations failed"),
        ),
    )


def _rejected_by_reason(t: DashboardTargets) -> Widget:
    ns = t.metrics_namespace
    keys = (REASON_DIMENSION, SERVICE_DIMENSION)
    return Widget(
        key="rejected_by_reason",
        title="Photos rejected / failed, by reason",
        kind=WidgetKind.FUNNEL,
        unit="photos",
        period_s=t.period_s,
        metrics=tuple(
            Metric(
                mid,
                ns,
                name,
                {REASON_DIMENSION: ANY_VALUE, SERVICE_DIMENSION: ANY_VALUE},
                "Sum",
                f"{verb} ${{PROP('Dim.{REASON_DIMENSION}')}}",
                expression=_search(ns, keys, name, "Sum", t.period_s),
            )
            for mid, name, verb in (
                ("rejectedByReason", PHOTOS_REJECTED, "rejected"),
                ("failedByReason", PHOTOS_FAILED, "failed"),
            )
        ),
    )


def _upload_to_active(t: DashboardTargets) -> Widget:
    return Widget(
        key="upload_to_active",
        title="Time from upload to ACTIVE",
        kind=WidgetKind.TIMESERIES,
        unit="seconds",
        period_s=t.period_s,
        # Published by the state machine: the batch's upload lag when it started plus its wait.
        metrics=tuple(
            Metric(stat, t.metrics_namespace, UPLOAD_TO_ACTIVE_SECONDS, {}, stat, stat)
            for stat in ("p50", "p90", "p99")
        ),
    )


def _queue_widgets(t: DashboardTargets) -> tuple[Widget, ...]:
    def per_queue(key: str, title: str, name: str, stat: str, unit: str, dlq: bool) -> Widget:
        queues = [
            (q.title + (" DLQ" if dlq else ""), q.dlq_name if dlq else q.queue_name)
            for q in t.queues
            if (q.dlq_name if dlq else q.queue_name)
        ]
        return Widget(
            key=key,
            title=title,
            kind=WidgetKind.TIMESERIES,
            unit=unit,
            width=8,
            period_s=t.period_s,
            metrics=tuple(
                Metric(
                    _metric_id("q", i), SQS_NAMESPACE, name, {"QueueName": str(queue)}, stat, label
                )
                for i, (label, queue) in enumerate(queues)
            ),
        )

    return (
        per_queue(
            "queue_depth",
            "Queue depth (messages visible)",
            "ApproximateNumberOfMessagesVisible",
            "Maximum",
            "messages",
            False,
        ),
        per_queue(
            "queue_oldest_age",
            "Age of the oldest message",
            "ApproximateAgeOfOldestMessage",
            "Maximum",
            "seconds",
            False,
        ),
        per_queue(
            "dlq_depth",
            "Dead-letter queue depth",
            "ApproximateNumberOfMessagesVisible",
            "Maximum",
            "messages",
            True,
        ),
    )


def _lambda_widgets(t: DashboardTargets) -> tuple[Widget, ...]:
    def per_function(key: str, title: str, name: str, stat: str, unit: str) -> Widget:
        return Widget(
            key=key,
            title=title,
            kind=WidgetKind.TIMESERIES,
            unit=unit,
            width=6,
            period_s=t.period_s,
            metrics=tuple(
                Metric(
                    _metric_id("f", i),
                    LAMBDA_NAMESPACE,
                    name,
                    {"FunctionName": f.function_name},
                    stat,
                    f.title,
                )
                for i, f in enumerate(t.functions)
            ),
        )

    return (
        per_function("lambda_errors", "Function errors", "Errors", "Sum", "invocations"),
        per_function("lambda_throttles", "Function throttles", "Throttles", "Sum", "invocations"),
        per_function("lambda_duration", "Function duration p99", "Duration", "p99", "ms"),
        per_function(
            "lambda_concurrency",
            "Concurrent executions",
            "ConcurrentExecutions",
            "Maximum",
            "executions",
        ),
    )


def _state_machine(t: DashboardTargets) -> Widget:
    dims = {"StateMachineArn": t.state_machine_arn}
    return Widget(
        key="state_machine",
        title="Activation executions",
        kind=WidgetKind.TIMESERIES,
        unit="executions",
        width=12,
        period_s=t.period_s,
        metrics=tuple(
            Metric(mid, STATES_NAMESPACE, name, dict(dims), "Sum", label)
            for mid, name, label in (
                ("started", "ExecutionsStarted", "started"),
                ("succeeded", "ExecutionsSucceeded", "succeeded"),
                ("failed", "ExecutionsFailed", "failed"),
                ("timedOut", "ExecutionsTimedOut", "timed out"),
            )
        ),
    )


def _rekognition_widgets(t: DashboardTargets) -> tuple[Widget, ...]:
    def per_operation(key: str, title: str, name: str, stat: str, unit: str) -> Widget:
        return Widget(
            key=key,
            title=title,
            kind=WidgetKind.TIMESERIES,
            unit=unit,
            width=8,
            period_s=t.period_s,
            metrics=tuple(
                Metric(
                    _metric_id("op", i), REKOGNITION_NAMESPACE, name, {"Operation": op}, stat, op
                )
                for i, op in enumerate(t.rekognition_operations)
            ),
        )

    return (
        per_operation(
            "rekognition_throttled", "Rekognition throttled", "ThrottledCount", "Sum", "requests"
        ),
        per_operation(
            "rekognition_server_errors",
            "Rekognition server errors",
            "ServerErrorCount",
            "Sum",
            "requests",
        ),
        per_operation(
            "rekognition_response_time",
            "Rekognition response time",
            "ResponseTime",
            "Average",
            "ms",
        ),
    )


def _api(t: DashboardTargets, api_name: str) -> Widget:
    dims = {"ApiName": api_name}
    return Widget(
        key="api",
        title="Query API",
        kind=WidgetKind.TIMESERIES,
        unit="requests / ms",
        width=12,
        period_s=t.period_s,
        metrics=(
            Metric("requests", API_GATEWAY_NAMESPACE, "Count", dict(dims), "Sum", "requests"),
            Metric("errors4xx", API_GATEWAY_NAMESPACE, "4XXError", dict(dims), "Sum", "4xx"),
            Metric("errors5xx", API_GATEWAY_NAMESPACE, "5XXError", dict(dims), "Sum", "5xx"),
            Metric(
                "latency", API_GATEWAY_NAMESPACE, "Latency", dict(dims), "p95", "latency p95 (ms)"
            ),
        ),
    )


def dashboard_definition(targets: DashboardTargets) -> Dashboard:
    """The pipeline's dashboard for these targets (cloud or local): every widget, in order."""
    widgets: list[Widget] = [
        _funnel(targets),
        _rejected_by_reason(targets),
        _upload_to_active(targets),
        *_queue_widgets(targets),
        *_lambda_widgets(targets),
        _state_machine(targets),
        *_rekognition_widgets(targets),
    ]
    if targets.api_name is not None:
        widgets.append(_api(targets, targets.api_name))
    return Dashboard(name=targets.dashboard_name, widgets=tuple(widgets), period_s=targets.period_s)


def targets_from_config(
    config: PipelineConfig,
    *,
    region: str,
    function_names: Mapping[str, str],
    state_machine_arn: str,
    queue_names: Mapping[str, str] | None = None,
    api_name: str | None = None,
    dashboard_name: str = "face-enrollment",
) -> DashboardTargets:
    """DashboardTargets for a PipelineConfig.

    ``function_names`` maps a service name of ``config`` (``index_service_name``,
    ``associate_service_name``, ``api_service_name``, ``erasure_service_name``) to the deployed
    FunctionName; services missing from it are left off the dashboard. ``queue_names`` maps the
    configured queue names (main and DLQ) to the deployed ones (defaults: the configured names).
    """
    names = dict(queue_names or {})

    def queue(name: str) -> str:
        return names.get(name, name)

    services = (
        ("index", config.index_service_name),
        ("associate", config.associate_service_name),
        ("query API", config.api_service_name),
        ("erasure", config.erasure_service_name),
        ("reconciler", config.reconcile_service_name),
    )
    return DashboardTargets(
        region=region,
        metrics_namespace=config.metrics_namespace,
        index_service_name=config.index_service_name,
        associate_service_name=config.associate_service_name,
        functions=tuple(
            FunctionTarget(title, function_names[service], service)
            for title, service in services
            if service in function_names
        ),
        queues=(
            QueueTarget("upload", queue(config.upload_queue_name), queue(config.upload_dlq_name)),
            QueueTarget(
                "association",
                queue(config.association_queue_name),
                queue(config.association_dlq_name),
            ),
            QueueTarget(
                "erasure", queue(config.erasure_queue_name), queue(config.erasure_dlq_name)
            ),
        ),
        state_machine_arn=state_machine_arn,
        api_name=api_name,
        dashboard_name=dashboard_name,
    )


__all__ = [
    "ANY_VALUE",
    "DEFAULT_PERIOD_S",
    "REKOGNITION_OPERATIONS",
    "WIDGET_KEYS",
    "Dashboard",
    "DashboardTargets",
    "FunctionTarget",
    "Metric",
    "QueueTarget",
    "Widget",
    "WidgetKind",
    "dashboard_definition",
    "targets_from_config",
]
