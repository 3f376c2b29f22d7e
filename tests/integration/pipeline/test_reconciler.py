"""The reconcile function on the local stack: invoked as its schedule would, through the handler.

A healthy pipeline gives it nothing to do; an orphan face (an index whose ledger write died) is
deleted once its grace period is over, and a second run right after repairs nothing.
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enrollment import keys

from .test_end_to_end import list_faces, settle, upload


def test_reconcile_repairs_an_orphan_and_then_nothing(pipeline: Any) -> None:
    stack = pipeline()
    key = "enroll/alice/1.jpg"
    upload(stack, key, make_synthetic_photo([{"identity": "alice", "variant": 1}], seed=1))
    settle(stack, [key])

    healthy = stack.reconcile()
    assert healthy["total"] == 0 and healthy["orphan_faces_waiting"] == 0

    # An IndexFaces whose ledger write never happened: nobody owns the face.
    orphan_key = "enroll/bob/1.jpg"
    stack.clients.s3.put_object(
        Bucket=stack.endpoints.bucket,
        Key="orphans/bob.jpg",  # outside the prefix: the pipeline does not see it
        Body=make_synthetic_photo([{"identity": "bob", "variant": 1}], seed=1),
    )
    stack.clients.rekognition.index_faces(
        CollectionId=stack.endpoints.collection_id,
        Image={"S3Object": {"Bucket": stack.endpoints.bucket, "Name": "orphans/bob.jpg"}},
        ExternalImageId=keys.photo_id(stack.endpoints.bucket, orphan_key, None),
        MaxFaces=1,
    )
    assert len(list_faces(stack)) == 2

    first = stack.reconcile()  # the default grace: seen, kept
    assert (first["total"], first["orphan_faces_waiting"]) == (0, 1)

    settings = stack.settings
    stack.settings = replace(
        settings,
        extra_environment={**settings.extra_environment, "RECONCILE_ORPHAN_GRACE_S": "0"},
    )
    try:
        repaired = stack.reconcile()
        again = stack.reconcile()
    finally:
        stack.settings = settings

    assert repaired["repaired"]["orphan_faces_deleted"] == 1
    assert again["total"] == 0
    faces = list_faces(stack)
    assert len(faces) == 1 and faces[0].get("UserId") == "alice"


def test_enroll_reconcile_prints_the_report_of_the_running_stack(
    pipeline: Any, tmp_path: Any, capsys: Any
) -> None:
    from enroll_cli.main import EXIT_OK, main

    stack = pipeline()
    stack.write_endpoints(tmp_path / "endpoints.json")

    status = main(["reconcile", "--endpoints", str(tmp_path / "endpoints.json"), "--json"])

    assert status == EXIT_OK
    report = json.loads(capsys.readouterr().out)
    assert report["total"] == 0 and set(report["repaired"]) >= {"orphan_faces_deleted"}
