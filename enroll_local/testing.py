"""Test helpers for anyone testing against the local AWS (moto + the Rekognition emulator).

- ``shape_violations`` / ``assert_matches_output_shape``: check a response against botocore's
  output shape, recursively: required members, no member outside the shape, types, enums,
  patterns, length and numeric ranges. boto3 silently drops unknown members and never checks
  output constraints, so a wrong emulator response would otherwise go unnoticed.
- ``WireRecorder``: keeps the raw JSON bodies a boto3 client receives, to validate them as sent.
- ``aws_test_environment``: dummy credentials and region so nothing can reach a real account.
- ``free_loopback_port``: a port for a local server.

Typical use (see tests/integration/rekognition/test_response_shapes.py)::

    with mock_aws(), local_rekognition():
        client = boto3.client("rekognition", region_name="us-east-1")
        recorder = WireRecorder(client)
        client.create_collection(CollectionId="c")
        for call in recorder.calls:
            assert_matches_output_shape(call.operation, call.body)
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import math
import os
import re
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import botocore.session
from botocore.model import Shape

#: Environment for tests: fake credentials, one region, no profile or IMDS lookups.
TEST_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "AWS_EC2_METADATA_DISABLED": "true",
}


@contextmanager
def aws_test_environment(**extra: str) -> Iterator[dict[str, str]]:
    """Set ``TEST_AWS_ENV`` (plus ``extra``) in ``os.environ`` for the block; restore after."""
    wanted = {**TEST_AWS_ENV, **extra}
    saved = {name: os.environ.get(name) for name in [*wanted, "AWS_PROFILE", "AWS_ENDPOINT_URL"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_ENDPOINT_URL", None)
    os.environ.update(wanted)
    try:
        yield wanted
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def free_loopback_port() -> int:
    """A TCP port free on 127.0.0.1 right now (prefer port=0 where the server supports it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@lru_cache(maxsize=8)
def _service_model(service: str) -> Any:
    return botocore.session.get_session().get_service_model(service)


def output_shape(operation: str, service: str = "rekognition") -> Shape:
    """botocore's output shape of ``operation`` (PascalCase name, e.g. "IndexFaces")."""
    shape = _service_model(service).operation_model(operation).output_shape
    if shape is None:
        raise ValueError(f"{service}.{operation} has no output shape")
    return shape


def shape_violations(value: Any, shape: Shape, *, path: str = "$", wire: bool = True) -> list[str]:
    """Every way ``value`` departs from ``shape``, each as "<path>: <problem>"; [] if it conforms.

    ``wire=True`` checks the JSON body as sent (timestamps are numbers or ISO-8601 strings, blobs
    base64 strings); ``wire=False`` checks what boto3 returns (datetime, bytes). Members outside
    the shape are violations too; ``ResponseMetadata`` (added by boto3) is ignored at the top.
    """
    out: list[str] = []
    _check(value, shape, path, wire, out)
    return out


def assert_matches_output_shape(
    operation: str, response: dict[str, Any], *, service: str = "rekognition", wire: bool = True
) -> None:
    """Raise AssertionError listing every violation of ``operation``'s output shape."""
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    problems = shape_violations(body, output_shape(operation, service), path=operation, wire=wire)
    if problems:
        raise AssertionError(
            f"{operation} response does not match botocore's output shape:\n  "
            + "\n  ".join(problems)
        )


@dataclass(frozen=True)
class WireCall:
    """One call as it crossed the wire: operation, HTTP status and decoded JSON body."""

    operation: str
    status: int
    body: dict[str, Any]


class WireRecorder:
    """Record the raw JSON response of every call a boto3 client makes (errors included)."""

    def __init__(self, client: Any) -> None:
        self.calls: list[WireCall] = []
        client.meta.events.register("after-call.*.*", self._record)

    def _record(self, http_response: Any, model: Any, **_: Any) -> None:
        import json

        raw = http_response.content or b"{}"
        self.calls.append(WireCall(model.name, int(http_response.status_code), json.loads(raw)))

    def operations(self) -> set[str]:
        """Names of the operations answered with HTTP 200."""
        return {call.operation for call in self.calls if call.status == 200}


# --- the recursive check -------------------------------------------------------------------


def _check(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    kind = shape.type_name
    checker = _CHECKERS.get(kind)
    if checker is None:
        out.append(f"{path}: shape type {kind!r} is not supported by the validator")
        return
    checker(value, shape, path, wire, out)


def _check_structure(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    if not isinstance(value, dict):
        out.append(f"{path}: expected structure {shape.name}, got {type(value).__name__}")
        return
    members = shape.members  # type: ignore[attr-defined]
    for name in shape.required_members:  # type: ignore[attr-defined]
        if name not in value:
            out.append(f"{path}: missing required member {name!r}")
    for name, member_value in value.items():
        if name not in members:
            out.append(f"{path}: member {name!r} is not in shape {shape.name}")
            continue
        if member_value is None:
            out.append(f"{path}.{name}: null (absent members must be omitted)")
            continue
        _check(member_value, members[name], f"{path}.{name}", wire, out)


def _check_list(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    if not isinstance(value, list):
        out.append(f"{path}: expected list {shape.name}, got {type(value).__name__}")
        return
    _check_range(len(value), shape, path, "length", out)
    member = shape.member  # type: ignore[attr-defined]
    for index, item in enumerate(value):
        _check(item, member, f"{path}[{index}]", wire, out)


def _check_map(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    if not isinstance(value, dict):
        out.append(f"{path}: expected map {shape.name}, got {type(value).__name__}")
        return
    _check_range(len(value), shape, path, "size", out)
    for key, item in value.items():
        _check(key, shape.key, f"{path}<key {key!r}>", wire, out)  # type: ignore[attr-defined]
        _check(item, shape.value, f"{path}[{key!r}]", wire, out)  # type: ignore[attr-defined]


def _check_string(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    if not isinstance(value, str):
        out.append(f"{path}: expected string, got {type(value).__name__} {value!r}")
        return
    enum = shape.enum  # type: ignore[attr-defined]
    if enum and value not in enum:
        out.append(f"{path}: {value!r} is not one of {sorted(enum)}")
    _check_range(len(value), shape, path, "length", out)
    pattern = shape.metadata.get("pattern")
    if pattern is not None:
        try:
            compiled = _compile(pattern)
        except re.error:
            out.append(f"{path}: pattern {pattern!r} cannot be checked by Python's re")
            return
        if compiled.fullmatch(value) is None:
            out.append(f"{path}: {value!r} does not match pattern {pattern!r}")


def _check_integer(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        out.append(f"{path}: expected {shape.type_name}, got {type(value).__name__} {value!r}")
        return
    _check_range(value, shape, path, "value", out)


def _check_float(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    # JSON has one number type: 100 and 100.0 are the same float on the wire.
    if isinstance(value, bool) or not isinstance(value, int | float):
        out.append(f"{path}: expected {shape.type_name}, got {type(value).__name__} {value!r}")
        return
    if not math.isfinite(value):
        out.append(f"{path}: {value!r} is not a finite number")
        return
    _check_range(value, shape, path, "value", out)


def _check_boolean(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    if not isinstance(value, bool):
        out.append(f"{path}: expected boolean, got {type(value).__name__} {value!r}")


def _check_timestamp(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    if not wire:
        if not isinstance(value, dt.datetime):
            out.append(f"{path}: expected datetime, got {type(value).__name__} {value!r}")
        return
    if isinstance(value, bool):
        out.append(f"{path}: expected timestamp, got bool")
    elif isinstance(value, int | float):
        # Epoch seconds. Milliseconds (a documented trap) land tens of thousands of years ahead.
        try:
            dt.datetime.fromtimestamp(value, tz=dt.UTC)
        except (OverflowError, OSError, ValueError):
            out.append(f"{path}: {value!r} is not epoch seconds (milliseconds?)")
    elif isinstance(value, str):
        try:
            dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            out.append(f"{path}: {value!r} is not an ISO-8601 timestamp")
    else:
        out.append(f"{path}: expected timestamp, got {type(value).__name__} {value!r}")


def _check_blob(value: Any, shape: Shape, path: str, wire: bool, out: list[str]) -> None:
    if not wire:
        if not isinstance(value, bytes | bytearray):
            out.append(f"{path}: expected bytes, got {type(value).__name__}")
            return
        _check_range(len(value), shape, path, "length", out)
        return
    if not isinstance(value, str):
        out.append(f"{path}: expected base64 string, got {type(value).__name__}")
        return
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        out.append(f"{path}: not valid base64")
        return
    _check_range(len(raw), shape, path, "length", out)


def _check_range(number: float, shape: Shape, path: str, what: str, out: list[str]) -> None:
    low = shape.metadata.get("min")
    high = shape.metadata.get("max")
    if low is not None and number < low:
        out.append(f"{path}: {what} {number!r} is below the minimum {low}")
    if high is not None and number > high:
        out.append(f"{path}: {what} {number!r} is above the maximum {high}")


@lru_cache(maxsize=256)
def _compile(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


_CHECKERS = {
    "structure": _check_structure,
    "list": _check_list,
    "map": _check_map,
    "string": _check_string,
    "integer": _check_integer,
    "long": _check_integer,
    "float": _check_float,
    "double": _check_float,
    "boolean": _check_boolean,
    "timestamp": _check_timestamp,
    "blob": _check_blob,
}


class ManualClock:
    """A clock for ``RekognitionEmulator(clock=...)`` that moves only when told to."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        self.now += seconds
