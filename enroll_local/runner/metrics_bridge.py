"""EMF on stdout -> CloudWatch metrics on the local endpoint, as CloudWatch Logs does in AWS.

In Lambda, Powertools Metrics prints one JSON document per flush (the CloudWatch embedded metric
format, EMF) and CloudWatch turns each into metric data points; ``single_metric`` (the per-reason
counts) prints a document of its own. Locally nothing reads stdout, so the runner calls each
handler through :meth:`MetricsBridge.invoke`: the handler's stdout is captured, every EMF line is
parsed and sent to the local endpoint with PutMetricData (moto's CloudWatch), and every other line
goes on to the real stdout. The bridge also publishes what the Lambda service itself publishes
per invocation (``AWS/Lambda`` Invocations, Errors, Duration by FunctionName).

EMF lines never reach the console: they are bridged instead, so the console stays readable and
``POWERTOOLS_METRICS_DISABLED`` is not needed locally (the bridge turns metrics on for the call,
otherwise Powertools would print nothing to bridge).

Format (https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/
CloudWatch_Embedded_Metric_Format_Specification.html): a JSON object whose ``_aws`` member holds
``Timestamp`` (epoch milliseconds) and ``CloudWatchMetrics``, a list of directives
``{Namespace, Dimensions: [[key, ...], ...], Metrics: [{Name, Unit?, StorageResolution?}]}``.
Each metric's value is the top-level member of its name (a number, or an array of up to 100
numbers); each dimension key's value is the top-level member of that key (a string). A metric is
published once per dimension set of its directive.
"""

from __future__ import annotations

import io
import json
import logging
import math
import os
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TextIO

log = logging.getLogger(__name__)

#: CloudWatch's limits on one EMF document: dimension keys per set, values per metric.
EMF_MAX_DIMENSIONS = 30
EMF_MAX_VALUES = 100
#: PutMetricData takes at most this many MetricData entries per call.
PUT_METRIC_DATA_MAX_ENTRIES = 1000
#: PutMetricData's valid units (anything else is sent as "None", as CloudWatch Logs does).
CLOUDWATCH_UNITS = frozenset(
    {
        "Seconds",
        "Microseconds",
        "Milliseconds",
        "Bytes",
        "Kilobytes",
        "Megabytes",
        "Gigabytes",
        "Terabytes",
        "Bits",
        "Kilobits",
        "Megabits",
        "Gigabits",
        "Terabits",
        "Percent",
        "Count",
        "Bytes/Second",
        "Kilobytes/Second",
        "Megabytes/Second",
        "Gigabytes/Second",
        "Terabytes/Second",
        "Bits/Second",
        "Kilobits/Second",
        "Megabits/Second",
        "Gigabits/Second",
        "Terabits/Second",
        "Count/Second",
        "None",
    }
)
#: What the Lambda service publishes per invocation (the part the local runner can know).
LAMBDA_NAMESPACE = "AWS/Lambda"
POWERTOOLS_METRICS_DISABLED = "POWERTOOLS_METRICS_DISABLED"


@dataclass(frozen=True)
class MetricPoint:
    """One metric of one dimension set of one EMF document: what becomes a MetricData entry."""

    namespace: str
    metric_name: str
    #: (name, value) pairs sorted by name (an empty tuple: no dimension).
    dimensions: tuple[tuple[str, str], ...]
    values: tuple[float, ...]
    unit: str = "None"
    timestamp_ms: int | None = None
    storage_resolution: int = 60

    def to_metric_data(self) -> dict[str, Any]:
        """The PutMetricData ``MetricData`` entry (Values + Counts when there are several)."""
        entry: dict[str, Any] = {
            "MetricName": self.metric_name,
            "Dimensions": [{"Name": k, "Value": v} for k, v in self.dimensions],
            "Unit": self.unit,
            "StorageResolution": self.storage_resolution,
        }
        if self.timestamp_ms is not None:
            entry["Timestamp"] = datetime.fromtimestamp(self.timestamp_ms / 1000, tz=UTC)
        if len(self.values) == 1:
            entry["Value"] = self.values[0]
        else:
            entry["Values"] = list(self.values)
            entry["Counts"] = [1.0] * len(self.values)
        return entry


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def parse_emf(line: str) -> list[MetricPoint] | None:
    """The metric points of one EMF document, or None when ``line`` is not EMF.

    A document that is EMF but partly invalid (a missing value, a dimension key without a string
    value) yields the points that are valid, as CloudWatch drops only what it cannot read.
    """
    text = line.strip()
    if not text.startswith("{"):
        return None
    try:
        document = json.loads(text)
    except ValueError:
        return None
    if not isinstance(document, dict):
        return None
    meta = document.get("_aws")
    if not isinstance(meta, dict) or not isinstance(meta.get("CloudWatchMetrics"), list):
        return None
    timestamp = _number(meta.get("Timestamp"))
    timestamp_ms = int(timestamp) if timestamp is not None else None
    points: list[MetricPoint] = []
    for directive in meta["CloudWatchMetrics"]:
        if not isinstance(directive, dict) or not isinstance(directive.get("Namespace"), str):
            continue
        dimension_sets = directive.get("Dimensions") or [[]]
        for metric in directive.get("Metrics") or []:
            if not isinstance(metric, dict) or not isinstance(metric.get("Name"), str):
                continue
            values = _values(document.get(metric["Name"]))
            if not values:
                continue
            unit = metric.get("Unit", "None")
            resolution = metric.get("StorageResolution", 60)
            for keys in dimension_sets:
                dimensions = _dimensions(document, keys)
                if dimensions is None:
                    continue
                points.append(
                    MetricPoint(
                        namespace=directive["Namespace"],
                        metric_name=metric["Name"],
                        dimensions=dimensions,
                        values=values,
                        unit=unit if unit in CLOUDWATCH_UNITS else "None",
                        timestamp_ms=timestamp_ms,
                        storage_resolution=1 if resolution == 1 else 60,
                    )
                )
    return points


def _values(raw: Any) -> tuple[float, ...]:
    items = raw if isinstance(raw, list) else [raw]
    numbers = [n for n in (_number(v) for v in items[:EMF_MAX_VALUES]) if n is not None]
    return tuple(numbers)


def _dimensions(document: dict[str, Any], keys: Any) -> tuple[tuple[str, str], ...] | None:
    if not isinstance(keys, list) or len(keys) > EMF_MAX_DIMENSIONS:
        return None
    pairs = []
    for key in keys:
        value = document.get(key) if isinstance(key, str) else None
        if not isinstance(value, str) or not value:
            return None
        pairs.append((key, value))
    return tuple(sorted(pairs))


def split_emf(text: str) -> tuple[list[MetricPoint], str]:
    """Split captured output into the EMF metric points and the other text (lines kept)."""
    points, others, _ = _split(text)
    return points, others


def _split(text: str) -> tuple[list[MetricPoint], str, int]:
    points: list[MetricPoint] = []
    others: list[str] = []
    documents = 0
    for line in text.splitlines(keepends=True):
        parsed = parse_emf(line)
        if parsed is None:
            others.append(line)
        else:
            documents += 1
            points.extend(parsed)
    return points, "".join(others), documents


def put_metric_requests(points: Iterable[MetricPoint]) -> list[dict[str, Any]]:
    """PutMetricData requests (Namespace + MetricData) for ``points``, grouped by namespace."""
    by_namespace: dict[str, list[dict[str, Any]]] = {}
    for point in points:
        by_namespace.setdefault(point.namespace, []).append(point.to_metric_data())
    requests = []
    for namespace, entries in by_namespace.items():
        for start in range(0, len(entries), PUT_METRIC_DATA_MAX_ENTRIES):
            chunk = entries[start : start + PUT_METRIC_DATA_MAX_ENTRIES]
            requests.append({"Namespace": namespace, "MetricData": chunk})
    return requests


class _ThreadRoutedStdout(io.TextIOBase):
    """sys.stdout while a handler runs: that thread's writes are captured, others pass through."""

    def __init__(self, original: TextIO) -> None:
        self.original = original
        self.buffers: dict[int, io.StringIO] = {}

    def write(self, text: str) -> int:
        buffer = self.buffers.get(threading.get_ident())
        if buffer is not None:
            return buffer.write(text)
        return self.original.write(text)

    def flush(self) -> None:
        self.original.flush()

    def writable(self) -> bool:
        return True


_router_lock = threading.Lock()
_router: _ThreadRoutedStdout | None = None


@contextmanager
def captured_stdout() -> Iterator[io.StringIO]:
    """Capture what this thread prints to sys.stdout during the block (other threads unchanged)."""
    global _router
    buffer = io.StringIO()
    ident = threading.get_ident()
    with _router_lock:
        if _router is None or sys.stdout is not _router:
            _router = _ThreadRoutedStdout(sys.stdout)
            sys.stdout = _router
        router = _router
        router.buffers[ident] = buffer
    try:
        yield buffer
    finally:
        with _router_lock:
            router.buffers.pop(ident, None)
            if not router.buffers and sys.stdout is router:
                sys.stdout = router.original
                _router = None


@dataclass
class BridgeStats:
    """Running totals (tests and the runner's status read them)."""

    documents: int = 0
    points_published: int = 0
    publish_errors: list[str] = field(default_factory=list)


class MetricsBridge:
    """Turns a handler's EMF output into CloudWatch metrics on the local endpoint."""

    def __init__(
        self,
        cloudwatch: Any,
        *,
        passthrough: TextIO | None = None,
        lambda_metrics: bool = True,
    ) -> None:
        """``cloudwatch``: a boto3 CloudWatch client on the local endpoint; ``passthrough``:
        where non-EMF output goes (default: sys.stdout as it is when the handler returns)."""
        self._cloudwatch = cloudwatch
        self._passthrough = passthrough
        self._lambda_metrics = lambda_metrics
        self._publish_lock = threading.Lock()
        self.stats = BridgeStats()

    def publish_text(self, text: str) -> str:
        """Publish the EMF lines of ``text``; return the rest."""
        points, rest, documents = _split(text)
        self.stats.documents += documents
        self.publish(points)
        return rest

    def publish(self, points: list[MetricPoint]) -> None:
        """PutMetricData for ``points``; a failure is logged, never raised (metrics are best
        effort, as in Lambda, where a bad EMF line never fails the invocation)."""
        if not points:
            return
        with self._publish_lock:
            for request in put_metric_requests(points):
                try:
                    self._cloudwatch.put_metric_data(**request)
                except Exception as error:  # the endpoint may be shutting down
                    log.warning("could not publish %s metrics: %s", request["Namespace"], error)
                    self.stats.publish_errors.append(repr(error))
                else:
                    self.stats.points_published += len(request["MetricData"])

    def invoke(
        self, function_name: str, handler: Callable[[Any, Any], Any], event: Any, context: Any
    ) -> Any:
        """Call ``handler(event, context)`` as Lambda would, bridging its metrics.

        Returns what the handler returns and re-raises what it raises. The caller holds the
        runner's invoke lock (the environment is process-wide), as for a plain call.
        """
        started = time.monotonic()
        failed = False
        previous = os.environ.get(POWERTOOLS_METRICS_DISABLED)
        os.environ[POWERTOOLS_METRICS_DISABLED] = "false"
        try:
            with captured_stdout() as buffer:
                try:
                    return handler(event, context)
                except BaseException:
                    failed = True
                    raise
        finally:
            if previous is None:
                os.environ.pop(POWERTOOLS_METRICS_DISABLED, None)
            else:
                os.environ[POWERTOOLS_METRICS_DISABLED] = previous
            duration_ms = (time.monotonic() - started) * 1000
            # In-process calls are serialised (the caller holds the invoke lock): one at a time.
            self.record(function_name, buffer.getvalue(), duration_ms, failed, concurrent=1)

    def record(
        self,
        function_name: str,
        stdout: str,
        duration_ms: float,
        failed: bool,
        *,
        concurrent: int | None = None,
    ) -> None:
        """Publish what one invocation printed (its EMF lines) and what Lambda publishes about
        it; pass the rest of its output on. For invocations run elsewhere (workers.py).

        ``concurrent``: the function's invocations running when this one started, itself
        included (Lambda's ConcurrentExecutions, read with the Maximum statistic)."""
        points, rest, documents = _split(stdout)
        self.stats.documents += documents
        if self._lambda_metrics:
            points.extend(
                lambda_invocation_points(function_name, duration_ms, failed, concurrent=concurrent)
            )
        self.publish(points)
        if rest:
            out = self._passthrough or sys.stdout
            out.write(rest)
            out.flush()


def lambda_invocation_points(
    function_name: str,
    duration_ms: float,
    failed: bool,
    timestamp_ms: int | None = None,
    *,
    concurrent: int | None = None,
) -> list[MetricPoint]:
    """The AWS/Lambda points one invocation yields: Invocations, Errors (0 or 1), Duration, and
    ConcurrentExecutions when ``concurrent`` is known."""
    dims = (("FunctionName", function_name),)
    when = timestamp_ms if timestamp_ms is not None else int(time.time() * 1000)
    points = [
        MetricPoint(LAMBDA_NAMESPACE, "Invocations", dims, (1.0,), "Count", when),
        MetricPoint(LAMBDA_NAMESPACE, "Errors", dims, (1.0 if failed else 0.0,), "Count", when),
        MetricPoint(LAMBDA_NAMESPACE, "Duration", dims, (duration_ms,), "Milliseconds", when),
    ]
    if concurrent is not None:
        points.append(
            MetricPoint(
                LAMBDA_NAMESPACE, "ConcurrentExecutions", dims, (float(concurrent),), "Count", when
            )
        )
    return points


def call_handler(
    bridge: MetricsBridge | None,
    function_name: str,
    handler: Callable[[Any, Any], Any],
    event: Any,
    context: Any,
) -> Any:
    """``handler(event, context)``, through ``bridge`` when there is one (for pollers and the
    local API server: call it where the handler was called, under the invoke lock)."""
    if bridge is None:
        return handler(event, context)
    return bridge.invoke(function_name, handler, event, context)
