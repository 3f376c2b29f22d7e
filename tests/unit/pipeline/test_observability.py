"""Metrics: totals in the flushed set, plus one series per rejection reason."""

from __future__ import annotations

import json

from enrollment.observability import bind_service, count, count_by_reason, logger, metrics


def _emf_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith('{"_aws"')]


def test_rejections_are_counted_in_total_and_by_reason(capsys):
    count("PhotosIndexed", 2)
    count_by_reason("PhotosRejected", "NO_FACE")
    count("Nothing", 0)  # zero counts are not emitted

    [by_reason] = _emf_lines(capsys.readouterr().out)
    directive = by_reason["_aws"]["CloudWatchMetrics"][0]
    assert directive["Namespace"] == "FaceEnrollment"
    assert ["Reason"] in directive["Dimensions"] or any(
        "Reason" in dims for dims in directive["Dimensions"]
    )
    assert by_reason["Reason"] == "NO_FACE" and by_reason["PhotosRejected"] == [1.0]

    metrics.flush_metrics()
    [totals] = _emf_lines(capsys.readouterr().out)
    assert totals["PhotosIndexed"] == [2.0] and totals["PhotosRejected"] == [1.0]
    assert "Reason" not in totals and "Nothing" not in totals


def test_disabled_metrics_print_nothing_not_even_the_per_reason_series(capsys, monkeypatch):
    # Given metrics switched off as the local demo does
    monkeypatch.setenv("POWERTOOLS_METRICS_DISABLED", "true")

    # When a rejection is counted and the set flushed
    count_by_reason("PhotosRejected", "NO_FACE")
    metrics.flush_metrics()

    # Then no EMF line reaches stdout
    assert _emf_lines(capsys.readouterr().out) == []


def test_each_invocation_logs_and_counts_under_its_own_function_name(capsys, monkeypatch):
    # Given one process that runs two functions, as the local runner does
    first = metrics.service
    try:
        for service in ("index-photo", "associate-faces"):
            # When an invocation binds the name its environment gives
            monkeypatch.setenv("POWERTOOLS_SERVICE_NAME", service)
            bind_service()
            count("PhotosIndexed")
            metrics.flush_metrics()

            # Then its log keys and its metrics carry that name, not the first one imported
            [emf] = _emf_lines(capsys.readouterr().out)
            assert emf["service"] == service
            assert logger.get_current_keys()["service"] == service
    finally:
        metrics.service = first
        logger.remove_keys(["service"])
