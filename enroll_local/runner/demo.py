"""``enroll demo``: start the local stack, enroll sample photos end to end, show what happened.

Exit status: 0 when every demo user is ACTIVE; 1 when a photo is still pending at the timeout or
a user did not become ACTIVE (the tables say which and why); 2 for bad arguments.
"""

from __future__ import annotations

import base64
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from enroll_cli.api_client import ApiClient, ApiError, ApiUnreachable
from enroll_cli.render import render
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
from enroll_local.runner.timing import run_timing

#: How often the demo reads the ledger while waiting (seconds).
LEDGER_POLL_SECONDS = 0.5
#: How often it prints a progress line while waiting (seconds).
PROGRESS_EVERY_SECONDS = 5.0
#: Matches printed for the search by image.
SEARCH_MAX_USERS = 3
#: SearchUsersByImage UserMatchThreshold for the demo search (percent); low on purpose, so the
#: table shows how far the other users are, not only the match.
SEARCH_THRESHOLD_PERCENT = 50.0


#: The demo's dashboard picture (``enroll dashboard`` draws the same from a running stack).
DEFAULT_DASHBOARD_OUT = Path(tempfile.gettempdir()) / "enroll-demo-dashboard.png"
#: Margin added to the demo's duration for the dashboard's time window (seconds).
DASHBOARD_WINDOW_MARGIN_S = 60


def _write_dashboard(stack: LocalStack, options: DemoOptions, started: float) -> None:
    """Draw the dashboard of this run and print where it is (a failure is reported, not raised:
    the demo's result is the tables above)."""
    if options.dashboard_out is None or stack.endpoints is None:
        return
    # Imported here: matplotlib is slow to import and only the picture needs it.
    from enroll_local.dashboard import run_dashboard

    window = time.monotonic() - started + DASHBOARD_WINDOW_MARGIN_S
    try:
        path = run_dashboard(stack.endpoints, options.dashboard_out, window)
    except Exception as error:  # a picture must never turn a good demo into a crash
        print(f"\nDashboard: not drawn ({error})", file=options.out)
        return
    print(f"\nDashboard: {path}", file=options.out)


@dataclass
class DemoOptions:
    """What ``enroll demo`` was asked to do."""

    photos_dir: Path | None = None
    engine: str = "dlib"
    timeout_seconds: float = 180.0
    out: TextIO = field(default_factory=lambda: sys.stdout)
    #: Extra handler environment (tests shorten the activation schedule, silence logs...).
    extra_environment: dict[str, str] = field(default_factory=dict)
    #: Where the dashboard picture is written at the end (None: not drawn).
    dashboard_out: Path | None = field(default_factory=lambda: DEFAULT_DASHBOARD_OUT)


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


def _search(api: ApiClient, probe: bytes, out: TextIO) -> list[dict[str, Any]]:
    """POST /search with ``probe`` on the local API; print the matches (or why there are none)."""
    try:
        response = api.search(
            {"image": base64.b64encode(probe).decode("ascii")},
            threshold=SEARCH_THRESHOLD_PERCENT,
            max_users=SEARCH_MAX_USERS,
        )
    except (ApiError, ApiUnreachable) as error:
        # The report above is the demo's result; a failed search must not hide it in a traceback.
        print(f"  the search failed: {error}", file=out)
        return []
    matches: list[dict[str, Any]] = response.get("matches", [])
    for match in matches:
        print(
            f"  {match['user_id']:<30} similarity {match['similarity']:6.2f}  "
            f"({match.get('user_status')})",
            file=out,
        )
    if not matches:
        print("  no user matched", file=out)
    return matches


def _api_tour(api: ApiClient, user_id: str, out: TextIO) -> None:
    """What the query API answers about the demo: the users, then one user's photos."""
    for title, command, call in (
        ("GET /users", "users", lambda: api.users()),
        (f"GET /users/{user_id}/photos", "photos", lambda: api.photos(user_id)),
    ):
        print(f"\n{title}", file=out)
        try:
            print(render(command, call()), file=out)
        except (ApiError, ApiUnreachable) as error:
            print(f"  failed: {error}", file=out)


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

    settings = LocalSettings(
        engine=options.engine, api_port=0, extra_environment=options.extra_environment
    )
    print(f"Starting the local stack (engine: {options.engine}) ...", file=out)
    started = time.monotonic()
    with LocalStack(settings) as stack:
        assert stack.endpoints is not None
        print(f"Local AWS endpoint: {stack.endpoints.endpoint_url}", file=out)
        assert stack.endpoints.api_url is not None
        print(f"Query API: {stack.endpoints.api_url}", file=out)
        api = ApiClient(stack.endpoints.api_url)
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
        assert stack.emulator is not None
        uploaded = set(keys)
        timing = run_timing(
            [p for p in snapshot.photos if p.get("key") in uploaded],
            stack.emulator.engine_seconds,
        )
        print(f"\nTiming\n{timing.describe()}", file=out)
        if pending:
            print(f"\nTimed out after {options.timeout_seconds:.0f} s; still pending:", file=out)
            for key in pending:
                print(f"  {key}", file=out)
            _write_dashboard(stack, options, started)
            return DemoResult(exit_code=1, snapshot=snapshot, pending=pending)

        print(f"\nThrough the query API ({stack.endpoints.api_url}):", file=out)
        # The user with the most uploads: the one whose photo outcomes say the most.
        busiest = max(users, key=lambda u: sum(p.user_id == u for p in photos))
        _api_tour(api, busiest, out)

        matches: list[dict[str, Any]] = []
        if options.photos_dir is None:
            print(
                "\nSearch by image (a photo of Eileen Collins that was not uploaded), "
                "POST /search:",
                file=out,
            )
            matches = _search(api, builtin_probe(), out)
        else:
            active = {str(p.get("key")) for p in snapshot.photos if p.get("status") == "ACTIVE"}
            probe = probe_from_uploads(photos, active, stack.endpoints.prefix)
            if probe is None:
                print("\nSearch by image: skipped, no photo became ACTIVE.", file=out)
            else:
                print(
                    f"\nSearch by image with {probe.key(stack.endpoints.prefix)} "
                    "(one of the uploaded photos, so its user should come first), POST /search:",
                    file=out,
                )
                matches = _search(api, probe.data, out)
        _write_dashboard(stack, options, started)

    by_id = snapshot.users_by_id()
    not_active = [u for u in users if by_id.get(u, {}).get("status") != "ACTIVE"]
    if not_active:
        print(f"\nNot ACTIVE: {', '.join(not_active)}", file=out)
        return DemoResult(exit_code=1, snapshot=snapshot, matches=matches)
    print(f"\nAll {len(users)} demo user(s) ACTIVE.", file=out)
    return DemoResult(exit_code=0, snapshot=snapshot, matches=matches)
