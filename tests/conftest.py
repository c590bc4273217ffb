"""Shared fixtures: the emulator (tests/support/emulator.py) and the daemon runner (tests/support/daemon.py).

pytest puts this folder on sys.path (tests/ is not a package), so `support` is importable everywhere.

`make test` runs the suite on several pytest-xdist workers (most tests wait on a daemon, not on a core).
Tests that share something outside their tmp folder stay on one worker, in their order (`shared_group`): the
Docker tests (one engine, one image tag, the compose file's fixed port 8000), the real clients (one cache of
client venvs), and each stack's bad-input corpus (a module-scoped fixture, built once).
"""

from __future__ import annotations

import re
from typing import Any

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


# Tests that must share one worker, by node id (the xdist controller schedules by node id only).
SHARED_FOLDERS = ("tests/docker/", "tests/clients/")
CORPUS_TESTS = re.compile(
    r"tests/e2e/test_bad_inputs\.py::test_(?:corpus_entry|sync_once_exits_1_and_the_daemon_survives_the_corpus)\[(\w+)"
)


def shared_group(nodeid: str) -> str:
    """The group a test runs in: its folder when it shares an engine or a cache, its stack's corpus when it
    reads the bad-input corpus, else the test alone (scheduled on whichever worker is free)."""
    for folder in SHARED_FOLDERS:
        if nodeid.startswith(folder):
            return folder
    corpus = CORPUS_TESTS.match(nodeid)
    return f"corpus-{corpus.group(1)}" if corpus else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's own `loadgroup` cannot be used: it renames node ids, which pytest 9 no longer allows (the
    marks are silently ignored). This is the same scheduling with the groups named by `shared_group`."""
    from xdist.scheduler import LoadScopeScheduling

    class SharedThingsScheduling(LoadScopeScheduling):  # type: ignore[misc]
        def _split_scope(self, nodeid: str) -> str:
            return shared_group(nodeid)

    return SharedThingsScheduling(config, log)
