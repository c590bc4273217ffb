"""Pure rules of the storage room: finding a folder's bucket with or without `c-` (§3.2, §12), and reading
and writing the table metadata keboola-sync keeps (§4.1, §12). No network."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from keboola_sync.storage import (
    HEADER_KEY,
    OWNER_KEY,
    PROVIDER,
    SHA256_KEY,
    SOURCE_KEY,
    SYNC_KEYS,
    SyncMetadata,
    TokenInfo,
    predicted_bucket_id,
)
from keboola_sync.storage.buckets import find_bucket, legacy_prefix
from keboola_sync.storage.metadata import (
    IMPORTED_AT_KEY,
    ours,
    parse_date,
    parse_entries,
    parse_post_answer,
    table_summary,
)


def bucket(bucket_id: str, name: str, display: str) -> dict[str, str]:
    return {"id": bucket_id, "name": name, "displayName": display, "stage": bucket_id.partition(".")[0]}


# -- buckets -------------------------------------------------------------------------------------------


def test_the_feature_decides_the_prefix_from_either_place() -> None:
    assert legacy_prefix([]) is True
    assert legacy_prefix(["other", "disable-legacy-bucket-prefix"]) is False
    info = TokenInfo(1, "p", True, {}, "aws", features=frozenset({"disable-legacy-bucket-prefix"}))
    assert info.legacy_bucket_prefix is False
    assert TokenInfo(1, "p", True, {}, "aws").legacy_bucket_prefix is True
    assert predicted_bucket_id("sales", "in", legacy=True) == "in.c-sales"
    assert predicted_bucket_id("sales", "out", legacy=False) == "out.sales"


@pytest.mark.parametrize(
    ("buckets", "expected"),
    [
        ([bucket("in.c-sales", "c-sales", "sales")], "in.c-sales"),
        ([bucket("in.sales", "sales", "sales")], "in.sales"),
        # renamed for display: found by its displayName
        ([bucket("in.c-crm-2019", "c-crm-2019", "sales")], "in.c-crm-2019"),
        # an exact name wins over another bucket's displayName, whatever the order
        ([bucket("in.c-x", "c-x", "sales"), bucket("in.sales", "sales", "s")], "in.sales"),
        # another stage, another name, or only a similar name: not the folder's bucket
        ([bucket("out.c-sales", "c-sales", "sales")], None),
        ([bucket("in.c-sales2", "c-sales2", "sales2")], None),
        ([bucket("in.c-Sales", "c-Sales", "Sales")], None),
        ([], None),
    ],
)
def test_a_folder_finds_its_bucket_by_id_name_or_display_name(buckets: list[dict[str, str]], expected: str) -> None:
    assert find_bucket(buckets, "sales", "in") == expected


def test_a_bucket_without_a_stage_field_is_judged_by_its_id() -> None:
    assert find_bucket([{"id": "in.c-sales", "name": "c-sales"}], "sales", "in") == "in.c-sales"
    assert find_bucket([{"id": "out.c-sales", "name": "c-sales"}], "sales", "in") is None


# -- metadata ------------------------------------------------------------------------------------------


def test_the_keys_live_in_one_place_under_our_provider() -> None:
    assert PROVIDER == "keboola-sync"
    assert SYNC_KEYS == (OWNER_KEY, SHA256_KEY, HEADER_KEY, SOURCE_KEY, IMPORTED_AT_KEY)
    assert all(key.startswith("keboola-sync.") for key in SYNC_KEYS)


def test_sync_metadata_round_trips_through_keboola_strings() -> None:
    meta = SyncMetadata(owned=True, sha256="ab" * 32, header=("id", "Straße", "price €", ""), source="shop/ü.csv")
    values = meta.to_values()
    assert values[OWNER_KEY] == "keboola-sync"
    assert values[HEADER_KEY] == '["id", "Straße", "price €", ""]'
    assert SyncMetadata.from_values(values) == meta
    # absent fields are not written, so a partial write never clears what is there
    assert SyncMetadata(sha256="cd").to_values() == {SHA256_KEY: "cd"}
    assert SyncMetadata.from_values({}) == SyncMetadata()


def test_an_unreadable_header_entry_is_none_not_a_crash() -> None:
    for bad in ("not json", '{"a": 1}', "[1, 2]", ""):
        assert SyncMetadata.from_values({HEADER_KEY: bad}).header is None


def entry(key: str, value: str, provider: str = PROVIDER) -> dict[str, str]:
    return {"id": "1", "key": key, "value": value, "provider": provider, "timestamp": "2026-11-29T10:00:00+0100"}


def test_both_shapes_of_the_metadata_post_answer_are_read() -> None:
    listed = [entry(SHA256_KEY, "ab"), entry("KBC.description", "x", provider="user")]
    as_dict = {"metadata": listed, "columnsMetadata": {"id": [entry("KBC.datatype", "INT", provider="user")]}}
    assert parse_post_answer(listed) == parse_post_answer(as_dict)
    assert ours(parse_post_answer(as_dict)) == {SHA256_KEY: "ab"}
    assert parse_post_answer({"metadata": []}) == ()
    assert parse_entries({}) == () and parse_entries(None) == ()


def test_a_table_list_entry_becomes_a_typed_summary() -> None:
    raw = {
        "id": "in.c-shop.orders",
        "name": "orders",
        "displayName": "orders",
        "columns": ["id", "amount"],
        "rowsCount": 18,
        "lastImportDate": "2016-07-07T11:25:32+0200",
        "metadata": [entry(OWNER_KEY, "keboola-sync"), entry(SOURCE_KEY, "shop/orders.csv")],
        "columnMetadata": {},
        "bucket": {"id": "in.c-shop"},
    }
    summary = table_summary(raw)
    assert summary.table_id == "in.c-shop.orders" and summary.bucket_id == "in.c-shop"
    assert summary.columns == ("id", "amount") and summary.rows_count == 18
    assert summary.last_import_date == datetime(2016, 7, 7, 11, 25, 32, tzinfo=timezone(timedelta(hours=2)))
    assert summary.metadata == SyncMetadata(owned=True, source="shop/orders.csv")
    bare = table_summary({"id": "in.sales.x", "lastImportDate": None, "metadata": [], "columnMetadata": []})
    assert bare.bucket_id == "in.sales" and bare.name == "x" and bare.columns == ()
    assert bare.last_import_date is None and bare.metadata == SyncMetadata() and bare.rows_count is None


def test_dates_are_aware_or_none() -> None:
    assert parse_date("2026-11-29T10:00:00+00:00") == datetime(2026, 11, 29, 10, tzinfo=UTC)
    assert parse_date("yesterday") is None and parse_date(None) is None and parse_date("") is None
