"""Helpers of the template tests: synthesize an app, read its templates, resolve names."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

os.environ.setdefault("JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION", "1")


def synthesize(outdir: Path, stages: tuple[str, ...] = ("dev",)) -> dict[str, dict[str, Any]]:
    """Synthesize app.py's app with one stack per stage (cdk-nag attached); templates by stage.

    Raises if cdk-nag reports an unacknowledged finding (the synth fails).
    """
    import aws_cdk as cdk
    from cdk_nag import AwsSolutionsChecks

    from app import FEATURE_FLAGS, add_stack

    app = cdk.App(outdir=str(outdir), context=dict(FEATURE_FLAGS))
    stacks = {stage: add_stack(app, stage) for stage in stages}
    cdk.Validations.of(app).add_plugins(AwsSolutionsChecks(app))
    assembly = app.synth()
    return {
        stage: assembly.get_stack_by_name(stack.stack_name).template
        for stage, stack in stacks.items()
    }


def resources(template: dict[str, Any], type_name: str) -> dict[str, dict[str, Any]]:
    """The template's resources of one type, by logical id."""
    return {
        lid: resource
        for lid, resource in template["Resources"].items()
        if resource["Type"] == type_name
    }


def token_text(value: Any) -> str:
    """A CloudFormation value as text, ``<Ref>``/``<Id.Attr>`` standing for references."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and "Ref" in value:
        return f"<{value['Ref']}>"
    if isinstance(value, dict) and "Fn::GetAtt" in value:
        return "<" + ".".join(value["Fn::GetAtt"]) + ">"
    if isinstance(value, dict) and "Fn::Join" in value:
        separator, parts = value["Fn::Join"]
        return separator.join(token_text(part) for part in parts)
    return "<" + json.dumps(value, sort_keys=True) + ">"


def dashboard_body(template: dict[str, Any]) -> dict[str, Any]:
    """The (only) dashboard's body as JSON, references written as ``<LogicalId>``."""
    (dashboard,) = resources(template, "AWS::CloudWatch::Dashboard").values()
    return json.loads(token_text(dashboard["Properties"]["DashboardBody"]))


def policy_actions(template: dict[str, Any], role_fragment: str) -> set[str]:
    """Every action of the inline policies attached to the roles whose id has the fragment."""
    roles = [lid for lid in resources(template, "AWS::IAM::Role") if role_fragment in lid]
    assert len(roles) == 1, (role_fragment, roles)
    found: set[str] = set()
    for policy in resources(template, "AWS::IAM::Policy").values():
        if {"Ref": roles[0]} in policy["Properties"]["Roles"]:
            for statement in policy["Properties"]["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                found |= {actions} if isinstance(actions, str) else set(actions)
    return found
