"""Count what the local stack would be billed for: requests, state transitions, invocations.

Every AWS call of the local stack reaches one endpoint (moto's ``ThreadedMotoServer``): the
handlers' calls from their worker processes, the state machine's ``aws-sdk:*`` and
``dynamodb:*`` tasks (moto's Step Functions calls the endpoint over HTTP) and the runner's own
calls. :func:`counting_requests` wraps the WSGI entry point all of them pass through and
:class:`CallCounter` counts them by (service, operation).

What is counted where:

- ``requests``: every request except the runner's own ones, i.e. the handlers, the state
  machine's tasks and whoever drives the stack (uploads to S3, ``enroll`` commands);
- ``refused_requests``: Rekognition requests answered with an error (throttled above all); they
  are not billed, so the cost report leaves them out;
- ``runner_requests``: requests from clients tagged with :func:`tag_runner_client`: the local
  stack's clients (its event-source-mapping pollers' ReceiveMessage/DeleteMessageBatch, the
  idle checks' GetQueueAttributes/ListExecutions, provisioning) and the metrics bridge's
  PutMetricData (in AWS, EMF needs no PutMetricData). A harness tags its own clients the same
  way to keep its bookkeeping calls out of ``requests``. They are reported, never priced: the
  cost model derives the ESM's receives and deletes from the Lambda invocations instead, since
  local polling (short waits while idle) is not what the Lambda pollers do.

Step Functions states run inside moto without requests: :func:`count_state_transitions` reads
them from the execution histories. Lambda invocations and durations come from the ``AWS/Lambda``
metrics the metrics bridge publishes to the local CloudWatch. :func:`collect_counted_calls`
puts it all together as one JSON-serialisable dict (the cost report's input).
"""

from __future__ import annotations

import io
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from moto.moto_server.werkzeug_app import DomainDispatcherApplication

if TYPE_CHECKING:
    from enroll_local.runner.stack import LocalStack

#: Header marking a request as the runner's (or a harness's) own, not the pipeline's.
RUNNER_HEADER = "X-Enroll-Local-Runner"
_RUNNER_ENVIRON_KEY = "HTTP_" + RUNNER_HEADER.upper().replace("-", "_")
#: SigV4 signing names -> the service names of the report.
SERVICE_NAMES = {"states": "stepfunctions", "monitoring": "cloudwatch", "email": "ses"}
#: Services whose refused requests (HTTP 4xx/5xx) are counted apart from the billed ones.
BILLED_WHEN_SERVED = frozenset({"rekognition"})
#: The activation state machine's status-check task (one SearchUsers call per entry).
STATUS_CHECK_STATE = "CheckUserStatus"
#: The functions whose invocations the report lists, by PipelineConfig name attribute and memory.
_FUNCTIONS = (
    ("index_service_name", "index_function_memory_mb"),
    ("associate_service_name", "associate_function_memory_mb"),
    ("erasure_service_name", "erasure_function_memory_mb"),
    ("api_service_name", "api_function_memory_mb"),
    ("reconcile_service_name", "reconcile_function_memory_mb"),
)


class CallCounter:
    """Thread-safe counts of requests by (service, operation), pipeline and runner apart."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._pipeline: Counter[tuple[str, str]] = Counter()
        self._runner: Counter[tuple[str, str]] = Counter()
        self._refused: Counter[tuple[str, str]] = Counter()
        #: Wall-clock start of the counting window (UTC epoch seconds).
        self.started_at = time.time()

    def record(
        self, service: str, operation: str, *, runner: bool = False, refused: bool = False
    ) -> None:
        with self._lock:
            if runner:
                self._runner[(service, operation)] += 1
            elif refused:
                self._refused[(service, operation)] += 1
            else:
                self._pipeline[(service, operation)] += 1

    def reset(self) -> None:
        """Start a new counting window (e.g. after a harness's setup)."""
        with self._lock:
            self._pipeline.clear()
            self._runner.clear()
            self._refused.clear()
            self.started_at = time.time()

    def snapshot(self) -> dict[str, dict[str, dict[str, int]]]:
        """{"requests": {service: {operation: n}}, "runner_requests": {...},
        "refused_requests": {...}}, sorted."""
        with self._lock:
            return {
                "requests": _nested(self._pipeline),
                "runner_requests": _nested(self._runner),
                "refused_requests": _nested(self._refused),
            }


def _nested(counts: Counter[tuple[str, str]]) -> dict[str, dict[str, int]]:
    nested: dict[str, dict[str, int]] = {}
    for (service, operation), n in sorted(counts.items()):
        nested.setdefault(service, {})[operation] = n
    return nested


# -- classifying one request -------------------------------------------------------------------


def classify(environ: dict[str, Any]) -> tuple[str, str]:
    """(service, operation) of one WSGI request to the endpoint.

    The service is the SigV4 credential scope's (every boto3 request is signed, the local
    credentials included); the operation is ``X-Amz-Target``'s (JSON protocols: Rekognition,
    SQS, DynamoDB, Step Functions), the path's (CloudWatch's Smithy RPC v2 CBOR:
    ``/service/<svc>/operation/<Op>``), ``Action`` (query protocol) or, for S3's REST API,
    derived from the method, the path and the sub-resource.
    """
    path = environ.get("PATH_INFO", "") or ""
    if path.startswith("/moto-api"):
        return "moto-api", path
    service = _signing_service(environ.get("HTTP_AUTHORIZATION", ""))
    target = environ.get("HTTP_X_AMZ_TARGET")
    if target:
        return service or target.split(".", 1)[0].lower(), target.rsplit(".", 1)[-1]
    if "/operation/" in path:
        return service or "unknown", path.rsplit("/operation/", 1)[-1].strip("/")
    action = _query_action(environ)
    if action:
        return service or "unknown", action
    if service in (None, "s3"):
        return "s3", s3_operation(
            environ.get("REQUEST_METHOD", "GET"),
            path,
            environ.get("QUERY_STRING", ""),
            copy_source=bool(environ.get("HTTP_X_AMZ_COPY_SOURCE")),
        )
    return service, f"{environ.get('REQUEST_METHOD', '?')} {path}"


def _signing_service(authorization: str) -> str | None:
    # "AWS4-HMAC-SHA256 Credential=key/20240101/us-east-1/rekognition/aws4_request, ..."
    try:
        scope = authorization.split("Credential=", 1)[1].split(",", 1)[0]
        name = scope.split("/")[3].lower()
    except IndexError:
        return None
    return SERVICE_NAMES.get(name, name)


def _query_action(environ: dict[str, Any]) -> str | None:
    """``Action`` of a query-protocol request (in the query string or the form body)."""
    query = parse_qs(environ.get("QUERY_STRING", "") or "")
    if "Action" in query:
        return query["Action"][0]
    if not (environ.get("CONTENT_TYPE") or "").startswith("application/x-www-form-urlencoded"):
        return None
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        return None
    if length <= 0:
        return None
    body = environ["wsgi.input"].read(length)
    # The application reads the body again: give it back unread.
    environ["wsgi.input"] = io.BytesIO(body)
    values = parse_qs(body.decode("utf-8", "replace"))
    return values["Action"][0] if "Action" in values else None


def s3_operation(method: str, path: str, query_string: str, *, copy_source: bool = False) -> str:
    """The S3 REST operation of a path-style request (what the local endpoint receives)."""
    query = parse_qs(query_string, keep_blank_values=True)
    parts = path.lstrip("/").split("/", 1)
    has_key = len(parts) == 2 and parts[1] != ""
    method = method.upper()
    if has_key:
        if method == "PUT":
            if "partNumber" in query:
                return "UploadPartCopy" if copy_source else "UploadPart"
            if "tagging" in query:
                return "PutObjectTagging"
            return "CopyObject" if copy_source else "PutObject"
        if method == "POST":
            if "uploads" in query:
                return "CreateMultipartUpload"
            if "uploadId" in query:
                return "CompleteMultipartUpload"
            return "PostObject"
        if method == "DELETE":
            return "AbortMultipartUpload" if "uploadId" in query else "DeleteObject"
        if method == "HEAD":
            return "HeadObject"
        if "tagging" in query:
            return "GetObjectTagging"
        return "ListParts" if "uploadId" in query else "GetObject"
    if method == "POST" and "delete" in query:
        return "DeleteObjects"
    if method == "HEAD":
        return "HeadBucket"
    if method == "GET":
        if query.get("list-type") == ["2"]:
            return "ListObjectsV2"
        if "versions" in query:
            return "ListObjectVersions"
        if "uploads" in query:
            return "ListMultipartUploads"
        sub = next(iter(query), None)
        return f"GetBucket{sub.capitalize()}" if sub else "ListObjects"
    if method == "PUT":
        sub = next(iter(query), None)
        return f"PutBucket{sub.capitalize()}" if sub else "CreateBucket"
    if method == "DELETE":
        return "DeleteBucket"
    return f"{method} bucket"


# -- installing it -----------------------------------------------------------------------------

#: Counters of the endpoints counting now, by the port they serve (one server per stack).
_COUNTERS: dict[str, CallCounter] = {}
_INSTALL_LOCK = threading.Lock()
_ORIGINAL_CALL: Any = None


def _counting_call(self: Any, environ: dict[str, Any], start_response: Any) -> Any:
    counter = _COUNTERS.get(str(environ.get("SERVER_PORT", "")))
    if counter is None:
        return _ORIGINAL_CALL(self, environ, start_response)
    service, operation = classify(environ)
    if service == "moto-api":
        return _ORIGINAL_CALL(self, environ, start_response)
    statuses: list[int] = []

    def capture(status: str, headers: Any, *exc_info: Any) -> Any:
        statuses.append(int(str(status).split(" ", 1)[0]))
        return start_response(status, headers, *exc_info)

    try:
        return _ORIGINAL_CALL(self, environ, capture)
    finally:
        # Rekognition prices the images it processes: a refused call (throttled, invalid)
        # processes none, so it is counted apart. Other services' errors stay in ``requests``
        # (a DynamoDB write refused by its condition still consumes write units).
        refused = service in BILLED_WHEN_SERVED and bool(statuses) and statuses[0] >= 400
        counter.record(service, operation, runner=_RUNNER_ENVIRON_KEY in environ, refused=refused)


@contextmanager
def counting_requests(
    endpoint_url: str, counter: CallCounter | None = None
) -> Iterator[CallCounter]:
    """Count every request the moto server at ``endpoint_url`` serves until the block ends.

    moto's ``DomainDispatcherApplication.__call__`` is where every request of a moto server
    passes; it is wrapped once for the process and restored when the last block ends. Requests
    are attributed by the port they arrived on, so two stacks in one process count apart.
    """
    global _ORIGINAL_CALL
    port = endpoint_url.rstrip("/").rsplit(":", 1)[-1]
    counter = counter or CallCounter()
    with _INSTALL_LOCK:
        if not _COUNTERS:
            _ORIGINAL_CALL = DomainDispatcherApplication.__call__
            DomainDispatcherApplication.__call__ = _counting_call  # type: ignore[method-assign]
        _COUNTERS[port] = counter
    try:
        yield counter
    finally:
        with _INSTALL_LOCK:
            if _COUNTERS.get(port) is counter:
                del _COUNTERS[port]
            if not _COUNTERS and _ORIGINAL_CALL is not None:
                DomainDispatcherApplication.__call__ = _ORIGINAL_CALL  # type: ignore[method-assign]
                _ORIGINAL_CALL = None


def tag_runner_client(client: Any) -> Any:
    """Mark every request of ``client`` as the runner's own (counted apart); returns it."""

    def add_header(request: Any, **_: Any) -> None:
        request.headers[RUNNER_HEADER] = "1"

    client.meta.events.register_first("before-sign.*.*", add_header)
    return client


# -- state transitions and invocations ---------------------------------------------------------


def transitions_of(
    events: list[dict[str, Any]], check_state: str = STATUS_CHECK_STATE
) -> dict[str, int]:
    """State transitions of one execution's history as Step Functions Standard bills them.

    One transition per state entered (Map and Parallel states, and every state of every Map
    iteration, included) plus one per retry of a task: a retry schedules the task again
    without entering the state again, so retries = task schedulings beyond one per entry.
    """
    entered = [e for e in events if e["type"].endswith("StateEntered")]
    task_entries = sum(1 for e in events if e["type"] == "TaskStateEntered")
    scheduled = sum(1 for e in events if e["type"] == "TaskScheduled")
    checks = sum(
        1
        for e in entered
        if e["type"] == "TaskStateEntered"
        and e.get("stateEnteredEventDetails", {}).get("name") == check_state
    )
    retries = max(0, scheduled - task_entries)
    return {"transitions": len(entered) + retries, "status_checks": checks, "retries": retries}


def count_state_transitions(
    sfn_client: Any, state_machine_arn: str, check_state: str = STATUS_CHECK_STATE
) -> dict[str, Any]:
    """{"executions", "transitions", "status_checks", "retries", "execution_seconds"} over
    every execution of ``state_machine_arn`` (histories read with GetExecutionHistory, paged);
    execution_seconds sums the start-to-end times of the finished executions."""
    totals: dict[str, Any] = {
        "executions": 0,
        "transitions": 0,
        "status_checks": 0,
        "retries": 0,
        "execution_seconds": 0.0,
    }
    for page in sfn_client.get_paginator("list_executions").paginate(
        stateMachineArn=state_machine_arn
    ):
        for execution in page["executions"]:
            events: list[dict[str, Any]] = []
            for history in sfn_client.get_paginator("get_execution_history").paginate(
                executionArn=execution["executionArn"]
            ):
                events.extend(history["events"])
            counted = transitions_of(events, check_state)
            totals["executions"] += 1
            totals["execution_seconds"] += _elapsed_seconds(events)
            for key in ("transitions", "status_checks", "retries"):
                totals[key] += counted[key]
    totals["execution_seconds"] = round(totals["execution_seconds"], 3)
    return totals


#: History events that end an execution.
_END_EVENTS = frozenset(
    {"ExecutionSucceeded", "ExecutionFailed", "ExecutionTimedOut", "ExecutionAborted"}
)


def _elapsed_seconds(events: list[dict[str, Any]]) -> float:
    """Start-to-end seconds of a finished execution's history (0 while it runs)."""
    if not events or events[-1]["type"] not in _END_EVENTS:
        return 0.0
    return float((events[-1]["timestamp"] - events[0]["timestamp"]).total_seconds())


def lambda_usage(
    cloudwatch: Any, functions: dict[str, int], since: float, until: float | None = None
) -> dict[str, dict[str, float]]:
    """Invocations and summed duration per function from the local ``AWS/Lambda`` metrics.

    ``functions`` maps each function name to its memory (MB). The metrics bridge publishes one
    Invocations and one Duration point per invocation, timestamped when it ran.
    """
    until = until or time.time()
    start = datetime.fromtimestamp(since - 1, tz=UTC)
    end = datetime.fromtimestamp(until + 60, tz=UTC)
    # One period covering the whole window (a multiple of 60 s, as CloudWatch wants).
    period = max(60, int((until + 61 - since) // 60 + 1) * 60)
    usage: dict[str, dict[str, float]] = {}
    for name, memory_mb in functions.items():
        sums = {}
        for metric in ("Invocations", "Duration"):
            points = cloudwatch.get_metric_statistics(
                Namespace="AWS/Lambda",
                MetricName=metric,
                Dimensions=[{"Name": "FunctionName", "Value": name}],
                StartTime=start,
                EndTime=end,
                Period=period,
                Statistics=["Sum"],
            )["Datapoints"]
            sums[metric] = sum(float(p["Sum"]) for p in points)
        if sums["Invocations"]:
            usage[name] = {
                "invocations": int(sums["Invocations"]),
                "duration_ms_sum": round(sums["Duration"], 3),
                "memory_mb": memory_mb,
            }
    return usage


def collect_counted_calls(stack: LocalStack, photos: int | None = None) -> dict[str, Any]:
    """Everything counted since the stack's counting window began, JSON-serialisable.

    {"requests": {service: {operation: n}}, "runner_requests": {...}, "state_transitions":
    {"executions", "transitions", "status_checks", "retries"}, "lambda": {function:
    {"invocations", "duration_ms_sum", "memory_mb"}}, "faces_stored": n, "photos": n,
    "users": n, "window_seconds": s}. ``photos`` defaults to the photo items of the ledger.
    Take it once the stack is idle: the requests are read first, so the reads below are not in
    them.
    """
    counter = stack.call_counter
    assert counter is not None and stack.clients is not None and stack.endpoints is not None
    counted: dict[str, Any] = dict(counter.snapshot())
    until = time.time()
    config = stack.config
    clients = stack.clients
    counted["state_transitions"] = count_state_transitions(
        clients.stepfunctions, stack.endpoints.state_machine_arn
    )
    functions = {
        getattr(config, name_attr): getattr(config, memory_attr)
        for name_attr, memory_attr in _FUNCTIONS
    }
    cloudwatch = tag_runner_client(stack._cloudwatch_client(stack.endpoints.endpoint_url))
    counted["lambda"] = lambda_usage(cloudwatch, functions, counter.started_at, until)
    counted["lambda_architecture"] = config.lambda_architecture
    counted["faces_stored"] = clients.rekognition.describe_collection(
        CollectionId=config.collection_id
    )["FaceCount"]
    users, ledger_photos = _ledger_counts(clients.dynamodb, config.ledger_table_name)
    counted["users"] = users
    counted["photos"] = ledger_photos if photos is None else photos
    counted["window_seconds"] = round(until - counter.started_at, 3)
    return counted


def _ledger_counts(dynamodb: Any, table: str) -> tuple[int, int]:
    """(users, photos) recorded in the ledger (USER and PHOTO# items)."""
    users = photos = 0
    for page in dynamodb.get_paginator("scan").paginate(TableName=table, ProjectionExpression="sk"):
        for item in page["Items"]:
            sk = item.get("sk", {}).get("S", "")
            if sk == "USER":
                users += 1
            elif sk.startswith("PHOTO#"):
                photos += 1
    return users, photos
