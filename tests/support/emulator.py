"""Test support: start the Keboola emulator as a real subprocess and talk to it over HTTP.

Used by every test that touches Keboola. Stable API (other engineers depend on it):
`Emulator`, `free_port`, `start_emulator`, `wait_for`, and the pytest fixtures `emulator`
(one per session and file storage, faults reset after every test), `make_emulator` (a factory; everything it
starts is stopped at teardown) and `file_storage` (the Keboola stack's file storage the two above emulate:
`aws` unless a test module is run on every stack, see tests/e2e/conftest.py).

`KEBOOLA_EMULATOR_ARGS` (split like a shell line) adds flags to every emulator started here, e.g.
`KEBOOLA_EMULATOR_ARGS="--feature disable-legacy-bucket-prefix"` runs a suite against a project whose
buckets have no `c-` prefix (issue 13.3).

`KEBOOLA_TEST_STACKS` (comma-separated, default `aws,azure,gcp`) names the file storages the every-stack
suites run on (issue 14): `KEBOOLA_TEST_STACKS=aws` for a quicker local run.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import pytest

T = TypeVar("T")

DEFAULT_TOKEN = "local-dev-token"
READY_TIMEOUT = 30.0
EXTRA_ARGS_ENV = "KEBOOLA_EMULATOR_ARGS"
# The stage and bucket prefix tables land under: `in.c-` by default, `in.` when the suite runs against a
# project with `disable-legacy-bucket-prefix` (KEBOOLA_EMULATOR_ARGS="--feature disable-legacy-bucket-prefix").
IN = "in." if "disable-legacy-bucket-prefix" in os.environ.get(EXTRA_ARGS_ENV, "") else "in.c-"
# Dummies so boto3 never looks for real AWS credentials; the emulator's S3 (moto) accepts any.
STACKS_ENV = "KEBOOLA_TEST_STACKS"
FILE_STORAGES = ("aws", "azure", "gcp")
AWS_DUMMIES = {"AWS_ACCESS_KEY_ID": "emulator", "AWS_SECRET_ACCESS_KEY": "emulator", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    """A port that was free a moment ago on 127.0.0.1 (tests pass it to --port)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(predicate: Callable[[], T], timeout: float = 10.0, interval: float = 0.05, message: str = "") -> T:
    """Poll `predicate` until it returns something truthy and return that; AssertionError on timeout."""
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        try:
            value = predicate()
            if value:
                return value
        except (AssertionError, OSError) as exc:  # e.g. the server not listening yet
            last_error = exc
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error!r})" if last_error else ""
            raise AssertionError(f"timed out after {timeout}s waiting for {message or predicate!r}{detail}")
        threading.Event().wait(interval)


class Emulator:
    """A running `keboola-emulator` subprocess."""

    def __init__(
        self, *, token: str, data_dir: Path | None, extra_args: Sequence[str], port: int, s3_port: int
    ) -> None:
        self.token = token
        self.data_dir = data_dir
        self._extra_args = list(extra_args)
        self._port = port
        self._s3_port = s3_port
        self.api_url = f"http://127.0.0.1:{port}"
        self.s3_url = f"http://127.0.0.1:{s3_port}"
        self.azure_url: str | None = None  # --file-storage azure: Azurite's blob endpoint
        self.gcs_url: str | None = None  # --file-storage gcp: what STORAGE_EMULATOR_HOST points at
        self._proc: subprocess.Popen[str] | None = None
        self.returncode: int | None = None  # set by stop()
        self._log = tempfile.NamedTemporaryFile(prefix="keboola-emulator-", suffix=".log", delete=False)  # noqa: SIM115
        self.log_path = Path(self._log.name)
        self._start()

    def _start(self) -> None:
        cmd = [
            sys.executable,
            "-m",
            "keboola_emulator",
            "--port",
            str(self._port),
            "--s3-port",
            str(self._s3_port),
            "--token",
            self.token,
            *shlex.split(os.environ.get(EXTRA_ARGS_ENV, "")),
            *self._extra_args,
        ]
        if self.data_dir is not None:
            cmd += ["--data-dir", str(self.data_dir)]
        self._proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=self._log, text=True)
        line = _read_line(self._proc, READY_TIMEOUT)
        if not line.startswith("READY "):
            self.stop()
            raise RuntimeError(f"keboola-emulator did not start: {line!r}; log: {self.log_path.read_text()[-2000:]}")
        parts = dict(p.split("=", 1) for p in line.split()[1:])
        self.api_url, self.s3_url = parts["api"], parts["s3"]
        self.azure_url, self.gcs_url = parts.get("azure"), parts.get("gcs")
        self.ready_line = line

    @property
    def pid(self) -> int:
        assert self._proc is not None
        return self._proc.pid

    def env(self) -> dict[str, str]:
        """What a daemon (or kbcstorage) needs to talk to this emulator."""
        env = {
            "KBC_STORAGE_API_HOST": self.api_url,
            "KBC_STORAGE_API_TOKEN": self.token,
            "AWS_ENDPOINT_URL_S3": self.s3_url,
            **AWS_DUMMIES,
        }
        if self.gcs_url:
            env["STORAGE_EMULATOR_HOST"] = self.gcs_url  # google-cloud-storage's standard variable
        return env

    def client(self) -> Any:
        """A real kbcstorage Client; sets AWS_ENDPOINT_URL_S3 (+ dummies) in os.environ for boto3, and
        STORAGE_EMULATOR_HOST for google-cloud-storage in gcp mode."""
        from kbcstorage.client import Client

        os.environ["AWS_ENDPOINT_URL_S3"] = self.s3_url
        if self.gcs_url:
            os.environ["STORAGE_EMULATOR_HOST"] = self.gcs_url
        for key, value in AWS_DUMMIES.items():
            os.environ.setdefault(key, value)
        return Client(self.api_url, self.token)

    def _control(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request(  # noqa: S310 - http://127.0.0.1 only
            self.api_url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - local emulator URL
            return json.loads(resp.read() or b"null")

    def set_faults(self, **faults: Any) -> None:
        """Merge fault knobs (fail_rate, rate_limit_rate, drop_rate, latency_ms, job_seconds, fail_jobs,
        s3_bandwidth_mbps); takes effect for the next request."""
        self._control("POST", "/_emulator/faults", faults)

    def reset_faults(self) -> None:
        self._control("POST", "/_emulator/faults/reset")

    def faults(self) -> dict[str, Any]:
        return self._control("GET", "/_emulator/faults")  # type: ignore[no-any-return]

    def stats(self) -> dict[str, Any]:
        return self._control("GET", "/_emulator/stats")  # type: ignore[no-any-return]

    def add_token(self, secret: str) -> None:
        """Make the emulator accept one more master token (token rotation)."""
        self._control("POST", "/_emulator/tokens", {"token": secret})

    def revoke_token(self, secret: str) -> None:
        """Make the emulator answer a token 401 from now on, as a revoked token is."""
        self._control("POST", "/_emulator/tokens/revoke", {"token": secret})

    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def stop(self) -> None:
        """SIGTERM and wait (the emulator exits 0); SIGKILL if it hangs."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()
        self.returncode = proc.returncode

    def restart(self) -> None:
        """Stop and start again on the same ports and data dir."""
        self.stop()
        self._start()

    def close(self) -> None:
        self.stop()
        self._log.close()


def _read_line(proc: subprocess.Popen[str], timeout: float) -> str:
    """The first stdout line, or '' if the process died / timed out (never blocks forever)."""
    out: list[str] = []
    reader = threading.Thread(target=lambda: out.append(proc.stdout.readline() if proc.stdout else ""), daemon=True)
    reader.start()
    reader.join(timeout)
    return out[0].strip() if out else ""


def every_stack() -> list[str]:
    """The file storages the every-stack suites run on: KEBOOLA_TEST_STACKS, or all three."""
    chosen = [s.strip() for s in os.environ.get(STACKS_ENV, ",".join(FILE_STORAGES)).split(",") if s.strip()]
    unknown = sorted(set(chosen) - set(FILE_STORAGES))
    if unknown:
        raise ValueError(f"{STACKS_ENV} names {unknown}; choose from {', '.join(FILE_STORAGES)}")
    return chosen


def start_emulator(
    *,
    token: str = DEFAULT_TOKEN,
    data_dir: Path | str | None = None,
    extra_args: Sequence[str] = (),
    port: int | None = None,
    file_storage: str = "aws",
) -> Emulator:
    """Start an emulator subprocess on `port` (default: a free one) and wait for READY. `file_storage`
    picks the stack's cloud (`--file-storage`); an explicit `--file-storage` in `extra_args` wins."""
    if file_storage != "aws" and "--file-storage" not in extra_args:
        extra_args = ["--file-storage", file_storage, *extra_args]
    return Emulator(
        token=token,
        data_dir=Path(data_dir) if data_dir is not None else None,
        extra_args=extra_args,
        port=port or free_port(),
        s3_port=free_port(),
    )


_SESSIONS: dict[str, Emulator] = {}


@pytest.fixture(scope="session")
def file_storage() -> str:
    """The stack's file storage (`--file-storage`) of the emulators below: AWS S3 unless the test module is
    parametrized over every stack (tests/e2e/conftest.py), which overrides this fixture with each value."""
    return "aws"


@pytest.fixture
def emulator(request: pytest.FixtureRequest, file_storage: str) -> Iterator[Emulator]:
    """One emulator per test session and file storage (started on first use); faults are reset after every
    test. Tests must use unique bucket names."""
    session = _SESSIONS.get(file_storage)
    if session is None or not session.is_running():
        session = _SESSIONS[file_storage] = start_emulator(file_storage=file_storage)
        request.config.add_cleanup(session.close)
    yield session
    if session.is_running():
        session.reset_faults()


@pytest.fixture
def make_emulator(file_storage: str) -> Iterator[Callable[..., Emulator]]:
    """Factory with the signature of start_emulator (on the test's file storage unless told otherwise);
    every emulator it starts is stopped at teardown."""
    started: list[Emulator] = []

    def factory(**kwargs: Any) -> Emulator:
        kwargs.setdefault("file_storage", file_storage)
        emu = start_emulator(**kwargs)
        started.append(emu)
        return emu

    yield factory
    for emu in started:
        emu.close()
