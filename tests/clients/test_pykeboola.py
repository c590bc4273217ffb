"""pykeboola 0.0.12 against the emulator: typed table create (tables-definition), table and column
metadata, delete with a trailing slash; its Queue call meets the out-of-scope "not found". Plain
http; the client runs unpatched in its own venv."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import pytest
from clientenv import DRIVERS, clean_env, client_venv

from support.emulator import Emulator, start_emulator


@pytest.fixture(scope="module")
def run(client_installs: dict[str, Future[Path]]) -> Iterator[tuple[Emulator, dict[str, Any]]]:
    python = client_venv(client_installs, "pykeboola") / "bin" / "python"
    emulator = start_emulator()
    try:
        bucket_id = emulator.client().buckets.create("pykeboola")["id"]
        done = subprocess.run(
            [str(python), str(DRIVERS / "pykeboola_driver.py"), emulator.api_url, emulator.token, bucket_id],
            capture_output=True,
            text=True,
            timeout=120,
            env=clean_env(),
        )
        assert done.returncode == 0, done.stderr[-3000:]
        yield emulator, json.loads(done.stdout)
    finally:
        emulator.close()


def test_create_table_makes_a_typed_table_it_reads_back(run: tuple[Emulator, dict[str, Any]]) -> None:
    _, seen = run
    assert seen["create_job"]["status"] == "success", seen["create_job"].get("error")
    assert seen["create_job"]["operationName"] == "tableDefinitionCreate"
    created = seen["created"]
    assert created["id"] == "in.c-pykeboola.typed" and created["schema"] == "pykeboola"
    assert created["native_types"] is True
    # types come back from the storage-provider column metadata, as pykeboola reads them
    assert created["columns"] == [["id", "INTEGER", None, True], ["label", "STRING", "100", False]]


def test_table_and_column_metadata_are_stored_and_read_back(run: tuple[Emulator, dict[str, Any]]) -> None:
    _, seen = run
    answer = seen["metadata_answer"]
    assert set(answer) == {"metadata", "columnsMetadata"}
    assert [(m["key"], m["value"], m["provider"]) for m in answer["metadata"]] == [
        ("KBC.description", "orders from the shop", "user")
    ]
    assert seen["after_metadata"] == {
        "description": "orders from the shop",
        "columns": [["id", "the id"], ["label", "the label"]],
    }


def test_delete_table_with_a_trailing_slash(run: tuple[Emulator, dict[str, Any]]) -> None:
    emulator, seen = run
    assert seen["deleted"] is True and seen["tables_left"] == []
    assert emulator.client().tables.list() == []


def test_queue_api_is_out_of_scope_and_answers_not_found(run: tuple[Emulator, dict[str, Any]]) -> None:
    _, seen = run
    assert seen["queue_job"].startswith("Failed to queue a job in Keboola.")
    assert '"code": "notFound"' in seen["queue_job"]
