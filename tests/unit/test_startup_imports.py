"""`sync --once` starts work fast (issue 18.3): what the path to the first file read imports.

The cloud SDKs (boto3, the Azure and Google SDKs, which kbcstorage's table and file endpoints import as they
load), watchdog, apprise, prometheus-client and http.server cost about half a second of start-up together.
None is needed before the first file is read, so none may be imported by then; each is imported when it is
needed (the storage room preloads the SDK in the background during the token check). Checked in a fresh
interpreter: what this test process imported says nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

NOT_AT_START = ("boto3", "botocore", "s3transfer", "azure", "google", "watchdog", "apprise", "prometheus_client")
NOT_AT_START_MODULES = ("http.server", "kbcstorage.files", "kbcstorage.tables")


def _modules_after(code: str) -> set[str]:
    """The modules a fresh interpreter holds after running `code`."""
    script = textwrap.dedent(code) + "\nimport json, sys\nprint(json.dumps(sorted(sys.modules)))\n"
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60)
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def _too_early(modules: set[str]) -> list[str]:
    return sorted(m for m in modules if m.split(".")[0] in NOT_AT_START or m in NOT_AT_START_MODULES)


def test_the_sync_once_path_imports_no_cloud_sdk_watchdog_or_notifier() -> None:
    modules = _modules_after(
        """
        import keboola_sync.cli, keboola_sync.daemon, keboola_sync.plan
        from keboola_sync.config import defaults
        from keboola_sync.storage import Storage, classify
        import requests

        cfg = defaults()
        storage = Storage("http://127.0.0.1:9", "t", keboola=cfg.keboola, retry=cfg.retry, upload=cfg.upload)
        classify(requests.ConnectionError("refused"), "verifying the token")
        classify(ValueError("odd"), "reading a table")
        """
    )
    assert "keboola_sync.daemon" in modules and "kbcstorage.tokens" in modules
    assert _too_early(modules) == []


def test_each_cloud_uploader_is_imported_when_its_stack_asks_for_it() -> None:
    """A files/prepare answer names the cloud (§5.1); only that cloud's uploader and SDK are imported."""
    modules = _modules_after(
        """
        from keboola_sync.config import defaults
        from keboola_sync.storage import Storage

        cfg = defaults()
        storage = Storage("http://127.0.0.1:9", "t", keboola=cfg.keboola, retry=cfg.retry, upload=cfg.upload)
        uploader = storage._uploader({"id": 1, "provider": "azure", "absUploadParams": {}})
        assert type(uploader).__name__ == "AbsUploader", uploader
        assert storage._uploader({"id": 2, "provider": "azure", "absUploadParams": {}}) is uploader
        assert type(storage._uploader({"id": 3, "provider": "gcp", "gcsUploadParams": {}})).__name__ == "GcsUploader"
        assert storage._uploader({"id": 4, "provider": "other"}) is None
        """
    )
    assert "keboola_sync.storage.absupload" in modules and "azure.storage.blob" in modules
    assert "keboola_sync.storage.gcsupload" in modules
    assert "boto3" not in modules and "keboola_sync.storage.s3upload" not in modules


def test_the_sdk_table_and_file_endpoints_load_on_first_use() -> None:
    modules = _modules_after(
        """
        from keboola_sync.config import defaults
        from keboola_sync.storage import Storage

        cfg = defaults()
        storage = Storage("http://127.0.0.1:9", "t", keboola=cfg.keboola, retry=cfg.retry, upload=cfg.upload)
        tables = storage._api.tables
        assert type(tables).__name__ == "Tables" and tables.requests is storage._http
        assert storage._api.tables is tables
        assert type(storage._api.files).__name__ == "Files" and storage._api.files.requests is storage._http
        """
    )
    assert {"kbcstorage.tables", "kbcstorage.files", "boto3"} <= modules
