"""Buckets (§3): create rules, duplicates, detail shape, delete sync/async, force, not-empty."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests
from emulator_helpers import create_table_job, unique, write

from support.emulator import Emulator


def test_create_adds_c_prefix_and_detail_has_lists(emulator: Emulator) -> None:
    client = emulator.client()
    name = unique("Sales")
    bucket = client.buckets.create(name, stage="out", description="d")
    assert bucket["id"] == f"out.c-{name}" and bucket["name"] == f"c-{name}" and bucket["displayName"] == name
    detail = client.buckets.detail(bucket["id"])
    assert detail["tables"] == [] and detail["attributes"] == []
    assert detail["description"] == "d" and detail["stage"] == "out"
    assert detail["created"][-5] in "+-"  # 2017-02-13T12:01:05+0100


def test_duplicate_name_is_400_already_exists(emulator: Emulator) -> None:
    client = emulator.client()
    name = unique("dup")
    client.buckets.create(name)
    with pytest.raises(requests.HTTPError) as info:
        client.buckets.create(name)
    assert info.value.response.status_code == 400
    assert info.value.response.json()["code"] == "storage.buckets.alreadyExists"
    client.buckets.create(name, stage="out")  # same name in the other stage is fine (§3.3)


@pytest.mark.parametrize("name", ["has space", "dot.ted", "", "ünï"])
def test_invalid_names_are_400_validation(emulator: Emulator, name: str) -> None:
    with pytest.raises(requests.HTTPError) as info:
        emulator.client().buckets.create(name)
    assert info.value.response.status_code == 400
    assert info.value.response.json()["code"] == "storage.buckets.validation"


def test_invalid_display_name_message(emulator: Emulator) -> None:
    r = requests.post(
        f"{emulator.api_url}/v2/storage/buckets",
        headers={"X-StorageApi-Token": emulator.token},
        json={"name": unique("dn"), "stage": "in", "displayName": "$$$$$"},
        timeout=10,
    )
    assert r.status_code == 400
    assert r.json()["error"] == (
        "Invalid data - displayName: '$$$$$' contains not allowed characters. Only "
        "alphanumeric characters dash and underscores are allowed."
    )


def test_missing_bucket_is_404(emulator: Emulator) -> None:
    with pytest.raises(requests.HTTPError) as info:
        emulator.client().buckets.detail("in.c-never-created")
    assert info.value.response.status_code == 404
    assert info.value.response.json()["code"] == "storage.buckets.notFound"


def test_delete_non_empty_without_force(emulator: Emulator, tmp_path: Path) -> None:
    client = emulator.client()
    bucket_id = client.buckets.create(unique("full"))["id"]
    assert create_table_job(client, bucket_id, "t", write(tmp_path / "t.csv", "a\n1\n"))["status"] == "success"
    # async (kbcstorage default): the bucketDelete job fails
    with pytest.raises(RuntimeError, match=r"Only empty buckets can be deleted\. There are 1 tables in the bucket\."):
        client.buckets.delete(bucket_id)
    # sync: HTTP 400 with the code without the storage. prefix
    with pytest.raises(requests.HTTPError) as info:
        client.buckets.delete(bucket_id, asynchronous=False)
    assert info.value.response.json()["code"] == "buckets.deleteNotEmpty"
    client.buckets.delete(bucket_id, force=True)
    with pytest.raises(requests.HTTPError):
        client.buckets.detail(bucket_id)
    with pytest.raises(requests.HTTPError):
        client.tables.detail(f"{bucket_id}.t")


def test_delete_sync_is_204_and_async_is_a_job(emulator: Emulator) -> None:
    client = emulator.client()
    headers = {"X-StorageApi-Token": emulator.token}
    sync_id = client.buckets.create(unique("sync"))["id"]
    r = requests.delete(f"{emulator.api_url}/v2/storage/buckets/{sync_id}", headers=headers, timeout=10)
    assert r.status_code == 204
    async_id = client.buckets.create(unique("async"))["id"]
    r = requests.delete(
        f"{emulator.api_url}/v2/storage/buckets/{async_id}",
        params={"async": "true", "force": "1"},
        headers=headers,
        timeout=10,
    )
    assert r.status_code == 202 and r.json()["operationName"] == "bucketDelete"
    assert isinstance(r.json()["id"], int)
    with pytest.raises(requests.HTTPError) as info:
        client.buckets.delete(sync_id)
    assert info.value.response.status_code == 404


def test_bucket_tables_listing(emulator: Emulator, tmp_path: Path) -> None:
    client = emulator.client()
    bucket_id = client.buckets.create(unique("list"))["id"]
    create_table_job(client, bucket_id, "one", write(tmp_path / "a.csv", "x,y\n1,2\n"))
    plain = client.buckets.list_tables(bucket_id)
    assert [t["id"] for t in plain] == [f"{bucket_id}.one"] and "columns" not in plain[0]
    assert plain[0]["bucket"]["id"] == bucket_id
    with_cols = client.buckets.list_tables(bucket_id, include=["columns"])
    assert with_cols[0]["columns"] == ["x", "y"]
    everything = client.tables.list(include=["columns", "buckets"])
    mine = [t for t in everything if t["id"] == f"{bucket_id}.one"]
    assert mine and mine[0]["columns"] == ["x", "y"] and mine[0]["bucket"]["id"] == bucket_id


def test_no_features_by_default(emulator: Emulator) -> None:
    client = emulator.client()
    assert requests.get(f"{emulator.api_url}/v2/storage", timeout=10).json()["features"] == []
    assert client.tokens.verify()["owner"]["features"] == []


def test_feature_flag_lists_the_feature_and_drops_the_c_prefix(make_emulator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """§12: `--feature disable-legacy-bucket-prefix` shows in the index and the token, and
    `POST /buckets name=sales` then creates `in.sales`; tables load into it as usual."""
    emu = make_emulator(
        extra_args=["--feature", "disable-legacy-bucket-prefix", "--feature", "other-flag", "--feature", "other-flag"]
    )
    client = emu.client()
    features = ["disable-legacy-bucket-prefix", "other-flag"]
    assert requests.get(f"{emu.api_url}/v2/storage", timeout=10).json()["features"] == features
    assert client.tokens.verify()["owner"]["features"] == features
    bucket = client.buckets.create("sales", stage="in")
    assert bucket["id"] == "in.sales" and bucket["name"] == "sales" and bucket["displayName"] == "sales"
    assert [b["id"] for b in client.buckets.list()] == ["in.sales"]
    with pytest.raises(requests.HTTPError) as info:
        client.buckets.create("sales", stage="in")
    assert info.value.response.json()["code"] == "storage.buckets.alreadyExists"
    job = create_table_job(client, "in.sales", "orders", write(tmp_path / "o.csv", "id\n1\n"))
    assert job["status"] == "success" and job["results"]["id"] == "in.sales.orders"
    assert client.tables.detail("in.sales.orders")["bucket"]["id"] == "in.sales"
