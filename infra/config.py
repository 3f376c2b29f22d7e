"""Deployment settings shared by the CDK stack and the local runner.

One frozen dataclass holds every number that shapes the pipeline (batch sizes, timeouts,
concurrency, the activation wait schedule, face policies) and every resource name. The CDK stack
reads it to build resources; the local runner reads it to create the same queues, table and state
machine on moto. That is why this module must never import ``aws_cdk``: the runner does not ship it.

Units are in the field names (``_s`` seconds, ``_mb`` megabytes, ``_tps`` transactions per second).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

# Rekognition's default IndexFaces quota (reference §3.2): 50 TPS in the three big regions,
# 5 TPS everywhere else. AssociateFaces/CreateUser are 5 TPS in every region.
_HIGH_QUOTA_REGIONS = frozenset({"us-east-1", "us-west-2", "eu-west-1"})
HIGH_REGION_INDEX_FACES_TPS = 50
DEFAULT_INDEX_FACES_TPS = 5

# Lambda's documented floor and ceiling for ScalingConfig.MaximumConcurrency on SQS sources.
ESM_MIN_CONCURRENCY = 2
ESM_MAX_CONCURRENCY = 1000

# AWS's guidance: the queue's visibility timeout should be at least six times the function
# timeout (plus the batching window) so a throttled, retried invocation never lets a message
# reappear while it is still being processed.
VISIBILITY_TIMEOUT_FACTOR = 6

FACE_CAP_POLICIES = ("reject", "keep-best")
MULTI_FACE_POLICIES = ("reject", "largest")
QUALITY_FILTERS = ("NONE", "AUTO", "LOW", "MEDIUM", "HIGH")


@dataclass(frozen=True)
class PipelineConfig:
    """Every deployment setting of the pipeline, with the unit in each numeric field's name."""

    # --- resource names (the local runner creates resources with exactly these) ---
    bucket_name: str = "face-enrollment-photos"
    enroll_prefix: str = "enroll/"
    upload_queue_name: str = "face-enrollment-upload"
    association_queue_name: str = "face-enrollment-association"
    dlq_suffix: str = "-dlq"
    ledger_table_name: str = "face-enrollment-ledger"
    state_machine_name: str = "face-enrollment-activation"
    collection_id: str = "face-enrollment"
    metrics_namespace: str = "FaceEnrollment"
    index_service_name: str = "index-photo"
    associate_service_name: str = "associate-faces"
    activation_service_name: str = "activation"
    # Query API (API Gateway -> one function) and the erasure worker behind DELETE /users/{id}.
    api_service_name: str = "query-api"
    erasure_service_name: str = "erase-user"
    erasure_queue_name: str = "face-enrollment-erasure"

    # --- index stage: upload queue -> index function (IndexFaces) ---
    index_batch_size: int = 10
    index_batching_window_s: int = 0
    index_function_timeout_s: int = 60
    index_function_memory_mb: int = 512
    # 6 x 60 s timeout (+0 s window): see VISIBILITY_TIMEOUT_FACTOR.
    index_visibility_timeout_s: int = 360
    # The ESM's concurrency cap is derived from the Rekognition quota (see index_max_concurrency):
    # more concurrent functions than TPS x latency only buys throttling.
    rekognition_index_faces_tps: int = HIGH_REGION_INDEX_FACES_TPS
    index_faces_latency_s: float = 1.0

    # --- association stage: association queue -> associate function (AssociateFaces) ---
    # 100 messages = up to 100 face ids in one AssociateFaces call (the API maximum). Batches over
    # 10 messages need a batching window of at least 1 s (Lambda rule); 5 s lets a user's photos
    # gather into one call when they arrive as a burst.
    associate_batch_size: int = 100
    associate_batching_window_s: int = 5
    associate_function_timeout_s: int = 120
    associate_function_memory_mb: int = 256
    # 6 x 120 s + 5 s window, rounded up.
    associate_visibility_timeout_s: int = 900
    # AssociateFaces and CreateUser are 5 TPS in every region; 2 (Lambda's minimum) concurrent
    # functions stay under it even with several calls per batch.
    associate_max_concurrency: int = ESM_MIN_CONCURRENCY

    # --- both queues ---
    # Deliveries before a message moves to its DLQ; the functions read the same number
    # (MAX_RECEIVE_COUNT) to record FAILED on the last delivery.
    max_receive_count: int = 5
    dlq_retention_s: int = 14 * 24 * 3600
    queue_retention_s: int = 4 * 24 * 3600

    # --- activation state machine ---
    # Seconds to wait before each status re-check; one SearchUsers call per check. Sum = 303 s.
    activation_wait_schedule_s: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 60, 60, 60, 60)
    # Hard stop for one execution: the schedule plus throttling retries plus ledger writes.
    activation_execution_timeout_s: int = 900

    # --- face policies (defaults of the functions' settings) ---
    max_faces_per_user: int = 100
    # IndexFaces MaxFaces: 1 means a group photo is recognised from its EXCEEDS_MAX_FACES entries
    # and its other faces are never stored (the photo policy wants exactly one usable face).
    index_max_faces: int = 1
    face_cap_policy: str = "reject"
    multi_face_policy: str = "reject"
    quality_filter: str = "AUTO"
    user_match_threshold: int = 75
    associate_max_face_ids: int = 100
    # Query API defaults: SearchUsersByImage's own default threshold, and matches per search.
    search_match_threshold_percent: int = 80
    search_max_users: int = 10

    # --- Lambda runtime ---
    lambda_runtime: str = "python3.12"
    lambda_architecture: str = "arm64"
    log_level: str = "INFO"
    log_retention_days: int = 30
    # The functions' runtime dependencies (Powertools with the tracer extra) come from the public
    # Powertools v3 layer: bundling requirements.txt for arm64 needs Docker or network at synth
    # time, neither of which a CI synth should rely on. Keep the layer's Powertools version equal
    # to requirements.txt's pin (check: aws lambda get-layer-version-by-arn --arn <arn>).
    powertools_layer_account: str = "017000801446"
    powertools_layer_version: int = 27

    # Seams for later constructs (API, dashboard/alarms, bulk backfill) read the same object;
    # free-form tags are applied to every resource of the stack.
    tags: tuple[tuple[str, str], ...] = (("project", "face-enrollment"),)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid PipelineConfig: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every rule this configuration breaks (empty when it is deployable)."""
        found: list[str] = []
        if not self.enroll_prefix.endswith("/") or self.enroll_prefix.startswith("/"):
            found.append(f"enroll_prefix must look like 'enroll/', got {self.enroll_prefix!r}")
        if not 1 <= self.index_batch_size <= 10_000:
            found.append("index_batch_size must be 1..10000")
        if not 1 <= self.associate_batch_size <= 10_000:
            found.append("associate_batch_size must be 1..10000")
        for name, size, window in (
            ("index", self.index_batch_size, self.index_batching_window_s),
            ("associate", self.associate_batch_size, self.associate_batching_window_s),
        ):
            if size > 10 and window < 1:
                found.append(f"{name}: a batch size over 10 needs a batching window >= 1 s")
            if not 0 <= window <= 300:
                found.append(f"{name}_batching_window_s must be 0..300")
        for name, visibility, timeout, window in (
            (
                "index",
                self.index_visibility_timeout_s,
                self.index_function_timeout_s,
                self.index_batching_window_s,
            ),
            (
                "associate",
                self.associate_visibility_timeout_s,
                self.associate_function_timeout_s,
                self.associate_batching_window_s,
            ),
        ):
            needed = VISIBILITY_TIMEOUT_FACTOR * timeout + window
            if visibility < needed:
                found.append(
                    f"{name}_visibility_timeout_s={visibility} is under "
                    f"{VISIBILITY_TIMEOUT_FACTOR} x timeout + window = {needed}"
                )
            if not 1 <= timeout <= 900:
                found.append(f"{name}_function_timeout_s must be 1..900")
        if not ESM_MIN_CONCURRENCY <= self.associate_max_concurrency <= ESM_MAX_CONCURRENCY:
            found.append(f"associate_max_concurrency must be {ESM_MIN_CONCURRENCY}..1000")
        if self.rekognition_index_faces_tps < 1 or self.index_faces_latency_s <= 0:
            found.append("rekognition_index_faces_tps and index_faces_latency_s must be positive")
        if not 1 <= self.max_receive_count <= 1000:
            found.append("max_receive_count must be 1..1000")
        if not self.activation_wait_schedule_s or any(
            not isinstance(s, int) or s < 0 for s in self.activation_wait_schedule_s
        ):
            # Integers only: the state machine adds them up with States.MathAdd.
            found.append("activation_wait_schedule_s must be non-empty whole seconds >= 0")
        elif self.activation_execution_timeout_s <= sum(self.activation_wait_schedule_s):
            found.append("activation_execution_timeout_s must exceed the wait schedule's sum")
        if not 1 <= self.index_max_faces <= 100:
            found.append("index_max_faces must be 1..100 (IndexFaces returns at most 100 faces)")
        if not 1 <= self.max_faces_per_user <= 100:
            found.append("max_faces_per_user must be 1..100 (Rekognition's cap)")
        if not 1 <= self.associate_max_face_ids <= 100:
            found.append("associate_max_face_ids must be 1..100 (AssociateFaces maximum)")
        if self.face_cap_policy not in FACE_CAP_POLICIES:
            found.append(f"face_cap_policy must be one of {FACE_CAP_POLICIES}")
        if self.multi_face_policy not in MULTI_FACE_POLICIES:
            found.append(f"multi_face_policy must be one of {MULTI_FACE_POLICIES}")
        if self.quality_filter not in QUALITY_FILTERS:
            found.append(f"quality_filter must be one of {QUALITY_FILTERS}")
        if not 0 <= self.user_match_threshold <= 100:
            found.append("user_match_threshold must be 0..100")
        if not 0 <= self.search_match_threshold_percent <= 100:
            found.append("search_match_threshold_percent must be 0..100")
        if not 1 <= self.search_max_users <= 500:
            found.append("search_max_users must be 1..500 (SearchUsersByImage MaxUsers)")
        if self.lambda_architecture not in ("arm64", "x86_64"):
            found.append("lambda_architecture must be arm64 or x86_64")
        return found

    @classmethod
    def for_region(cls, region: str, **overrides: object) -> PipelineConfig:
        """The defaults with the region's IndexFaces quota (50 TPS in the big three, else 5)."""
        tps = (
            HIGH_REGION_INDEX_FACES_TPS
            if region in _HIGH_QUOTA_REGIONS
            else DEFAULT_INDEX_FACES_TPS
        )
        return replace(cls(), rekognition_index_faces_tps=tps, **overrides)  # type: ignore[arg-type]

    # --- derived values (computed, so they cannot drift from the numbers they come from) ---

    @property
    def index_max_concurrency(self) -> int:
        """ESM concurrency cap for the index function: IndexFaces TPS x call latency, min 2."""
        wanted = math.ceil(self.rekognition_index_faces_tps * self.index_faces_latency_s)
        return max(ESM_MIN_CONCURRENCY, min(ESM_MAX_CONCURRENCY, wanted))

    @property
    def upload_dlq_name(self) -> str:
        """Dead-letter queue of the upload queue."""
        return self.upload_queue_name + self.dlq_suffix

    @property
    def association_dlq_name(self) -> str:
        """Dead-letter queue of the association queue."""
        return self.association_queue_name + self.dlq_suffix

    @property
    def erasure_dlq_name(self) -> str:
        """Dead-letter queue of the erasure queue."""
        return self.erasure_queue_name + self.dlq_suffix

    @property
    def activation_max_checks(self) -> int:
        """SearchUsers calls one activation makes at most: one before each wait and one after."""
        return len(self.activation_wait_schedule_s) + 1

    def powertools_layer_arn(self, region: str) -> str:
        """ARN of the public Powertools v3 layer matching the runtime and architecture."""
        python = self.lambda_runtime.replace(".", "")
        return (
            f"arn:aws:lambda:{region}:{self.powertools_layer_account}:layer:"
            f"AWSLambdaPowertoolsPythonV3-{python}-{self.lambda_architecture}:"
            f"{self.powertools_layer_version}"
        )

    def lambda_environment(
        self,
        *,
        service_name: str,
        bucket_name: str | None = None,
        ledger_table: str | None = None,
        association_queue_url: str = "",
        activation_state_machine_arn: str = "",
        erasure_queue_url: str = "",
    ) -> dict[str, str]:
        """Environment variables of a pipeline function (names and meanings: contracts.md).

        Resource values default to the configured names; the CDK stack passes tokens (the real
        names/ARNs), the local runner passes moto's queue URL and state machine ARN.
        """
        return {
            "BUCKET_NAME": bucket_name or self.bucket_name,
            "ENROLL_PREFIX": self.enroll_prefix,
            "COLLECTION_ID": self.collection_id,
            "LEDGER_TABLE": ledger_table or self.ledger_table_name,
            "ASSOCIATION_QUEUE_URL": association_queue_url,
            "ACTIVATION_STATE_MACHINE_ARN": activation_state_machine_arn,
            "MAX_FACES_PER_USER": str(self.max_faces_per_user),
            "INDEX_MAX_FACES": str(self.index_max_faces),
            "FACE_CAP_POLICY": self.face_cap_policy,
            "MULTI_FACE_POLICY": self.multi_face_policy,
            "QUALITY_FILTER": self.quality_filter,
            "USER_MATCH_THRESHOLD": str(self.user_match_threshold),
            "ASSOCIATE_MAX_FACE_IDS": str(self.associate_max_face_ids),
            "ACTIVATION_WAIT_SCHEDULE": ",".join(str(s) for s in self.activation_wait_schedule_s),
            "MAX_RECEIVE_COUNT": str(self.max_receive_count),
            "ERASURE_QUEUE_URL": erasure_queue_url,
            "SEARCH_MATCH_THRESHOLD": str(self.search_match_threshold_percent),
            "SEARCH_MAX_USERS": str(self.search_max_users),
            "POWERTOOLS_SERVICE_NAME": service_name,
            "POWERTOOLS_METRICS_NAMESPACE": self.metrics_namespace,
            "POWERTOOLS_LOG_LEVEL": self.log_level,
        }
