"""docker-compose.yml and docker-compose.local.yml, driven by the real docker-compose (v1, as in CI).

They run in a temporary copy of the project with a generated .env and no config.yaml, which is exactly
what a new user has: `up` with only .env filled in must work.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dockerutil import CONTAINER_UID, REPO, docker

from support.emulator import wait_for

# The first test of a session also starts the engine and builds the image (minutes on a cold machine),
# and pytest-timeout counts fixture setup: 300 s (pyproject) is too tight for that one.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

LOCAL = ("-f", "docker-compose.yml", "-f", "docker-compose.local.yml")
DEFAULT_SHUTDOWN = yaml.safe_load((REPO / "config.yaml.example").read_text())["daemon"]["shutdown_timeout_seconds"]


@dataclass
class Project:
    root: Path
    name: str
    env: dict[str, str]

    def compose(self, *args: str, check: bool = True, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            ["docker-compose", "--project-name", self.name, *args],
            cwd=self.root,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if check and proc.returncode != 0:
            pytest.fail(f"docker-compose {' '.join(args)} exited {proc.returncode}:\n{proc.stderr[-3000:]}")
        return proc


@pytest.fixture
def project(image: str, emulator_image: str, tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "keboola-sync"
    root.mkdir()
    for name in ("docker-compose.yml", "docker-compose.local.yml"):
        shutil.copy(REPO / name, root / name)
    env_text = (REPO / ".env.example").read_text(encoding="utf-8")
    (root / ".env").write_text(
        env_text.replace("KBC_STORAGE_API_TOKEN=", "KBC_STORAGE_API_TOKEN=not-used-locally"), encoding="utf-8"
    )
    (root / "logs").mkdir()
    os.chown(root / "logs", CONTAINER_UID, CONTAINER_UID)  # Docker Desktop maps this; a Linux engine does not
    # The local (emulator) setup watches ./demo-data, never WATCH_DIR: a demo file must not reach a real project.
    (root / "demo-data" / "sales").mkdir(parents=True)
    (root / "demo-data" / "sales" / "orders.csv").write_text("id,amount\n1,10\n2,20\n", encoding="utf-8")
    env = {**os.environ, "KEBOOLA_SYNC_IMAGE": image, "KEBOOLA_SYNC_EMULATOR_IMAGE": emulator_image}
    p = Project(root=root, name=f"kstest{uuid.uuid4().hex[:8]}", env=env)
    try:
        yield p
    finally:
        p.compose(*LOCAL, "down", "--volumes", "--timeout", "20", check=False)


def test_compose_config_accepts_the_files_and_says_what_issue_6_asks(project: Project) -> None:
    project.compose("config", "--quiet")
    project.compose(*LOCAL, "config", "--quiet")

    service = yaml.safe_load(project.compose("config").stdout)["services"]["keboola-sync"]
    volumes = {v.split(":")[1]: v for v in service["volumes"]}
    assert volumes["/data"] == f"{project.root}/data:/data:ro"
    assert volumes["/app/logs"].startswith(f"{project.root}/logs:")
    assert volumes["/config"] == f"{project.root}/config:/config:ro"  # never the project folder (.env)
    assert service["environment"]["TZ"] == ""  # from .env's TZ=, for log times in the user's zone
    assert service["logging"] == {"driver": "json-file", "options": {"max-size": "10m", "max-file": "3"}}
    assert volumes["/state"].startswith("state:")  # a named volume, not a host folder
    assert service["restart"] == "unless-stopped"
    assert service["healthcheck"]["test"] == ["CMD", "keboola-sync", "health"]
    grace = service["stop_grace_period"]
    assert grace.endswith("s") and int(grace[:-1]) > DEFAULT_SHUTDOWN
    assert service["environment"]["KBC_STORAGE_API_TOKEN"] == "not-used-locally"  # from env_file: .env

    # WATCH_DIR in .env moves the read-only mount.
    with (project.root / ".env").open("a", encoding="utf-8") as env:
        env.write("WATCH_DIR=/srv/csv\n")
    moved = yaml.safe_load(project.compose("config").stdout)["services"]["keboola-sync"]["volumes"]
    assert "/srv/csv:/data:ro" in moved
    local = yaml.safe_load(project.compose(*LOCAL, "config").stdout)["services"]
    assert [v for v in local["keboola-sync"]["volumes"] if v.split(":")[1] == "/data"] == [
        f"{project.root}/demo-data:/data:ro"
    ]
    # The emulator runs from the image's `emulator` target; the daemon stays on the runtime image.
    assert local["emulator"]["build"]["target"] == "emulator"
    assert local["emulator"]["image"] == project.env["KEBOOLA_SYNC_EMULATOR_IMAGE"]
    assert local["keboola-sync"]["image"] == project.env["KEBOOLA_SYNC_IMAGE"]


def test_compose_up_and_down_with_the_local_emulator_and_no_config_file(project: Project) -> None:
    assert not (project.root / "config.yaml").exists()

    project.compose(*LOCAL, "up", "--detach", "--no-build", timeout=240)

    def synced() -> bool:
        out = project.compose(*LOCAL, "exec", "-T", "keboola-sync", "keboola-sync", "status", "--json", check=False)
        rows = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
        return any(r["file"] == "sales/orders.csv" and r["state"] == "synced" and r["rows"] == 2 for r in rows)

    wait_for(synced, timeout=60, interval=0.5, message="sales/orders.csv synced into the emulator")
    preview = project.compose(
        *LOCAL,
        "exec",
        "-T",
        "emulator",
        "python",
        "-c",
        "from kbcstorage.client import Client; "
        "print(Client('http://127.0.0.1:8000', 'local-dev-token')"
        ".tables.preview('in.c-sales.orders'))",
    )
    assert preview.stdout.split() == ['"id","amount"', '"1","10"', '"2","20"'] or [
        line.replace('"', "") for line in preview.stdout.split()
    ] == ["id,amount", "1,10", "2,20"]
    assert (project.root / "logs" / "keboola-sync.log").stat().st_size > 0
    assert not (project.root / "config.yaml").exists()  # Docker created nothing in its place

    project.compose(*LOCAL, "down", "--volumes", "--timeout", "20")

    label = f"label=com.docker.compose.project={project.name}"
    assert docker("ps", "--all", "--quiet", "--filter", label).stdout.strip() == ""
    assert docker("volume", "ls", "--quiet", "--filter", label).stdout.strip() == ""
