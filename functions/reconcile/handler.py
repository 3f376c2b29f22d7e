"""Reconcile function: an EventBridge schedule -> one reconciler run -> its report.

The work is enrollment/reconciler.py; this is the Lambda shell around it (settings read once
per container, Powertools logging and metrics).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from aws_lambda_powertools.utilities.typing import LambdaContext

from enrollment.clients import client
from enrollment.observability import bind_service, logger, metrics, tracer
from enrollment.reconciler import Reconciler
from enrollment.settings import Settings, environment_fingerprint


def reconciler() -> Reconciler:
    """The reconciler with settings read once and the default clients (per container)."""
    return _reconciler(environment_fingerprint())


@cache
def _reconciler(_: tuple[str, ...]) -> Reconciler:
    return Reconciler.build(Settings.from_env(), client)


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    """Lambda entry point for the schedule (the event's content is not used): the report."""
    bind_service()
    return reconciler().run().as_dict()
