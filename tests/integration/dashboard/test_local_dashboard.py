"""Issue 7 acceptance: after a small local run, the dashboard's figures equal the ledger's."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from enroll_cli.main import main as enroll
from enroll_local.dashboard import DashboardFigures, figures_path, run_dashboard
from enroll_local.dashboard.collect import NO_LOCAL_SOURCE, NO_LOCAL_SOURCE_PREFIX
from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enroll_local.runner.demo import wait_for_terminal_states
from enroll_local.runner.ledger_report import LedgerSnapshot, read_ledger
from infra.dashboard import WIDGET_KEYS

from ..pipeline.conftest import pipeline, session_stack  # noqa: F401  (fixtures)

#: Budget for the run to settle (seconds); a healthy run needs a fraction of it.
SETTLE_TIMEOUT_SECONDS = 90
#: Window of the rendered dashboard (seconds).
SINCE_SECONDS = 30 * 60
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def face(identity: str, variant: int = 1) -> bytes:
    return make_synthetic_photo([{"identity": identity, "variant": variant}], seed=variant)


# One accepted photo per user, so each user is activated exactly once (one association batch):
# "users activated" counts activations, the ledger counts users.
UPLOADS: dict[str, bytes] = {
    "enroll/Ann/1.jpg": face("Ann"),
    "enroll/Ben/1.jpg": face("Ben"),
    "enroll/Cat/1.jpg": face("Cat"),
    "enroll/Ben/empty wall.jpg": make_synthetic_photo([], seed=7),
    "enroll/Cat/party.jpg": make_synthetic_photo(
        [
            {"identity": "Cat", "variant": 2, "box": [0.05, 0.1, 0.4, 0.5]},
            {"identity": "Zed", "variant": 1, "box": [0.55, 0.1, 0.4, 0.5]},
        ],
        seed=8,
    ),
    "enroll/Ann/notes.jpg": b"not an image at all\n",
    "enroll/Dan/wall.jpg": make_synthetic_photo([], seed=9),
}


def run_small_pipeline(stack: Any) -> LedgerSnapshot:
    for key, body in UPLOADS.items():
        stack.clients.s3.put_object(Bucket=stack.endpoints.bucket, Key=key, Body=body)
    _, pending = wait_for_terminal_states(stack, list(UPLOADS), SETTLE_TIMEOUT_SECONDS)
    assert not pending, f"still pending: {pending}"
    assert stack.wait_until_idle(SETTLE_TIMEOUT_SECONDS), "queues or executions never went idle"
    return read_ledger(stack.clients.dynamodb, stack.endpoints.table)


def test_dashboard_figures_equal_the_ledger(
    pipeline: Callable[..., Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given a small local run: three users ACTIVE, photos rejected for several reasons
    stack = pipeline("synthetic")
    ledger = run_small_pipeline(stack)
    rejected = Counter(str(p["reason"]) for p in ledger.photos if p["status"] == "REJECTED")
    assert rejected == {"NO_FACE": 2, "MULTIPLE_FACES": 1, "INVALID_IMAGE_FORMAT": 1}
    active_users = sum(1 for u in ledger.users if u["status"] == "ACTIVE")
    assert active_users == 3

    # When `enroll dashboard` renders it from the running stack's endpoints.json
    endpoints_json = tmp_path / "endpoints.json"
    stack.write_endpoints(endpoints_json)
    out = tmp_path / "dashboard.png"
    status = enroll(
        ["dashboard", "--endpoints", str(endpoints_json), "--out", str(out), "--since", "30m"]
    )

    # Then one PNG holds it, and the numbers it drew match the ledger
    assert status == 0
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    figures = DashboardFigures.from_json(figures_path(out).read_text())
    funnel = figures.panel("funnel").bars
    assert funnel["photos received"] == len(ledger.photos) == len(UPLOADS)
    assert funnel["indexed"] == 3
    assert funnel["rejected"] == sum(rejected.values())
    assert funnel["users activated"] == active_users
    assert funnel["photos failed"] == 0
    by_reason = figures.panel("rejected_by_reason").bars
    assert {k.removeprefix("rejected "): v for k, v in by_reason.items()} == rejected

    # Every widget of the definition has its panel; those nothing local produces say so
    assert [p.key for p in figures.panels] == [*WIDGET_KEYS, "ledger"]
    for panel in figures.panels:
        if panel.key in NO_LOCAL_SOURCE:
            assert not panel.has_local_source
            assert panel.note and panel.note.startswith(NO_LOCAL_SOURCE_PREFIX)
        else:
            assert panel.has_local_source, panel.key

    # The other local sources: queues drained, executions, function metrics, upload-to-ACTIVE
    assert set(figures.panel("dlq_depth").bars.values()) == {0.0}
    executions = figures.panel("state_machine").bars
    assert executions["started"] == executions["succeeded"] == active_users
    errors = {s.label: sum(s.values) for s in figures.panel("lambda_errors").series}
    assert errors.get("index") == 0 and errors.get("associate") == 0
    assert {s.label for s in figures.panel("lambda_duration").series} >= {"index", "associate"}
    concurrency = {s.label: max(s.values) for s in figures.panel("lambda_concurrency").series}
    assert concurrency["index"] >= 1 and concurrency["associate"] >= 1
    assert set(figures.panel("upload_to_active").bars) == {"p50", "p90", "p99"}


def test_bridged_metrics_answer_get_metric_statistics_and_the_demo_call_draws_them(
    pipeline: Callable[..., Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    # Given a small local run
    stack = pipeline("synthetic")
    ledger = run_small_pipeline(stack)

    # When CloudWatch on the local endpoint is asked, as `aws cloudwatch get-metric-statistics`
    cloudwatch = stack.metrics_bridge._cloudwatch
    now = datetime.now(UTC)

    def total(name: str, dimensions: dict[str, str], statistic: str = "Sum") -> float:
        answer = cloudwatch.get_metric_statistics(
            Namespace=stack.config.metrics_namespace,
            MetricName=name,
            Dimensions=[{"Name": k, "Value": v} for k, v in dimensions.items()],
            StartTime=now - timedelta(minutes=30),
            EndTime=now + timedelta(minutes=1),
            Period=3600,
            Statistics=[statistic],
        )
        return sum(point[statistic] for point in answer["Datapoints"])

    # Then the functions' EMF metrics and the state machine's own are there
    assert total("PhotosIndexed", {"service": stack.config.index_service_name}) == 3
    no_face = {"service": stack.config.index_service_name, "Reason": "NO_FACE"}
    assert total("PhotosRejected", no_face) == 2
    assert total("FacesAssociated", {"service": stack.config.associate_service_name}) == 3
    # One ActivationSeconds data point per activation (its value may be 0 s: ACTIVE at once).
    assert total("ActivationSeconds", {}, "SampleCount") == 3

    # And run_dashboard (what `enroll demo` calls) writes the picture where it was asked
    out = run_dashboard(stack.endpoints, tmp_path / "pictures" / "dash.png", SINCE_SECONDS)
    assert out == tmp_path / "pictures" / "dash.png"
    assert out.read_bytes().startswith(PNG_SIGNATURE)
    figures = DashboardFigures.from_json(figures_path(out).read_text())
    assert figures.since_seconds == SINCE_SECONDS
    assert figures.panel("ledger").bars["users ACTIVE"] == sum(
        1 for u in ledger.users if u["status"] == "ACTIVE"
    )
