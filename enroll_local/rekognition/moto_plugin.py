"""Route Rekognition's face-collection and user operations reaching moto to our emulator.

moto 5.2.5 implements none of the 17 collection/face/user operations, but it already owns the
``rekognition`` endpoint (``RekognitionResponse``, JSON 1.1, ``X-Amz-Target:
RekognitionService.<Op>``). ``install()`` wraps that one entry point so that those 17 operations
go to ``RekognitionEmulator.dispatch`` while moto keeps serving its own ones (CompareFaces,
DetectLabels, ...). Because every way into moto ends at the same class, one hook reaches:

- boto3 inside ``mock_aws()`` (moto's in-process botocore stubber);
- moto's server (``ThreadedMotoServer`` / ``moto_server``) in the same process, hence a boto3
  client with ``endpoint_url`` and the AWS CLI with ``--endpoint-url`` (see ``server.py``);
- moto's Step Functions interpreter running ``arn:aws:states:::aws-sdk:rekognition:<action>``
  tasks (it calls boto3 itself, through the stubber or the local server).

The one way to switch it on
---------------------------
In tests, inside ``mock_aws``::

    from moto import mock_aws
    from enroll_local.rekognition.moto_plugin import local_rekognition

    with mock_aws(), local_rekognition(engine="synthetic", update_delay_seconds=0.1) as emulator:
        boto3.client("rekognition", region_name="us-east-1").create_collection(CollectionId="c")

In the runner (a local endpoint for boto3, the AWS CLI and the state machine)::

    from enroll_local.rekognition.moto_plugin import build_emulator
    from enroll_local.rekognition.server import local_endpoint

    emulator = build_emulator("hybrid")  # reads S3Object images from moto's S3
    with local_endpoint(emulator) as endpoint_url:  # also runs state machines for real
        ...  # AWS_ENDPOINT_URL=endpoint_url for every client and the AWS CLI

``install(emulator)`` / ``uninstall()`` are the primitives both use; ``uninstall()`` restores
moto's own behaviour exactly.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from moto.rekognition.responses import RekognitionResponse

from .errors import RekognitionError, invalid_s3_object
from .validation import OPERATIONS

if TYPE_CHECKING:
    from .engines.base import FaceEngine
    from .service import RekognitionEmulator

LOG = logging.getLogger(__name__)

#: The operations the emulator serves; every other Rekognition operation stays moto's.
EMULATED_OPERATIONS = frozenset(OPERATIONS)

_TARGET_PREFIX = "RekognitionService."
_CONTENT_TYPE = "application/x-amz-json-1.1"
# Real Step Functions names aws-sdk task errors "<ServicePrefix>.<Name>Exception" with the
# prefix from its supported-services table ("Rekognition"); moto only knows a few prefixes and
# would otherwise report "rekognition.ResourceNotFoundException", which no Catch written for AWS
# ("Rekognition.ResourceNotFoundException") matches.
_SFN_ERROR_PREFIX = ("rekognition", "Rekognition")

_lock = threading.Lock()
_installed: RekognitionEmulator | None = None
_original_dispatch: Callable[..., Any] | None = None
_added_sfn_binding = False


def install(emulator: RekognitionEmulator) -> None:
    """Send every emulated Rekognition call reaching moto (any mode) to ``emulator.dispatch``.

    Installing again replaces the emulator (no double wrapping). Process-wide, like moto itself.
    """
    global _installed, _original_dispatch, _added_sfn_binding
    with _lock:
        if _original_dispatch is None:
            _original_dispatch = RekognitionResponse._dispatch
            RekognitionResponse._dispatch = _emulated_dispatch  # type: ignore[method-assign,assignment]
            _added_sfn_binding = _bind_sfn_error_prefix()
        _installed = emulator


def uninstall() -> None:
    """Restore moto's own Rekognition behaviour (a no-op when nothing is installed)."""
    global _installed, _original_dispatch, _added_sfn_binding
    with _lock:
        if _original_dispatch is not None:
            RekognitionResponse._dispatch = _original_dispatch  # type: ignore[method-assign]
            _original_dispatch = None
        if _added_sfn_binding:
            _sfn_error_names().pop(_SFN_ERROR_PREFIX[0], None)
            _added_sfn_binding = False
        _installed = None


def installed_emulator() -> RekognitionEmulator | None:
    """The emulator currently receiving calls, if any."""
    return _installed


@contextmanager
def local_rekognition(
    engine: str | FaceEngine = "synthetic",
    *,
    clock: Callable[[], float] = time.time,
    data_dir: Path | None = None,
    **config: Any,
) -> Iterator[RekognitionEmulator]:
    """Build an emulator reading images from moto's S3, install it, yield it, uninstall it.

    ``config`` holds ``EmulatorConfig`` fields (e.g. ``update_delay_seconds=0.1``); use it inside
    ``mock_aws(...)`` so that S3, Step Functions and the rest are moto's.
    """
    emulator = build_emulator(engine, clock=clock, data_dir=data_dir, **config)
    install(emulator)
    try:
        yield emulator
    finally:
        uninstall()
        emulator.flush()  # debounced saves: leave data_dir complete for the next emulator


def build_emulator(
    engine: str | FaceEngine = "synthetic",
    *,
    clock: Callable[[], float] = time.time,
    data_dir: Path | None = None,
    **config: Any,
) -> RekognitionEmulator:
    """An emulator with ``engine`` (a name for ``make_engine`` or an instance) reading moto's S3.

    ``config`` holds ``EmulatorConfig`` fields; an unknown name is a TypeError naming it.
    """
    from .engines import make_engine
    from .service import EmulatorConfig, RekognitionEmulator

    known = {f.name for f in fields(EmulatorConfig)}
    unknown = sorted(set(config) - known)
    if unknown:
        raise TypeError(f"unknown EmulatorConfig field(s): {', '.join(unknown)}")
    face_engine = make_engine(engine) if isinstance(engine, str) else engine
    return RekognitionEmulator(
        face_engine,
        EmulatorConfig(**config),
        s3_reader=read_s3_object,
        data_dir=data_dir,
        clock=clock,
    )


def read_s3_object(bucket: str, key: str, version: str | None) -> bytes:
    """Read an object from moto's S3 backend in this process, as Rekognition's S3Object does.

    A missing bucket, key or version is ``InvalidS3ObjectException``, as the real service says.
    """
    from moto.core import DEFAULT_ACCOUNT_ID
    from moto.s3.models import s3_backends

    # Buckets share one namespace across accounts; moto records which backend holds each.
    partition, account_id = s3_backends.bucket_accounts.get(bucket, ("aws", DEFAULT_ACCOUNT_ID))
    backend = s3_backends[account_id][partition]
    if bucket not in backend.buckets:
        raise invalid_s3_object()
    obj = backend.get_object(bucket, key, version_id=version or None)
    if obj is None:
        raise invalid_s3_object()
    return bytes(obj.value)


def _emulated_dispatch(
    self: RekognitionResponse, request: Any, full_url: str | None = None, headers: Any = None
) -> tuple[int, dict[str, str], str]:
    target = str(request.headers.get("X-Amz-Target") or "")
    operation = target[len(_TARGET_PREFIX) :] if target.startswith(_TARGET_PREFIX) else ""
    emulator = _installed
    if emulator is None or operation not in EMULATED_OPERATIONS:
        assert _original_dispatch is not None
        return _original_dispatch(self, request, full_url, headers)  # type: ignore[no-any-return]

    self.setup_class(request, full_url, headers)
    request_id = str(uuid.uuid4())
    try:
        params = _decode_params(self.raw_body)
        result = emulator.dispatch(
            operation, params, account_id=self.current_account, region=self.region
        )
    except RekognitionError as err:
        return _error_response(err, request_id)
    except Exception:
        # A bug in the emulator: answer as the service does for its own faults (HTTP 500,
        # retried by SDKs) and keep the traceback in the log.
        LOG.exception("emulator failed on %s", operation)
        fault = RekognitionError("InternalServerError", "Internal server error.")
        return _error_response(fault, request_id)
    body = json.dumps(result, default=_json_default, separators=(",", ":"))
    return 200, _headers(request_id), body


def _decode_params(raw_body: bytes | str | None) -> dict[str, Any]:
    """The JSON request body with ``Image.Bytes`` back to raw bytes (blobs travel as base64)."""
    if not raw_body:
        return {}
    try:
        params = json.loads(raw_body)
    except (ValueError, UnicodeDecodeError):
        raise RekognitionError(
            "SerializationException", "Request body is not valid JSON."
        ) from None
    if not isinstance(params, dict):
        raise RekognitionError("SerializationException", "Request body must be a JSON object.")
    image = params.get("Image")
    if isinstance(image, dict) and isinstance(image.get("Bytes"), str):
        try:
            image["Bytes"] = base64.b64decode(image["Bytes"], validate=True)
        except (binascii.Error, ValueError):
            raise RekognitionError(
                "SerializationException", "Image.Bytes is not valid base64."
            ) from None
    return params


def _json_default(value: Any) -> Any:
    # Timestamps travel as epoch seconds: botocore reads milliseconds as a year ~55000.
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        return value.timestamp()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if hasattr(value, "item"):  # numpy scalars from the engines
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")


def _error_response(err: RekognitionError, request_id: str) -> tuple[int, dict[str, str], str]:
    body = {
        "__type": err.code,
        "Code": err.code,
        "Message": err.message,
        "Logref": str(uuid.uuid4()),
    }
    return err.status, _headers(request_id), json.dumps(body)


def _headers(request_id: str) -> dict[str, str]:
    return {"Content-Type": _CONTENT_TYPE, "x-amzn-RequestId": request_id}


def _sfn_error_names() -> dict[str, str]:
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_aws_sdk as aws_sdk,
    )

    return aws_sdk._SERVICE_ERROR_NAMES


def _bind_sfn_error_prefix() -> bool:
    """Add "rekognition" -> "Rekognition" to moto's aws-sdk error names; True if we added it."""
    names = _sfn_error_names()
    if _SFN_ERROR_PREFIX[0] in names:
        return False
    names[_SFN_ERROR_PREFIX[0]] = _SFN_ERROR_PREFIX[1]
    return True
