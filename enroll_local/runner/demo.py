"""``enroll demo``: start the local stack, enroll sample photos end to end, show what happened.

Exit status: 0 when every demo user is ACTIVE; 1 when a photo is still pending at the timeout or
a user did not become ACTIVE (the tables say which and why); 2 for bad arguments.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from botocore.exceptions import BotoCoreError, ClientError

from enroll_local.runner.ledger_report import (
    LedgerSnapshot,
    photos_table,
    read_ledger,
    users_table,
)
from enroll_local.runner.samples import (
    SamplePhoto,
    builtin_probe,
    builtin_samples,
    probe_from_uploads,
    samples_from_dir,
)
from enroll_local.runner.stack import LocalSettings, LocalStack

#: How often the demo reads the ledger while waiting (seconds).
LEDGER_POLL_SECONDS = 0.5
#: How often it prints a progress line while waiting (seconds).
PROGRESS_EVERY_SECONDS = 5.0
#: Matches printed for the search by image.
SEARCH_MAX_USERS = 3
#: SearchUsersByImage UserMatchThreshold for the demo search (percent); low on purpose, so the
#: table shows how far the other users are, not only the match.
SEARCH_THRESHOLD_PERCENT = 50.0


@dataclass
class DemoOptions:
    """What ``enroll demo`` was asked to do."""

    photos_dir: Path | None = None
    engine: str = "dlib"
    timeout_seconds: float = 180.0
    out: TextIO = field(default_factory=lambda: sys.stdout)
    #: Extra handler environment (tests shorten the activation schedule, silence logs...).
    extra_environment: dict[str, str] = field(default_factory=dict)


@dataclass
class DemoResult:
    """What happened, for the exit status and for tests."""

    exit_code: int
    snapshot: LedgerSnapshot | None = None
    pending: list[str] = field(default_factory=list)
    matches: list[dict[str, Any]] = field(default_factory=list)


def _upload(stack: LocalStack, photos: list[SamplePhoto]) -> list[str]:
    assert stack.clients is not None and stack.endpoints is not None
    keys = []
    for photo in photos:
        key = photo.key(stack.endpoints.prefix)
        stack.clients.s3.put_object(Bucket=stack.endpoints.bucket, Key=key, Body=photo.data)
        keys.append(key)
    return keys


def wait_for_terminal_states(
    stack: LocalStack, keys: list[str], timeout_seconds: float, out: TextIO | None = None
) -> tuple[LedgerSnapshot, list[str]]:
    """Read the ledger until every key has a terminal photo state or the timeout passes.

    Returns the last snapshot and the keys still pending (empty on success).
    """
    assert stack.clients is not None and stack.endpoints is not None
    deadline = time.monotonic() + timeout_seconds
    next_progress = time.monotonic() + PROGRESS_EVERY_SECONDS
    while True:
        snapshot = read_ledger(stack.clients.dynamodb, stack.endpoints.table)
        pending = snapshot.pending_keys(keys)
        now = time.monotonic()
        if not pending or now >= deadline:
            return snapshot, pending
        if out is not None and now >= next_progress:
            print(f"  ... {len(keys) - len(pending)}/{len(keys)} photos settled", file=out)
            next_progress = now + PROGRESS_EVERY_SECONDS
        time.sleep(LEDGER_POLL_SECONDS)


def _search(stack: LocalStack, probe: bytes, out: TextIO) -> list[dict[str, Any]]:
    """SearchUsersByImage with ``probe``; print the matches (or why there are none)."""
    assert stack.clients is not None and stack.endpoints is not None
    try:
        response = stack.clients.rekognition.search_users_by_image(
            CollectionId=stack.endpoints.collection_id,
            Image={"Bytes": probe},
            MaxUsers=SEARCH_MAX_USERS,
            UserMatchThreshold=SEARCH_THRESHOLD_PERCENT,
        )
    except (ClientError, BotoCoreError) as error:
        # The report above is the demo's result; a failed search must not hide it in a traceback.
        print(f"  the search failed: {error}", file=out)
        return []
    matches: list[dict[str, Any]] = response.get("UserMatches", [])
    for match in matches:
        user = match["User"]
        print(
            f"  {user['UserId']:<30} similarity {match['Similarity']:6.2f}  ({user['UserStatus']})",
            file=out,
        )
    if not matches:
        print("  no user matched", file=out)
    return matches


def run_demo(options: DemoOptions) -> DemoResult:
    """Run the whole demo and print its report to ``options.out``."""
    out = options.out
    try:
        photos = (
            samples_from_dir(options.photos_dir)
            if options.photos_dir is not None
            else builtin_samples()
        )
    except ValueError as error:
        print(f"enroll demo: {error}", file=out)
        return DemoResult(exit_code=2)
    users = sorted({p.user_id for p in photos})

    settings = LocalSettings(engine=options.engine, extra_environment=options.extra_environment)
    print(f"Starting the local stack (engine: {options.engine}) ...", file=out)
    with LocalStack(settings) as stack:
        assert stack.endpoints is not None
        print(f"Local AWS endpoint: {stack.endpoints.endpoint_url}", file=out)
        keys = _upload(stack, photos)
        print(
            f"Uploaded {len(keys)} objects for {len(users)} user(s) to "
            f"s3://{stack.endpoints.bucket}/{stack.endpoints.prefix}",
            file=out,
        )
        snapshot, pending = wait_for_terminal_states(stack, keys, options.timeout_seconds, out)
        print("\nUsers", file=out)
        print(users_table(snapshot), file=out)
        print("\nPhotos", file=out)
        print(photos_table(snapshot), file=out)
        if pending:
            print(f"\nTimed out after {options.timeout_seconds:.0f} s; still pending:", file=out)
            for key in pending:
                print(f"  {key}", file=out)
            return DemoResult(exit_code=1, snapshot=snapshot, pending=pending)

        matches: list[dict[str, Any]] = []
        if options.photos_dir is None:
            print("\nSearch by image (a photo of Eileen Collins that was not uploaded):", file=out)
            matches = _search(stack, builtin_probe(), out)
        else:
            active = {str(p.get("key")) for p in snapshot.photos if p.get("status") == "ACTIVE"}
            probe = probe_from_uploads(photos, active, stack.endpoints.prefix)
            if probe is None:
                print("\nSearch by image: skipped, no photo became ACTIVE.", file=out)
            else:
                print(
                    f"\nSearch by image with {probe.key(stack.endpoints.prefix)} "
                    "(one of the uploaded photos, so its user should come first):",
                    file=out,
                )
                matches = _search(stack, probe.data, out)

    by_id = snapshot.users_by_id()
    not_active = [u for u in users if by_id.get(u, {}).get("status") != "ACTIVE"]
    if not_active:
        print(f"\nNot ACTIVE: {', '.join(not_active)}", file=out)
        return DemoResult(exit_code=1, snapshot=snapshot, matches=matches)
    print(f"\nAll {len(users)} demo user(s) ACTIVE.", file=out)
    return DemoResult(exit_code=0, snapshot=snapshot, matches=matches)
