"""The end-to-end, reliability and bad-input suites run on every Keboola stack's file storage (issue 14):
AWS S3, Azure Blob Storage (Azurite) and Google Cloud Storage (the GCS emulator), through the daemon's own
uploader for each. One parameter, not three copies of the tests: every test in these modules that touches
the emulator gets `[aws]`, `[azure]` and `[gcp]` variants (KEBOOLA_TEST_STACKS narrows the list).

Module scope, so a module-scoped fixture (the bad-input corpus) is built once per stack and pytest runs a
module's tests stack by stack."""

from __future__ import annotations

import pytest

from support.emulator import every_stack

EVERY_STACK_MODULES = {"test_end_to_end", "test_reliability", "test_bad_inputs"}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    module = metafunc.module.__name__.rsplit(".", 1)[-1]
    if module in EVERY_STACK_MODULES and "file_storage" in metafunc.fixturenames:
        metafunc.parametrize("file_storage", every_stack(), scope="module")
