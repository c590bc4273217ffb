"""`make demo` (scripts/demo.py) as a newcomer runs it: its own folder, a status command that works as
printed, a config it does not overwrite, and Ctrl-C that ends it with exit 0."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

from support.emulator import wait_for

REPO = Path(__file__).resolve().parents[2]


def two_free_ports() -> int:
    """A port P with P+1 also free (the demo's API and S3 ports)."""
    for _ in range(50):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        try:
            with socket.socket() as s:
                s.bind(("127.0.0.1", port + 1))
        except OSError:
            continue
        return int(port)
    raise AssertionError("no two adjacent free ports")


def start_demo(env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(REPO / "scripts" / "demo.py")],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def status_rows(work: Path) -> list[dict[str, object]]:
    """`make demo-status` without make: the same command the Makefile runs."""
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "keboola_sync",
            "--config",
            str(work / "config.yaml"),
            "--env-file",
            str(work / "none.env"),
            "status",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=30,
        env={k: v for k, v in os.environ.items() if not k.startswith("KBC_")},
    )
    return [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]


def interrupt(proc: subprocess.Popen[str]) -> tuple[int, str]:
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    return proc.returncode, out


def test_demo_uses_its_own_folder_keeps_its_config_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    data, work = tmp_path / "demo-data", tmp_path / "work"
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KBC_")},
        "DEMO_DATA": str(data),
        "DEMO_WORK": str(work),
        "DEMO_LOG": str(tmp_path / "demo.log"),
        "DEMO_PORT": str(two_free_ports()),
    }
    demo = start_demo(env)
    try:
        wait_for(
            lambda: any(r["file"] == "sales/orders.csv" and r["state"] == "synced" for r in status_rows(work)),
            timeout=60,
            interval=0.5,
            message="the demo's sample synced, as `make demo-status` shows",
        )
    finally:
        code, out = interrupt(demo)
    assert code == 0, out
    assert (data / "sales" / "orders.csv").is_file()
    assert "make demo-status" in out

    # The user's edit of the demo's config survives a restart (it used to be rewritten at every start).
    config = work / "config.yaml"
    edited = config.read_text(encoding="utf-8").replace("stable_seconds: 1", "stable_seconds: 1.5")
    config.write_text(edited, encoding="utf-8")
    health = work / "health.json"
    health.unlink()
    demo = start_demo(env)
    try:
        wait_for(health.exists, timeout=30, interval=0.2, message="the restarted demo's daemon wrote its heartbeat")
    finally:
        code, out = interrupt(demo)
    assert code == 0, out
    assert config.read_text(encoding="utf-8") == edited


def test_ctrl_c_during_start_up_exits_0(tmp_path: Path) -> None:
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("KBC_")},
        "DEMO_DATA": str(tmp_path / "demo-data"),
        "DEMO_WORK": str(tmp_path / "work"),
        "DEMO_LOG": str(tmp_path / "demo.log"),
        "DEMO_PORT": str(two_free_ports()),
    }
    demo = start_demo(env)
    wait_for(lambda: (tmp_path / "work" / "config.yaml").exists(), timeout=30, message="the demo began")
    code, out = interrupt(demo)
    assert code == 0, out
