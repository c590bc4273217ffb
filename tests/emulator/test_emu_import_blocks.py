"""Loads insert records in blocks (csvimport.RowBlocks -> one multi-row INSERT per block), so every
error path is checked on files of many blocks, with the bad record deep inside and mid-block.

The expected record numbers come from Python's csv reader over the same bytes and the same stream
stack the emulator had before blocks (the reader's `line_num` right after the bad record, or +1 for
read errors), i.e. what a single-row import reported.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
from pathlib import Path
from typing import Any

import pytest
from emulator_helpers import create_table_job, finished_job, load_job, new_bucket, preview_rows, write

from support.emulator import Emulator

ROWS = 1_000  # ten blocks of 100 records and a few single-row leftovers


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return emulator.client()


def rows_text(count: int, start: int = 0, multiline_every: int = 0) -> str:
    """`id,name` records; every `multiline_every`-th has a quoted name spanning two lines (CRLF inside)."""
    out = []
    for i in range(start, start + count):
        name = f'"n{i}\r\nsecond line"' if multiline_every and i % multiline_every == 0 else f"n{i}"
        out.append(f"{i},{name}\n")
    return "".join(out)


def expected_record(data: bytes, bad_index: int) -> int:
    """line_num of the csv reader right after reading data record `bad_index` (0-based, after the header)."""
    reader = csv.reader(io.TextIOWrapper(io.BytesIO(data), encoding="utf-8-sig", newline=""), strict=True)
    next(reader)
    for i, _ in enumerate(reader):
        if i == bad_index:
            return int(reader.line_num)
    raise AssertionError("bad record not found")


def read_error_record(data: bytes) -> int:
    """line_num + 1 where the old stream stack (256 KiB buffered object reader) raised a read error."""
    text = io.TextIOWrapper(
        io.BufferedReader(io.BytesIO(data), buffer_size=256 * 1024),  # type: ignore[arg-type]
        encoding="utf-8-sig",
        newline="",
    )
    reader = csv.reader(text, strict=True)
    try:
        for _ in reader:
            pass
    except (UnicodeDecodeError, csv.Error):
        return int(reader.line_num) + 1
    raise AssertionError("no read error")


def width_message(got: int, expected: int, record: int) -> str:
    return (
        f"Load error: Error while loading data. Number of columns in file ({got}) does not match that of "
        f"the corresponding table ({expected}), record {record}."
    )


@pytest.mark.parametrize(
    ("bad_index", "bad_row", "got"),
    [
        (777, "777,n777,extra\n", 3),  # mid-block, too many cells
        (800, "800\n", 1),  # first record of a block, too few
        (ROWS - 3, "997,a,b,c\n", 4),  # among the single-row leftovers
        (450, "\n", 0),  # an empty line is a record of 0 cells
    ],
)
def test_wrong_width_deep_inside_names_that_record(
    client: Any, tmp_path: Path, bad_index: int, bad_row: str, got: int
) -> None:
    records = [r.rstrip("\n") for r in (rows_text(1, start=i, multiline_every=37) for i in range(ROWS))]
    records[bad_index] = bad_row.rstrip("\n")
    data = ("id,name\n" + "\n".join(records) + "\n").encode()
    job = create_table_job(client, new_bucket(client), "t", write(tmp_path / "w.csv", data))
    assert job["status"] == "error" and job["error"]["code"] == "invalidCsv"
    assert job["error"]["message"] == width_message(got, 2, expected_record(data, bad_index))


def test_wrong_width_before_a_broken_quote_in_the_same_block_wins(client: Any, tmp_path: Path) -> None:
    body = rows_text(ROWS).split("\n")
    body[510] = "510,n510,extra"
    body[520] = '520,"never closed'
    data = ("id,name\n" + "\n".join(body)).encode()
    job = create_table_job(client, new_bucket(client), "t", write(tmp_path / "q.csv", data))
    assert job["error"]["message"] == width_message(3, 2, expected_record(data, 510))


def test_broken_quote_deep_inside_is_invalid_csv_near_its_record(client: Any, tmp_path: Path) -> None:
    body = rows_text(ROWS).split("\n")
    body[640] = '640,"bad"quote'
    data = ("id,name\n" + "\n".join(body)).encode()
    job = create_table_job(client, new_bucket(client), "t", write(tmp_path / "q.csv", data))
    assert job["error"]["code"] == "invalidCsv"
    assert job["error"]["message"].startswith(f"Invalid CSV near record {read_error_record(data)}: ")


@pytest.mark.parametrize("gz", [False, True])
def test_invalid_utf8_in_a_later_block(client: Any, tmp_path: Path, gz: bool) -> None:
    body = ("id,name\n" + rows_text(20_000)).encode()  # ~250 kB: many blocks and text chunks
    at = body.index(b"\n15000,") + 1
    data = body[:at] + b"15000,caf\xe9\n" + body[body.index(b"\n", at) + 1 :]
    name = "u.csv.gz" if gz else "u.csv"
    job = create_table_job(client, new_bucket(client), "t", write(tmp_path / name, data, gz=gz))
    assert job["error"]["code"] == "invalidCsv"
    message = job["error"]["message"]
    assert message.startswith("Invalid UTF-8 in the CSV file near record ") and "UTF-8 encoded files only" in message
    if not gz:  # the gzip reader hands out other chunk sizes, so "near" differs there, as it always did
        assert message.startswith(f"Invalid UTF-8 in the CSV file near record {read_error_record(data)}: ")


def test_failed_full_load_deep_inside_keeps_the_old_rows(client: Any, tmp_path: Path) -> None:
    bucket_id = new_bucket(client)
    job = create_table_job(client, bucket_id, "t", write(tmp_path / "a.csv", "id,name\n" + rows_text(3)))
    table_id = job["results"]["id"]
    body = rows_text(ROWS, start=100).split("\n")
    body[900] = "x,y,z"
    data = ("id,name\n" + "\n".join(body)).encode()
    for incremental in (False, True):
        failed = load_job(client, table_id, write(tmp_path / "b.csv", data), is_incremental=incremental)
        assert failed["error"]["message"] == width_message(3, 2, expected_record(data, 900))
        assert preview_rows(client, table_id) == ['"id","name"', '"0","n0"', '"1","n1"', '"2","n2"']
        assert client.tables.detail(table_id)["rowsCount"] == 3


def test_pk_upsert_last_duplicate_wins_across_and_within_blocks(client: Any, tmp_path: Path) -> None:
    data = "id,v\n" + "".join(f"{i % 7},{i}\n" for i in range(ROWS + 5))
    job = create_table_job(client, new_bucket(client), "t", write(tmp_path / "p.csv", data), primary_key=["id"])
    assert job["status"] == "success", job.get("error")
    table_id = job["results"]["id"]
    last = {i % 7: i for i in range(ROWS + 5)}
    assert preview_rows(client, table_id) == ['"id","v"', *sorted(f'"{k}","{v}"' for k, v in last.items())]
    loaded = load_job(client, table_id, write(tmp_path / "q.csv", data), is_incremental=True)
    assert loaded["results"]["importedRowsCount"] == ROWS + 5 and loaded["results"]["totalRowsCount"] == 7


def test_big_plain_and_gzip_loads_keep_every_row(client: Any, tmp_path: Path) -> None:
    data = "id,name\n" + rows_text(ROWS + 42, multiline_every=11)
    bucket_id = new_bucket(client)
    for name in ("p.csv", "g.csv.gz"):
        path = write(tmp_path / name, data, gz=name.endswith("gz"))
        job = create_table_job(client, bucket_id, name.split(".")[0], path)
        assert job["status"] == "success", job.get("error")
        assert client.tables.detail(job["results"]["id"])["rowsCount"] == ROWS + 42
    table_id = f"{bucket_id}.p"
    full = load_job(client, table_id, write(tmp_path / "f.csv", data))
    assert full["results"]["importedRowsCount"] == ROWS + 42 and full["results"]["totalRowsCount"] == ROWS + 42


def test_sliced_file_error_counts_records_within_its_slice(client: Any, emulator: Emulator) -> None:
    import boto3

    bucket_id = new_bucket(client)
    prepared = client.files.prepare_upload("sliced.csv", is_sliced=True)
    params = prepared["uploadParams"]
    creds = params["credentials"]
    s3 = boto3.client(
        "s3",
        endpoint_url=emulator.s3_url,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )
    second = rows_text(300, start=ROWS).split("\n")
    second[250] = "1250"
    second_data = "\n".join(second).encode()
    slices = {"part0": ("id,name\n" + rows_text(ROWS)).encode(), "part1.gz": gzip.compress(second_data)}
    entries = []
    for suffix, body in slices.items():
        s3.put_object(Bucket=params["bucket"], Key=params["key"] + suffix, Body=body, ServerSideEncryption="AES256")
        entries.append({"url": f"s3://{params['bucket']}/{params['key']}{suffix}"})
    manifest = json.dumps({"entries": entries}).encode()
    s3.put_object(Bucket=params["bucket"], Key=params["key"] + "manifest", Body=manifest, ServerSideEncryption="AES256")
    job = finished_job(client, client.tables.create_raw(bucket_id=bucket_id, name="s", data_file_id=prepared["id"]))
    # slices after the first have no header: record 251 of the second slice is its line 251
    assert job["error"]["message"] == width_message(1, 2, 251)
