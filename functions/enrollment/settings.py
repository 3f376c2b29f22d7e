"""The pipeline's settings: one typed, validated dataclass read once from the environment.

Every number that changes behaviour is here with its unit, so the CDK stack, the local runner
and the tests set the same names (see the README's configuration table).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field

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
_COLLECTION_ID = re.compile(r"^[a-zA-Z0-9_.\-]{1,255}$")

DEFAULT_WAIT_SCHEDULE_SECONDS = (1, 2, 4, 8, 16, 32, 60, 60, 60, 60)


# Every variable Settings.from_env reads (plus where clients point): a change means new settings.
ENVIRONMENT_VARIABLES = (
    "BUCKET_NAME",
    "ENROLL_PREFIX",
    "COLLECTION_ID",
    "LEDGER_TABLE",
    "ASSOCIATION_QUEUE_URL",
    "ACTIVATION_STATE_MACHINE_ARN",
    "MAX_FACES_PER_USER",
    "FACE_CAP_POLICY",
    "MULTI_FACE_POLICY",
    "QUALITY_FILTER",
    "INDEX_MAX_FACES",
    "USER_MATCH_THRESHOLD",
    "ASSOCIATE_MAX_FACE_IDS",
    "ACTIVATION_WAIT_SCHEDULE",
    "MAX_RECEIVE_COUNT",
    "ERASURE_QUEUE_URL",
    "SEARCH_MATCH_THRESHOLD",
    "SEARCH_MAX_USERS",
    "POWERTOOLS_METRICS_NAMESPACE",
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
class Settings:
    """Everything the pipeline's functions need, validated at cold start."""

    bucket_name: str = ""
    enroll_prefix: str = "enroll/"
    collection_id: str = "face-enrollment"  # the stack's collection (infra/config.py)
    ledger_table: str = ""
    association_queue_url: str = ""
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

    def __post_init__(self) -> None:
        self._validate()

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        """Read the settings from ``env`` (default ``os.environ``); raise SettingsError if bad."""
        source = os.environ if env is None else env

        def text(name: str, default: str) -> str:
            return source.get(name, default).strip() or default

        return cls(
            bucket_name=text("BUCKET_NAME", ""),
            enroll_prefix=text("ENROLL_PREFIX", "enroll/"),
            collection_id=text("COLLECTION_ID", "face-enrollment"),
            ledger_table=text("LEDGER_TABLE", ""),
            association_queue_url=text("ASSOCIATION_QUEUE_URL", ""),
            activation_state_machine_arn=text("ACTIVATION_STATE_MACHINE_ARN", ""),
            max_faces_per_user=_int(source, "MAX_FACES_PER_USER", 100),
            face_cap_policy=text("FACE_CAP_POLICY", "reject").lower(),
            multi_face_policy=text("MULTI_FACE_POLICY", "reject").lower(),
            quality_filter=text("QUALITY_FILTER", "AUTO").upper(),
            index_max_faces=_int(source, "INDEX_MAX_FACES", 1),
            user_match_threshold=_float(source, "USER_MATCH_THRESHOLD", 75.0),
            associate_max_face_ids=_int(source, "ASSOCIATE_MAX_FACE_IDS", 100),
            activation_wait_schedule=_schedule(source, "ACTIVATION_WAIT_SCHEDULE"),
            max_receive_count=_int(source, "MAX_RECEIVE_COUNT", 5),
            metrics_namespace=text("POWERTOOLS_METRICS_NAMESPACE", "FaceEnrollment"),
            erasure_queue_url=text("ERASURE_QUEUE_URL", ""),
            search_match_threshold=_float(
                source, "SEARCH_MATCH_THRESHOLD", REKOGNITION_DEFAULT_SEARCH_THRESHOLD
            ),
            search_max_users=_int(source, "SEARCH_MAX_USERS", 10),
        )

    def require(self, *names: str) -> None:
        """Raise SettingsError unless every named (resource) setting is non-empty.

        Each function needs a different subset (the index function never starts executions),
        so presence is checked by the caller rather than in ``__post_init__``.
        """
        missing = [n.upper() for n in names if not getattr(self, n)]
        if missing:
            raise SettingsError(f"missing required setting(s): {', '.join(missing)}")

    def _validate(self) -> None:
        if not self.enroll_prefix.endswith("/"):
            raise SettingsError(f"ENROLL_PREFIX must end with '/', got {self.enroll_prefix!r}")
        if not _COLLECTION_ID.match(self.collection_id):
            raise SettingsError(
                f"COLLECTION_ID must match [a-zA-Z0-9_.-]{{1,255}}, got {self.collection_id!r}"
            )
        if not 1 <= self.max_faces_per_user <= REKOGNITION_MAX_FACES_PER_USER:
            raise SettingsError(
                f"MAX_FACES_PER_USER must be 1..{REKOGNITION_MAX_FACES_PER_USER}, "
                f"got {self.max_faces_per_user}"
            )
        _one_of("FACE_CAP_POLICY", self.face_cap_policy, FACE_CAP_POLICIES)
        _one_of("MULTI_FACE_POLICY", self.multi_face_policy, MULTI_FACE_POLICIES)
        _one_of("QUALITY_FILTER", self.quality_filter, QUALITY_FILTERS)
        if not 1 <= self.index_max_faces <= REKOGNITION_MAX_FACES_PER_INDEX:
            raise SettingsError(
                f"INDEX_MAX_FACES must be 1..{REKOGNITION_MAX_FACES_PER_INDEX}, "
                f"got {self.index_max_faces}"
            )
        if not 0 <= self.user_match_threshold <= 100:
            raise SettingsError(
                f"USER_MATCH_THRESHOLD must be a percentage 0..100, got {self.user_match_threshold}"
            )
        if not 1 <= self.associate_max_face_ids <= REKOGNITION_MAX_FACE_IDS_PER_ASSOCIATE:
            raise SettingsError(
                f"ASSOCIATE_MAX_FACE_IDS must be 1..{REKOGNITION_MAX_FACE_IDS_PER_ASSOCIATE}, "
                f"got {self.associate_max_face_ids}"
            )
        if not self.activation_wait_schedule or any(s <= 0 for s in self.activation_wait_schedule):
            raise SettingsError(
                "ACTIVATION_WAIT_SCHEDULE must be a non-empty list of positive seconds, "
                f"got {self.activation_wait_schedule}"
            )
        if not 0 <= self.search_match_threshold <= 100:
            raise SettingsError(
                "SEARCH_MATCH_THRESHOLD must be a percentage 0..100, "
                f"got {self.search_match_threshold}"
            )
        if not 1 <= self.search_max_users <= REKOGNITION_MAX_USERS_PER_SEARCH:
            raise SettingsError(
                f"SEARCH_MAX_USERS must be 1..{REKOGNITION_MAX_USERS_PER_SEARCH}, "
                f"got {self.search_max_users}"
            )
        if self.max_receive_count < 1:
            raise SettingsError(f"MAX_RECEIVE_COUNT must be >= 1, got {self.max_receive_count}")


def _one_of(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {value!r}")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from None


def _float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a number, got {raw!r}") from None


def _schedule(env: Mapping[str, str], name: str) -> tuple[int, ...]:
    raw = env.get(name, "").strip()
    if not raw:
        return DEFAULT_WAIT_SCHEDULE_SECONDS
    try:
        return tuple(int(part) for part in raw.split(",") if part.strip())
    except ValueError:
        raise SettingsError(
            f"{name} must be comma-separated whole seconds like '1,2,4', got {raw!r}"
        ) from None
