"""`Storage` against the emulator over HTTP through the real kbcstorage SDK: buckets by Keboola's ids
(issue 13.3), job errors that never loop (13.4, 13.5), table metadata and the table list (12.1, 12.5,
12.7), and token rotation (16.2)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
import requests
from kbcstorage.tables_metadata import TablesMetadata
from storage_helpers import Csv, storage_for

from keboola_sync.storage import (
    NotFound,
    Storage,
    StorageTerminal,
    SyncMetadata,
    TokenRejected,
)
from keboola_sync.storage.errors import JobFailed
from keboola_sync.storage.metadata import SHA256_KEY
from support.emulator import Emulator

NO_PREFIX = ["--feature", "disable-legacy-bucket-prefix"]


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def create_table(storage: Storage, bucket_id: str, name: str, path: Path, content: str) -> str:
    """A table made the way the daemon makes one: upload, tables-async, wait."""
    path.write_text(content)
    file_id = storage.upload(path, label=path.name)
    job_id = storage.start_create_table(bucket_id, name, file_id, Csv())
    outcome = storage.wait_for_job(job_id, what=f"creating {name}")
    return str(outcome.results["id"])


# -- buckets by Keboola's ids (13.3) ---------------------------------------------------------------------


def test_a_classic_project_creates_c_buckets_and_finds_them_again(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = storage_for(emulator, monkeypatch)
    info = storage.verify_token()
    assert info.legacy_bucket_prefix is True and "disable-legacy-bucket-prefix" not in info.features
    name = unique("shop")
    assert storage.predicted_bucket_id(name, "in") == f"in.c-{name}"
    assert storage.ensure_bucket(name, "in") == (f"in.c-{name}", True)
    assert storage.ensure_bucket(name, "in") == (f"in.c-{name}", False)
    assert storage.ensure_bucket(name, "out") == (f"out.c-{name}", True)  # another stage, another bucket


def test_a_project_without_the_prefix_gets_the_id_keboola_returns(
    make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch
) -> None:
    emu = make_emulator(extra_args=NO_PREFIX)
    storage = storage_for(emu, monkeypatch)
    info = storage.verify_token()
    assert "disable-legacy-bucket-prefix" in info.features and info.legacy_bucket_prefix is False
    assert storage.predicted_bucket_id("sales", "in") == "in.sales"
    assert storage.ensure_bucket("sales", "in") == ("in.sales", True)
    assert storage.bucket_exists("in.sales") and not storage.bucket_exists("in.c-sales")
    # the second time it is found, not created again (before: in.c-sales looked for and re-created forever)
    assert storage.ensure_bucket("sales", "in") == ("in.sales", False)
    assert [b["id"] for b in emu.client().buckets.list()] == ["in.sales"]

    # buckets made by others are found by name with `c-` (made before the feature) or by displayName
    emu.client().buckets.create("c-crm", stage="in")
    answer = requests.post(
        f"{emu.api_url}/v2/storage/buckets",
        data={"name": "b2019", "stage": "in", "displayName": "billing"},
        headers={"X-StorageApi-Token": emu.token},
        timeout=10,
    )
    assert answer.status_code == 201, answer.text
    assert storage.ensure_bucket("crm", "in") == ("in.c-crm", False)
    assert storage.ensure_bucket("billing", "in") == ("in.b2019", False)
    assert len(emu.client().buckets.list()) == 3


# -- job errors that never loop (13.4, 13.5) --------------------------------------------------------------


def test_a_table_name_in_another_case_is_a_conflict_not_a_retry(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    storage = storage_for(emulator, monkeypatch)
    bucket_id, _ = storage.ensure_bucket(unique("case"), "in")
    create_table(storage, bucket_id, "Orders", tmp_path / "Orders.csv", "id\n1\n")
    jobs_before = emulator.stats()["jobs"].get("tableCreate", 0)
    with pytest.raises((JobFailed, StorageTerminal)) as caught:
        create_table(storage, bucket_id, "orders", tmp_path / "orders.csv", "id\n2\n")
    assert caught.value.code == "storage.buckets.tableAlreadyExists"
    if isinstance(caught.value, JobFailed):
        assert caught.value.kind == "conflict" and not caught.value.transient
        assert "already has the same display name" in caught.value.keboola_message
    assert emulator.stats()["jobs"].get("tableCreate", 0) - jobs_before <= 1  # sent once, never again


def test_a_failed_job_carries_keboolas_code_and_own_message(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    storage = storage_for(emulator, monkeypatch)
    bucket_id, _ = storage.ensure_bucket(unique("jobs"), "in")
    table_id = create_table(storage, bucket_id, "t", tmp_path / "t.csv", "id,name\n1,a\n")
    (tmp_path / "wrong.csv").write_text("other\n1\n")
    file_id = storage.upload(tmp_path / "wrong.csv", label="wrong.csv")
    with pytest.raises(JobFailed) as caught:
        storage.wait_for_job(storage.start_full_load(table_id, file_id, Csv()), what=f"loading {table_id}")
    assert caught.value.kind == "content" and caught.value.code
    assert caught.value.keboola_message and caught.value.keboola_message in str(caught.value)

    emulator.set_faults(fail_jobs=1.0)
    with pytest.raises(JobFailed) as injected:
        storage.wait_for_job(storage.start_full_load(table_id, file_id, Csv()), what=f"loading {table_id}")
    assert injected.value.transient and injected.value.code == "storage.jobs.internalError"
    assert injected.value.keboola_message.startswith("Internal error occurred while processing the job")


# -- table metadata and the table list (12.1, 12.5, 12.7) -------------------------------------------------


def test_our_metadata_is_written_read_and_listed_with_the_tables(
    emulator: Emulator, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    storage = storage_for(emulator, monkeypatch)
    bucket_id, _ = storage.ensure_bucket(unique("meta"), "in")
    ours_id = create_table(storage, bucket_id, "orders", tmp_path / "orders.csv", "id,Straße\n1,a\n2,b\n")
    theirs_id = create_table(storage, bucket_id, "theirs", tmp_path / "theirs.csv", "x\n1\n")
    # someone else's entry, written with the SDK: never read as ours
    TablesMetadata(emulator.api_url, emulator.token).create(
        theirs_id, "user", [{"key": "KBC.description", "value": "x"}]
    )

    assert storage.get_sync_metadata(ours_id) == SyncMetadata()
    meta = SyncMetadata(owned=True, sha256="ab" * 32, header=("id", "Straße"), source="shop/orders.csv")
    assert storage.set_sync_metadata(ours_id, meta) == meta
    assert storage.get_sync_metadata(ours_id) == meta
    # a later write of one key keeps the others
    assert storage.set_sync_metadata(ours_id, {SHA256_KEY: "cd" * 32}).sha256 == "cd" * 32
    assert storage.get_sync_metadata(ours_id).header == ("id", "Straße")
    assert {(e.provider, e.key) for e in storage.get_table_metadata(theirs_id)} == {("user", "KBC.description")}

    everything = {t.table_id: t for t in storage.list_tables()}
    in_bucket = {t.table_id: t for t in storage.list_tables(bucket_id)}
    assert set(in_bucket) == {ours_id, theirs_id} and set(in_bucket) <= set(everything)
    for listed in (everything, in_bucket):
        orders = listed[ours_id]
        assert orders.columns == ("id", "Strase")  # Keboola's sanitised names (§12)
        assert orders.rows_count == 2 and orders.last_import_date is not None
        assert orders.metadata.owned and orders.metadata.sha256 == "cd" * 32
        assert orders.metadata.source == "shop/orders.csv"
        assert not listed[theirs_id].metadata.owned and listed[theirs_id].values == {}

    with pytest.raises(NotFound):
        storage.get_table_metadata(f"{bucket_id}.missing")
    with pytest.raises(NotFound):
        storage.list_tables(f"in.c-{unique('nobucket')}")


# -- token rotation (16.2) --------------------------------------------------------------------------------


def test_a_rotated_token_is_verified_first_then_used_for_every_request(
    make_emulator: Callable[..., Emulator], monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    emu = make_emulator(token="old-secret-token")
    storage = storage_for(emu, monkeypatch)
    storage.verify_token()
    storage.ensure_bucket("rotation", "in")

    with pytest.raises(TokenRejected) as rejected:
        storage.use_token("never-issued-token")
    assert "never-issued-token" not in str(rejected.value)
    assert storage.bucket_exists("in.c-rotation")  # the old token stays in use

    emu.add_token("new-secret-token")
    info = storage.use_token("new-secret-token")
    assert info.can_manage_buckets and storage.token_info == info
    emu.revoke_token("old-secret-token")
    assert storage.bucket_exists("in.c-rotation")  # only the new token is accepted now
    assert storage.ensure_bucket("rotated", "in") == ("in.c-rotated", True)

    with pytest.raises(TokenRejected):
        storage.use_token("old-secret-token")  # revoked: refused, and the new one stays
    assert storage.bucket_exists("in.c-rotated")
    logged = "\n".join(r.getMessage() for r in caplog.records)
    assert "secret-token" not in logged and "never-issued" not in logged
