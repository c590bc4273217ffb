"""Nobody gets in who should not, and nothing leaks (issue 5, security).

* The token never appears anywhere the daemon writes or prints: a unique `tok-<uuid>` is served by its own
  emulator, the daemon is run through every command and made to fail in several ways, then every output
  is scanned byte for byte (all log files including rotated ones, stdout/stderr of every command, the
  ledger database and its journal, the health file, the spool directory).
* `.env` readable by others -> a warning (not `config.yaml`: it never holds the token).
* Symlinks never lead the daemon outside the watched folder.
* Nothing is written inside the watched folder (a full listing with sizes and mtimes, before and after).
* Nothing is executed through a shell.
"""

from __future__ import annotations

import ast
import json
import os
import signal
import subprocess
import uuid
from pathlib import Path

from support.daemon import Daemon, table_rows, wait_table
from support.emulator import IN, wait_for

REPO = Path(__file__).resolve().parents[2]
VALID = "id,name\n1,Alice\n2,Bob\n"
VALID_ROWS = [["id", "name"], ["1", "Alice"], ["2", "Bob"]]


def uid() -> str:
    return uuid.uuid4().hex[:8]


def files_under(root: Path) -> list[Path]:
    return sorted(p for p in root.rglob("*") if p.is_file() and not p.is_symlink())


def scan(token: str, outputs: dict[str, str | bytes], roots: list[Path], skip: set[Path]) -> list[str]:
    """Where the token (or its URL-encoded / JSON-escaped form) shows up; [] when nowhere."""
    needles = {token.encode(), token.encode("utf-16-le")}
    hits = [
        name
        for name, data in outputs.items()
        if any(n in (data.encode() if isinstance(data, str) else data) for n in needles)
    ]
    scanned = 0
    for root in roots:
        for path in files_under(root):
            if path in skip:
                continue
            scanned += 1
            data = path.read_bytes()
            if any(n in data for n in needles):
                hits.append(str(path))
    assert scanned >= 5, f"the scan looked at only {scanned} files under {roots}"
    return hits


def test_the_token_appears_in_no_output(daemon_factory, make_emulator):
    token = f"tok-{uuid.uuid4()}"
    emulator = make_emulator(token=token)
    folder = f"sec{uid()}"
    daemon = daemon_factory(
        {
            # Tiny log files so rotation happens and the rotated files are scanned too; DEBUG shows the most.
            "logging": {"level": "DEBUG", "max_bytes": 4096, "backup_count": 50, "console": True},
            "retry": {"max_attempts": 2, "failed_retry_seconds": 1},
        },
        emulator_=emulator,
    )
    env_file = daemon.tmp / "no.env"  # the path Daemon passes as --env-file
    env_file.write_text(f"KBC_STORAGE_API_TOKEN={token}\n")
    env_file.chmod(0o600)
    outputs: dict[str, str | bytes] = {}

    def run(
        name: str, *args: str, env: dict[str, str] | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        daemon.extra_env = env or {}
        try:
            result = daemon.run(*args, timeout=timeout)
        finally:
            daemon.extra_env = {}
        outputs[f"{name} stdout"] = result.stdout
        outputs[f"{name} stderr"] = result.stderr
        return result

    daemon.write(f"{folder}/good.csv", VALID)
    daemon.write(f"{folder}/latin1.csv", "id,city\n1,Zürich\n".encode("latin-1"))
    daemon.write(f"{folder}/ragged.csv", "id,name\n1,a,b\n")
    assert run("check", "check").returncode == 0
    assert run("sync bad file", "sync", "--once").returncode == 1
    assert table_rows(emulator, f"{IN}{folder}.good") == VALID_ROWS

    # Keboola answering 500 to everything, then dropping connections: failed loads, retries, error lines.
    daemon.write(f"{folder}/good.csv", "id,name\n3,Carol\n")
    daemon.config["logging"]["format"] = "json"  # from here on the log is JSON lines (values escaped differently)
    daemon.write_config(daemon.config)
    emulator.set_faults(fail_rate=1.0, paths=["files/prepare"])  # the token verifies, every upload gets a 5xx
    assert run("sync under 500s", "sync", "--once", timeout=120).returncode == 1
    assert "failed (attempt 1/2)" in daemon.log() and f"failed {folder}/good.csv" in daemon.log()
    emulator.set_faults(fail_rate=0.0, drop_rate=1.0, paths=[])
    assert run("check with dropped connections", "check", timeout=120).returncode == 2
    emulator.reset_faults()

    # Invalid variants of the token, which contain the real one: refused, and never echoed.
    for n, variant in enumerate((token + "x", token[:-1])):
        result = run(f"bad token {n}", "sync", "--once", env={"KBC_STORAGE_API_TOKEN": variant})
        assert result.returncode == 2, result.stderr
        assert "refused the token" in result.stdout + result.stderr
    env_file.write_text(f"KBC_STORAGE_API_TOKEN=' {token}0 '\n")
    assert run("bad token from .env", "check", env={"KBC_STORAGE_API_TOKEN": ""}).returncode == 2
    env_file.write_text(f"KBC_STORAGE_API_TOKEN={token}\n")

    # An exception path nobody planned for: the ledger is not a database any more.
    state_backup = daemon.state.read_bytes()
    daemon.state.write_bytes(b"this is not an SQLite database " * 100)
    for name in ("status", "sync"):
        result = run(f"{name} with a corrupt ledger", *(["status"] if name == "status" else ["sync", "--once"]))
        assert result.returncode != 0
    for suffix in ("-wal", "-shm", "-journal"):
        Path(str(daemon.state) + suffix).unlink(missing_ok=True)
    daemon.state.write_bytes(state_backup)

    # The daemon itself: loads, heartbeat, health, status beside it, graceful stop.
    daemon.start()
    wait_table(emulator, f"{IN}{folder}.good", [["id", "name"], ["3", "Carol"]], timeout=60)
    wait_for(daemon.health_file.exists, timeout=20, message="the health file")
    assert run("health", "health").returncode == 0
    assert run("status", "status").returncode == 0
    assert run("status json", "status", "--json").returncode == 0
    daemon.stop(signal.SIGTERM)

    outputs["daemon run output"] = daemon.output()
    rotated = list(daemon.log_file.parent.glob(daemon.log_file.name + ".*"))
    assert rotated, "the log never rotated, so rotated files were not scanned"
    hits = scan(token, outputs, [daemon.tmp], skip={env_file})
    assert hits == [], f"the token leaked into: {hits}"
    # The scan really looked where the token would be if it leaked: the ledger, health file, logs.
    assert daemon.state.exists() and daemon.health_file.exists()
    assert json.loads(daemon.health_file.read_text())["stopped"] is True


def test_a_readable_env_file_is_warned_about_and_config_yaml_is_not(daemon_factory):
    """.env holds the token; config.yaml never does (a container's daemon may need to read it as another uid)."""
    daemon = daemon_factory()
    env_file = daemon.tmp / "no.env"
    env_file.write_text("KBC_STORAGE_API_TOKEN=local-dev-token\n")
    env_file.chmod(0o644)
    daemon.config_path.chmod(0o644)
    daemon.write(f"perm{uid()}/a.csv", VALID)
    check = daemon.run("check")
    assert check.returncode == 0, check.stdout + check.stderr
    line = next(
        (ln for ln in check.stdout.splitlines() if str(env_file) in ln and "readable by other users" in ln), None
    )
    assert line is not None and line.startswith("warn") and f"chmod 600 {env_file}" in line, check.stdout
    assert str(daemon.config_path) not in "".join(ln for ln in check.stdout.splitlines() if "readable by" in ln)
    assert daemon.run("sync", "--once").returncode == 0
    warnings = [ln for ln in daemon.log().splitlines() if "WARNING" in ln and "readable by other users" in ln]
    assert len(warnings) == 1 and str(env_file) in warnings[0], warnings

    env_file.chmod(0o600)
    check = daemon.run("check")
    assert "readable by other users" not in check.stdout + check.stderr


def test_symlinks_never_lead_outside_the_watched_folder(daemon_factory, emulator, tmp_path):
    u = uid()
    folder, secret, relative, leak = f"link{u}", f"secret{u}", f"relative{u}", f"leak{u}"
    daemon = daemon_factory()
    outside = tmp_path / "outside"
    (outside / "secrets").mkdir(parents=True)
    (outside / "secret.csv").write_text("id,secret\n1,OUTSIDE-FILE-CONTENT\n")
    (outside / "secrets" / f"{leak}.csv").write_text("id,secret\n1,OUTSIDE-FOLDER-CONTENT\n")
    daemon.write(f"{folder}/good.csv", VALID)
    (daemon.watch / folder / f"{secret}.csv").symlink_to(outside / "secret.csv")
    (daemon.watch / folder / f"{relative}.csv").symlink_to(Path("..") / ".." / ".." / "outside" / "secret.csv")
    (daemon.watch / f"{folder}x").symlink_to(outside / "secrets", target_is_directory=True)  # a bucket-level link
    (daemon.watch / folder / "inner").symlink_to(outside / "secrets", target_is_directory=True)

    assert daemon.run("sync", "--once").returncode == 1
    assert table_rows(emulator, f"{IN}{folder}.good") == VALID_ROWS
    for name in (secret, relative):
        assert table_rows(emulator, f"{IN}{folder}.{name}") is None
        line = next(ln for ln in daemon.log().splitlines() if f"skipped {folder}/{name}.csv" in ln)
        assert "points outside the watched folder" in line and "Copy the file into the folder" in line
    assert table_rows(emulator, f"{IN}{folder}x.{leak}") is None
    assert not any(b["id"] == f"{IN}{folder}x" for b in emulator.client().buckets.list())
    # The outside content never reached Keboola's file storage (spool and upload names start with the table name).
    uploaded = [f["name"] for f in emulator.client().files.list(limit=1000)]
    assert not any(n.startswith((secret, relative, leak)) for n in uploaded), uploaded
    rows = {r["file"]: r for r in map(json.loads, daemon.run("status", "--json").stdout.splitlines())}
    assert rows[f"{folder}/{secret}.csv"]["state"] == "skipped"


def listing(root: Path) -> dict[str, tuple[str, int, int, int]]:
    """Every entry under root (not following links): kind, size, mtime_ns, mode."""
    out: dict[str, tuple[str, int, int, int]] = {}
    for dirpath, dirnames, filenames in os.walk(root, followlinks=False):
        for name in [*dirnames, *filenames, "."]:
            path = Path(dirpath) / name
            st = path.lstat()
            kind = "link" if path.is_symlink() else "dir" if path.is_dir() else "file"
            out[str(path.relative_to(root))] = (kind, st.st_size, st.st_mtime_ns, st.st_mode)
    return out


def test_nothing_is_written_inside_the_watched_folder(daemon_factory, emulator):
    folder = f"ro{uid()}"
    daemon = daemon_factory({"upload": {"gzip_threshold_mb": 0.001}})  # the gzip spool path too
    daemon.write(f"{folder}/good.csv", VALID * 50)
    daemon.write(f"{folder}/latin1.csv", "id,city\n1,Zürich\n".encode("latin-1"))
    daemon.write(f"{folder}/notes.txt", "not a table")
    daemon.write("root.csv", VALID)
    (daemon.watch / f"{folder}/link.csv").symlink_to("good.csv")
    (daemon.watch / "empty-folder").mkdir()
    before = listing(daemon.watch)

    assert daemon.run("check").returncode == 0
    assert daemon.run("sync", "--once").returncode == 1
    assert daemon.run("status").returncode == 0
    daemon.start()
    daemon.wait_log("watching with")
    wait_for(daemon.health_file.exists, timeout=20)
    assert daemon.run("health").returncode == 0
    assert daemon.stop() == 0
    assert table_rows(emulator, f"{IN}{folder}.good") is not None

    after = listing(daemon.watch)
    assert after == before


def test_nothing_is_executed_through_a_shell():
    """No subprocess, os.system, os.popen or os.exec* anywhere in the daemon's code."""
    offenders = []
    for path in sorted((REPO / "src" / "keboola_sync").rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [a.name for a in node.names] + ([node.module] if isinstance(node, ast.ImportFrom) else [])
                if any(n and n.split(".")[0] in ("subprocess", "pty", "commands") for n in names):
                    offenders.append(f"{path.name}:{node.lineno} imports {names}")
            if (
                isinstance(node, ast.Attribute)
                and isinstance(node.value, ast.Name)
                and node.value.id == "os"
                and (
                    node.attr in ("system", "popen", "spawnl", "spawnv", "posix_spawn") or node.attr.startswith("exec")
                )
            ):
                offenders.append(f"{path.name}:{node.lineno} os.{node.attr}")
    assert offenders == []


def test_the_daemon_under_run_never_echoes_a_token_given_in_config(tmp_path: Path, emulator):
    """A token pasted into config.yaml is refused by name, and its value is not repeated anywhere."""
    daemon = Daemon(tmp_path / "cfg", emulator, {"keboola": {"storage_api_token": "tok-pasted-into-config-5678"}})
    result = daemon.run("run", timeout=60)
    assert result.returncode == 2
    assert "keboola.storage_api_token" in result.stderr and "KBC_STORAGE_API_TOKEN in .env" in result.stderr
    assert "tok-pasted-into-config-5678" not in result.stdout + result.stderr


def echo_server(status: int, as_json: bool):
    """A server that is not Keboola and echoes the token it receives back in its answers (a debugging
    proxy, a misconfigured gateway): the daemon must not print what it is sent back verbatim."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class Handler(BaseHTTPRequestHandler):
        def _answer(self) -> None:
            token = self.headers.get("X-StorageApi-Token", "")
            if as_json:
                body = json.dumps(
                    {
                        "error": f"Invalid access token {token}",
                        "code": "storage.tokenInvalid",
                        "echo": dict(self.headers),
                    }
                ).encode()
                kind = "application/json"
            else:
                body = f"<html><body>Proxy error for {self.path} with token {token}</body></html>".encode()
                kind = "text/html"
            self.send_response(status)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("X-Echo-Token", token)
            self.end_headers()
            self.wfile.write(body)

        do_GET = do_POST = do_PUT = do_DELETE = _answer

        def log_message(self, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def test_a_server_that_echoes_the_token_cannot_make_the_daemon_print_it(daemon_factory):
    token = f"tok-{uuid.uuid4()}"
    leaks = []
    for status, as_json in ((500, True), (403, True), (200, False)):
        server = echo_server(status, as_json)
        try:
            url = f"http://127.0.0.1:{server.server_address[1]}"
            daemon = daemon_factory(
                {"keboola": {"url": url}, "retry": {"max_attempts": 2}},
                name=f"echo{status}{as_json}",
                env={"KBC_STORAGE_API_TOKEN": token},
            )
            daemon.write(f"echo{uid()}/a.csv", VALID)
            # check prints its findings and logs to the console itself; sync/run print start-up errors.
            for command in (("check",), ("sync", "--once")) if status == 500 else (("check",),):
                result = daemon.run(*command, timeout=60)
                assert result.returncode == 2, (status, command, result.stdout, result.stderr)
                for name, text in (("stdout", result.stdout), ("stderr", result.stderr)):
                    if token in text:
                        leaks.append(f"{status} {command} {name}: {text[-300:]}")
            if token in daemon.log():
                leaks.append(f"{status} log")
        finally:
            server.shutdown()
            server.server_close()
    assert leaks == [], "\n".join(leaks)
