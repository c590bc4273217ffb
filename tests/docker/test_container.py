"""The image built from this repository, run for real (issue 6).

A container is started the way docker-compose.yml starts it (read-only /data bind mount of a host folder,
logs and the config folder mounted, an env file), with `--network host` because CI's engine has no
default bridge, and pointed at an emulator the test starts on the host. Everything it proves is read back
from outside: tables through the real kbcstorage client, health through Docker's own healthcheck, the exit
code through `docker inspect`, the ledger with sqlite3 from the bind-mounted state folder.
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml
from dockerutil import CONTAINER_UID, REPO, docker, report

import keboola_sync
from support.emulator import Emulator, start_emulator, wait_for

# The first test of a session also starts the engine and builds the image (minutes on a cold machine),
# and pytest-timeout counts fixture setup: 300 s (pyproject) is too tight for that one.
pytestmark = [pytest.mark.docker, pytest.mark.timeout(900)]

SHUTDOWN_TIMEOUT_SECONDS = 10  # daemon.shutdown_timeout_seconds in the test config (< the grace period)

# Short intervals so a test takes seconds; every other key keeps the default the image ships with
# (/data, /state/state.db, /app/logs/keboola-sync.log, /state/health.json, /tmp/keboola-sync).
TEST_CONFIG = {
    "keboola": {"request_timeout_seconds": 5, "job_poll_max_seconds": 0.2},
    "watch": {"stable_seconds": 0.5, "rescan_seconds": 5, "polling_interval_seconds": 0.3},
    "retry": {"max_attempts": 2, "initial_backoff_seconds": 0.1, "max_backoff_seconds": 0.5, "failed_retry_seconds": 2},
    "daemon": {
        "heartbeat_seconds": 0.5,
        "health_max_age_seconds": 5,
        "keboola_max_silence_seconds": 3,
        "shutdown_timeout_seconds": SHUTDOWN_TIMEOUT_SECONDS,
        "startup_retry_max_seconds": 2,  # a start-up problem is looked at again (and its heartbeat kept fresh)
    },
    "logging": {"level": "DEBUG"},
}


def state_of(name: str) -> dict:
    return json.loads(docker("inspect", "--format", "{{json .State}}", name).stdout)


def health_of(name: str) -> str:
    health = state_of(name).get("Health") or {}
    return health.get("Status", "none")


def preview_rows(emulator: Emulator, table_id: str) -> list[dict[str, str]] | None:
    """The table's rows as the real client reads them; None while the table does not exist yet."""
    client = emulator.client()
    try:
        text = client.tables.preview(table_id)
    except Exception:  # kbcstorage raises HTTPError/RuntimeError for "not found"; the wait tries again
        return None
    return sorted(csv.DictReader(io.StringIO(text)), key=lambda row: row["id"])


def write_csv(path: Path, rows: list[tuple[str, str]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("id,amount\n" + "".join(f"{a},{b}\n" for a, b in rows), encoding="utf-8")


@dataclass
class Deployment:
    """One container and the host folders it sees, laid out like the compose project."""

    name: str
    emulator: Emulator
    data: Path
    logs: Path
    state: Path
    project: Path
    env_file: Path
    stop_grace_seconds: int = 0

    def exec(self, *args: str, user: str | None = None) -> subprocess.CompletedProcess[str]:
        return docker("exec", *(["--user", user] if user else []), self.name, *args, check=False)


def compose_like_run_args(d: Deployment, image: str) -> list[str]:
    """`docker run` flags read from the real docker-compose.yml (`docker-compose config` of a copy in
    d.project, with WATCH_DIR pointing at d.data), so the container starts as compose would start it.

    Deliberate differences, each for the test: the host network (CI's engine has no default bridge), /state
    bind-mounted from d.state instead of the named volume (so the test can open the ledger), a 1 s health
    interval instead of 30 s (the command is the image's, which equals compose's: see test_compose), and no
    restart policy (the exit code of the stop is what we check), and a 1 s start period instead of 60 s (a
    start-up problem must show as unhealthy within the test's patience).
    """
    shutil.copy(REPO / "docker-compose.yml", d.project / "docker-compose.yml")
    proc = subprocess.run(
        ["docker-compose", "--project-name", d.name, "config"],
        cwd=d.project,
        env={**os.environ, "KEBOOLA_SYNC_IMAGE": image},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 0, proc.stderr
    service = yaml.safe_load(proc.stdout)["services"]["keboola-sync"]
    grace = service["stop_grace_period"]
    assert grace.endswith("s"), grace
    d.stop_grace_seconds = int(grace[:-1])
    assert service["image"] == image
    volumes: list[str] = []
    for volume in service["volumes"]:
        target = volume.split(":")[1]
        volumes += ["--volume", f"{d.state}:{target}" if target == "/state" else volume]
    assert [v.split(":")[1] for v in volumes[1::2]] == ["/data", "/app/logs", "/config", "/state"], volumes
    return [
        "run",
        "--detach",
        "--name",
        d.name,
        "--network",
        "host",
        "--env-file",
        str(d.env_file),  # compose: env_file: .env
        *volumes,
        "--stop-timeout",
        str(d.stop_grace_seconds),
        "--health-interval",
        "1s",
        "--health-timeout",
        "5s",
        "--health-retries",
        "2",
        "--health-start-period",
        "1s",
        image,
    ]


def started(d: Deployment) -> bool:
    """True once the daemon wrote its heartbeat; fails at once (with its output) if the container died."""
    state = state_of(d.name)
    if not state["Running"]:
        out = docker("logs", "--tail", "40", d.name, check=False)
        pytest.fail(f"container {d.name} exited {state['ExitCode']} at start:\n{out.stdout}{out.stderr}")
    return (d.state / "health.json").exists()


def new_deployment(root: Path, emulator: Emulator, owner: int = CONTAINER_UID) -> Deployment:
    """Host folders laid out like the compose project; logs and state belong to `owner` on the host."""
    # The compose project folder holds config/config.yaml, .env and logs/; the watched folder and the state
    # folder live elsewhere on the host, as a user's WATCH_DIR and Docker's volume would.
    d = Deployment(
        name=f"keboola-sync-test-{uuid.uuid4().hex[:8]}",
        emulator=emulator,
        data=root / "data",
        logs=root / "project" / "logs",
        state=root / "state",
        project=root / "project",
        env_file=root / "project" / ".env",
    )
    for folder in (d.data, d.project, d.logs, d.state, d.project / "config"):
        folder.mkdir()
    for folder in (d.logs, d.state):
        os.chown(folder, owner, owner)
    # World-writable on the host: only the :ro mount can stop the container from writing into /data.
    d.data.chmod(0o777)
    config = d.project / "config" / "config.yaml"
    config.write_text(yaml.safe_dump(TEST_CONFIG), encoding="utf-8")
    # Private to its owner, as a careful user keeps it: the daemon runs as that owner, so it can read it.
    os.chown(config, owner, owner)
    config.chmod(0o600)
    env = {**emulator.env(), "WATCH_DIR": str(d.data)}
    d.env_file.write_text("".join(f"{k}={v}\n" for k, v in env.items()), encoding="utf-8")
    d.env_file.chmod(0o600)
    return d


def remove(d: Deployment) -> None:
    logs = docker("logs", "--tail", "60", d.name, check=False)
    sys.stderr.write(f"\n--- last container output ({d.name}) ---\n{logs.stdout}{logs.stderr}\n")
    docker("rm", "--force", d.name, check=False)


@pytest.fixture(scope="module")
def deployment(image: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    emulator = start_emulator()
    d = new_deployment(tmp_path_factory.mktemp("deploy"), emulator)
    try:
        docker(*compose_like_run_args(d, image))
        wait_for(lambda: started(d), timeout=30, message=f"{d.name} to write its first heartbeat")
        yield d
    finally:
        remove(d)
        emulator.close()


def daemon_uids(d: Deployment) -> list[str]:
    """The uid of every keboola-sync process in the container, and of PID 1 (tini), last.

    Not Docker's healthcheck probe (`keboola-sync health`, every second here): Docker starts it with
    `docker exec`, outside the entrypoint, as the image's user (root), and it only reads the heartbeat."""
    return d.exec(
        "sh",
        "-c",
        "for p in /proc/[0-9]*; do "
        "grep -qa keboola-sync $p/cmdline 2>/dev/null && grep -qav entrypoint $p/cmdline "
        "&& ! tr '\\0' ' ' < $p/cmdline 2>/dev/null | grep -q 'keboola-sync health' "
        "&& awk '/^Uid:/{print $2}' $p/status; "
        "done; awk '/^Uid:/{print $2}' /proc/1/status",
    ).stdout.split()


def test_hadolint_passes_on_the_dockerfile() -> None:
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    proc = subprocess.run([hadolint, str(REPO / "Dockerfile")], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_image_is_built_as_issue_6_asks(image: str) -> None:
    config = json.loads(docker("image", "inspect", "--format", "{{json .Config}}", image).stdout)
    assert config.get("User", "") == ""  # the entrypoint chooses it: test_daemon_runs_as_the_owner_of_the_logs...
    assert config["Entrypoint"] == ["/usr/local/bin/keboola-sync-entrypoint"]
    assert config["Cmd"] == ["keboola-sync", "run"]
    assert config["StopSignal"] == "SIGTERM"
    assert config["WorkingDir"] == "/app"
    assert config["Healthcheck"]["Test"] == ["CMD", "keboola-sync", "health"]
    # The label must follow the package: a stale default VERSION in the Dockerfile fails here.
    assert config["Labels"]["org.opencontainers.image.version"] == keboola_sync.__version__
    version = docker("run", "--rm", image, "keboola-sync", "--version")
    assert version.stdout.strip() == f"keboola-sync {keboola_sync.__version__}"
    # Final stage: no compiler, no pip cache, no build directory, no pip inside the app's venv.
    leftovers = docker(
        "run",
        "--rm",
        "--user",
        "0",
        image,
        "sh",
        "-c",
        "for t in gcc cc make; do command -v $t; done; "
        "ls -d /root/.cache/pip /app/.cache /build /opt/venv/bin/pip 2>/dev/null; true",
    )
    assert leftovers.stdout.strip() == ""


EMULATOR_ONLY = ("moto", "flask", "flask_cors", "werkzeug", "jinja2", "xmltodict", "py_partiql_parser")


def test_the_runtime_image_leaves_the_emulator_extra_out(image: str, emulator_image: str) -> None:
    """The daemon's image has none of the emulator's packages (issue 15 item 7); the `emulator` target has them
    all and starts the emulator, and its daemon still works."""
    probe = f"import importlib.util as u; print(' '.join(m for m in {EMULATOR_ONLY!r} if u.find_spec(m)))"
    assert docker("run", "--rm", image, "python", "-c", probe).stdout.strip() == ""
    assert docker("run", "--rm", emulator_image, "python", "-c", probe).stdout.split() == list(EMULATOR_ONLY)
    assert docker("run", "--rm", emulator_image, "keboola-emulator", "--help").stdout.startswith("usage:")
    assert docker("run", "--rm", emulator_image, "keboola-sync", "--version").returncode == 0
    # Without the extra, the emulator says what to install instead of a traceback.
    missing = docker("run", "--rm", image, "keboola-emulator", "--port", "0", check=False)
    assert missing.returncode == 2 and "pip install 'keboola-sync[emulator]'" in missing.stderr, missing.stderr


def test_image_builds_with_tini_on_a_base_that_lacks_it(image: str) -> None:
    """The official python:3.12-slim has no tini, CI's stand-in has it: derive a tini-less base from the
    stand-in and build the unchanged Dockerfile's runtime stage on it (the builder stage comes from the
    cache), so the path a Mac user's build takes is one CI proves."""
    base, tag = "python:3.12-slim-without-tini", "keboola-sync:test-without-tini"
    helper = f"strip-tini-{uuid.uuid4().hex[:8]}"
    try:
        docker(
            "run",
            "--name",
            helper,
            "--network",
            "host",
            "--entrypoint",
            "sh",
            "python:3.12-slim",
            "-c",
            "dpkg --purge tini >/dev/null && ! test -e /usr/bin/tini",
        )
        docker("commit", helper, base)
        docker(
            "build", "--network", "host", "--build-arg", f"RUNTIME_IMAGE={base}", "--tag", tag, str(REPO), timeout=600
        )
        assert (
            docker("run", "--rm", "--entrypoint", "sh", base, "-c", "command -v tini || echo none").stdout.strip()
            == "none"
        )
        assert docker("run", "--rm", tag, "tini", "--version").stdout.startswith("tini version")
        assert docker("run", "--rm", tag, "keboola-sync", "--version").returncode == 0
    finally:
        docker("rm", "--force", helper, check=False)
        docker("rmi", "--force", tag, base, check=False)


def test_container_creates_bucket_and_table_for_a_folder_on_the_host(deployment: Deployment) -> None:
    write_csv(deployment.data / "sales" / "orders.csv", [("1", "10"), ("2", "20")])

    rows = wait_for(lambda: preview_rows(deployment.emulator, "in.c-sales.orders"), timeout=30)

    assert rows == [{"id": "1", "amount": "10"}, {"id": "2", "amount": "20"}]
    bucket = deployment.emulator.client().buckets.detail("in.c-sales")
    assert bucket["id"] == "in.c-sales"


def test_container_reloads_the_table_when_the_host_file_changes(deployment: Deployment) -> None:
    path = deployment.data / "crm" / "contacts.csv"
    write_csv(path, [("1", "a")])
    wait_for(lambda: preview_rows(deployment.emulator, "in.c-crm.contacts") == [{"id": "1", "amount": "a"}], timeout=30)

    write_csv(path, [("1", "b"), ("2", "c"), ("3", "d")])

    expected = [{"id": "1", "amount": "b"}, {"id": "2", "amount": "c"}, {"id": "3", "amount": "d"}]
    wait_for(lambda: preview_rows(deployment.emulator, "in.c-crm.contacts") == expected, timeout=30)


def test_container_reports_healthy_through_dockers_healthcheck(deployment: Deployment) -> None:
    wait_for(lambda: health_of(deployment.name) == "healthy", timeout=30)
    probe = state_of(deployment.name)["Health"]["Log"][-1]
    assert probe["ExitCode"] == 0 and probe["Output"].startswith("ok"), probe


def test_process_runs_as_the_non_root_user_and_cannot_write_to_data(deployment: Deployment) -> None:
    # The daemon process itself and tini (PID 1) run as the owner of the logs folder: here `keboola`.
    uids = daemon_uids(deployment)
    assert len(uids) >= 2 and set(uids) == {str(CONTAINER_UID)}, uids

    before = sorted(p.relative_to(deployment.data) for p in deployment.data.rglob("*"))
    as_user = deployment.exec("touch", "/data/written-by-container", user=str(CONTAINER_UID))
    as_root = deployment.exec("touch", "/data/written-by-root", user="0")

    assert as_user.returncode != 0 and "Read-only file system" in as_user.stderr
    assert as_root.returncode != 0 and "Read-only file system" in as_root.stderr  # the mount, not permissions
    assert sorted(p.relative_to(deployment.data) for p in deployment.data.rglob("*")) == before


def test_daemon_runs_as_the_owner_of_the_logs_folder_and_reads_its_private_config(
    image: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """A Linux engine (or Colima) maps no ownership: ./logs belongs to whoever cloned the project (here uid
    1234), and a careful user keeps config.yaml at mode 600. Both must just work."""
    emulator = start_emulator()
    d = new_deployment(tmp_path_factory.mktemp("deploy-uid"), emulator, owner=1234)
    try:
        docker(*compose_like_run_args(d, image))
        wait_for(lambda: started(d), timeout=30, message=f"{d.name} to write its first heartbeat")
        log = d.logs / "keboola-sync.log"
        wait_for(log.exists, timeout=30, message="the log file on the host")
        assert log.stat().st_uid == 1234
        assert set(daemon_uids(d)) == {"1234"}
        # TEST_CONFIG asks for DEBUG (the default is INFO): the private config.yaml was read.
        wait_for(lambda: " DEBUG " in log.read_text(encoding="utf-8"), timeout=30, message="DEBUG lines")
    finally:
        remove(d)
        emulator.close()


def test_a_start_up_problem_leaves_the_container_up_and_unhealthy_not_restarting(
    image: str, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 15 item 1: with `restart: unless-stopped`, exit 2 at start-up was a crash loop. In a container
    the daemon now stays up, unhealthy, says the problem once, and starts by itself when it is fixed (here:
    the stack comes back)."""
    emulator = start_emulator()
    d = new_deployment(tmp_path_factory.mktemp("deploy-down"), emulator)
    write_csv(d.data / "late" / "t.csv", [("1", "x")])
    emulator.stop()
    try:
        args = compose_like_run_args(d, image)
        docker(*args[:1], "--restart", "unless-stopped", *args[1:])
        wait_for(lambda: health_of(d.name) == "unhealthy", timeout=60, message="unhealthy while the stack is down")
        probe = state_of(d.name)["Health"]["Log"][-1]
        assert "start-up problem" in probe["Output"], probe
        assert docker("inspect", "--format", "{{.RestartCount}}", d.name).stdout.strip() == "0"
        assert state_of(d.name)["Running"]
        logs = docker("logs", d.name, check=False)
        assert (logs.stdout + logs.stderr).count("keboola-sync stays up and unhealthy") == 1

        emulator.restart()
        rows = wait_for(lambda: preview_rows(emulator, "in.c-late.t"), timeout=90)
        assert rows == [{"id": "1", "amount": "x"}]
        wait_for(lambda: health_of(d.name) == "healthy", timeout=60)
        assert docker("inspect", "--format", "{{.RestartCount}}", d.name).stdout.strip() == "0"
    finally:
        remove(d)
        emulator.close()


def test_unhealthy_without_keboola_then_docker_stop_exits_0_with_a_consistent_ledger(
    deployment: Deployment, request: pytest.FixtureRequest
) -> None:
    # Runs last in this module: it stops the emulator and the container.
    write_csv(deployment.data / "last" / "table.csv", [("1", "x")])
    wait_for(lambda: preview_rows(deployment.emulator, "in.c-last.table") == [{"id": "1", "amount": "x"}], timeout=30)
    wait_for(lambda: health_of(deployment.name) == "healthy", timeout=30)

    deployment.emulator.stop()
    stopped_at = time.monotonic()

    wait_for(lambda: health_of(deployment.name) == "unhealthy", timeout=30)
    unhealthy_after = time.monotonic() - stopped_at
    probe = state_of(deployment.name)["Health"]["Log"][-1]
    assert probe["ExitCode"] == 1 and "Keboola" in probe["Output"], probe

    started = time.monotonic()
    grace = deployment.stop_grace_seconds
    docker("stop", "--time", str(grace), deployment.name, timeout=grace + 30)
    took = time.monotonic() - started

    final = state_of(deployment.name)
    assert final["ExitCode"] == 0 and not final["OOMKilled"], final
    assert took < grace, f"docker stop took {took:.1f} s: the daemon was killed, not stopped"
    report(
        request,
        f"unhealthy {unhealthy_after:.1f} s after Keboola went away (silence limit "
        f"{TEST_CONFIG['daemon']['keboola_max_silence_seconds']} s, 1 s health interval); "
        f"docker stop: exit 0 after {took:.1f} s (grace {grace} s)",
    )

    ledger = deployment.state / "state.db"
    with sqlite3.connect(f"file:{ledger}?mode=ro", uri=True) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    # The ledger agrees with the folder: every CSV loaded, read by the same `status` command a user runs.
    host_config = deployment.project / "host-status.yaml"
    host_config.write_text(
        yaml.safe_dump(
            {
                "watch": {"path": str(deployment.data)},
                "state": {"path": str(ledger)},
                "daemon": {"health_file": str(deployment.state / "health.json")},
                "logging": {"file": str(deployment.project / "status.log"), "console": False},
                "upload": {"spool_dir": str(deployment.project / "spool")},
            }
        ),
        encoding="utf-8",
    )
    status = subprocess.run(
        [
            str(Path(sys.executable).parent / "keboola-sync"),
            "--config",
            str(host_config),
            "--env-file",
            str(deployment.project / "no.env"),
            "status",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert status.returncode == 0, status.stderr
    rows = {row["file"]: row for row in map(json.loads, status.stdout.splitlines())}
    assert {f: r["state"] for f, r in rows.items()} == {
        "sales/orders.csv": "synced",
        "crm/contacts.csv": "synced",
        "last/table.csv": "synced",
    }
    assert rows["crm/contacts.csv"]["rows"] == 3

    log_text = (deployment.logs / "keboola-sync.log").read_text(encoding="utf-8")
    assert "stopped" in log_text.splitlines()[-1]
    assert deployment.emulator.token not in log_text
