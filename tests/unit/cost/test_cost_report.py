"""The cost report's arithmetic on the counted calls of a fixed local run.

The fixture is what ``collect_counted_calls`` returned after 3 users x 3 photos went through the
local stack (synthetic engine, short activation schedule, the activation definition before
its Map over the matches was replaced: 98 transitions). Every expected figure below was
worked out by hand from the fixture's counts and the list prices, not with the report's code.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from enroll_cli.main import main
from enroll_local.cost.report import CostLine, cost_report, price_text, quantity_text

FIXTURE = Path(__file__).parent / "fixtures" / "counted_calls_9_photos.json"


@pytest.fixture
def counted() -> dict[str, Any]:
    return json.loads(FIXTURE.read_text())  # type: ignore[no-any-return]


def line(lines: list[CostLine], service: str, item: str) -> CostLine:
    found = [entry for entry in lines if entry.service == service and entry.item == item]
    assert len(found) == 1, (service, item, [e.item for e in lines])
    return found[0]


def test_rekognition_by_api_per_1000_photos(counted: dict[str, Any]) -> None:
    report = cost_report(counted, 9)
    # 9 IndexFaces for 9 photos: 1,000 per 1,000 photos at $0.001.
    index = line(report.ours, "rekognition", "IndexFaces")
    assert index.arithmetic == "1,000 x $0.001 = $1.0000"
    assert not index.user_vector
    # 5 AssociateFaces, 3 CreateUser, 8 SearchUsers (status checks): user-vector APIs, [U].
    associate = line(report.ours, "rekognition", "AssociateFaces")
    assert associate.arithmetic == "555.56 x $0.001 = $0.5556"
    assert associate.user_vector and associate.grade == "[U]"
    assert line(report.ours, "rekognition", "CreateUser").usd == pytest.approx(3 / 9)
    assert line(report.ours, "rekognition", "SearchUsers").usd == pytest.approx(8 / 9)
    # 15 ListFaces: collection housekeeping, priced at $0.
    assert line(report.ours, "rekognition", "ListFaces").usd == 0
    storage = line(report.ours, "rekognition", "face storage, 1 month")
    assert storage.arithmetic == "1,000 x $0.00001 = $0.0100"


def test_lambda_sqs_stepfunctions_dynamodb_s3(counted: dict[str, Any]) -> None:
    report = cost_report(counted, 9)
    # index-photo: 1,660.335 ms x 0.5 GB = 0.8301675 GB-s per 9 photos -> 92.2408 GB-s per
    # 1,000, at the Arm price $0.0000133334 = $0.00122989.
    index_gbs = line(report.ours, "lambda", "index-photo duration (arm64)")
    assert index_gbs.quantity == pytest.approx(92.2408, abs=1e-4)
    assert index_gbs.usd == pytest.approx(0.00122989, abs=1e-8)
    # associate-faces: 2,336.545 ms x 0.25 GB = 0.58413625 GB-s -> 64.9040 per 1,000.
    assert line(report.ours, "lambda", "associate-faces duration (arm64)").usd == pytest.approx(
        0.00086539, abs=1e-8
    )
    # 5 index invocations -> 555.56 per 1,000 x $0.0000002.
    assert line(report.ours, "lambda", "index-photo requests").arithmetic == (
        "555.56 x $0.0000002 = $0.0001"
    )
    # SQS: 9 sends by the functions, 9 S3 notifications, (5 + 2) invocations x 2 ESM calls.
    assert line(report.ours, "sqs", "requests by the functions").usd == pytest.approx(0.0004)
    assert line(report.ours, "sqs", "S3 event notifications").usd == pytest.approx(0.0004)
    esm = line(report.ours, "sqs", "event source mapping receive + delete")
    assert esm.arithmetic == "1,555.56 x $0.0000004 = $0.0006"
    # 98 transitions over 9 photos -> 10,888.89 per 1,000 x $0.000025 = $0.2722.
    sfn = line(report.ours, "stepfunctions", "Standard state transitions")
    assert sfn.arithmetic == "10,888.89 x $0.000025 = $0.2722"
    # DynamoDB: 23 PutItem + 36 UpdateItem = 59 WRU; 29 GetItem + 5 Query = 34 RRU.
    wru = line(report.ours, "dynamodb", "write request units")
    assert wru.arithmetic == "6,555.56 x $0.000000625 = $0.0041"
    rru = line(report.ours, "dynamodb", "read request units")
    assert rru.usd == pytest.approx(34 / 9 * 1000 * 0.125e-6)
    # S3: 9 PutObject (PUT class) and 9 GETs by Rekognition.
    assert line(report.ours, "s3", "PUT/COPY/POST/LIST requests").usd == pytest.approx(0.005)
    assert line(report.ours, "s3", "GET by Rekognition (IndexFaces S3Object)").usd == (
        pytest.approx(0.0004)
    )
    # 5 PutMetricData by the state machine.
    assert line(report.ours, "cloudwatch", "PutMetricData (state machine)").usd == pytest.approx(
        5 / 9 * 1000 * 0.00001
    )


def test_totals_both_ways(counted: dict[str, Any]) -> None:
    report = cost_report(counted, 9)
    by_service = report.by_service(report.ours)
    # 1 + 0.5556 + 0.3333 + 0.8889 + 0.01
    assert by_service["rekognition"] == pytest.approx(2.787778, abs=1e-6)
    # 0.000111 + 0.00122989 + 0.0000444 + 0.00086539
    assert by_service["lambda"] == pytest.approx(0.00225080, abs=1e-7)
    assert by_service["stepfunctions"] == pytest.approx(0.272222, abs=1e-6)
    assert report.total(report.ours) == pytest.approx(3.079198, abs=1e-5)
    # Without the 16 user-vector calls (16 / 9 x $1 = $1.777778).
    assert report.total(report.ours, user_vector_billed=False) == pytest.approx(1.301420, abs=1e-5)


def test_naive_column_from_the_same_run(counted: dict[str, Any]) -> None:
    report = cost_report(counted, 9)
    # 5 executions took 3.876 s: 0.7752 s each -> 1 poll per photo, 1 ListUsers page (3 users).
    assert report.inputs["polls_per_photo"] == 1
    assert report.inputs["transitions_per_execution"] == 5  # start + Task, Choice, Wait + end
    naive = report.naive
    assert line(naive, "rekognition", "AssociateFaces (one per photo)").usd == pytest.approx(1.0)
    assert line(naive, "rekognition", "ListUsers (status polls)").usd == pytest.approx(1.0)
    assert line(naive, "stepfunctions", "Standard state transitions").arithmetic == (
        "5,000 x $0.000025 = $0.1250"
    )
    assert line(naive, "sqs", "upload + association queues, unbatched").usd == pytest.approx(0.0024)
    # 9 associate invocations x 1,168.2725 ms (the run's mean) x 0.25 GB -> 292.068 GB-s.
    assert line(naive, "lambda", "associate-faces duration (arm64)").usd == pytest.approx(
        0.0038943, abs=1e-7
    )
    assert report.total(naive) == pytest.approx(3.491694, abs=1e-5)


def test_a_longer_activation_wait_polls_more() -> None:
    counted = json.loads(FIXTURE.read_text())
    report = cost_report(counted, 9, naive_activation_wait_s=5)
    # 5 polls: 2 + 5 x 3 = 17 transitions per execution, as performance-anchors.md §2.2(a).
    assert report.inputs["transitions_per_execution"] == 17
    sfn = line(report.naive, "stepfunctions", "Standard state transitions")
    assert sfn.arithmetic == "17,000 x $0.000025 = $0.4250"
    assert line(report.naive, "rekognition", "ListUsers (status polls)").usd == pytest.approx(5.0)


def test_formatting() -> None:
    assert quantity_text(1000) == "1,000"
    assert quantity_text(2000 / 3) == "666.67"
    assert price_text(0.2e-6) == "$0.0000002"
    assert price_text(0.0000133334) == "$0.0000133334"


def test_no_photos_is_an_error(counted: dict[str, Any]) -> None:
    with pytest.raises(ValueError, match="photos"):
        cost_report(counted, 0)


def test_cli_reads_a_benchmark_json(
    counted: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bench = tmp_path / "bench.json"
    bench.write_text(json.dumps({"photos": 9, "seconds": 12.0, "counted_calls": counted}))
    out = tmp_path / "cost.json"
    assert main(["cost", "--counts", str(bench), "--json", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "total: $3.0792 per 1,000 photos ($1.3014 if" in printed
    assert "10,888.89 x $0.000025 = $0.2722" in printed
    written = json.loads(out.read_text())
    assert written["ours"]["total_usd"] == pytest.approx(3.079198, abs=1e-5)
    assert written["naive"]["total_usd_if_user_vector_apis_unbilled"] == pytest.approx(
        1.158361, abs=1e-5
    )


def test_cli_refuses_a_file_without_counts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"photos": 9}))
    assert main(["cost", "--counts", str(bad)]) == 2
    assert "no counted calls" in capsys.readouterr().err
    assert main(["cost", "--counts", str(tmp_path / "missing.json")]) == 2
