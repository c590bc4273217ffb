"""Helpers shared by the Docker tests (a module of its own: test files cannot import a conftest)."""

from __future__ import annotations

import contextlib
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
TESTS = REPO / "tests"
if str(TESTS) not in sys.path:  # `support.*` lives in tests/, like the other suites import it
    sys.path.insert(0, str(TESTS))

MAKE_BASE_IMAGE = REPO.parent / "shared" / "docker" / "make-base-image.sh"
IMAGE = "keboola-sync:test"
EMULATOR_IMAGE = "keboola-sync:test-emulator"  # the Dockerfile's `emulator` target
CONTAINER_UID = 10001  # the Dockerfile's `keboola` user


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI; on failure the test fails with its stderr."""
    proc = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    if check and proc.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} exited {proc.returncode}:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return proc


def report(request: pytest.FixtureRequest, line: str) -> None:
    """Print past pytest's capture: the image size and build time belong in the CI log."""
    capman = request.config.pluginmanager.getplugin("capturemanager")
    ctx = capman.global_and_fixture_disabled() if capman else contextlib.nullcontext()
    with ctx:
        sys.stderr.write(f"\n[docker] {line}\n")
        sys.stderr.flush()
