"""The client suite (issue 17): Keboola clients nobody here wrote, installed from PyPI into their own
virtual environments, drive their Storage operations against the emulator, unpatched.

Each client gets a venv under a cache folder outside the repo (`~/.cache/keboola-sync-clients/<name>`,
or `$KEBOOLA_SYNC_CLIENTS_CACHE/<name>`), made with Python 3.12 (kbagent needs >= 3.12; pyenv has it
on our machines) and reused while its pinned spec is unchanged, so CI pays the install once per
machine (clientenv.py). The three installs run in parallel, once per session. All tests here carry
the `clients` marker: `pytest -m clients` runs just them, `-m "not clients"` leaves them out.
"""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import pytest
from clientenv import CLIENTS, ensure_client

HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "clients: installs real Keboola clients from PyPI and drives them")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if Path(str(item.fspath)).resolve().is_relative_to(HERE):
            item.add_marker(pytest.mark.clients)


@pytest.fixture(scope="session")
def client_installs() -> Iterator[dict[str, Future[Path]]]:
    """All three installs start together on first use; each client's fixture waits for its own."""
    with ThreadPoolExecutor(max_workers=len(CLIENTS), thread_name_prefix="client-install") as pool:
        yield {name: pool.submit(ensure_client, name) for name in CLIENTS}
