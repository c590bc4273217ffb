"""keboola-streamlit 0.2.0 against the emulator: write (full and incremental), read, and the Storage
events it posts after each (a missing events API showed the user a red error). Plain http; boto3
inside kbcstorage finds the emulator's S3 through AWS_ENDPOINT_URL_S3. Unpatched, in its own venv."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
import requests
from clientenv import DRIVERS, clean_env, client_venv

from support.emulator import AWS_DUMMIES, Emulator, start_emulator


@pytest.fixture(scope="module")
def run(
    client_installs: dict[str, Future[Path]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Emulator, dict[str, Any], str]]:
    python = client_venv(client_installs, "keboola-streamlit") / "bin" / "python"
    emulator = start_emulator()
    try:
        work = tmp_path_factory.mktemp("streamlit")
        seed = work / "seed.csv"
        seed.write_text("id,name\n9,z\n")
        client = emulator.client()
        table_id = client.tables.create(client.buckets.create("app")["id"], "items", str(seed))
        done = subprocess.run(
            [str(python), str(DRIVERS / "streamlit_driver.py"), emulator.api_url, emulator.token, table_id],
            capture_output=True,
            text=True,
            timeout=180,
            cwd=work,
            env=clean_env(AWS_ENDPOINT_URL_S3=emulator.s3_url, **AWS_DUMMIES),
        )
        assert done.returncode == 0, done.stderr[-3000:]
        assert "An error occurred" not in done.stderr, done.stderr[-3000:]  # what st.error would show
        yield emulator, json.loads(done.stdout), table_id
    finally:
        emulator.close()


def test_write_table_full_then_incremental(run: tuple[Emulator, dict[str, Any], str]) -> None:
    emulator, seen, table_id = run
    assert seen["write_full"] is None and seen["write_incremental"] is None  # None = no error
    preview = emulator.client().tables.preview(table_id).split("\n")
    assert preview[0] == '"id","name"'
    assert sorted(preview[1:-1]) == ['"1","a"', '"2","b"', '"3","c"', '"4","d"']


def test_read_table_returns_the_rows(run: tuple[Emulator, dict[str, Any], str]) -> None:
    _, seen, _ = run
    assert seen["read"]["columns"] == ["id", "name"]
    assert sorted(seen["read"]["rows"]) == [["1", "a"], ["2", "b"], ["3", "c"], ["4", "d"]]


def test_events_after_read_write_and_on_request(run: tuple[Emulator, dict[str, Any], str]) -> None:
    emulator, seen, table_id = run
    assert seen["event"]["status"] == 201
    assert isinstance(seen["event"]["body"]["id"], str) and seen["event"]["body"]["uuid"]
    events = requests.get(
        f"{emulator.api_url}/v2/storage/events",
        params={"component": "keboola.data-apps"},
        headers={"X-StorageApi-Token": emulator.token},
        timeout=20,
    ).json()
    messages = [e["message"] for e in events]
    assert messages.count("Streamlit App Write Table") == 2 and "Streamlit App Read Table" in messages
    read_event = next(e for e in events if e["message"] == "Streamlit App Read Table")
    assert read_event["params"]["user"] == "tester@example.com"
    assert read_event["params"]["endpoint"].endswith(f"/v2/storage/tables/{table_id}/export-async")
