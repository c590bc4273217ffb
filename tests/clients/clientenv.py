"""Installing the client suite's clients (see conftest.py): one venv per client under a cache folder
outside the repo, made with Python 3.12, reused while its pinned spec is unchanged."""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import sys
from concurrent.futures import Future
from pathlib import Path

# Pinned: the README lists what passes for exactly these versions.
CLIENTS = {
    "keboola-cli": "keboola-cli==0.100.2",
    "pykeboola": "pykeboola==0.0.12",
    "keboola-streamlit": "keboola-streamlit==0.2.0",
}
MARKER = "keboola-sync-client-spec.txt"
INSTALL_TIMEOUT = 900
DRIVERS = Path(__file__).resolve().parent / "drivers"


def cache_dir() -> Path:
    configured = os.environ.get("KEBOOLA_SYNC_CLIENTS_CACHE")
    return Path(configured) if configured else Path.home() / ".cache" / "keboola-sync-clients"


def python312() -> str:
    """pyenv's 3.12 first (our machines and CI have it), then a python3.12 on PATH, then this one."""
    for candidate in sorted((Path.home() / ".pyenv" / "versions").glob("3.12*/bin/python3.12"), reverse=True):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("python3.12")
    if found:
        return found
    if sys.version_info >= (3, 12):
        return sys.executable
    raise RuntimeError("the client suite needs Python 3.12 (pyenv install 3.12, or python3.12 on PATH)")


def ensure_client(name: str) -> Path:
    """The venv of one client, installed if missing or made for another spec; returns its folder.
    A lock file keeps two pytest processes from building the same venv at once."""
    spec = CLIENTS[name]
    root = cache_dir()
    root.mkdir(parents=True, exist_ok=True)
    venv = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        marker = venv / MARKER
        if marker.exists() and marker.read_text() == spec and (venv / "bin" / "python").exists():
            return venv
        shutil.rmtree(venv, ignore_errors=True)
        subprocess.run([python312(), "-m", "venv", str(venv)], check=True, timeout=120)
        pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
        done = subprocess.run([*pip, spec], capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        if done.returncode != 0:
            raise RuntimeError(f"pip install {spec} failed:\n{done.stdout[-2000:]}\n{done.stderr[-3000:]}")
        marker.write_text(spec)  # written last: a half-made venv is never reused
    return venv


def client_venv(installs: dict[str, Future[Path]], name: str) -> Path:
    return installs[name].result(timeout=INSTALL_TIMEOUT + 200)


def clean_env(**extra: str) -> dict[str, str]:
    """The environment for a client process: no proxy or Keboola settings leaking in from outside."""
    dropped = {"NO_PROXY", "no_proxy", "HTTP_PROXY", "http_proxy", "HTTPS_PROXY", "https_proxy", "ALL_PROXY"}
    dropped |= {"all_proxy", "KBC_TOKEN", "KBC_STORAGE_API_URL", "KBC_STORAGE_API_TOKEN", "SSL_CERT_FILE"}
    dropped |= {"REQUESTS_CA_BUNDLE", "PYTHONPATH", "VIRTUAL_ENV"}
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    env.update(extra)
    return env
