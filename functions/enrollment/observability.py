"""Logger, Tracer and Metrics for every function, configured by POWERTOOLS_* variables.

Metric naming: each stage counts its outcomes with plain names (``PhotosIndexed``,
``PhotosRejected``, ``FacesAssociated``...) under the service dimension, so an alarm on a total
needs no metric math. Rejections are *also* emitted once more with a ``Reason`` dimension
(``PhotosRejected`` / ``PhotosFailed`` + {service, Reason}): one metric name per reason would
make every new reason a new alarm and dashboard edit, while a dimension lets one dashboard
widget (SEARCH) show them all.
"""

from __future__ import annotations

import os

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit, single_metric
from aws_lambda_powertools.metrics.functions import is_metrics_disabled

DEFAULT_NAMESPACE = "FaceEnrollment"

logger = Logger()
tracer = Tracer()
metrics = Metrics(namespace=os.environ.get("POWERTOOLS_METRICS_NAMESPACE", DEFAULT_NAMESPACE))


def bind_service() -> None:
    """Name this invocation's logs and metrics after POWERTOOLS_SERVICE_NAME as it is now.

    Logger and Metrics read the name once, at import. In Lambda every function has a process of
    its own, so this changes nothing; the local runner calls both handlers in one process, where
    the associate function would otherwise log and count as the first one imported. Call it after
    ``inject_lambda_context`` (which resets the appended keys).
    """
    service = os.environ.get("POWERTOOLS_SERVICE_NAME")
    if service:
        metrics.service = service
        logger.append_keys(service=service)


def count(name: str, value: int = 1) -> None:
    """Add ``value`` to the counter metric ``name`` (flushed by ``log_metrics``)."""
    if value:
        metrics.add_metric(name=name, unit=MetricUnit.Count, value=value)


def count_by_reason(name: str, reason: str, value: int = 1) -> None:
    """Count ``name`` both in total and with a ``Reason`` dimension."""
    if not value:
        return
    count(name, value)
    if is_metrics_disabled():
        # single_metric flushes on its own and ignores POWERTOOLS_METRICS_DISABLED.
        return
    with single_metric(
        name=name,
        unit=MetricUnit.Count,
        value=value,
        namespace=metrics.namespace,
        default_dimensions=_service_dimensions(),
    ) as metric:
        metric.add_dimension(name="Reason", value=reason)


def _service_dimensions() -> dict[str, str]:
    # single_metric does not add the service dimension Metrics adds to every flush; add it so
    # the per-reason series sit next to the totals of the same service.
    dimensions = dict(metrics.default_dimensions)
    service = getattr(metrics, "service", None)
    if service:
        dimensions.setdefault("service", str(service))
    return dimensions
