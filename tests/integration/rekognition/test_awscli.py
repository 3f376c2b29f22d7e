"""Acceptance: the AWS CLI against the local endpoint (moto's server + the emulator).

A user drops a photo with ``aws s3 cp`` and drives Rekognition with ``aws rekognition ...``
exactly as against AWS, only with ``--endpoint-url``. Each command runs in a subprocess.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

CLI_TIMEOUT_SECONDS = 60
ACTIVE_WAIT_SECONDS = 10.0  # generous: the server's UPDATING -> ACTIVE delay is 0.2 s
BUCKET = "cli-photos"
COLLECTION = "cli-faces"


@pytest.fixture
def aws(local_endpoint_url: str, tmp_path: Path) -> Callable[..., Any]:
    """Run ``aws <args>`` against the local endpoint; JSON output parsed, text otherwise."""
    env = {
        **os.environ,
        # Never read the developer's profiles, and never page output.
        "AWS_CONFIG_FILE": str(tmp_path / "no-config"),
        "AWS_SHARED_CREDENTIALS_FILE": str(tmp_path / "no-credentials"),
        "AWS_PAGER": "",
    }
    env.pop("AWS_PROFILE", None)

    def run(*args: str, expect_error: bool = False) -> Any:
        command = [sys.executable, "-m", "awscli", "--endpoint-url", local_endpoint_url, *args]
        proc = subprocess.run(
            [*command, "--output", "json"] if args[0] != "s3" else command,
            capture_output=True,
            text=True,
            env=env,
            timeout=CLI_TIMEOUT_SECONDS,
            check=False,
        )
        if expect_error:
            assert proc.returncode != 0, proc.stdout
            return proc.stderr
        assert proc.returncode == 0, f"aws {' '.join(args)} failed:\n{proc.stderr}"
        out = proc.stdout.strip()
        return json.loads(out) if out.startswith("{") else out

    return run


def test_enroll_and_search_with_the_aws_cli(
    aws: Callable[..., Any], synthetic_photo: Callable[..., bytes], tmp_path: Path
) -> None:
    enrolled = tmp_path / "alice-1.jpg"
    enrolled.write_bytes(synthetic_photo("alice", 1))
    probe = tmp_path / "alice-probe.png"
    probe.write_bytes(synthetic_photo("alice", 2, fmt="PNG"))

    assert f"make_bucket: {BUCKET}" in aws("s3", "mb", f"s3://{BUCKET}")
    assert "upload:" in aws("s3", "cp", str(enrolled), f"s3://{BUCKET}/enroll/alice/1.jpg")
    aws("s3", "cp", str(probe), f"s3://{BUCKET}/probes/alice.png")

    created = aws("rekognition", "create-collection", "--collection-id", COLLECTION)
    assert created["StatusCode"] == 200
    assert created["CollectionArn"].endswith(f"collection/{COLLECTION}")

    indexed = aws(
        "rekognition",
        "index-faces",
        "--collection-id",
        COLLECTION,
        "--image",
        json.dumps({"S3Object": {"Bucket": BUCKET, "Name": "enroll/alice/1.jpg"}}),
        "--external-image-id",
        "alice-1",
        "--max-faces",
        "1",
        "--quality-filter",
        "AUTO",
    )
    [record] = indexed["FaceRecords"]
    face_id = record["Face"]["FaceId"]
    assert record["Face"]["ExternalImageId"] == "alice-1"

    listed = aws("rekognition", "list-faces", "--collection-id", COLLECTION)
    assert [f["FaceId"] for f in listed["Faces"]] == [face_id]

    aws("rekognition", "create-user", "--collection-id", COLLECTION, "--user-id", "alice")
    associated = aws(
        "rekognition",
        "associate-faces",
        "--collection-id",
        COLLECTION,
        "--user-id",
        "alice",
        "--face-ids",
        face_id,
    )
    assert associated["AssociatedFaces"] == [{"FaceId": face_id}]
    assert associated["UserStatus"] in ("UPDATING", "ACTIVE")

    matches = _search_until_active(aws)
    assert matches[0]["User"] == {"UserId": "alice", "UserStatus": "ACTIVE"}
    assert matches[0]["Similarity"] >= 80


def _search_until_active(aws: Callable[..., Any]) -> list[dict[str, Any]]:
    deadline = time.monotonic() + ACTIVE_WAIT_SECONDS
    while True:
        found = aws(
            "rekognition",
            "search-users-by-image",
            "--collection-id",
            COLLECTION,
            "--image",
            json.dumps({"S3Object": {"Bucket": BUCKET, "Name": "probes/alice.png"}}),
        )
        matches: list[dict[str, Any]] = found["UserMatches"]
        if matches and matches[0]["User"]["UserStatus"] == "ACTIVE":
            return matches
        if time.monotonic() > deadline:
            return matches
        time.sleep(0.2)


def test_cli_reports_service_errors_by_code(aws: Callable[..., Any]) -> None:
    stderr = aws(
        "rekognition", "describe-collection", "--collection-id", "missing", expect_error=True
    )

    assert "An error occurred (ResourceNotFoundException)" in stderr
    assert "DescribeCollection" in stderr
