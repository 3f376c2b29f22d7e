"""The pipeline's settings: one typed, validated dataclass read once from the environment.

Every number that changes behaviour is here with its unit, so the CDK stack, the local runner
and the tests set the same names (see the README's configuration table).

The rules of these settings live here and nowhere else: ``settings_problems`` is what
``Settings.from_env`` refuses at a function's cold start, and ``PipelineConfig.problems()``
(infra/config.py) runs it on the very environment it gives the functions, so a configuration that
synthesizes is one every function starts with.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Any

FACE_CAP_POLICIES = ("reject", "keep-best")
MULTI_FACE_POLICIES = ("reject", "largest")
QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")

# Rekognition's own limits (reference §2, §3.1): they bound what a setting may ask for.
REKOGNITION_MAX_FACES_PER_USER = 100
REKOGNITION_MAX_FACE_IDS_PER_ASSOCIATE = 100
REKOGNITION_MAX_FACES_PER_INDEX = 100
REKOGNITION_MAX_USERS_PER_SEARCH = 500
# SearchUsers/SearchUsersByImage's own default UserMatchThreshold (percent).
REKOGNITION_DEFAULT_SEARCH_THRESHOLD = 80.0
# CollectionId in Rekognition's model: 1..255 characters of [a-zA-Z0-9_.-].
REKOGNITION_MAX_COLLECTION_ID_CHARS = 255
_COLLECTION_ID = re.compile(r"[a-zA-Z0-9_.\-]{1,255}")
# SQS accepts a redrive policy's maxReceiveCount from 1 to 1,000 (Amazon SQS Developer Guide,
# dead-letter queues): a larger MAX_RECEIVE_COUNT could never be the queue's.
SQS_MAX_RECEIVE_COUNT = 1000
# CloudWatch's Namespace (PutMetricData): 1..255 characters, not starting with ':'.
CLOUDWATCH_MAX_NAMESPACE_CHARS = 255

DEFAULT_WAIT_SCHEDULE_SECONDS = (1, 2, 4, 8, 16, 32, 60, 60, 60, 60)
# Reconciler defaults (enrollment/reconciler.py). A photo is "stuck" only once every retry path
# is over: 5 deliveries x the associate queue's 900 s visibility timeout, plus a 900 s
# activation, is 90 minutes (PipelineConfig checks its own numbers against this).
DEFAULT_RECONCILE_STUCK_AFTER_S = 2 * 3600
# An unowned face may be a photo being indexed right now (IndexFaces done, ledger write next):
# it is deleted only once it has been seen unowned for this long.
DEFAULT_RECONCILE_ORPHAN_GRACE_S = 3600
# Repairs of each kind one run makes at most (and DLQ messages read per queue per run).
DEFAULT_RECONCILE_MAX_REPAIRS = 100
RECONCILE_MAX_REPAIRS_LIMIT = 10_000


# The variables that tune behaviour (each has a default here), as opposed to the resources a
# function ``require``s and the endpoints. Left empty, a function silently takes the default, so
# a deployment must set every one of them (PipelineConfig checks that it does).
SETTING_VARIABLES = (
    "ENROLL_PREFIX",
    "COLLECTION_ID",
    "MAX_FACES_PER_USER",
    "FACE_CAP_POLICY",
    "MULTI_FACE_POLICY",
    "QUALITY_FILTER",
    "INDEX_MAX_FACES",
    "USER_MATCH_THRESHOLD",
    "ASSOCIATE_MAX_FACE_IDS",
    "ACTIVATION_WAIT_SCHEDULE",
    "MAX_RECEIVE_COUNT",
    "SEARCH_MATCH_THRESHOLD",
    "SEARCH_MAX_USERS",
    "RECONCILE_STUCK_AFTER_S",
    "RECONCILE_ORPHAN_GRACE_S",
    "RECONCILE_MAX_REPAIRS",
    "POWERTOOLS_METRICS_NAMESPACE",
)
# The resources a function ``require``s (names, URLs, ARNs the stack fills in).
RESOURCE_VARIABLES = (
    "BUCKET_NAME",
    "LEDGER_TABLE",
    "ASSOCIATION_QUEUE_URL",
    "UPLOAD_QUEUE_URL",
    "ACTIVATION_STATE_MACHINE_ARN",
    "ERASURE_QUEUE_URL",
    "UPLOAD_DLQ_URL",
    "ASSOCIATION_DLQ_URL",
)
# Every variable Settings.from_env reads (plus where clients point): a change means new settings.
ENVIRONMENT_VARIABLES = (
    *RESOURCE_VARIABLES,
    *SETTING_VARIABLES,
    "AWS_ENDPOINT_URL",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
)


def environment_fingerprint(env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The values of ENVIRONMENT_VARIABLES: a cache key for whatever is built from settings.

    In Lambda it never changes, so settings are read once per container; the local runner
    changes it between stacks in one process and must not get stale settings.
    """
    source = os.environ if env is None else env
    return tuple(source.get(name, "") for name in ENVIRONMENT_VARIABLES)


class SettingsError(ValueError):
    """A setting is missing or has a value the pipeline cannot run with."""


@dataclass(frozen=True)
class SettingProblem:
    """One rule a setting breaks: the environment variable and a message that names it."""

    variable: str
    message: str

    def __str__(self) -> str:
        return self.message


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline's functions need, validated at cold start."""

    bucket_name: str = ""
    enroll_prefix: str = "enroll/"
    collection_id: str = "face-enrollment"  # the stack's collection (infra/config.py)
    ledger_table: str = ""
    association_queue_url: str = ""
    # The index stage's queue: the associate stage sends a FAILED photo back there (association.py).
    upload_queue_url: str = ""
    activation_state_machine_arn: str = ""
    max_faces_per_user: int = 100  # faces associated to one user vector
    face_cap_policy: str = "reject"
    multi_face_policy: str = "reject"
    quality_filter: str = "AUTO"
    # Faces IndexFaces may store per photo. 1 suffices for both multi-face policies: faces cut
    # by MaxFaces come back as UnindexedFaces EXCEEDS_MAX_FACES, so nothing must be deleted.
    index_max_faces: int = 1
    user_match_threshold: float = 75.0  # percent, AssociateFaces UserMatchThreshold
    associate_max_face_ids: int = 100  # face ids per AssociateFaces call
    # Seconds to wait before each successive status check of the activation state machine.
    activation_wait_schedule: tuple[int, ...] = field(default=DEFAULT_WAIT_SCHEDULE_SECONDS)
    max_receive_count: int = 5  # SQS deliveries before a message moves to its DLQ
    metrics_namespace: str = "FaceEnrollment"
    # Query API: the queue the erasure worker reads, and the search defaults (percent, count).
    erasure_queue_url: str = ""
    search_match_threshold: float = REKOGNITION_DEFAULT_SEARCH_THRESHOLD
    search_max_users: int = 10
    # Reconciler: the dead-letter queues it reads, and its bounds (seconds, count per kind).
    upload_dlq_url: str = ""
    association_dlq_url: str = ""
    reconcile_stuck_after_s: int = DEFAULT_RECONCILE_STUCK_AFTER_S
    reconcile_orphan_grace_s: int = DEFAULT_RECONCILE_ORPHAN_GRACE_S
    reconcile_max_repairs: int = DEFAULT_RECONCILE_MAX_REPAIRS

    def __post_init__(self) -> None:
        problems = _rule_problems({f.name: getattr(self, f.name) for f in fields(self)})
        if problems:
            raise SettingsError("; ".join(str(problem) for problem in problems))

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``); raise SettingsError if bad.

        The error names every bad setting at once (``settings_problems``), not only the first.
        """
        values, problems = _parse(os.environ if env is None else env)
        problems += _rule_problems(values)
        if problems:
            raise SettingsError("; ".join(str(problem) for problem in problems))
        return cls(**values)

    def require(self, *names: str) -> None:
        """Raise SettingsError unless every named (resource) setting is non-empty.

        Each function needs a different subset (the index function never starts executions),
        so presence is checked by the caller rather than in ``__post_init__``.
        """
        missing = [n.upper() for n in names if not getattr(self, n)]
        if missing:
            raise SettingsError(f"missing required setting(s): {', '.join(missing)}")


def settings_problems(env: Mapping[str, str]) -> list[SettingProblem]:
    """Every rule the settings in ``env`` break (empty when ``Settings.from_env(env)`` succeeds).

    This is the one validation of the functions' settings: ``Settings.from_env`` raises with
    these problems, and PipelineConfig runs it on the environment it deploys. A variable that is
    absent or blank takes its default, as in ``from_env``.
    """
    values, problems = _parse(env)
    return problems + _rule_problems(values)


def _parse(env: Mapping[str, str]) -> tuple[dict[str, Any], list[SettingProblem]]:
    """The Settings fields read from ``env``; a value that does not parse keeps its default."""
    problems: list[SettingProblem] = []

    def text(name: str, default: str) -> str:
        return env.get(name, default).strip() or default

    def number(name: str, default: Any, kind: type, wanted: str) -> Any:
        raw = env.get(name, "").strip()
        if not raw:
            return default
        try:
            return kind(raw)
        except ValueError:
            problems.append(SettingProblem(name, f"{name} must be {wanted}, got {raw!r}"))
            return default

    def schedule(name: str) -> tuple[int, ...]:
        raw = env.get(name, "").strip()
        if not raw:
            return DEFAULT_WAIT_SCHEDULE_SECONDS
        try:
            return tuple(int(part) for part in raw.split(",") if part.strip())
        except ValueError:
            problems.append(
                SettingProblem(
                    name, f"{name} must be comma-separated whole seconds like '1,2,4', got {raw!r}"
                )
            )
            return DEFAULT_WAIT_SCHEDULE_SECONDS

    values: dict[str, Any] = {
        "bucket_name": text("BUCKET_NAME", ""),
        "enroll_prefix": text("ENROLL_PREFIX", "enroll/"),
        "collection_id": text("COLLECTION_ID", "face-enrollment"),
        "ledger_table": text("LEDGER_TABLE", ""),
        "association_queue_url": text("ASSOCIATION_QUEUE_URL", ""),
        "upload_queue_url": text("UPLOAD_QUEUE_URL", ""),
        "activation_state_machine_arn": text("ACTIVATION_STATE_MACHINE_ARN", ""),
        "max_faces_per_user": number("MAX_FACES_PER_USER", 100, int, "an integer"),
        "face_cap_policy": text("FACE_CAP_POLICY", "reject").lower(),
        "multi_face_policy": text("MULTI_FACE_POLICY", "reject").lower(),
        "quality_filter": text("QUALITY_FILTER", "AUTO").upper(),
        "index_max_faces": number("INDEX_MAX_FACES", 1, int, "an integer"),
        "user_match_threshold": number("USER_MATCH_THRESHOLD", 75.0, float, "a number"),
        "associate_max_face_ids": number("ASSOCIATE_MAX_FACE_IDS", 100, int, "an integer"),
        "activation_wait_schedule": schedule("ACTIVATION_WAIT_SCHEDULE"),
        "max_receive_count": number("MAX_RECEIVE_COUNT", 5, int, "an integer"),
        "metrics_namespace": text("POWERTOOLS_METRICS_NAMESPACE", "FaceEnrollment"),
        "erasure_queue_url": text("ERASURE_QUEUE_URL", ""),
        "search_match_threshold": number(
            "SEARCH_MATCH_THRESHOLD", REKOGNITION_DEFAULT_SEARCH_THRESHOLD, float, "a number"
        ),
        "search_max_users": number("SEARCH_MAX_USERS", 10, int, "an integer"),
        "upload_dlq_url": text("UPLOAD_DLQ_URL", ""),
        "association_dlq_url": text("ASSOCIATION_DLQ_URL", ""),
        "reconcile_stuck_after_s": number(
            "RECONCILE_STUCK_AFTER_S", DEFAULT_RECONCILE_STUCK_AFTER_S, int, "whole seconds"
        ),
        "reconcile_orphan_grace_s": number(
            "RECONCILE_ORPHAN_GRACE_S", DEFAULT_RECONCILE_ORPHAN_GRACE_S, int, "whole seconds"
        ),
        "reconcile_max_repairs": number(
            "RECONCILE_MAX_REPAIRS", DEFAULT_RECONCILE_MAX_REPAIRS, int, "an integer"
        ),
    }
    return values, problems


def _rule_problems(v: Mapping[str, Any]) -> list[SettingProblem]:
    """The rules of the settings' values (``v``: Settings field name -> value)."""
    found: list[SettingProblem] = []

    def refuse(variable: str, message: str) -> None:
        found.append(SettingProblem(variable, f"{variable} {message}"))

    def whole_in(variable: str, value: Any, low: int, high: int, why: str) -> None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            refuse(variable, f"must be {low}..{high} ({why}), got {value!r}")

    def percentage(variable: str, value: Any) -> None:
        # math.isfinite first: NaN compares False with everything and would slip through.
        number = isinstance(value, int | float) and not isinstance(value, bool)
        if not (number and math.isfinite(value) and 0 <= value <= 100):
            refuse(variable, f"must be a percentage 0..100, got {value!r}")

    prefix = v["enroll_prefix"]
    # S3 keys carry no leading '/': a prefix starting with one would never match an upload.
    if not prefix.endswith("/") or prefix.startswith("/"):
        refuse("ENROLL_PREFIX", f"must end with '/' and not start with one, got {prefix!r}")
    if not _COLLECTION_ID.fullmatch(v["collection_id"]):
        refuse(
            "COLLECTION_ID",
            f"must match [a-zA-Z0-9_.-]{{1,255}} (Rekognition's CollectionId), "
            f"got {v['collection_id']!r}",
        )
    whole_in(
        "MAX_FACES_PER_USER",
        v["max_faces_per_user"],
        1,
        REKOGNITION_MAX_FACES_PER_USER,
        "Rekognition's faces per user",
    )
    for variable, value, allowed in (
        ("FACE_CAP_POLICY", v["face_cap_policy"], FACE_CAP_POLICIES),
        ("MULTI_FACE_POLICY", v["multi_face_policy"], MULTI_FACE_POLICIES),
        ("QUALITY_FILTER", v["quality_filter"], QUALITY_FILTERS),
    ):
        if value not in allowed:
            refuse(variable, f"must be one of {', '.join(allowed)}, got {value!r}")
    whole_in(
        "INDEX_MAX_FACES",
        v["index_max_faces"],
        1,
        REKOGNITION_MAX_FACES_PER_INDEX,
        "IndexFaces MaxFaces",
    )
    percentage("USER_MATCH_THRESHOLD", v["user_match_threshold"])
    whole_in(
        "ASSOCIATE_MAX_FACE_IDS",
        v["associate_max_face_ids"],
        1,
        REKOGNITION_MAX_FACE_IDS_PER_ASSOCIATE,
        "AssociateFaces FaceIds",
    )
    waits = v["activation_wait_schedule"]
    # Each entry is the pause before the next SearchUsers check. A 0 s pause is not a pause:
    # the user turns ACTIVE asynchronously after AssociateFaces returns (reference §4.1; how
    # long it stays UPDATING is undocumented), and a check issued right after the previous one
    # (~0.1 s earlier) asks nearly the same question again. It would spend one of the schedule's
    # bounded checks, a call of SearchUsers' quota (5 TPS outside the three big regions, shared
    # with the query API's searches) and state transitions for no new information. So every
    # wait is at least 1 s; whole seconds, because the state machine adds them up with
    # States.MathAdd.
    if not waits or any(isinstance(s, bool) or not isinstance(s, int) or s < 1 for s in waits):
        refuse(
            "ACTIVATION_WAIT_SCHEDULE",
            f"must be a non-empty list of positive whole seconds (>= 1), got {waits!r}",
        )
    whole_in(
        "MAX_RECEIVE_COUNT",
        v["max_receive_count"],
        1,
        SQS_MAX_RECEIVE_COUNT,
        "an SQS redrive policy's maxReceiveCount",
    )
    namespace = v["metrics_namespace"]
    if not 1 <= len(namespace) <= CLOUDWATCH_MAX_NAMESPACE_CHARS or namespace.startswith(":"):
        refuse(
            "POWERTOOLS_METRICS_NAMESPACE",
            f"must be 1..{CLOUDWATCH_MAX_NAMESPACE_CHARS} characters not starting with ':' "
            f"(CloudWatch's Namespace), got {namespace!r}",
        )
    percentage("SEARCH_MATCH_THRESHOLD", v["search_match_threshold"])
    whole_in(
        "SEARCH_MAX_USERS",
        v["search_max_users"],
        1,
        REKOGNITION_MAX_USERS_PER_SEARCH,
        "SearchUsersByImage MaxUsers",
    )
    # 0 is allowed (tests and an operator's one-off run); a negative age means nothing.
    for variable, name in (
        ("RECONCILE_STUCK_AFTER_S", "reconcile_stuck_after_s"),
        ("RECONCILE_ORPHAN_GRACE_S", "reconcile_orphan_grace_s"),
    ):
        whole_in(variable, v[name], 0, 10 * 365 * 24 * 3600, "whole seconds")
    whole_in(
        "RECONCILE_MAX_REPAIRS",
        v["reconcile_max_repairs"],
        1,
        RECONCILE_MAX_REPAIRS_LIMIT,
        "repairs of each kind per run",
    )
    return found
