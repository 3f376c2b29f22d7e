"""Server-side request validation driven by botocore's own Rekognition service model.

botocore checks only ``required``, types and ``min`` on the client; the real service also
enforces ``max``, ``pattern``, ``enum`` and numeric ranges (reference §1). Reading the very model
boto3 uses keeps the emulator in step with the SDK: no constraint is retyped by hand.

Messages follow the format AWS uses for model-constraint failures ("1 validation error detected:
Value '...' at 'collectionId' failed to satisfy constraint: ..."), so a caller can tell what to fix.
"""

from __future__ import annotations

import math
import re
from functools import cache
from typing import Any

import botocore.session
from botocore.model import OperationModel, ServiceModel, Shape

from .errors import RekognitionError

# The 17 face-collection and user-vector operations this emulator serves.
OPERATIONS = (
    "CreateCollection",
    "DeleteCollection",
    "ListCollections",
    "DescribeCollection",
    "IndexFaces",
    "ListFaces",
    "DeleteFaces",
    "SearchFaces",
    "SearchFacesByImage",
    "DetectFaces",
    "CreateUser",
    "DeleteUser",
    "ListUsers",
    "AssociateFaces",
    "DisassociateFaces",
    "SearchUsers",
    "SearchUsersByImage",
)

_MAX_ERRORS_REPORTED = 10


@cache
def service_model() -> ServiceModel:
    """botocore's Rekognition model (loaded once; ~100 ms)."""
    return botocore.session.get_session().get_service_model("rekognition")


def operation_model(operation: str) -> OperationModel:
    """The model of ``operation``; UnknownOperationException as an AWS JSON endpoint answers."""
    if operation not in OPERATIONS:
        raise RekognitionError("UnknownOperationException", f"Unknown operation {operation!r}.")
    return service_model().operation_model(operation)


def validate_request(operation: str, params: dict[str, Any], *, error_code: str) -> None:
    """Raise ``error_code`` listing every constraint ``params`` violate (none: return None)."""
    model = operation_model(operation)
    if not isinstance(params, dict):
        raise RekognitionError(error_code, "The request body must be a JSON object.")
    errors: list[str] = []
    if model.input_shape is not None:
        _check(model.input_shape, params, "", errors)
    if errors:
        shown = errors[:_MAX_ERRORS_REPORTED]
        noun = "error" if len(errors) == 1 else "errors"
        raise RekognitionError(
            error_code, f"{len(errors)} validation {noun} detected: " + "; ".join(shown)
        )


def _member_path(parent: str, name: str) -> str:
    # AWS reports member paths in lowerCamelCase ("collectionId", "image.s3Object.name").
    camel = name[:1].lower() + name[1:]
    return f"{parent}.{camel}" if parent else camel


def _shown(value: Any) -> str:
    if isinstance(value, bytes):
        return f"<{len(value)} bytes>"
    text = str(value)
    return text if len(text) <= 80 else text[:77] + "..."


def _check(shape: Shape, value: Any, path: str, errors: list[str]) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            errors.append(
                f"Value at '{path}' failed to satisfy constraint: Member must be a structure"
            )
            return
        for name in getattr(shape, "required_members", []):
            if value.get(name) is None:
                errors.append(
                    f"Value null at '{_member_path(path, name)}' failed to satisfy constraint: "
                    "Member must not be null"
                )
        members = shape.members  # type: ignore[attr-defined]
        for name, item in value.items():
            # Unknown members are ignored, as AWS JSON services do.
            if name in members and item is not None:
                _check(members[name], item, _member_path(path, name), errors)
        return
    if kind == "list":
        if not isinstance(value, list):
            errors.append(f"Value at '{path}' failed to satisfy constraint: Member must be a list")
            return
        _check_length(len(value), meta, value, path, errors, "length")
        member = shape.member  # type: ignore[attr-defined]
        for i, item in enumerate(value, start=1):
            _check(member, item, f"{path}.{i}.member", errors)
        return
    if kind == "map":
        if not isinstance(value, dict):
            errors.append(f"Value at '{path}' failed to satisfy constraint: Member must be a map")
            return
        _check_length(len(value), meta, value, path, errors, "length")
        for key, item in value.items():
            _check(shape.key, key, f"{path}.key", errors)  # type: ignore[attr-defined]
            _check(shape.value, item, f"{path}.{key}.value", errors)  # type: ignore[attr-defined]
        return
    if kind == "string":
        if not isinstance(value, str):
            errors.append(
                f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: "
                "Member must be a string"
            )
            return
        _check_length(len(value), meta, value, path, errors, "length")
        enum = shape.enum  # type: ignore[attr-defined]
        if enum and value not in enum:
            errors.append(
                f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy enum value set: [{', '.join(enum)}]"
            )
        pattern = meta.get("pattern")
        if pattern and not _compiled(pattern).fullmatch(value):
            errors.append(
                f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: "
                f"Member must satisfy regular expression pattern: {pattern}"
            )
        return
    if kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            errors.append(
                f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: "
                "Member must be an integer"
            )
            return
        _check_range(value, meta, path, errors)
        return
    if kind in ("float", "double"):
        # NaN compares false with every bound, so it would slip through the range check (and a
        # NaN threshold silently matches nothing); Python's json reads it from "NaN".
        if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
            errors.append(
                f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: "
                "Member must be a number"
            )
            return
        _check_range(value, meta, path, errors)
        return
    if kind == "boolean":
        if not isinstance(value, bool):
            errors.append(
                f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: "
                "Member must be a boolean"
            )
        return
    if kind == "blob":
        if not isinstance(value, bytes | bytearray):
            errors.append(f"Value at '{path}' failed to satisfy constraint: Member must be bytes")
            return
        # Only ``min``: raw image bytes over the max are answered with ImageTooLargeException by
        # images.decode_image, as the service does, not with a length-constraint error.
        if len(value) < meta.get("min", 0):
            errors.append(
                f"Value at '{path}' failed to satisfy constraint: Member must have length "
                f"greater than or equal to {meta['min']}"
            )
        return


def _check_length(
    size: int, meta: dict[str, Any], value: Any, path: str, errors: list[str], what: str
) -> None:
    if "min" in meta and size < meta["min"]:
        errors.append(
            f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: Member must have "
            f"{what} greater than or equal to {meta['min']}"
        )
    if "max" in meta and size > meta["max"]:
        errors.append(
            f"Value '{_shown(value)}' at '{path}' failed to satisfy constraint: Member must have "
            f"{what} less than or equal to {meta['max']}"
        )


def _check_range(value: float, meta: dict[str, Any], path: str, errors: list[str]) -> None:
    if "min" in meta and value < meta["min"]:
        errors.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value "
            f"greater than or equal to {meta['min']}"
        )
    if "max" in meta and value > meta["max"]:
        errors.append(
            f"Value '{value}' at '{path}' failed to satisfy constraint: Member must have value "
            f"less than or equal to {meta['max']}"
        )


# Java-style Unicode classes in the model (tag keys) that Python's ``re`` lacks; \w covers letters
# and digits (plus "_", which those patterns allow anyway), \s covers separators.
_UNICODE_CLASSES = {r"\p{L}": r"\w", r"\p{N}": r"\w", r"\p{Z}": r"\s"}


@cache
def _compiled(pattern: str) -> re.Pattern[str]:
    for java, python in _UNICODE_CLASSES.items():
        pattern = pattern.replace(java, python)
    return re.compile(pattern)
