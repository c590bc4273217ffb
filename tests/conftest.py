"""Shared fixtures: the emulator (tests/support/emulator.py) and the daemon runner (tests/support/daemon.py).

pytest puts this folder on sys.path (tests/ is not a package), so `support` is importable everywhere.

`make test` runs the suite on several pytest-xdist workers (most tests wait on a daemon, not on a core).
Tests that share something outside their tmp folder stay on one worker (`xdist_group`, with
`--dist loadgroup`): the Docker tests (one engine, the compose file's fixed port 8000), the real clients
(one cache of client venvs), and each stack's bad-input corpus (built once per worker that needs it).
"""

from __future__ import annotations

import pytest

from support.daemon import daemon_factory  # noqa: F401
from support.emulator import emulator, file_storage, make_emulator  # noqa: F401

SHARED_FOLDERS = {"docker": "docker", "clients": "clients"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = SHARED_FOLDERS.get(item.path.parent.name)
        if group is None and "corpus" in getattr(item, "fixturenames", ()):
            callspec = getattr(item, "callspec", None)
            group = f"corpus-{callspec.params.get('file_storage', 'aws') if callspec else 'aws'}"
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
