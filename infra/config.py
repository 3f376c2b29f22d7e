"""Deployment settings shared by the CDK stack and the local runner.

One frozen dataclass holds every number that shapes the pipeline (batch sizes, timeouts,
concurrency, the activation wait schedule, face policies) and every resource name. The CDK stack
reads it to build resources; the local runner reads it to create the same queues, table and state
machine on moto. That is why this module must never import ``aws_cdk``: the runner does not ship it.

Units are in the field names (``_s`` seconds, ``_mb`` megabytes, ``_tps`` transactions per second).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace

# The functions' own settings module (functions/enrollment, installed as ``enrollment``): plain
# Python, so this module still imports without aws_cdk.
from enrollment.settings import (
    REKOGNITION_MAX_COLLECTION_ID_CHARS,
    SETTING_VARIABLES,
    settings_problems,
)

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

# API Gateway REST APIs end an integration after 29 s (the default maximum) with a 504; a
# function allowed to run longer would keep working for an answer nobody receives.
API_GATEWAY_INTEGRATION_TIMEOUT_S = 29

# The PipelineConfig field behind each function setting, so a problem names the field to change.
_FIELD_OF_SETTING = {
    "ENROLL_PREFIX": "enroll_prefix",
    "COLLECTION_ID": "collection_id",
    "MAX_FACES_PER_USER": "max_faces_per_user",
    "FACE_CAP_POLICY": "face_cap_policy",
    "MULTI_FACE_POLICY": "multi_face_policy",
    "QUALITY_FILTER": "quality_filter",
    "INDEX_MAX_FACES": "index_max_faces",
    "USER_MATCH_THRESHOLD": "user_match_threshold",
    "ASSOCIATE_MAX_FACE_IDS": "associate_max_face_ids",
    "ACTIVATION_WAIT_SCHEDULE": "activation_wait_schedule_s",
    "MAX_RECEIVE_COUNT": "max_receive_count",
    "SEARCH_MATCH_THRESHOLD": "search_match_threshold_percent",
    "SEARCH_MAX_USERS": "search_max_users",
    "POWERTOOLS_METRICS_NAMESPACE": "metrics_namespace",
    "RECONCILE_STUCK_AFTER_S": "reconcile_stuck_margin_s",
    "RECONCILE_ORPHAN_GRACE_S": "reconcile_orphan_grace_s",
    "RECONCILE_MAX_REPAIRS": "reconcile_max_repairs",
}
# How the CDK encodes a string it only knows at deploy time ("${Token[...]}"): the stack's
# collection id is one (FaceCollection derives it from this config's collection_id).
_CDK_TOKEN = re.compile(r"\$\{Token\[")
# A stage is a short DNS-like label: it names the stack and prefixes the collection id.
_STAGE_MAX_CHARS = 16
_STAGE = re.compile(rf"[a-z][a-z0-9-]{{0,{_STAGE_MAX_CHARS - 1}}}")
# The stack deploys the collection as "<collection_id>-<stage>-<8 hex digits>" (collection.py).
_DEPLOYED_COLLECTION_SUFFIX_CHARS = 1 + _STAGE_MAX_CHARS + 1 + 8
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s]+")


@dataclass(frozen=True)
class PipelineConfig:
    """Every deployment setting of the pipeline, with the unit in each numeric field's name."""

    # --- resource names (the local runner creates resources with exactly these) ---
    # The CDK stack uses none of the bucket, queue, table and state machine names: it lets
    # CloudFormation name them (unique per stack) and derives the collection id from
    # ``collection_id``, the stage and the stack's id, so stages and redeploys never collide.
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

    # --- query API and erasure ---
    api_name: str = "face-enrollment-api"
    # The stage is the URL's first path segment: https://<id>.execute-api.<region>.amazonaws.com/v1
    api_stage_name: str = "v1"
    # Access logs need the account's API Gateway CloudWatch role (one per account and region,
    # AWS::ApiGateway::Account). False when another stack of the account already manages it.
    api_manage_cloudwatch_role: bool = True
    # Under API Gateway's 29 s integration timeout, so the function's own error (and its log
    # line) wins over a bare gateway 504. 512 MB: a probe image is up to 5 MB, held decoded and
    # base64-encoded at once.
    api_function_timeout_s: int = 25
    api_function_memory_mb: int = 512
    # Stage-wide throttling (token bucket: steady requests per second, bucket size). Reads are
    # ledger lookups; the Rekognition-backed POSTs get their own, lower limit below.
    api_throttle_rate_rps: int = 50
    api_throttle_burst: int = 100
    # POST /search and POST /users/{userId}/verify each call SearchUsersByImage, whose default
    # quota is 5 TPS outside us-east-1, us-west-2 and eu-west-1 (50 TPS there): the gateway
    # refuses the excess with a 429 before it becomes Rekognition throttling.
    api_search_throttle_rate_rps: int = 5
    api_search_throttle_burst: int = 10
    # Erasure worker (DELETE /users/{userId} queues one message per user). One user per
    # invocation: the whole timeout belongs to one erasure; it is resumable, so a timeout only
    # means the redelivery finishes it. DeleteUser/DeleteFaces are 5 TPS in every region: two
    # pollers (Lambda's minimum) stay under it.
    erasure_batch_size: int = 1
    erasure_function_timeout_s: int = 300
    erasure_function_memory_mb: int = 256
    # 6 x 300 s timeout (+0 s window): see VISIBILITY_TIMEOUT_FACTOR.
    erasure_visibility_timeout_s: int = 1800
    erasure_max_concurrency: int = ESM_MIN_CONCURRENCY

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

    # --- reconciler: a scheduled function (functions/reconcile) repairing what faults left ---
    reconcile_service_name: str = "reconcile"
    # How often it runs (EventBridge schedule) and its timeout: one run scans the ledger and
    # pages the whole collection (ListFaces, 1000 faces per call).
    reconcile_interval_s: int = 900
    reconcile_function_timeout_s: int = 300
    reconcile_function_memory_mb: int = 256
    # A photo INDEXED/ASSOCIATED for this long past its longest retry path is stuck (see
    # reconcile_stuck_after_s). Faces unowned for longer than the grace are deleted. Repairs of
    # each kind per run (and DLQ messages read per queue per run).
    reconcile_stuck_margin_s: int = 1800
    reconcile_orphan_grace_s: int = 3600
    reconcile_max_repairs: int = 100

    # --- Lambda runtime ---
    lambda_runtime: str = "python3.12"
    lambda_architecture: str = "arm64"
    log_level: str = "INFO"
    log_retention_days: int = 30
    # The functions' runtime dependencies are requirements.txt, installed for this runtime and
    # architecture into build/lambda-deps by `make lambda-deps` (infra/lambda_deps.py) and
    # bundled into every function's asset: no layer, no Docker.

    # --- deployment (the CDK stack only) ---
    # The stage (`cdk deploy -c stage=prod`) names the stack (FaceEnrollment-<stage>) and prefixes
    # the collection id, so several stages fit in one account.
    stage: str = "dev"
    # Optional e-mail subscription of the alarm topic (`-c alarm_email=ops@example.com`).
    alarm_email: str = ""

    # --- photo bucket lifecycle ---
    # Old versions of a biometric photo (overwritten or deleted keys) are kept this long, then
    # expire: long enough to investigate a bad upload, short enough not to hoard face images.
    photo_noncurrent_version_expiry_days: int = 30
    # An upload that never completed leaves invisible, billed parts behind: drop them.
    multipart_upload_abort_days: int = 1

    # --- alarms (all notify one SNS topic) ---
    # Period of the DLQ, queue-age and activation alarms (CloudWatch publishes these every minute).
    alarm_period_s: int = 60
    # Oldest message on the upload or association queue: above two visibility timeouts' worth, a
    # photo is stuck rather than retried once (index 360 s, associate 900 s by default).
    alarm_queue_age_s: int = 1800
    # Function errors / invocations x 100 over one period, alarmed after that many periods.
    alarm_function_error_rate_percent: float = 5.0
    alarm_function_error_period_s: int = 300
    alarm_function_error_periods: int = 2
    # Rekognition throttling is normal in a burst (the functions retry): alarm only when every
    # one of N consecutive periods saw at least this many throttled calls of an operation.
    alarm_rekognition_throttles_per_period: int = 1
    alarm_rekognition_throttle_period_s: int = 60
    alarm_rekognition_throttle_periods: int = 5
    # API Gateway 5XXError responses in one period.
    alarm_api_5xx_per_period: int = 1
    alarm_api_5xx_period_s: int = 300

    # Seams for later constructs (API, dashboard/alarms, bulk backfill) read the same object;
    # free-form tags are applied to every resource of the stack.
    tags: tuple[tuple[str, str], ...] = (("project", "face-enrollment"),)

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("invalid PipelineConfig: " + "; ".join(problems))

    def problems(self) -> list[str]:
        """Every rule this configuration breaks (empty when it is deployable)."""
        found = self._function_settings_problems()
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
            (
                "erasure",
                self.erasure_visibility_timeout_s,
                self.erasure_function_timeout_s,
                0,
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
        waits = self.activation_wait_schedule_s
        # The sum needs whole seconds; anything else is already a function-setting problem.
        whole = all(isinstance(s, int) for s in waits)
        if whole and self.activation_execution_timeout_s <= sum(waits):
            found.append("activation_execution_timeout_s must exceed the wait schedule's sum")
        found += self._api_and_erasure_problems()
        if self.reconcile_stuck_margin_s < 0:
            found.append("reconcile_stuck_margin_s must be >= 0")
        # EventBridge rates are whole minutes; a run must end before the next tick starts one.
        if self.reconcile_interval_s < 60 or self.reconcile_interval_s % 60:
            found.append("reconcile_interval_s must be a whole number of minutes, at least 60")
        if not 1 <= self.reconcile_function_timeout_s <= min(900, self.reconcile_interval_s):
            found.append("reconcile_function_timeout_s must be 1..900 and at most the interval")
        if not 128 <= self.reconcile_function_memory_mb <= 10240:
            found.append("reconcile_function_memory_mb must be 128..10240")
        if self.lambda_architecture not in ("arm64", "x86_64"):
            found.append("lambda_architecture must be arm64 or x86_64")
        found += self._deployment_problems()
        return found

    def _function_settings_problems(self) -> list[str]:
        """The functions' own validation (enrollment.settings) of the environment they get.

        Run on exactly ``lambda_environment``'s output, so whatever passes here is what
        ``Settings.from_env`` accepts at cold start: one set of rules, no second copy to drift.
        """
        found: list[str] = []
        env = self.lambda_environment(service_name=self.index_service_name)
        for variable in SETTING_VARIABLES:
            if not env.get(variable, "").strip():
                # A function would take its own default without a word: say so here instead.
                field_name = _FIELD_OF_SETTING.get(variable, variable)
                found.append(
                    f"{field_name} must not be empty ({variable} would silently fall back to "
                    "the function's default)"
                )
        # A deploy-time value (the stack's collection id) is left out: it is derived from the
        # base config's collection_id, which was checked when that config was built, and the
        # length rule below keeps the derived id within Rekognition's limit.
        known = {name: value for name, value in env.items() if not _CDK_TOKEN.search(value)}
        for problem in settings_problems(known):
            field_name = _FIELD_OF_SETTING.get(problem.variable, problem.variable)
            found.append(f"{field_name}: {problem.message}")
        room = REKOGNITION_MAX_COLLECTION_ID_CHARS - _DEPLOYED_COLLECTION_SUFFIX_CHARS
        if not _CDK_TOKEN.search(self.collection_id) and len(self.collection_id) > room:
            found.append(
                f"collection_id must be at most {room} characters: the stack appends "
                "'-<stage>-<8 hex digits>' within Rekognition's 255"
            )
        return found

    def _api_and_erasure_problems(self) -> list[str]:
        """The rules of the query API's and the erasure worker's settings."""
        found: list[str] = []
        if not 1 <= self.api_function_timeout_s <= API_GATEWAY_INTEGRATION_TIMEOUT_S:
            found.append(
                f"api_function_timeout_s must be 1..{API_GATEWAY_INTEGRATION_TIMEOUT_S} "
                "(API Gateway's integration timeout)"
            )
        for name, memory in (
            ("api_function_memory_mb", self.api_function_memory_mb),
            ("erasure_function_memory_mb", self.erasure_function_memory_mb),
        ):
            if not 128 <= memory <= 10_240:
                found.append(f"{name} must be 128..10240 (Lambda's range)")
        if not self.api_stage_name.replace("_", "").replace("-", "").isalnum():
            found.append("api_stage_name may hold only letters, digits, '-' and '_'")
        if self.api_throttle_rate_rps < 1 or self.api_throttle_burst < 1:
            found.append("api_throttle_rate_rps and api_throttle_burst must be >= 1")
        if not 1 <= self.api_search_throttle_rate_rps <= self.api_throttle_rate_rps:
            found.append("api_search_throttle_rate_rps must be 1..api_throttle_rate_rps")
        if not 1 <= self.api_search_throttle_burst <= self.api_throttle_burst:
            found.append("api_search_throttle_burst must be 1..api_throttle_burst")
        # No batching window on the erasure source, so Lambda caps the batch at 10.
        if not 1 <= self.erasure_batch_size <= 10:
            found.append("erasure_batch_size must be 1..10 (an SQS source without a window)")
        if not ESM_MIN_CONCURRENCY <= self.erasure_max_concurrency <= ESM_MAX_CONCURRENCY:
            found.append(f"erasure_max_concurrency must be {ESM_MIN_CONCURRENCY}..1000")
        return found

    def _deployment_problems(self) -> list[str]:
        """The stage, lifecycle and alarm settings' rules."""
        found: list[str] = []
        # Lower case: the stage ends up in the stack name and, through it, in bucket names.
        if not _STAGE.fullmatch(self.stage):
            found.append(f"stage must match {_STAGE.pattern} (e.g. dev, prod), got {self.stage!r}")
        if self.alarm_email and not _EMAIL.fullmatch(self.alarm_email):
            found.append(f"alarm_email must be an e-mail address, got {self.alarm_email!r}")
        if self.photo_noncurrent_version_expiry_days < 1 or self.multipart_upload_abort_days < 1:
            found.append(
                "photo_noncurrent_version_expiry_days and multipart_upload_abort_days >= 1"
            )
        for name in (
            "alarm_period_s",
            "alarm_function_error_period_s",
            "alarm_rekognition_throttle_period_s",
            "alarm_api_5xx_period_s",
        ):
            if getattr(self, name) < 60 or getattr(self, name) % 60:
                found.append(f"{name} must be a whole number of minutes (CloudWatch periods)")
        if self.alarm_queue_age_s < 60:
            found.append("alarm_queue_age_s must be at least 60")
        if not 0 < self.alarm_function_error_rate_percent <= 100:
            found.append("alarm_function_error_rate_percent must be in (0, 100]")
        if self.alarm_function_error_periods < 1:
            found.append("alarm_function_error_periods must be >= 1")
        if self.alarm_rekognition_throttle_periods < 2:
            # One period is a spike; sustained throttling needs several periods in a row.
            found.append("alarm_rekognition_throttle_periods must be >= 2")
        if self.alarm_rekognition_throttles_per_period < 1 or self.alarm_api_5xx_per_period < 1:
            found.append("alarm_rekognition_throttles_per_period and alarm_api_5xx_per_period >= 1")
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
    def reconcile_stuck_after_s(self) -> int:
        """Age (s) at which the reconciler takes over an INDEXED/ASSOCIATED photo.

        Every delivery of its message (each waiting out the longest visibility timeout), then
        an activation, plus the margin: a younger photo may still be finished by the pipeline.
        """
        retry_path = (
            self.max_receive_count
            * max(self.index_visibility_timeout_s, self.associate_visibility_timeout_s)
            + self.activation_execution_timeout_s
        )
        return retry_path + self.reconcile_stuck_margin_s

    @property
    def activation_max_checks(self) -> int:
        """SearchUsers calls one activation makes at most: one before each wait and one after."""
        return len(self.activation_wait_schedule_s) + 1

    def lambda_environment(
        self,
        *,
        service_name: str,
        bucket_name: str | None = None,
        ledger_table: str | None = None,
        association_queue_url: str = "",
        upload_queue_url: str = "",
        activation_state_machine_arn: str = "",
        erasure_queue_url: str = "",
        upload_dlq_url: str = "",
        association_dlq_url: str = "",
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
            "UPLOAD_QUEUE_URL": upload_queue_url,
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
            "UPLOAD_DLQ_URL": upload_dlq_url,
            "ASSOCIATION_DLQ_URL": association_dlq_url,
            "RECONCILE_STUCK_AFTER_S": str(self.reconcile_stuck_after_s),
            "RECONCILE_ORPHAN_GRACE_S": str(self.reconcile_orphan_grace_s),
            "RECONCILE_MAX_REPAIRS": str(self.reconcile_max_repairs),
            "POWERTOOLS_SERVICE_NAME": service_name,
            "POWERTOOLS_METRICS_NAMESPACE": self.metrics_namespace,
            "POWERTOOLS_LOG_LEVEL": self.log_level,
        }
