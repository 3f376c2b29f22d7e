"""The ``enroll`` API commands against the local API, and SigV4 signing for a deployed one."""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

import pytest
from botocore.credentials import Credentials

from enroll_cli.api_client import ApiClient, SigV4Signer, region_of
from enroll_cli.main import _parser, main, run_api_command

from .conftest import call, enroll, faceless_photo, photo

ROOT = Path(__file__).resolve().parents[3]
FAKE = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "session-token")


@pytest.fixture
def endpoints(enrolled: Any, tmp_path: Path) -> Path:
    """endpoints.json of the shared stack, as ``enroll local --data-dir`` writes it."""
    path = tmp_path / "endpoints.json"
    enrolled.write_endpoints(path)
    return path


def enroll_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def table_rows(text: str) -> dict[str, list[str]]:
    """First column -> the other columns, for every row of a table printed by the CLI."""
    lines = text.strip().splitlines()
    rows = {}
    for line in lines[2:]:
        cells = line.split()
        if cells:
            rows[cells[0]] = cells[1:]
    return rows


# -- each command, table and --json --------------------------------------------------------------


def test_users_prints_a_table_and_json_prints_the_apis_answer(
    enrolled: Any, endpoints: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = enroll_cli(capsys, "users", "--endpoints", str(endpoints))
    assert code == 0, err
    assert out.splitlines()[0].split() == ["user_id", "status", "face_count", "updated_at"]
    rows = table_rows(out)
    assert rows["alice"][:2] == ["ACTIVE", "2"] and rows["bob"][:2] == ["ACTIVE", "1"]

    # --json before or after the command: exactly the API's JSON
    for argv in (
        ("--json", "users", "--endpoints", str(endpoints)),
        ("users", "--json", "--endpoints", str(endpoints)),
    ):
        code, out, _ = enroll_cli(capsys, *argv)
        assert code == 0
        assert json.loads(out) == call(enrolled, "GET", "/users").json


def test_users_pages_with_limit_and_next_token(
    endpoints: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = enroll_cli(capsys, "users", "--limit", "1", "--endpoints", str(endpoints))
    assert code == 0
    token = out.rsplit("--next-token ", 1)[1].strip()
    code, out, _ = enroll_cli(
        capsys, "users", "--limit", "1", "--next-token", token, "--endpoints", str(endpoints)
    )
    assert code == 0 and len(table_rows(out.split("\n\n")[0])) == 1


def test_status_shows_the_user_and_its_faces(
    endpoints: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = enroll_cli(capsys, "status", "alice", "--endpoints", str(endpoints))
    assert code == 0, err
    fields = dict(line.split(":", 1) for line in out.split("\n\n")[0].splitlines())
    assert fields["status"].strip() == "ACTIVE"
    assert fields["rekognition_status"].strip() == "ACTIVE"
    assert fields["face_count"].strip() == "2" and fields["max_faces"].strip() == "100"
    assert "enroll/alice/0.jpg" in out and "enroll/alice/1.jpg" in out


def test_photos_shows_each_outcome_and_reason(
    endpoints: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = enroll_cli(capsys, "photos", "carol", "--endpoints", str(endpoints))
    assert code == 0, err
    rows = table_rows(out)
    assert rows["enroll/carol/empty-room.jpg"][:2] == ["REJECTED", "NO_FACE"]
    assert rows["enroll/carol/notes.jpg"][:2] == ["REJECTED", "INVALID_IMAGE_FORMAT"]


def test_search_by_file_and_by_s3_key(
    endpoints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    probe = tmp_path / "who.jpg"
    probe.write_bytes(photo("alice", 11))
    code, out, err = enroll_cli(capsys, "search", str(probe), "--endpoints", str(endpoints))
    assert code == 0, err
    assert out.splitlines()[0].split() == ["user_id", "similarity", "user_status"]
    assert out.splitlines()[2].split()[0] == "alice"

    code, out, _ = enroll_cli(
        capsys, "--json", "search", "--s3-key", "enroll/bob/0.jpg", "--endpoints", str(endpoints)
    )
    assert code == 0
    assert json.loads(out)["matches"][0]["user_id"] == "bob"


def test_verify_says_match_or_no_match(
    endpoints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    same, other = tmp_path / "same.png", tmp_path / "other.jpg"
    same.write_bytes(photo("alice", 12, fmt="PNG"))
    other.write_bytes(photo("bob", 12))
    code, out, err = enroll_cli(capsys, "verify", "alice", str(same), "--endpoints", str(endpoints))
    assert code == 0, err
    assert out.splitlines()[0] == "MATCH"
    code, out, _ = enroll_cli(
        capsys, "verify", "alice", str(other), "--threshold", "90", "--endpoints", str(endpoints)
    )
    assert code == 0
    assert out.splitlines()[0] == "NO MATCH"


def test_delete_wait_prints_the_receipt(
    enrolled: Any, endpoints: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    enroll(enrolled, {"gina": [photo("gina", 0)]})
    code, out, err = enroll_cli(capsys, "delete", "gina", "--wait", "--endpoints", str(endpoints))
    assert code == 0, err
    fields = dict(line.split(":", 1) for line in out.splitlines() if ":" in line)
    assert fields["status"].strip() == "DELETED"
    assert "faces_deleted=1" in fields["erasure.receipt"]


# -- errors --------------------------------------------------------------------------------------


def test_an_api_error_prints_its_code_and_message_and_exits_1(
    endpoints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = enroll_cli(capsys, "status", "nobody", "--endpoints", str(endpoints))
    assert (code, out) == (1, "")
    assert "404 USER_NOT_FOUND" in err

    not_an_image = tmp_path / "notes.jpg"
    not_an_image.write_text("hello")
    code, _, err = enroll_cli(capsys, "search", str(not_an_image), "--endpoints", str(endpoints))
    assert code == 1 and "415" in err

    empty = tmp_path / "empty-room.jpg"
    empty.write_bytes(faceless_photo())
    code, out, err = enroll_cli(
        capsys, "--json", "verify", "alice", str(empty), "--endpoints", str(endpoints)
    )
    assert code == 1 and "422 NO_FACE" in err
    assert json.loads(out)["error"]["code"] == "NO_FACE"


def test_usage_errors_exit_2(
    endpoints: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # No local stack: the message says how to start one
    code, _, err = enroll_cli(capsys, "users", "--endpoints", str(tmp_path / "nope.json"))
    assert code == 2 and "enroll local --data-dir" in err
    # Neither an image nor an S3 key; a missing file
    code, _, err = enroll_cli(capsys, "search", "--endpoints", str(endpoints))
    assert code == 2 and "IMAGE" in err
    code, _, err = enroll_cli(capsys, "search", str(tmp_path / "x.jpg"), "--endpoints", "e")
    assert code == 2
    # A bad option
    with pytest.raises(SystemExit) as exited:
        main(["users", "--limit", "many"])
    assert exited.value.code == 2


def test_a_stopped_stack_is_a_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from enroll_local.testing import free_loopback_port

    stale = tmp_path / "endpoints.json"
    stale.write_text(json.dumps({"api_url": f"http://127.0.0.1:{free_loopback_port()}"}))
    code, _, err = enroll_cli(capsys, "users", "--endpoints", str(stale))
    assert code == 1 and "cannot reach the API" in err


def test_the_console_entry_point_runs_the_api_commands(endpoints: Path) -> None:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "functions"), str(ROOT)])}
    done = subprocess.run(
        [sys.executable, "-m", "enroll_cli", "users", "--endpoints", str(endpoints)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert "alice" in done.stdout


# -- a deployed API: SigV4 for execute-api -------------------------------------------------------


def sigv4_signature(
    method: str,
    url: str,
    headers: dict[str, str],
    signed_headers: list[str],
    body: bytes,
    secret: str,
    region: str,
) -> str:
    """Signature Version 4 computed from its specification, independently of botocore."""
    split = urlsplit(url)
    lowered = {k.lower(): v for k, v in headers.items()}
    query = "&".join(
        sorted(
            f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
            for k, v in parse_qsl(split.query, keep_blank_values=True)
        )
    )
    canonical_headers = "".join(f"{h}:{' '.join(lowered[h].split())}\n" for h in signed_headers)
    canonical_request = "\n".join(
        [
            method,
            quote(split.path or "/", safe="/-_.~"),
            query,
            canonical_headers,
            ";".join(signed_headers),
            hashlib.sha256(body).hexdigest(),
        ]
    )
    stamp = lowered["x-amz-date"]
    scope = f"{stamp[:8]}/{region}/execute-api/aws4_request"
    to_sign = "\n".join(
        ["AWS4-HMAC-SHA256", stamp, scope, hashlib.sha256(canonical_request.encode()).hexdigest()]
    )
    key = ("AWS4" + secret).encode()
    for part in (stamp[:8], region, "execute-api", "aws4_request"):
        key = hmac.new(key, part.encode(), hashlib.sha256).digest()
    return hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()


def assert_signed(method: str, url: str, headers: dict[str, str], body: bytes, region: str) -> None:
    lowered = {k.lower(): v for k, v in headers.items()}
    algorithm, rest = lowered["authorization"].split(" ", 1)
    parts = dict(part.strip().split("=", 1) for part in rest.split(","))
    assert algorithm == "AWS4-HMAC-SHA256"
    stamp = lowered["x-amz-date"]
    assert parts["Credential"] == f"AKIDEXAMPLE/{stamp[:8]}/{region}/execute-api/aws4_request"
    signed = parts["SignedHeaders"].split(";")
    assert {"host", "x-amz-date", "x-amz-security-token"} <= set(signed)
    assert lowered["x-amz-security-token"] == "session-token"
    expected = sigv4_signature(method, url, headers, signed, body, FAKE.secret_key, region)
    assert parts["Signature"] == expected


def test_the_signer_signs_for_execute_api_with_the_given_credentials() -> None:
    signer = SigV4Signer(region="eu-west-1", credentials=lambda: FAKE)
    url = "https://abc123.execute-api.eu-west-1.amazonaws.com/prod/search?x=1"
    body = b'{"s3_key": "enroll/a/b.jpg"}'
    headers = signer.headers("POST", url, body, {"Content-Type": "application/json"})
    assert_signed("POST", url, {**headers, "Host": urlsplit(url).netloc}, body, "eu-west-1")


def test_the_region_comes_from_an_execute_api_url() -> None:
    assert region_of("https://abc123.execute-api.eu-central-1.amazonaws.com/prod") == "eu-central-1"
    assert region_of("http://127.0.0.1:4567") is None


@pytest.fixture
def capture_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """A loopback server that records each request and answers an empty page of users."""
    seen: list[dict[str, Any]] = []

    class Recorder(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            seen.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers.items()),
                    "body": self.rfile.read(length),
                }
            )
            body = json.dumps({"users": [], "next_token": None}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", seen
    finally:
        server.shutdown()
        server.server_close()


def test_api_option_signs_every_request_with_sigv4(
    capture_server: tuple[str, list[dict[str, Any]]], tmp_path: Path
) -> None:
    import io

    base, seen = capture_server
    args = _parser().parse_args(
        ["--api", f"{base}/prod", "--region", "eu-west-1", "users", "--limit", "5"]
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_api_command(args, out, err, credentials=lambda: FAKE) == 0, err.getvalue()
    [request] = seen
    assert request["path"] == "/prod/users?limit=5"
    assert_signed("GET", base + request["path"], request["headers"], b"", "eu-west-1")


def test_the_local_api_is_called_without_a_signature(
    capture_server: tuple[str, list[dict[str, Any]]],
) -> None:
    base, seen = capture_server
    ApiClient(base).users()
    assert "Authorization" not in seen[0]["headers"]
