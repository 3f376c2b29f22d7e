"""The ``enroll`` command in a child process, as a user runs it (its own stack, own handlers)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import boto3
import pytest

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo

ROOT = Path(__file__).resolve().parents[3]
#: Budget for a child stack to start or a photo to settle (seconds).
CHILD_TIMEOUT_SECONDS = 60
DEMO = [sys.executable, "-m", "enroll_cli", "demo"]
LOCAL = [sys.executable, "-m", "enroll_cli", "local"]
AWS_CLI = [sys.executable, "-m", "awscli"]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "functions"), str(ROOT)])
    env.pop("AWS_ENDPOINT_URL", None)
    return env


@pytest.mark.slow
def test_default_demo_enrolls_both_people_with_the_real_engine_and_tells_them_apart() -> None:
    # Given no arguments: the built-in photos (no network) and the real face engine
    # When the demo runs, as `make demo` runs it
    done = subprocess.run(
        [*DEMO, "--timeout", "120"], env=_env(), capture_output=True, text=True, timeout=300
    )

    # Then it exits 0 with both people ACTIVE and the two bad files rejected with their reason
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All 2 demo user(s) ACTIVE." in done.stdout
    rows: dict[str, list[str]] = {}
    for line in done.stdout.split("Search by image", 1)[0].splitlines():
        if line.strip():
            rows.setdefault(line.split()[0], line.split()[1:])
    assert rows["enroll/Eileen_Collins/coffee.jpg"] == ["REJECTED", "NO_FACE"]
    assert rows["enroll/Eileen_Collins/notes.jpg"] == ["REJECTED", "INVALID_IMAGE_FORMAT"]
    for user, photos in {"Eileen_Collins": 6, "Cameraman": 3}.items():
        assert rows[user][:2] == ["ACTIVE", str(photos)], rows[user]
    # And the search by image finds Eileen Collins, not the other person
    search = done.stdout.split("Search by image", 1)[1].splitlines()[1:]
    matches = [line.split()[0] for line in search if "similarity" in line]
    assert matches == ["Eileen_Collins"], done.stdout


def test_demo_with_a_photo_folder_enrolls_every_user(tmp_path: Path) -> None:
    # Given a folder of <UserId>/<photos>, one of them not an image
    for user in ("Ada", "Grace"):
        (tmp_path / user).mkdir()
        for i in range(2):
            photo = make_synthetic_photo([{"identity": user, "variant": i}], seed=i)
            (tmp_path / user / f"{i}.jpg").write_bytes(photo)
    # (sorted first, so a naive search probe would pick it)
    (tmp_path / "Ada" / "0-readme.jpg").write_text("not a photo")

    # When the demo runs on it
    done = subprocess.run(
        [*DEMO, "--photos", str(tmp_path), "--engine", "synthetic", "--timeout", "60"],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )

    # Then it exits 0 and its report shows both users ACTIVE and the rejected file with a reason
    assert done.returncode == 0, done.stdout + done.stderr
    assert "All 2 demo user(s) ACTIVE." in done.stdout
    assert "enroll/Ada/0-readme.jpg" in done.stdout and "INVALID_IMAGE_FORMAT" in done.stdout
    # And the search by image says truthfully which photo it used: an enrolled one, whose user
    # comes first
    search = done.stdout.split("Search by image", 1)[1].splitlines()
    assert "enroll/Ada/0.jpg" in search[0] and "uploaded" in search[0]
    assert search[1].split()[0] == "Ada", done.stdout


def test_demo_with_a_missing_folder_is_a_clear_error(tmp_path: Path) -> None:
    done = subprocess.run(
        [*DEMO, "--photos", str(tmp_path / "nope")],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2
    assert "is not a folder" in done.stdout


def test_local_serves_an_endpoint_that_enrolls_an_upload_and_stops_on_ctrl_c(
    tmp_path: Path,
) -> None:
    # Given `enroll local` running with a data dir
    # (its output goes to a file: a pipe nobody reads would block a chatty child)
    log = (tmp_path / "local.log").open("w")
    child = subprocess.Popen(
        [*LOCAL, "--engine", "synthetic", "--data-dir", str(tmp_path)],
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        endpoints_file = tmp_path / "endpoints.json"
        deadline = time.monotonic() + CHILD_TIMEOUT_SECONDS
        while not endpoints_file.exists():
            assert child.poll() is None, (tmp_path / "local.log").read_text()
            assert time.monotonic() < deadline, "endpoints.json never appeared"
            time.sleep(0.2)
        endpoints = json.loads(endpoints_file.read_text())
        # And the query API is served on loopback by default
        assert endpoints["api_url"].startswith("http://127.0.0.1:")
        with urllib.request.urlopen(f"{endpoints['api_url']}/health", timeout=30) as health:
            assert json.loads(health.read()) == {"status": "ok"}
        session = {"endpoint_url": endpoints["endpoint_url"], "region_name": endpoints["region"]}

        # When a photo is dropped into the bucket with the AWS CLI, as the README shows
        photo = tmp_path / "me.jpg"
        photo.write_bytes(make_synthetic_photo([{"identity": "Daniel", "variant": 0}]))
        target = f"s3://{endpoints['bucket']}/{endpoints['prefix']}Daniel/"
        copied = subprocess.run(
            [*AWS_CLI, "--endpoint-url", endpoints["endpoint_url"], "s3", "cp", str(photo), target],
            env={**_env(), "AWS_DEFAULT_REGION": endpoints["region"]},
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_SECONDS,
        )
        assert copied.returncode == 0, copied.stdout + copied.stderr

        # Then the ledger records the user ACTIVE
        table = boto3.resource("dynamodb", **session).Table(endpoints["table"])
        status = None
        while time.monotonic() < deadline + CHILD_TIMEOUT_SECONDS and status != "ACTIVE":
            item = table.get_item(Key={"pk": "USER#Daniel", "sk": "USER"}).get("Item")
            status = item and item.get("status")
            time.sleep(0.5)
        assert status == "ACTIVE"
    finally:
        # And Ctrl-C stops it cleanly
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            child.kill()
            pytest.fail("enroll local did not stop on Ctrl-C")
        finally:
            log.close()
    assert child.returncode == 0, (tmp_path / "local.log").read_text()


def _ignore_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def test_local_started_in_the_background_still_stops_on_sigint(tmp_path: Path) -> None:
    # Given `enroll local &` from a script: a non-interactive shell starts background jobs with
    # SIGINT ignored, and Python then never raises KeyboardInterrupt
    log = (tmp_path / "local.log").open("w")
    child = subprocess.Popen(
        [*LOCAL, "--engine", "synthetic", "--data-dir", str(tmp_path)],
        env=_env(),
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=_ignore_sigint,
    )
    try:
        deadline = time.monotonic() + CHILD_TIMEOUT_SECONDS
        while not (tmp_path / "endpoints.json").exists():
            assert child.poll() is None, (tmp_path / "local.log").read_text()
            assert time.monotonic() < deadline, "endpoints.json never appeared"
            time.sleep(0.2)

        # When it gets SIGINT (`kill -INT`), Then it stops cleanly all the same
        child.send_signal(signal.SIGINT)
        try:
            child.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pytest.fail("enroll local ignored SIGINT")
    finally:
        if child.poll() is None:
            child.kill()
        log.close()
    assert child.returncode == 0, (tmp_path / "local.log").read_text()


@pytest.mark.parametrize("option", ["--port", "--api-port"])
def test_local_on_a_port_in_use_is_a_clear_error(tmp_path: Path, option: str) -> None:
    # Given a port another program listens on
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]

        # When `enroll local` is asked to serve on it
        try:
            done = subprocess.run(
                [*LOCAL, "--engine", "synthetic", option, str(port)],
                env=_env(),
                capture_output=True,
                text=True,
                timeout=CHILD_TIMEOUT_SECONDS,
            )
        except subprocess.TimeoutExpired:
            pytest.fail(f"enroll local hung on port {port}, which is in use")

    # Then it exits at once with a message that says what to do
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"port {port}" in done.stderr and option in done.stderr
