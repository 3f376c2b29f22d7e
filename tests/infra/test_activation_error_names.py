"""Every error name the activation state machine retries or catches is one Step Functions raises.

A retrier or catcher on a name that is never raised fails silently: the error goes past it (a
throttle is not retried, a condition failure is not caught). The names follow these rules:

- ``States.*``: the Amazon States Language's own errors.
- AWS SDK integrations (``arn:aws:states:::aws-sdk:<service>:<action>``): ``<prefix>.<error>``,
  with the service's exception prefix from the Step Functions Developer Guide's table of
  supported services (Rekognition, CloudWatch, and DynamoDb with a lower-case b). The guide says
  to always add the ``Exception`` suffix, even where the service's own name lacks it (its
  example: S3 ``BucketAlreadyExists`` is ``S3.BucketAlreadyExistsException``). An error the SDK
  does not model comes as ``<prefix>.<prefix>Exception``.
- The optimized DynamoDB integration (``arn:aws:states:::dynamodb:<action>``): prefix
  ``DynamoDB`` with an upper-case DB (the guide's "Exception prefix differences", Call DynamoDB
  APIs with Step Functions). The guide does not say how the rest of the name is spelt.
  Undocumented: executions recorded on AWS (a Cause that reads "Service: AmazonDynamoDBv2 ...",
  the AWS SDK for Java's format) show the SDK's exception class names:
  ``DynamoDB.ResourceNotFoundException``, and ``DynamoDB.AmazonDynamoDBException`` for an error
  it does not model (ValidationException). That SDK's classes add the suffix too
  (``InternalServerError`` -> ``InternalServerErrorException``), which is the rule used here.

The errors an action can raise come from botocore's service models (installed with boto3): the
operation's error shapes, so a misspelt name or one of another service fails this test.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Iterator
from functools import cache
from typing import Any

import botocore.session
import pytest

from infra.activation_definition import render_activation_definition

# The Amazon States Language's error names (all begin with "States.").
STATES_ERRORS = frozenset(
    {
        "States.ALL",
        "States.BranchFailed",
        "States.DataLimitExceeded",
        "States.ExceedToleratedFailureThreshold",
        "States.HeartbeatTimeout",
        "States.Http.Socket",
        "States.IntrinsicFailure",
        "States.ItemReaderFailed",
        "States.NoChoiceMatched",
        "States.ParameterPathFailure",
        "States.Permissions",
        "States.QueryEvaluationError",
        "States.ResultPathMatchFailure",
        "States.ResultWriterFailed",
        "States.Runtime",
        "States.TaskFailed",
        "States.Timeout",
    }
)
# Exception prefixes of the AWS SDK integrations this state machine uses (the guide's table).
SDK_EXCEPTION_PREFIXES = {
    "rekognition": "Rekognition",
    "cloudwatch": "CloudWatch",
    "dynamodb": "DynamoDb",
}
# Optimized integrations: service model, prefix, name of an error the integration does not model.
OPTIMIZED_INTEGRATIONS = {"dynamodb": ("dynamodb", "DynamoDB", "DynamoDB.AmazonDynamoDBException")}

_SDK_RESOURCE = re.compile(r"arn:aws:states:::aws-sdk:([a-z0-9]+):([a-zA-Z0-9]+)")
_OPTIMIZED_RESOURCE = re.compile(r"arn:aws:states:::([a-z0-9]+):([a-zA-Z0-9]+)")


def step_functions_name(prefix: str, shape_name: str) -> str:
    """The error name Step Functions gives a service error: prefix, then name with 'Exception'."""
    suffix = "" if shape_name.endswith("Exception") else "Exception"
    return f"{prefix}.{shape_name}{suffix}"


@cache
def raisable(resource: str) -> frozenset[str]:
    """Every service error name a Task with this Resource can fail with."""
    if match := _SDK_RESOURCE.fullmatch(resource):
        service, action = match.groups()
        prefix = SDK_EXCEPTION_PREFIXES[service]
        model_name, unmodelled = service, f"{prefix}.{prefix}Exception"
    elif (match := _OPTIMIZED_RESOURCE.fullmatch(resource)) and match[1] in OPTIMIZED_INTEGRATIONS:
        service, action = match.groups()
        model_name, prefix, unmodelled = OPTIMIZED_INTEGRATIONS[service]
    else:
        raise AssertionError(f"no error-name rule for the resource {resource!r}")
    model = botocore.session.get_session().get_service_model(model_name)
    operation = model.operation_model(action[0].upper() + action[1:])
    names = {step_functions_name(prefix, shape.name) for shape in operation.error_shapes}
    return frozenset(names | {unmodelled})


def _states(states: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    for name, state in states.items():
        yield f"{path}{name}", state
        for inner in _inner_state_lists(state):
            yield from _states(inner, f"{path}{name}/")


def _inner_state_lists(state: dict[str, Any]) -> list[dict[str, Any]]:
    processor = state.get("ItemProcessor") or state.get("Iterator")
    inner = [processor["States"]] if processor else []
    return inner + [branch["States"] for branch in state.get("Branches", [])]


def _errors_a_state_can_raise(state: dict[str, Any]) -> frozenset[str]:
    """A Task's service errors; for a Map or Parallel, those of every Task inside it."""
    found: set[str] = set()
    if state.get("Type") == "Task":
        found |= raisable(state["Resource"])
    for inner in _inner_state_lists(state):
        for _, nested in _states(inner):
            if nested.get("Type") == "Task":
                found |= raisable(nested["Resource"])
    return frozenset(found)


def unmatchable_error_names(definition: dict[str, Any]) -> list[str]:
    """``state: name`` for every Retry/Catch error name the state can never be failed with."""
    wrong = []
    for path, state in _states(definition["States"]):
        allowed = STATES_ERRORS | _errors_a_state_can_raise(state)
        for handler in state.get("Retry", []) + state.get("Catch", []):
            wrong += [f"{path}: {n}" for n in handler["ErrorEquals"] if n not in allowed]
    return wrong


def _definition() -> dict[str, Any]:
    return json.loads(render_activation_definition("collection", "ledger", "namespace"))


def test_every_retried_or_caught_error_name_can_be_raised() -> None:
    assert unmatchable_error_names(_definition()) == []


def test_dynamodb_throttling_and_server_errors_are_retried_by_their_step_functions_names() -> None:
    definition = _definition()
    retried = {
        name
        for _, state in _states(definition["States"])
        if state.get("Resource") == "arn:aws:states:::dynamodb:updateItem"
        for retrier in state["Retry"]
        for name in retrier["ErrorEquals"]
    }

    assert {
        "DynamoDB.ProvisionedThroughputExceededException",
        "DynamoDB.ThrottlingException",
        "DynamoDB.RequestLimitExceededException",
        "DynamoDB.InternalServerErrorException",
    } <= retried


def test_states_all_stands_alone_in_the_last_handler() -> None:
    # The States Language's rule; Step Functions refuses the definition otherwise.
    for path, state in _states(_definition()["States"]):
        for field in ("Retry", "Catch"):
            handlers = state.get(field, [])
            for index, handler in enumerate(handlers):
                if "States.ALL" in handler["ErrorEquals"]:
                    assert handler["ErrorEquals"] == ["States.ALL"], path
                    assert index == len(handlers) - 1, path


@pytest.mark.parametrize(
    ("state", "name"),
    [
        # The service model's own spelling, without the suffix Step Functions adds.
        ("RecordUserActive", "DynamoDB.RequestLimitExceeded"),
        ("RecordUserFailed", "DynamoDB.InternalServerError"),
        # A typo, a name of another service, the SDK integration's prefix on an optimized task.
        ("CheckUserStatus", "Rekognition.ThrottlingExeption"),
        ("CheckUserStatus", "DynamoDB.ConditionalCheckFailedException"),
        ("RecordUserActive", "DynamoDb.ConditionalCheckFailedException"),
        # An error SearchUsers does not have (IndexFaces does).
        ("CheckUserStatus", "Rekognition.InvalidImageFormatException"),
    ],
)
def test_a_name_that_cannot_match_is_reported(state: str, name: str) -> None:
    definition = copy.deepcopy(_definition())
    definition["States"][state]["Retry"][0]["ErrorEquals"].append(name)

    assert unmatchable_error_names(definition) == [f"{state}: {name}"]


def test_names_follow_the_guides_examples() -> None:
    # Rekognition's InternalServerError (reference §10) and the guide's S3 example.
    assert step_functions_name("Rekognition", "InternalServerError") == (
        "Rekognition.InternalServerErrorException"
    )
    assert step_functions_name("S3", "BucketAlreadyExists") == "S3.BucketAlreadyExistsException"
    assert "Rekognition.ResourceNotFoundException" in raisable(
        "arn:aws:states:::aws-sdk:rekognition:searchUsers"
    )
