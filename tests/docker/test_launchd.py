"""The native macOS alternative: deploy/macos/install.sh renders a valid launchd plist and a config.yaml
the daemon accepts. (launchctl itself exists only on a Mac; what we can prove here is what it is fed.)"""

from __future__ import annotations

import plistlib
import subprocess
from pathlib import Path

import pytest
import yaml

from keboola_sync.config import load_config

REPO = Path(__file__).resolve().parents[2]
INSTALL = REPO / "deploy" / "macos" / "install.sh"
EXAMPLE_DEFAULTS = yaml.safe_load((REPO / "config.yaml.example").read_text(encoding="utf-8"))


def render(watch: Path, home: Path) -> tuple[dict, Path]:
    proc = subprocess.run(
        ["bash", str(INSTALL), "--render-only", "--watch", str(watch), "--home", str(home)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    plist_text, _, config_text = proc.stdout.partition("</plist>\n")
    config = home / "config.yaml"
    home.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text, encoding="utf-8")
    config.chmod(0o600)
    return plistlib.loads((plist_text + "</plist>\n").encode()), config


def test_rendered_plist_runs_the_daemon_with_the_users_config_and_env(tmp_path: Path) -> None:
    # Spaces, '&' and '<' are what a macOS path can hold; the XML must stay valid and the values intact.
    watch = tmp_path / "My CSVs & more"
    watch.mkdir()
    home = tmp_path / "Application Support" / "keboola <sync>"
    plist, _ = render(watch, home)

    assert plist["Label"] == "com.keboola.sync"
    assert plist["ProgramArguments"] == [
        f"{home}/venv/bin/keboola-sync",
        "--config",
        f"{home}/config.yaml",
        "--env-file",
        f"{home}/.env",
        "run",
    ]
    assert plist["RunAtLoad"] is True and plist["KeepAlive"] is True
    # launchd's SIGKILL must come after the daemon's own graceful-stop budget.
    assert plist["ExitTimeOut"] > EXAMPLE_DEFAULTS["daemon"]["shutdown_timeout_seconds"]
    assert "KBC_STORAGE_API_TOKEN" not in plist.get("EnvironmentVariables", {})


def test_rendered_config_is_accepted_and_keeps_everything_out_of_the_watched_folder(tmp_path: Path) -> None:
    watch = tmp_path / "KeboolaSync"
    watch.mkdir()
    home = tmp_path / "support dir"
    _, config_path = render(watch, home)

    config = load_config(config_path, None, environ={}, config_path_explicit=True)

    assert config.watch.path == watch
    assert config.state.path == home / "state.db"
    assert config.daemon.health_file == home / "health.json"
    assert config.upload.spool_dir == home / "spool"
    assert config.logging.file.name == "keboola-sync.log"
    for written in (config.state.path, config.daemon.health_file, config.upload.spool_dir, config.logging.file):
        assert watch not in written.parents


def test_install_refuses_to_run_outside_macos_with_a_clear_message(tmp_path: Path) -> None:
    proc = subprocess.run(
        ["bash", str(INSTALL), "--watch", str(tmp_path), "--home", str(tmp_path / "h")],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if proc.returncode == 0:
        pytest.fail("install.sh must not install a launchd agent on a machine without launchd")
    assert proc.returncode == 2
    assert "macOS launchd agent" in proc.stderr and "docker compose" in proc.stderr
    assert not (tmp_path / "h").exists()
