"""Fixtures for the container tests: a real Docker engine, the image built once per session from the repo.

The engine comes from ../shared/docker/make-base-image.sh (issue 6). If it cannot start, or the image does
not build, every Docker test FAILS with the reason: a machine without Docker must not look green.
"""

from __future__ import annotations

import subprocess
import time

import pytest
from dockerutil import EMULATOR_IMAGE, IMAGE, MAKE_BASE_IMAGE, REPO, docker, report


@pytest.fixture(scope="session")
def docker_engine(request: pytest.FixtureRequest) -> None:
    started = time.monotonic()
    try:
        proc = subprocess.run(["bash", str(MAKE_BASE_IMAGE)], capture_output=True, text=True, timeout=600)
    except (OSError, subprocess.TimeoutExpired) as exc:
        pytest.fail(f"{MAKE_BASE_IMAGE} could not run: {exc}. The Docker tests need a Docker engine.")
    if proc.returncode != 0:
        pytest.fail(
            f"{MAKE_BASE_IMAGE} exited {proc.returncode}; no Docker engine, so the Docker tests fail "
            f"(they never skip). Its output:\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
        )
    report(request, f"engine ready in {time.monotonic() - started:.1f} s ({proc.stdout.strip().splitlines()[-1]})")


@pytest.fixture(scope="session")
def image(docker_engine: None, request: pytest.FixtureRequest) -> str:
    """Build the image from the repository exactly as CI and a user would (no build args)."""
    started = time.monotonic()
    previous = docker("image", "inspect", "--format", "{{.Id}}", IMAGE, check=False).stdout.strip()
    proc = subprocess.run(
        ["docker", "build", "--network", "host", "--tag", IMAGE, str(REPO)], capture_output=True, text=True, timeout=900
    )
    if proc.returncode != 0:
        pytest.fail(f"docker build failed ({proc.returncode}):\n{proc.stdout[-4000:]}\n{proc.stderr[-4000:]}")
    # Every source change leaves the last test image and builder stage behind (~650 MB); drop them, keep
    # the cached dependency layer so the next build stays fast.
    current = docker("image", "inspect", "--format", "{{.Id}}", IMAGE).stdout.strip()
    if previous and previous != current:
        docker("rmi", previous, check=False)
    docker(
        "build",
        "--network",
        "host",
        "--quiet",
        "--target",
        "builder",
        "--tag",
        f"{IMAGE}-builder",
        str(REPO),
        timeout=300,
    )  # all from cache; the tag keeps the current builder out of the prune below
    docker("image", "prune", "--force", "--filter", "label=keboola-sync.stage=builder", check=False)
    size = int(docker("image", "inspect", "--format", "{{.Size}}", IMAGE).stdout.strip())
    base = int(docker("image", "inspect", "--format", "{{.Size}}", "python:3.12-slim").stdout.strip())
    report(
        request,
        f"image {IMAGE} built in {time.monotonic() - started:.1f} s: {size / 1e6:.0f} MB "
        f"({(size - base) / 1e6:.0f} MB on top of the {base / 1e6:.0f} MB base image)",
    )
    return IMAGE


@pytest.fixture(scope="session")
def emulator_image(image: str, request: pytest.FixtureRequest) -> str:
    """The Dockerfile's `emulator` target (the runtime image plus the emulator extra), as
    docker-compose.local.yml builds it; the runtime stages come from the cache."""
    started = time.monotonic()
    previous = docker("image", "inspect", "--format", "{{.Id}}", EMULATOR_IMAGE, check=False).stdout.strip()
    docker("build", "--network", "host", "--target", "emulator", "--tag", EMULATOR_IMAGE, str(REPO), timeout=900)
    current = docker("image", "inspect", "--format", "{{.Id}}", EMULATOR_IMAGE).stdout.strip()
    if previous and previous != current:
        docker("rmi", previous, check=False)
    size = int(docker("image", "inspect", "--format", "{{.Size}}", EMULATOR_IMAGE).stdout.strip())
    runtime = int(docker("image", "inspect", "--format", "{{.Size}}", image).stdout.strip())
    report(
        request,
        f"image {EMULATOR_IMAGE} built in {time.monotonic() - started:.1f} s: {size / 1e6:.0f} MB "
        f"(the emulator extra adds {(size - runtime) / 1e6:.0f} MB to the runtime image)",
    )
    return EMULATOR_IMAGE
