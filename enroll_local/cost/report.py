"""Cost per 1,000 photos from counted calls (call_counter.collect_counted_calls), both designs.

``cost_report(counted, photos)`` prices what one local run counted, scaled to 1,000 photos, with
the arithmetic of every line as text, and next to it the naive design computed from the same
run: an AssociateFaces call per photo, one Standard execution per photo polling every second
until the user is ACTIVE by paging ListUsers (which cannot fetch one user).

What the counted run cannot show is modelled, and each line says so:
- S3 event notifications do not pass through the endpoint locally: one SendMessage per object
  created (PutObject, CopyObject, CompleteMultipartUpload);
- the Lambda event source mapping's SQS calls: one ReceiveMessage and one DeleteMessageBatch per
  invocation of a queue-driven function (its idle long polls are a fixed monthly cost, left out
  as performance-anchors.md §2.2 does); every request under 64 KB (the pipeline's bodies are);
- Rekognition reads each IndexFaces image from S3: one GET per IndexFaces call;
- DynamoDB request units are approximated from request counts (prices.py).
Free tiers and fixed monthly costs (dashboards, metric-months, logs) are excluded.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from infra.config import PipelineConfig

from . import prices
from .prices import Price

#: Users one ListUsers page returns at most (MaxResults 1..500).
LIST_USERS_PAGE = 500
#: Operations that create an S3 object (each fires one event notification).
S3_OBJECT_CREATED = ("PutObject", "CopyObject", "CompleteMultipartUpload")


@dataclass(frozen=True)
class CostLine:
    """One priced line, per 1,000 photos."""

    service: str
    item: str
    quantity: float
    unit: str
    unit_usd: float
    grade: str
    #: A user-vector API line: $0 under the "unbilled" assumption.
    user_vector: bool = False
    note: str = ""

    @property
    def usd(self) -> float:
        return self.quantity * self.unit_usd

    @property
    def arithmetic(self) -> str:
        return f"{quantity_text(self.quantity)} x {price_text(self.unit_usd)} = ${self.usd:.4f}"

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "usd": round(self.usd, 6), "arithmetic": self.arithmetic}


def quantity_text(quantity: float) -> str:
    """1,000 / 333.33 (two decimals unless whole)."""
    if math.isclose(quantity, round(quantity), abs_tol=1e-9):
        return f"{round(quantity):,}"
    return f"{quantity:,.2f}"


def price_text(usd: float) -> str:
    """$0.001, $0.0000002, $0.0000133334 (no trailing zeros)."""
    text = f"{usd:.10f}".rstrip("0").rstrip(".")
    return f"${text}"


@dataclass(frozen=True)
class CostReport:
    photos: int
    users: int
    ours: list[CostLine]
    naive: list[CostLine]
    #: Inputs read from the run (activation wait, polls, ...), for the naive column's text.
    inputs: dict[str, Any] = field(default_factory=dict)

    def total(self, lines: list[CostLine], *, user_vector_billed: bool = True) -> float:
        return sum(line.usd for line in lines if user_vector_billed or not line.user_vector)

    def by_service(self, lines: list[CostLine]) -> dict[str, float]:
        totals: dict[str, float] = {}
        for line in lines:
            totals[line.service] = totals.get(line.service, 0.0) + line.usd
        return totals

    def as_dict(self) -> dict[str, Any]:
        def design(lines: list[CostLine]) -> dict[str, Any]:
            return {
                "lines": [line.as_dict() for line in lines],
                "by_service_usd": {k: round(v, 6) for k, v in self.by_service(lines).items()},
                "total_usd": round(self.total(lines), 6),
                "total_usd_if_user_vector_apis_unbilled": round(
                    self.total(lines, user_vector_billed=False), 6
                ),
            }

        return {
            "per_photos": 1000,
            "photos": self.photos,
            "users": self.users,
            "headline": "user-vector APIs billed as Group 1 ($0.001 per call) [U]",
            "inputs": self.inputs,
            "ours": design(self.ours),
            "naive": design(self.naive),
        }


def _line(
    service: str,
    item: str,
    count: float,
    scale: float,
    price: Price,
    *,
    user_vector: bool = False,
    note: str = "",
) -> CostLine:
    return CostLine(
        service=service,
        item=item,
        quantity=count * scale,
        unit=price.unit,
        unit_usd=price.usd,
        grade=price.grade,
        user_vector=user_vector,
        note=note,
    )


def _rekognition_lines(calls: dict[str, int], scale: float) -> list[CostLine]:
    lines = []
    for operation, count in sorted(calls.items()):
        if operation in prices.GROUP_1_OPERATIONS:
            lines.append(_line("rekognition", operation, count, scale, prices.REKOGNITION_GROUP_1))
        elif operation in prices.USER_VECTOR_OPERATIONS:
            lines.append(
                _line(
                    "rekognition",
                    operation,
                    count,
                    scale,
                    prices.REKOGNITION_USER_VECTOR,
                    user_vector=True,
                )
            )
        else:
            free = Price(0.0, "call", "[U]", "collection housekeeping, assumed unbilled")
            lines.append(
                _line("rekognition", operation, count, scale, free, note="assumed unbilled [U]")
            )
    return lines


def _lambda_lines(
    usage: dict[str, dict[str, Any]], scale: float, architecture: str
) -> list[CostLine]:
    gb_second = prices.LAMBDA_GB_SECOND[architecture]
    lines = []
    for name, fn in sorted(usage.items()):
        lines.append(
            _line("lambda", f"{name} requests", fn["invocations"], scale, prices.LAMBDA_REQUEST)
        )
        gb_s = fn["duration_ms_sum"] / 1000 * fn["memory_mb"] / 1024
        lines.append(
            _line(
                "lambda",
                f"{name} duration ({architecture})",
                gb_s,
                scale,
                gb_second,
                note=f"{fn['duration_ms_sum']:,.0f} ms x {fn['memory_mb']} MB over the run",
            )
        )
    return lines


def _queue_invocations(usage: dict[str, dict[str, Any]]) -> int:
    config = PipelineConfig()
    queue_driven = {
        config.index_service_name,
        config.associate_service_name,
        config.erasure_service_name,
    }
    return sum(int(fn["invocations"]) for name, fn in usage.items() if name in queue_driven)


def _dynamodb_lines(calls: dict[str, int], scale: float) -> list[CostLine]:
    writes = sum(n * prices.DYNAMODB_WRITE_UNITS.get(op, 0) for op, n in calls.items())
    reads = sum(n * prices.DYNAMODB_READ_UNITS.get(op, 0) for op, n in calls.items())
    note = "approximated from request counts (1 unit per request, 2 if transactional)"
    return [
        _line(
            "dynamodb", "write request units", writes, scale, prices.DYNAMODB_WRITE_UNIT, note=note
        ),
        _line("dynamodb", "read request units", reads, scale, prices.DYNAMODB_READ_UNIT, note=note),
    ]


def _s3_lines(calls: dict[str, int], index_faces: int, scale: float) -> list[CostLine]:
    put_class = sum(n for op, n in calls.items() if op in prices.S3_PUT_CLASS_OPERATIONS)
    get_class = sum(
        n
        for op, n in calls.items()
        if op not in prices.S3_PUT_CLASS_OPERATIONS and op not in prices.S3_FREE_OPERATIONS
    )
    return [
        _line("s3", "PUT/COPY/POST/LIST requests", put_class, scale, prices.S3_PUT_CLASS),
        _line("s3", "GET and other requests", get_class, scale, prices.S3_GET_CLASS),
        _line(
            "s3",
            "GET by Rekognition (IndexFaces S3Object)",
            index_faces,
            scale,
            prices.S3_GET_CLASS,
            note="modelled: one GET per IndexFaces call",
        ),
    ]


def _ours(counted: dict[str, Any], scale: float) -> list[CostLine]:
    requests = counted.get("requests", {})
    rekognition = requests.get("rekognition", {})
    usage = counted.get("lambda", {})
    architecture = counted.get("lambda_architecture", "arm64")
    s3_calls = requests.get("s3", {})
    objects_created = sum(s3_calls.get(op, 0) for op in S3_OBJECT_CREATED)
    transitions = counted.get("state_transitions", {})
    lines = _rekognition_lines(rekognition, scale)
    lines.append(
        _line(
            "rekognition",
            "face storage, 1 month",
            counted.get("faces_stored", 0),
            scale,
            prices.REKOGNITION_FACE_MONTH,
        )
    )
    lines += _lambda_lines(usage, scale, architecture)
    lines += [
        _line(
            "sqs",
            "requests by the functions",
            sum(requests.get("sqs", {}).values()),
            scale,
            prices.SQS_REQUEST,
        ),
        _line(
            "sqs",
            "S3 event notifications",
            objects_created,
            scale,
            prices.SQS_REQUEST,
            note="modelled: one SendMessage per object created",
        ),
        _line(
            "sqs",
            "event source mapping receive + delete",
            2 * _queue_invocations(usage),
            scale,
            prices.SQS_REQUEST,
            note="modelled: ReceiveMessage + DeleteMessageBatch per invocation",
        ),
        _line(
            "stepfunctions",
            "Standard state transitions",
            transitions.get("transitions", 0),
            scale,
            prices.SFN_STANDARD_TRANSITION,
            note=f"{transitions.get('executions', 0)} executions, "
            f"{transitions.get('status_checks', 0)} status checks",
        ),
    ]
    lines += _dynamodb_lines(requests.get("dynamodb", {}), scale)
    lines += _s3_lines(s3_calls, rekognition.get("IndexFaces", 0), scale)
    lines.append(
        _line(
            "cloudwatch",
            "PutMetricData (state machine)",
            requests.get("cloudwatch", {}).get("PutMetricData", 0),
            scale,
            prices.CLOUDWATCH_PUT_METRIC_DATA,
        )
    )
    return lines


def naive_inputs(
    counted: dict[str, Any], photos: int, activation_wait_s: float | None = None
) -> dict[str, Any]:
    """What the naive column is computed from: photos, users, the activation wait (the mean
    execution time observed in the run unless ``activation_wait_s`` is given)."""
    transitions = counted.get("state_transitions", {})
    executions = transitions.get("executions", 0)
    observed = transitions.get("execution_seconds", 0.0) / executions if executions else 0.0
    wait = observed if activation_wait_s is None else activation_wait_s
    users = int(counted.get("users", 0))
    polls = max(1, math.ceil(wait))
    pages = max(1, math.ceil(users / LIST_USERS_PAGE))
    return {
        "photos": photos,
        "users": users,
        "activation_wait_s": round(wait, 3),
        "polls_per_photo": polls,
        "list_users_pages_per_poll": pages,
        # start + per poll [Task, Choice, Wait] (+ [Task, Choice] per extra page) + end
        "transitions_per_execution": 2 + polls * (3 + 2 * (pages - 1)),
    }


def _naive(
    counted: dict[str, Any],
    ours: list[CostLine],
    photos: int,
    scale: float,
    activation_wait_s: float | None,
) -> tuple[list[CostLine], dict[str, Any]]:
    inputs = naive_inputs(counted, photos, activation_wait_s)
    users, polls, pages = (
        inputs["users"],
        inputs["polls_per_photo"],
        inputs["list_users_pages_per_poll"],
    )
    usage = counted.get("lambda", {})
    architecture = counted.get("lambda_architecture", "arm64")
    config = PipelineConfig()
    index_name, associate_name = config.index_service_name, config.associate_service_name

    def same(line: CostLine) -> CostLine:
        return replace(line, note="as ours")

    rekognition = [line for line in ours if line.service == "rekognition"]
    lines = [
        same(line) for line in rekognition if line.item in ("IndexFaces", "face storage, 1 month")
    ]
    lines += [
        _line(
            "rekognition",
            "AssociateFaces (one per photo)",
            photos,
            scale,
            prices.REKOGNITION_USER_VECTOR,
            user_vector=True,
        ),
        _line(
            "rekognition",
            "CreateUser (one per user)",
            users,
            scale,
            prices.REKOGNITION_USER_VECTOR,
            user_vector=True,
        ),
        _line(
            "rekognition",
            "ListUsers (status polls)",
            photos * polls * pages,
            scale,
            prices.REKOGNITION_USER_VECTOR,
            user_vector=True,
            note=f"{polls} polls per photo x {pages} page(s) of {LIST_USERS_PAGE} users",
        ),
    ]
    lines += [
        same(line) for line in ours if line.service == "lambda" and line.item.startswith(index_name)
    ]
    associate = usage.get(associate_name)
    if associate and associate["invocations"]:
        mean_ms = associate["duration_ms_sum"] / associate["invocations"]
        per_photo = {
            associate_name: {
                "invocations": photos,
                "duration_ms_sum": mean_ms * photos,
                "memory_mb": associate["memory_mb"],
            }
        }
        lines += _lambda_lines(per_photo, scale, architecture)
    lines += [
        _line(
            "sqs",
            "upload + association queues, unbatched",
            6 * photos,
            scale,
            prices.SQS_REQUEST,
            note="per photo: notification, receive, delete on each of the two queues",
        ),
        _line(
            "stepfunctions",
            "Standard state transitions",
            photos * inputs["transitions_per_execution"],
            scale,
            prices.SFN_STANDARD_TRANSITION,
            note=f"one execution per photo x {inputs['transitions_per_execution']} transitions",
        ),
    ]
    lines += [same(line) for line in ours if line.service in ("dynamodb", "s3", "cloudwatch")]
    return lines, inputs


def cost_report(
    counted: dict[str, Any], photos: int, *, naive_activation_wait_s: float | None = None
) -> CostReport:
    """Price ``counted`` (collect_counted_calls' dict) per 1,000 of ``photos`` photos.

    ``naive_activation_wait_s`` replaces the activation wait observed in the run for the naive
    column (a local run's users turn ACTIVE in about a second; Rekognition's may take longer).
    """
    if photos <= 0:
        raise ValueError(f"photos must be positive, not {photos}")
    scale = 1000 / photos
    ours = _ours(counted, scale)
    naive, inputs = _naive(counted, ours, photos, scale, naive_activation_wait_s)
    return CostReport(
        photos=photos,
        users=int(counted.get("users", 0)),
        ours=ours,
        naive=naive,
        inputs=inputs,
    )
