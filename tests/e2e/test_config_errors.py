"""Bad configuration stops start-up with exit 2 and a message naming the key or path (issue 5).

Every key of config.yaml.example (THE schema) gets a value of the wrong type; unknown keys and sections,
impossible values, a missing or wrong watched folder and unwritable log / state / spool / health
directories are each tried through the real CLI (`check` and `sync --once`, as subprocesses). Config
errors are found before anything talks to Keboola, so most of these tests need no emulator.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from support.emulator import free_port

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = yaml.safe_load((REPO / "config.yaml.example").read_text())


def example_keys() -> list[tuple[str, str, Any]]:
    return [(section, key, value) for section, keys in EXAMPLE.items() for key, value in keys.items()]


def wrong_type(value: Any) -> Any:
    """A value of another YAML type than the documented default."""
    if isinstance(value, bool):
        return "sometimes"
    if isinstance(value, int | float):
        return "a lot"
    if isinstance(value, list):
        return "*.csv"
    return [1, 2]  # text and paths


class Project:
    """A config.yaml with every path in a tmp dir, and the CLI run on it like a user does."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.watch = tmp / "watched"
        self.watch.mkdir()
        (self.watch / "sales").mkdir()
        self.config_path = tmp / "config.yaml"
        self.base: dict[str, dict[str, Any]] = {
            # Nothing listens there: config errors must be reported before Keboola is contacted.
            "keboola": {"url": f"http://127.0.0.1:{free_port()}", "request_timeout_seconds": 2},
            "watch": {"path": str(self.watch)},
            "state": {"path": str(tmp / "state" / "state.db")},
            "upload": {"spool_dir": str(tmp / "spool")},
            "daemon": {"health_file": str(tmp / "state" / "health.json")},
            "logging": {"file": str(tmp / "logs" / "keboola-sync.log"), "console": False},
            "retry": {"max_attempts": 1, "initial_backoff_seconds": 0.05, "max_backoff_seconds": 0.1},
        }

    def write(self, overrides: dict[str, Any] | None = None, raw: str | None = None) -> None:
        config = {section: dict(values) for section, values in self.base.items()}
        for section, values in (overrides or {}).items():
            if isinstance(values, dict) and isinstance(config.get(section), dict):
                config[section].update(values)
            else:
                config[section] = values
        self.config_path.write_text(raw if raw is not None else yaml.safe_dump(config, allow_unicode=True))
        self.config_path.chmod(0o600)

    def main(
        self, *args: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
    ) -> subprocess.CompletedProcess[str]:
        """The CLI's own entry point in this process: config errors are found before any heavy import,
        so the per-key matrix runs in milliseconds (the subprocess tests below prove the real process)."""
        from keboola_sync.cli import main

        for name in ("KBC_STORAGE_API_TOKEN", "KBC_STORAGE_API_HOST"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("KBC_STORAGE_API_TOKEN", "tok-config-tests-1234")
        capsys.readouterr()
        code = main(["--config", str(self.config_path), "--env-file", str(self.tmp / "no.env"), *args])
        out = capsys.readouterr()
        return subprocess.CompletedProcess(args, code, out.out, out.err)

    def run(
        self, *args: str, env: dict[str, str] | None = None, config: Path | None = None
    ) -> subprocess.CompletedProcess[str]:
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KBC_")}
        environ["KBC_STORAGE_API_TOKEN"] = "tok-config-tests-1234"
        environ.update(env or {})
        command = [
            sys.executable,
            "-m",
            "keboola_sync",
            "--config",
            str(config or self.config_path),
            "--env-file",
            str(self.tmp / "no.env"),
            *args,
        ]
        return subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60, check=False)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


def assert_exit_2(result: subprocess.CompletedProcess[str], *parts: str) -> str:
    text = result.stdout + result.stderr
    assert result.returncode == 2, (result.returncode, text)
    for part in parts:
        assert part in text, f"{part!r} missing from:\n{text}"
    assert "Traceback" not in text, text
    return text


# --- every key with a wrong type ------------------------------------------------------------------------


@pytest.mark.parametrize(("section", "key", "default"), example_keys(), ids=[f"{s}.{k}" for s, k, _ in example_keys()])
def test_every_key_with_a_wrong_type_stops_start_up(
    project: Project, section: str, key: str, default: Any, capsys, monkeypatch
):
    project.write({section: {key: wrong_type(default)}})
    for command in (("check",), ("sync", "--once")):
        text = assert_exit_2(
            project.main(*command, capsys=capsys, monkeypatch=monkeypatch), f"{section}.{key}", "must be"
        )
        assert "configuration error" in text


def test_the_schema_has_every_documented_section():
    assert set(EXAMPLE) >= {"keboola", "watch", "upload", "state", "logging"}
    assert len(example_keys()) >= 30


@pytest.mark.parametrize(
    ("override", "named"),
    [
        ({"watch": {"stable_seconds": "2"}}, "watch.stable_seconds"),  # a quoted number is text
        ({"logging": {"max_bytes": 1.5e8}}, "logging.max_bytes"),  # a float for a whole number
        ({"logging": {"console": "yes"}}, "logging.console"),
        ({"watch": {"csv_extensions": [".csv", 5]}}, "watch.csv_extensions"),
        ({"watch": "/data"}, "watch"),  # a section that is not a mapping
    ],
)
def test_wrong_types_stop_the_real_process(project: Project, override: dict[str, Any], named: str):
    project.write(override)
    assert_exit_2(project.run("sync", "--once"), named)


# --- unknown keys, impossible values ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("override", "named", "hint"),
    [
        ({"watch": {"pathh": "/data"}}, "watch.pathh", "Allowed keys in watch: path"),
        ({"kebola": {"url": "https://connection.keboola.com"}}, "kebola", "Allowed sections: keboola"),
        ({"keboola": {"token": "tok-in-the-wrong-place-9876"}}, "keboola.token", "put KBC_STORAGE_API_TOKEN in .env"),
        ({"watch": {"stable_seconds": -1}}, "watch.stable_seconds", "must be"),
        ({"watch": {"observer": "magic"}}, "watch.observer", "must be"),
        ({"logging": {"level": "LOUD"}}, "logging.level", "must be"),
        ({"logging": {"format": "xml"}}, "logging.format", "must be"),
        ({"logging": {"backup_count": 0}}, "logging.backup_count", "would never rotate"),
        ({"upload": {"gzip_level": 12}}, "upload.gzip_level", "from 0 to 9"),
        ({"upload": {"multipart_chunk_mb": 1}}, "upload.multipart_chunk_mb", "at least 5 MB"),
        ({"keboola": {"url": "ftp://example.com"}}, "keboola.url", "must be"),
        ({"keboola": {"stage": "sys"}}, "keboola.stage", "must be"),
        ({"mapping": {"on_invalid_name": "ignore"}}, "mapping.on_invalid_name", "sanitize"),
        ({"csv": {"on_header_change": "merge"}}, "csv.on_header_change", "skip"),
        ({"csv": {"delimiters": ""}}, "csv.delimiters", "must be"),
        ({"retry": {"initial_backoff_seconds": 5, "max_backoff_seconds": 1}}, "retry.max_backoff_seconds", ">="),
        (
            {"daemon": {"heartbeat_seconds": 60, "health_max_age_seconds": 30}},
            "daemon.health_max_age_seconds",
            "always looks unhealthy",
        ),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v and " " not in v else None,
)
def test_unknown_keys_and_impossible_values(
    project: Project, override: dict[str, Any], named: str, hint: str, capsys, monkeypatch
):
    project.write(override)
    for command in (("check",), ("sync", "--once")):
        text = assert_exit_2(project.main(*command, capsys=capsys, monkeypatch=monkeypatch), named, hint)
        assert "tok-in-the-wrong-place-9876" not in text  # a token pasted into config.yaml is never echoed


# --- mistakes YAML or a number would otherwise let through (issue 12 item 16) ------------------------------


def test_a_second_watch_section_is_refused_instead_of_dropping_watch_path(project: Project):
    """YAML keeps the last of two equal keys: the second `watch:` would silently drop watch.path, and the
    daemon would watch /data."""
    base = yaml.safe_dump(project.base)
    project.write(raw=base + "watch:\n  stable_seconds: 1\n")
    text = assert_exit_2(project.run("sync", "--once"), "watch: written twice in", str(project.config_path))
    assert "Keep one watch:" in text


def test_a_key_written_twice_in_a_section_is_refused(project: Project):
    project.write(raw=yaml.safe_dump(project.base).replace("  console: false\n", "  console: false\n  console: true\n"))
    assert_exit_2(project.run("check"), "logging.console: written twice in")


@pytest.mark.parametrize(
    ("override", "named", "hint"),
    [
        ({"watch": {"stable_seconds": float("inf")}}, "watch.stable_seconds is .inf", "finite number"),
        ({"retry": {"failed_retry_seconds": float("nan")}}, "retry.failed_retry_seconds is .nan", "finite number"),
        # An endless or absurd timeout is named as itself, not reported later as an unreachable keboola.url.
        ({"keboola": {"request_timeout_seconds": float("inf")}}, "keboola.request_timeout_seconds", "finite"),
        ({"keboola": {"request_timeout_seconds": 1e12}}, "keboola.request_timeout_seconds", "at most 31536000"),
        ({"daemon": {"health_file": "STATE"}}, "daemon.health_file", "the same path as state.path"),
    ],
    ids=lambda v: v if isinstance(v, str) and "." in v and " " not in v else None,
)
def test_infinite_times_and_a_health_file_on_the_ledger_stop_start_up(
    project: Project, override: dict[str, Any], named: str, hint: str
):
    if override.get("daemon", {}).get("health_file") == "STATE":
        override = {"daemon": {"health_file": project.base["state"]["path"]}}
    project.write(override)
    text = assert_exit_2(project.run("sync", "--once"), named, hint)
    assert "keboola.url" not in text
    assert not (project.tmp / "state").exists()  # refused before anything was written


def test_a_number_in_exponent_form_is_a_number(project: Project):
    raw = yaml.safe_dump(project.base).replace("watch:\n", "watch:\n  stable_seconds: 1e-9\n  rescan_seconds: 3E2\n")
    project.write(raw=raw)
    result = project.run("status")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "not a number" not in result.stdout + result.stderr


def test_yaml_syntax_error_names_the_file_and_line(project: Project):
    project.write(raw="watch:\n  path: /data\n  stable_seconds: [1,\n")
    assert_exit_2(project.run("check"), str(project.config_path), "YAML syntax error", "line ")


def test_config_that_is_not_a_mapping(project: Project):
    project.write(raw="- watch\n- keboola\n")
    assert_exit_2(project.run("sync", "--once"), str(project.config_path), "must be a mapping")


def test_named_config_file_that_does_not_exist(project: Project):
    missing = project.tmp / "nope.yaml"
    assert_exit_2(project.run("check", config=missing), str(missing), "config file not found", "config.yaml.example")


def test_env_file_that_is_a_folder(project: Project):
    project.write()
    (project.tmp / "no.env").mkdir()
    assert_exit_2(project.run("check"), str(project.tmp / "no.env"), "is not a file")


def test_stack_url_variable_that_is_not_a_url(project: Project):
    project.write()
    assert_exit_2(
        project.run("check", env={"KBC_STORAGE_API_HOST": "ftp://connection.keboola.com"}),
        "KBC_STORAGE_API_HOST",
        "must be",
    )


# --- the folder and the directories the daemon writes to ------------------------------------------------


def test_missing_watched_folder(project: Project):
    missing = project.tmp / "not-there"
    project.write({"watch": {"path": str(missing)}})
    text = assert_exit_2(project.run("check"), "watch.path", str(missing), "does not exist")
    assert "FAIL" in text
    assert_exit_2(project.run("sync", "--once"), "watch.path", str(missing), "does not exist", "Create it")


def test_watched_folder_that_is_a_file(project: Project):
    a_file = project.tmp / "data.csv"
    a_file.write_text("id\n1\n")
    project.write({"watch": {"path": str(a_file)}})
    assert_exit_2(project.run("sync", "--once"), "watch.path", str(a_file), "is not a folder")


def blocked_dir(project: Project) -> Path:
    """A path under a regular file: no one can create it, not even root (the tests may run as root)."""
    blocker = project.tmp / "a-file"
    blocker.write_text("not a folder\n")
    return blocker / "sub"


@pytest.mark.parametrize(
    ("section", "key", "leaf"),
    [
        ("logging", "file", "keboola-sync.log"),
        ("state", "path", "state.db"),
        ("upload", "spool_dir", ""),
        ("daemon", "health_file", "health.json"),
    ],
)
def test_unwritable_directories_stop_start_up(project: Project, section: str, key: str, leaf: str, capsys, monkeypatch):
    path = blocked_dir(project) / leaf if leaf else blocked_dir(project)
    project.write({section: {key: str(path)}})
    check = assert_exit_2(
        project.main("check", capsys=capsys, monkeypatch=monkeypatch), f"{section}.{key}", str(blocked_dir(project))
    )
    assert f"FAIL {section}.{key}" in check, check
    if key != "health_file":  # `run`/`sync` write the heartbeat later and only warn if they cannot
        assert_exit_2(
            project.main("sync", "--once", capsys=capsys, monkeypatch=monkeypatch),
            f"{section}.{key}",
            "Point",
            "writable",
        )


def test_unwritable_log_directory_stops_the_real_process(project: Project):
    project.write({"logging": {"file": str(blocked_dir(project) / "keboola-sync.log")}})
    assert_exit_2(project.run("sync", "--once"), "logging.file", str(blocked_dir(project)), "writable")


@pytest.mark.parametrize(
    ("section", "key"), [("state", "path"), ("logging", "file"), ("upload", "spool_dir"), ("daemon", "health_file")]
)
def test_writing_inside_the_watched_folder_is_refused(project: Project, section: str, key: str):
    project.write({section: {key: str(project.watch / "sales" / "x.db")}})
    assert_exit_2(project.run("check"), f"{section}.{key}", "never writes into the watched folder")


def test_unreadable_watched_folder(project: Project):
    """The tests may run as root, which reads everything: `setpriv` drops the capabilities that ignore file
    modes, so the daemon meets the permission bits like any other user."""
    project.write()
    project.watch.chmod(0)
    try:
        command = [
            sys.executable,
            "-m",
            "keboola_sync",
            "--config",
            str(project.config_path),
            "--env-file",
            str(project.tmp / "no.env"),
            "sync",
            "--once",
        ]
        if os.geteuid() == 0:
            command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
        environ = {k: v for k, v in os.environ.items() if not k.startswith("KBC_")}
        environ["KBC_STORAGE_API_TOKEN"] = "tok-config-tests-1234"
        result = subprocess.run(command, env=environ, capture_output=True, text=True, timeout=60, check=False)
        assert_exit_2(result, "watch.path", str(project.watch), "cannot be read", "permissions")
    finally:
        project.watch.chmod(0o755)
