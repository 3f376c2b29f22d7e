"""The local dashboard's pieces that need no stack: durations, percentiles, JSON, the picture."""

from __future__ import annotations

from pathlib import Path

import pytest

from enroll_local.dashboard import DashboardFigures, Panel, Series, parse_since, render_png
from enroll_local.dashboard.collect import _funnel_values, _sum_inputs, local_targets, percentile
from enroll_local.runner.resources import Endpoints
from infra.config import PipelineConfig
from infra.dashboard import dashboard_definition

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("30m", 1800), ("2h", 7200), ("90s", 90), ("1d", 86400), ("45", 45), (" 1.5h ", 5400)],
)
def test_since_durations(text: str, seconds: float) -> None:
    assert parse_since(text) == seconds


@pytest.mark.parametrize("text", ["", "m", "-5m", "0", "3w", "ten minutes"])
def test_bad_since_durations_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="not a duration"):
        parse_since(text)


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]
    assert [percentile(values, p) for p in (50, 90, 99)] == [50.0, 90.0, 99.0]
    assert percentile([7.0], 99) == 7.0


def endpoints() -> Endpoints:
    return Endpoints(
        endpoint_url="http://127.0.0.1:1",
        region="us-east-1",
        account_id="123456789012",
        bucket="b",
        prefix="enroll/",
        collection_id="c",
        table="t",
        upload_queue_url="u",
        upload_dlq_url="ud",
        association_queue_url="a",
        association_dlq_url="ad",
        state_machine_arn="arn:aws:states:us-east-1:123456789012:stateMachine:sm",
    )


def test_the_funnel_adds_up_expression_inputs_with_missing_as_zero() -> None:
    config = PipelineConfig()
    funnel = dashboard_definition(local_targets(endpoints(), config)).widget("funnel")
    received = next(m for m in funnel.metrics if m.id == "received")
    assert received.expression is not None
    assert _sum_inputs(received.expression) == ["indexed", "rejIndex", "failIndex"]
    totals: dict[str, float | None] = {
        "indexed": 3.0,
        "rejIndex": 2.0,
        "failIndex": None,
        "rejAssoc": 1.0,
        "activated": 3.0,
    }
    bars = _funnel_values(funnel, totals)
    assert bars["photos received"] == 5.0
    assert bars["rejected"] == 3.0
    assert bars["users activated"] == 3.0
    assert bars["associated"] == 0.0


def test_local_targets_name_functions_after_their_services() -> None:
    config = PipelineConfig()
    targets = local_targets(endpoints(), config)
    assert [f.function_name for f in targets.functions] == [
        config.index_service_name,
        config.associate_service_name,
        config.api_service_name,
        config.erasure_service_name,
    ]
    assert targets.state_machine_arn == endpoints().state_machine_arn


def figures() -> DashboardFigures:
    return DashboardFigures(
        dashboard="face-enrollment (local)",
        endpoint_url="http://127.0.0.1:1",
        generated_at="2026-01-01T12:30:00+00:00",
        since_seconds=1800,
        panels=[
            Panel("funnel", "Enrollment funnel", "funnel", "photos", "test", bars={"a": 3, "b": 1}),
            Panel(
                "lambda_errors",
                "Function errors",
                "timeseries",
                "invocations",
                "test",
                series=[Series("index", [1767270000.0, 1767270060.0], [0.0, 1.0])],
                note="a note",
            ),
            Panel(
                "api",
                "Query API",
                "timeseries",
                "requests",
                "none",
                note="No local source. Because.",
                has_local_source=False,
            ),
            Panel("empty", "Nothing", "timeseries", "x", "test", note="No data."),
        ],
    )


def test_figures_survive_json() -> None:
    original = figures()
    assert DashboardFigures.from_json(original.to_json()) == original


def test_one_png_holds_every_panel(tmp_path: Path) -> None:
    out = render_png(figures(), tmp_path / "sub" / "dash.png")
    assert out.read_bytes().startswith(PNG_SIGNATURE)
