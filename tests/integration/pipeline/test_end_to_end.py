"""Acceptance of the whole pipeline on the local stack (issue #3): S3 upload -> notification ->
upload queue -> poller -> index handler -> association queue -> poller -> associate handler ->
activation state machine (run by moto) -> ledger, with the Rekognition emulator behind it all.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from pathlib import Path
from typing import Any
from urllib.parse import unquote_plus

import pytest

from enroll_local.rekognition.engines.synthetic import make_synthetic_photo
from enroll_local.runner.demo import wait_for_terminal_states
from enroll_local.runner.ledger_report import LedgerSnapshot, read_ledger

from .conftest import counting_calls, operation_counts

#: Budget for one scenario to settle (seconds); a healthy run needs a fraction of it.
SETTLE_TIMEOUT_SECONDS = 90


def photo(identity: str, variant: int) -> bytes:
    return make_synthetic_photo([{"identity": identity, "variant": variant}], seed=variant)


def upload(stack: Any, key: str, data: bytes) -> None:
    stack.clients.s3.put_object(Bucket=stack.endpoints.bucket, Key=key, Body=data)


def settle(stack: Any, keys: list[str]) -> LedgerSnapshot:
    """Every key terminal in the ledger, then nothing left running anywhere."""
    _, pending = wait_for_terminal_states(stack, keys, SETTLE_TIMEOUT_SECONDS)
    assert not pending, f"still pending after {SETTLE_TIMEOUT_SECONDS} s: {pending}"
    assert stack.wait_until_idle(SETTLE_TIMEOUT_SECONDS), "queues or executions never went idle"
    return read_ledger(stack.clients.dynamodb, stack.endpoints.table)


def list_faces(stack: Any) -> list[dict[str, Any]]:
    faces: list[dict[str, Any]] = []
    token: str | None = None
    while True:
        kwargs = {"CollectionId": stack.endpoints.collection_id, "MaxResults": 4096}
        if token:
            kwargs["NextToken"] = token
        page = stack.clients.rekognition.list_faces(**kwargs)
        faces += page["Faces"]
        token = page.get("NextToken")
        if not token:
            return faces


def only_item(snapshot: LedgerSnapshot, key: str) -> dict[str, Any]:
    items = snapshot.photos_by_key().get(key, [])
    assert len(items) == 1, f"{key}: expected exactly one photo item, got {items}"
    return items[0]


def assert_no_orphan_faces(stack: Any, snapshot: LedgerSnapshot) -> None:
    """Every face in the collection belongs to a user, and is an ACTIVE photo's face."""
    faces = list_faces(stack)
    assert all(face.get("UserId") for face in faces), [f for f in faces if not f.get("UserId")]
    active = {p["face_id"] for p in snapshot.photos if p["status"] == "ACTIVE"}
    assert {face["FaceId"] for face in faces} == active


def resend_when_delivered(stack: Any, key: str, timeout: float = 30) -> None:
    """Re-send the S3 notification of ``key`` as soon as the index poller delivered it once."""
    poller = stack.pollers[0]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for body in list(poller.delivered_bodies):
            records = json.loads(body).get("Records", [])
            if any(unquote_plus(r["s3"]["object"]["key"]) == key for r in records):
                stack.clients.sqs.send_message(
                    QueueUrl=stack.endpoints.upload_queue_url, MessageBody=body
                )
                return
        time.sleep(0.05)
    raise AssertionError(f"the notification of {key} was never delivered")


def test_every_object_reaches_exactly_one_terminal_state(pipeline: Any) -> None:
    # Given several users' photos, odd keys, a duplicate, bad files and bad user ids
    stack = pipeline("synthetic")
    odd_key = "enroll/Bob/holiday photo+1 Ñandú.jpg"
    expected = {
        "enroll/Alice/1.jpg": ("ACTIVE", None),
        "enroll/Alice/2.png": ("ACTIVE", None),
        "enroll/Alice/3.jpg": ("ACTIVE", None),
        "enroll/Bob/a b.jpg": ("ACTIVE", None),
        odd_key: ("ACTIVE", None),
        "enroll/Bob/empty wall.jpg": ("REJECTED", "NO_FACE"),
        "enroll/Bob/party.jpg": ("REJECTED", "MULTIPLE_FACES"),
        "enroll/Bob/notes.jpg": ("REJECTED", "INVALID_IMAGE_FORMAT"),
        "enroll/José/1.jpg": ("REJECTED", "INVALID_USER_ID"),
        "enroll/loose.jpg": ("REJECTED", "INVALID_USER_ID"),
    }
    bodies = {
        "enroll/Alice/1.jpg": photo("Alice", 1),
        "enroll/Alice/2.png": make_synthetic_photo(
            [{"identity": "Alice", "variant": 2}], fmt="PNG", seed=2
        ),
        "enroll/Alice/3.jpg": photo("Alice", 3),
        "enroll/Bob/a b.jpg": photo("Bob", 1),
        odd_key: photo("Bob", 2),
        "enroll/Bob/empty wall.jpg": make_synthetic_photo([], seed=7),
        "enroll/Bob/party.jpg": make_synthetic_photo(
            [
                {"identity": "Bob", "variant": 3, "box": [0.05, 0.1, 0.4, 0.5]},
                {"identity": "Zed", "variant": 1, "box": [0.55, 0.1, 0.4, 0.5]},
            ],
            seed=8,
        ),
        "enroll/Bob/notes.jpg": b"not an image at all\n",
        "enroll/José/1.jpg": photo("Jose", 1),
        "enroll/loose.jpg": photo("Loose", 1),
    }
    # The same photo under two keys of one user: the second is a duplicate, whichever it is.
    carol = photo("Carol", 1)
    carol_keys = ["enroll/Carol/original.jpg", "enroll/Carol/copy of original.jpg"]

    # When they are uploaded (and one notification arrives twice, as S3 may do)
    for key, data in bodies.items():
        upload(stack, key, data)
    for key in carol_keys:
        upload(stack, key, carol)
    resend_when_delivered(stack, "enroll/Alice/1.jpg")
    snapshot = settle(stack, [*bodies, *carol_keys])

    # Then each object has exactly one ledger item, in the expected terminal state
    for key, (status, reason) in expected.items():
        item = only_item(snapshot, key)
        assert (item["status"], item.get("reason")) == (status, reason), (key, item)
    carol_outcomes = sorted(
        (only_item(snapshot, k)["status"], only_item(snapshot, k).get("reason")) for k in carol_keys
    )
    assert carol_outcomes == [("ACTIVE", None), ("REJECTED", "DUPLICATE_PHOTO")]
    # And users are ACTIVE with the right face count, and no face lacks a user
    users = snapshot.users_by_id()
    assert {u: (users[u]["status"], users[u]["face_count"]) for u in users} == {
        "Alice": ("ACTIVE", 3),
        "Bob": ("ACTIVE", 2),
        "Carol": ("ACTIVE", 1),
    }
    assert_no_orphan_faces(stack, snapshot)


def _state(stack: Any) -> tuple[Any, Any, Any]:
    snapshot = read_ledger(stack.clients.dynamodb, stack.endpoints.table)
    volatile = {"updated_at"}
    photos = sorted(
        (tuple(sorted((k, str(v)) for k, v in p.items() if k not in volatile)))
        for p in snapshot.photos
    )
    users = sorted(
        (tuple(sorted((k, str(v)) for k, v in u.items() if k not in volatile)))
        for u in snapshot.users
    )
    faces = sorted((f["FaceId"], f.get("UserId")) for f in list_faces(stack))
    return faces, photos, users


def test_resending_every_message_of_a_finished_run_changes_nothing(pipeline: Any) -> None:
    # Given a finished run
    stack = pipeline("synthetic")
    keys = [f"enroll/User{u}/{i}.jpg" for u in range(3) for i in range(3)]
    for key in keys:
        upload(stack, key, photo(key.split("/")[1], int(key[-5])))
    upload(stack, "enroll/User0/blank.jpg", make_synthetic_photo([], seed=3))
    settle(stack, [*keys, "enroll/User0/blank.jpg"])
    before = _state(stack)
    index_poller, associate_poller = stack.pollers[:2]  # (the third serves the erasure queue)
    uploads, associations = (
        list(index_poller.delivered_bodies),
        list(associate_poller.delivered_bodies),
    )
    assert len(associations) == len(keys)

    # When every message of both queues is delivered again
    delivered_before = index_poller.stats.received + associate_poller.stats.received
    for url, bodies in (
        (stack.endpoints.upload_queue_url, uploads),
        (stack.endpoints.association_queue_url, associations),
    ):
        for body in bodies:
            stack.clients.sqs.send_message(QueueUrl=url, MessageBody=body)
    assert stack.wait_until_idle(SETTLE_TIMEOUT_SECONDS)

    # Then no face, association or ledger outcome changed
    after = _state(stack)
    assert after[0] == before[0], "faces or associations changed"
    assert after[1] == before[1], "photo items changed"
    assert after[2] == before[2], "user items changed"
    # (and the messages really were delivered and handled again, not lost)
    delivered = index_poller.stats.received + associate_poller.stats.received - delivered_before
    assert delivered == len(uploads) + len(associations)
    assert index_poller.stats.failed == associate_poller.stats.failed == 0


@pytest.mark.slow
def test_ten_users_twenty_photos_cost_bounded_rekognition_calls(pipeline: Any) -> None:
    # Given 10 users x 20 photos arriving together (user after user, as a bulk upload does)
    stack = pipeline("synthetic")
    users = [f"Bulk{u:02d}" for u in range(10)]
    keys = []
    with counting_calls(stack) as calls:
        for user in users:
            for i in range(20):
                key = f"enroll/{user}/{i:02d}.jpg"
                upload(stack, key, photo(user, i))
                keys.append(key)
        snapshot = settle(stack, keys)

    # Then every photo is ACTIVE and every user holds its 20 faces
    assert Counter(p["status"] for p in snapshot.photos) == Counter({"ACTIVE": 200})
    by_id = snapshot.users_by_id()
    assert {u: (by_id[u]["status"], by_id[u]["face_count"]) for u in users} == {
        u: ("ACTIVE", 20) for u in users
    }
    # And Rekognition saw exactly one IndexFaces per photo ...
    counts = operation_counts(calls)
    assert counts["IndexFaces"] == 200
    # ... at most 2 AssociateFaces per user and associate poller (the 100-message, 5 s batch
    # window can split one user's burst across two batches, and the associate function handles
    # up to its MaximumConcurrency batches at once, each gathering its own) ...
    associate_per_user = Counter(p["UserId"] for op, p in calls if op == "AssociateFaces")
    assert set(associate_per_user) == set(users)
    concurrency = stack.config.associate_max_concurrency
    assert max(associate_per_user.values()) <= 2 * concurrency, associate_per_user
    # ... and bounded status checks: one execution per AssociateFaces batch; each checks at
    # once (user UPDATING for 0.3 s), then again after the first 1 s wait, when it is ACTIVE;
    # a second association during a check can cost one more. So <= 2 per execution + 1 per
    # extra association, i.e. <= 5 for two batches, whatever the collection size.
    face_owner = {f["FaceId"]: f["UserId"] for f in list_faces(stack)}
    checks = Counter(face_owner[p["FaceId"]] for op, p in calls if op == "SearchUsers")
    for user in users:
        bound = 2 * associate_per_user[user] + (associate_per_user[user] - 1)
        assert 1 <= checks[user] <= bound, (user, checks[user], bound)
    assert counts["ListUsers"] == 0


@pytest.mark.slow
@pytest.mark.realengine
def test_edge_files_get_the_right_outcome(pipeline: Any, shared_data: Path) -> None:
    # Given every file of faces_edge under its own user, with the hybrid engine (real files go
    # to the dlib detector) and one synthetic photo alongside
    stack = pipeline("hybrid")
    edge = shared_data / "faces_edge"
    keys = {}
    for path in sorted(edge.iterdir()):
        if path.name == "MANIFEST.tsv":
            continue
        key = f"enroll/Edge_{path.stem}/{path.name}"
        upload(stack, key, path.read_bytes())
        keys[path.name] = key
    upload(stack, "enroll/Synthetic/1.jpg", photo("Synthetic", 1))
    snapshot = settle(stack, [*keys.values(), "enroll/Synthetic/1.jpg"])

    # Then formats and face counts decide deterministic outcomes ...
    expected = {
        "not_an_image_csv.jpg": ("REJECTED", "INVALID_IMAGE_FORMAT"),
        "corrupted.png": ("REJECTED", "INVALID_IMAGE_FORMAT"),
        "webp_named_jpg.jpg": ("REJECTED", "INVALID_IMAGE_FORMAT"),
        "einstein.gif": ("REJECTED", "INVALID_IMAGE_FORMAT"),
        "group_couple.jpg": ("REJECTED", "MULTIPLE_FACES"),
        "blank_white.png": ("REJECTED", "NO_FACE"),
        "no_face_dogs.jpg": ("REJECTED", "NO_FACE"),
        "rgba_32bit.png": ("ACTIVE", None),
        # crowds whose faces are all too small are still group photos, not "small box"
        "group_8_faces.jpg": ("REJECTED", "MULTIPLE_FACES"),
        "small_faces_7x37px.jpg": ("REJECTED", "MULTIPLE_FACES"),
        # one person, awkward but usable: turned head, sunglasses
        "profile_right.jpeg": ("ACTIVE", None),
        "sunglasses.jpeg": ("ACTIVE", None),
    }
    for name, outcome in expected.items():
        item = only_item(snapshot, keys[name])
        assert (item["status"], item.get("reason")) == outcome, (name, item)
    # ... the very dark portrait sits at the AUTO brightness bar: enrolled, or refused for it
    dark = only_item(snapshot, keys["dark.jpeg"])
    dark_outcome = (dark["status"], dark.get("reason"))
    assert dark_outcome in {("ACTIVE", None), ("REJECTED", "LOW_BRIGHTNESS")}, dark
    # ... and nothing in the folder is left without an outcome
    assert set(keys) == {*expected, "dark.jpeg"}, sorted(set(keys) - {*expected, "dark.jpeg"})
    assert only_item(snapshot, "enroll/Synthetic/1.jpg")["status"] == "ACTIVE"
    assert_no_orphan_faces(stack, snapshot)


@pytest.mark.slow
@pytest.mark.realengine
def test_real_engine_enrolls_people_and_finds_them(pipeline: Any, shared_data: Path) -> None:
    # Given Daniel's seed photos and two identities of the photo set, with the real engine
    stack = pipeline("dlib")
    people = {
        "Daniel": sorted((shared_data / "seed_media" / "aws_dani").glob("*.jpg"))[:4],
        "Colin_Powell": sorted((shared_data / "faces" / "lfw_Colin_Powell").glob("*.jpg"))[:3],
        "Angelina_Jolie": sorted((shared_data / "faces" / "angelina_jolie").glob("*.jpg"))[:3],
    }
    keys = []
    for user, paths in people.items():
        for path in paths:
            key = f"enroll/{user}/{path.name}"
            upload(stack, key, path.read_bytes())
            keys.append(key)
    snapshot = settle(stack, keys)

    # Then every person is ACTIVE with one face per photo (Daniel's dark selfies included, as
    # the AWS notebook they come from indexes them with QualityFilter AUTO), nothing orphaned
    by_id = snapshot.users_by_id()
    for user in ("Daniel", "Colin_Powell", "Angelina_Jolie"):
        photos = [p for p in snapshot.photos if p.get("user_id") == user]
        active = [p for p in photos if p["status"] == "ACTIVE"]
        assert by_id[user]["status"] == "ACTIVE", (user, by_id.get(user), photos)
        assert by_id[user]["face_count"] == len(active) == len(people[user]), (user, photos)
    assert_no_orphan_faces(stack, snapshot)
    # And a photo of Colin Powell that was not uploaded finds him first
    probe = sorted((shared_data / "faces" / "lfw_Colin_Powell").glob("*.jpg"))[-1]
    assert probe not in people["Colin_Powell"]
    matches = stack.clients.rekognition.search_users_by_image(
        CollectionId=stack.endpoints.collection_id, Image={"Bytes": probe.read_bytes()}
    )["UserMatches"]
    assert matches and matches[0]["User"]["UserId"] == "Colin_Powell", matches
