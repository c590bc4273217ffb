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


def _utf8(text: str) -> str:
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    """Captured output may hold a file name that is not UTF-8 (surrogate escapes: the odd-name tests log
    them on purpose); an xdist worker cannot send such text to the controller, so it is escaped here."""
    outcome = yield
    report = outcome.get_result()
    report.sections = [(title, _utf8(text)) for title, text in report.sections]


SHARED_FOLDERS = {"docker": "docker", "clients": "clients"}


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        group = SHARED_FOLDERS.get(item.path.parent.name)
        if group is None and "corpus" in getattr(item, "fixturenames", ()):
            callspec = getattr(item, "callspec", None)
            group = f"corpus-{callspec.params.get('file_storage', 'aws') if callspec else 'aws'}"
        if group is not None:
            item.add_marker(pytest.mark.xdist_group(group))
