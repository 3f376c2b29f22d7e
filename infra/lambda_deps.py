"""The functions' runtime dependencies: requirements.txt installed for Lambda's platform.

``make lambda-deps`` (``python -m infra.lambda_deps``) runs pip once, at install time, with
``--platform manylinux2014_<arch> --implementation cp --python-version <runtime>
--only-binary=:all:`` into ``build/lambda-deps``, and writes a stamp beside it recording what it
was built from (the sha256 of requirements.txt, the platform, the Python version). The CDK stack
bundles that folder plus ``functions/`` into every function's asset, without Docker, and refuses
to synthesize when the folder is missing or its stamp does not match: a deployed function runs
exactly the versions pinned in requirements.txt. Synthesis never downloads anything.

No ``aws_cdk`` import here: the Makefile runs this module before the CDK is needed.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .config import PipelineConfig

ROOT = Path(__file__).resolve().parent.parent
REQUIREMENTS = ROOT / "requirements.txt"
DEPS_DIR = ROOT / "build" / "lambda-deps"
STAMP_NAME = ".bundle-stamp.json"

# Lambda's Amazon Linux 2023 runtimes are glibc 2.34: manylinux2014 (glibc 2.17) wheels run there.
_PLATFORMS = {"arm64": "manylinux2014_aarch64", "x86_64": "manylinux2014_x86_64"}
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


class LambdaDepsError(RuntimeError):
    """The dependency bundle is missing or was built from other pins or for another platform."""


@dataclass(frozen=True)
class BundleTarget:
    """What the bundle must be built for: the pins' hash, the wheel platform, the Python version."""

    requirements_sha256: str
    platform: str
    python_version: str

    def as_stamp(self) -> dict[str, str]:
        """The stamp's JSON content."""
        return {
            "requirements_sha256": self.requirements_sha256,
            "platform": self.platform,
            "python_version": self.python_version,
        }


def bundle_target(config: PipelineConfig, requirements: Path = REQUIREMENTS) -> BundleTarget:
    """The target for the configured runtime (python3.12 -> 3.12) and architecture."""
    return BundleTarget(
        requirements_sha256=hashlib.sha256(requirements.read_bytes()).hexdigest(),
        platform=_PLATFORMS[config.lambda_architecture],
        python_version=config.lambda_runtime.removeprefix("python"),
    )


def pip_command(
    config: PipelineConfig, target_dir: Path, requirements: Path = REQUIREMENTS
) -> list[str]:
    """The pip invocation that installs requirements.txt for Lambda into ``target_dir``."""
    target = bundle_target(config, requirements)
    return [
        sys.executable,
        "-m",
        "pip",
        "install",
        "--quiet",
        "--disable-pip-version-check",
        "--platform",
        target.platform,
        "--implementation",
        "cp",
        "--python-version",
        target.python_version,
        "--only-binary=:all:",
        # No .pyc: they would be compiled by this machine's Python, not the runtime's.
        "--no-compile",
        "--target",
        str(target_dir),
        "-r",
        str(requirements),
    ]


def build(
    config: PipelineConfig, deps_dir: Path = DEPS_DIR, requirements: Path = REQUIREMENTS
) -> float:
    """Install the bundle afresh into ``deps_dir`` (network needed); returns the seconds taken.

    pip installs into a sibling folder that replaces ``deps_dir`` only when pip succeeded, and
    the stamp is written last, so a failed build never leaves a folder that looks valid.
    """
    started = time.monotonic()
    staging = deps_dir.with_name(deps_dir.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    subprocess.run(pip_command(config, staging, requirements), check=True)
    # Console scripts (bin/) are for a shell, never imported by a function.
    shutil.rmtree(staging / "bin", ignore_errors=True)
    shutil.rmtree(deps_dir, ignore_errors=True)
    staging.rename(deps_dir)
    stamp = bundle_target(config, requirements).as_stamp()
    (deps_dir / STAMP_NAME).write_text(json.dumps(stamp, indent=2) + "\n", encoding="utf-8")
    return time.monotonic() - started


def check(
    config: PipelineConfig, deps_dir: Path = DEPS_DIR, requirements: Path = REQUIREMENTS
) -> BundleTarget:
    """Raise LambdaDepsError unless ``deps_dir`` was built from these pins for this runtime."""
    stamp_path = deps_dir / STAMP_NAME
    rebuild = "run `make lambda-deps` (pip install for Lambda's platform into build/lambda-deps)"
    if not stamp_path.is_file():
        raise LambdaDepsError(f"the functions' dependency bundle {deps_dir} is missing: {rebuild}")
    expected = bundle_target(config, requirements)
    try:
        found = json.loads(stamp_path.read_text(encoding="utf-8"))
    except ValueError:
        found = {}
    if found != expected.as_stamp():
        raise LambdaDepsError(
            f"the functions' dependency bundle {deps_dir} is stale (built for {found}, "
            f"requirements.txt and the runtime need {expected.as_stamp()}): {rebuild}"
        )
    return expected


def canonical_name(name: str) -> str:
    """PEP 503 normalized name (``aws_lambda_powertools`` -> ``aws-lambda-powertools``)."""
    return re.sub(r"[-_.]+", "-", name).lower()


def pinned_requirements(requirements: Path = REQUIREMENTS) -> dict[str, str]:
    """``{name: version}`` of every ``name==version`` line of requirements.txt."""
    pins: dict[str, str] = {}
    for line in requirements.read_text(encoding="utf-8").splitlines():
        match = _PIN.match(line)
        if match:
            pins[canonical_name(match.group(1))] = match.group(3)
    return pins


def installed_distributions(deps_dir: Path) -> dict[str, str]:
    """``{name: version}`` of every distribution in a folder, read from its ``.dist-info``."""
    found: dict[str, str] = {}
    for metadata in sorted(deps_dir.glob("*.dist-info/METADATA")):
        headers: dict[str, str] = {}
        for line in metadata.read_text(encoding="utf-8", errors="replace").splitlines():
            if not line:
                break  # headers end at the first blank line; the description follows
            key, _, value = line.partition(":")
            headers.setdefault(key.strip(), value.strip())
        found[canonical_name(headers["Name"])] = headers["Version"]
    return found


def main(argv: list[str] | None = None) -> int:
    """``python -m infra.lambda_deps [--check]``: build the bundle, or only check it."""
    args = sys.argv[1:] if argv is None else argv
    config = PipelineConfig()
    if "--check" in args:
        try:
            check(config)
        except LambdaDepsError as error:
            print(error, file=sys.stderr)
            return 1
        return 0
    seconds = build(config)
    print(f"lambda deps: {DEPS_DIR.relative_to(ROOT)} built in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
