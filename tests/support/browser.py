"""A real headless browser (Debian's Chromium) for tests of the status page: the page's own JavaScript
runs, fetches /status and renders; the test reads the resulting DOM or looks at a screenshot."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

# The flags keep Chromium off the network (this machine has none) and out of any user profile.
QUIET = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    path = shutil.which("chromium") or shutil.which("chromium-browser")
    if path is None:
        raise AssertionError("Chromium is not installed: `make test` installs it (apt-get install chromium)")
    return path


def _run(url: str, *flags: str, budget_ms: int) -> subprocess.CompletedProcess[str]:
    with tempfile.TemporaryDirectory(prefix="chromium-") as profile:
        return subprocess.run(
            [chromium(), *QUIET, f"--user-data-dir={profile}", f"--virtual-time-budget={budget_ms}", *flags, url],
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )


def rendered_dom(url: str, budget_ms: int = 4000) -> str:
    """The DOM after the page's scripts ran for `budget_ms` of virtual time."""
    return _run(url, "--dump-dom", budget_ms=budget_ms).stdout


def screenshot(url: str, path: Path, size: str = "1200,700", budget_ms: int = 4000) -> Path:
    _run(url, f"--screenshot={path}", f"--window-size={size}", "--hide-scrollbars", budget_ms=budget_ms)
    return path
