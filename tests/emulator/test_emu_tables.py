"""Tables (§4): create from a file, full and incremental loads, header rules, previews, export, drop.

Every case goes through the real kbcstorage client over HTTP and reads back what was stored.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_helpers import create_table_job, finished_job, load_job, new_bucket, preview_rows, write

from support.emulator import Emulator
from support.tables import export_table


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return emulator.client()


def make_table(client: Any, tmp_path: Path, content: str, name: str = "t", **kwargs: Any) -> str:
    bucket_id = new_bucket(client)
    job = create_table_job(client, bucket_id, name, write(tmp_path / f"{name}.csv", content), **kwargs)
    assert job["status"] == "success", job.get("error")
    return str(job["results"]["id"])


def test_create_job_shape_and_table_detail(client: Any, tmp_path: Path) -> None:
    bucket_id = new_bucket(client)
    job = create_table_job(client, bucket_id, "orders", write(tmp_path / "o.csv", "id,amount\n1,10\n2,20\n"))
    assert job["operationName"] == "tableCreate" and job["status"] == "success"
    assert isinstance(job["id"], int) and job["operationParams"]["source"]["type"] == "file"
    assert job["results"]["id"] == f"{bucket_id}.orders"
    detail = client.tables.detail(f"{bucket_id}.orders")
    assert detail["columns"] == ["id", "amount"] and detail["rowsCount"] == 2 and detail["primaryKey"] == []
    assert detail["lastImportDate"] and detail["lastChangeDate"] and detail["dataSizeBytes"] > 0
    assert detail["bucket"]["id"] == bucket_id


def test_create_job_reports_table_id_only_once_the_table_exists(
    emulator: Emulator, client: Any, tmp_path: Path
) -> None:
    """§12 (PHPT QueueJobsTest): a queued tableCreate job has `tableId: null` and
    `operationParams.source = {fileId, type: "file"}`; the finished job names the table."""
    bucket_id = new_bucket(client)
    file_id = client.files.upload_file(str(write(tmp_path / "o.csv", "id\n1\n")))
    emulator.set_faults(job_seconds=1.5)
    queued = client.tables.create_raw(bucket_id=bucket_id, name="orders", data_file_id=file_id)
    assert queued["tableId"] is None
    assert queued["operationParams"]["source"] == {"fileId": file_id, "type": "file"}
    assert client.jobs.detail(queued["id"])["tableId"] is None  # still processing
    emulator.reset_faults()
    done = finished_job(client, queued)
    assert done["status"] == "success" and done["tableId"] == f"{bucket_id}.orders"
    failed = create_table_job(client, bucket_id, "empty", write(tmp_path / "e.csv", ""))
    assert failed["status"] == "error" and failed["tableId"] is None


def test_header_is_sanitised(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "with spaces,ščřščž,_with_underscore,language-id,xMax\n1,2,3,4,5\n")
    assert client.tables.detail(table_id)["columns"] == [
        "with_spaces",
        "scrscz",
        "with_underscore",
        "language_id",
        "xMax_",
    ]


def test_header_with_cp1250_symbols_creates_and_loads_again(client: Any, tmp_path: Path) -> None:
    """§12: keboola/sanitizer's rule; the same header must load again into the table it created."""
    content = "id,Straße,price €,§5,2×3\n1,a,b,c,d\n"
    table_id = make_table(client, tmp_path, content)
    assert client.tables.detail(table_id)["columns"] == ["id", "Strase", "price", "S5", "2x3"]
    again = load_job(client, table_id, write(tmp_path / "again.csv", content.replace("1,a", "2,a")))
    assert again["status"] == "success", again.get("error")
    assert preview_rows(client, table_id)[1:] == ['"2","a","b","c","d"']


@pytest.mark.parametrize(
    ("header", "code"),
    [
        ("id,,name", "storage.tables.validation.invalidColumnName"),
        ("id," + "x" * 65, "storage.tables.validation.invalidColumnName"),
        ("id,name,Name", "csvImport.duplicateColumnNames"),
        ("a b,a_b", "csvImport.duplicateColumnNames"),
    ],
)
def test_bad_headers_fail_the_create_job(client: Any, tmp_path: Path, header: str, code: str) -> None:
    job = create_table_job(client, new_bucket(client), "t", write(tmp_path / "t.csv", header + "\n"))
    assert job["status"] == "error" and job["error"]["code"] == code


@pytest.mark.parametrize("second", ["Orders", "ORDERS", "orders"])
def test_table_names_are_case_insensitive(client: Any, tmp_path: Path, second: str) -> None:
    """§12: `Orders` beside `orders` is refused like a duplicate, with Keboola's code and message."""
    bucket_id = new_bucket(client)
    path = write(tmp_path / "t.csv", "a\n1\n")
    assert create_table_job(client, bucket_id, "orders", path)["status"] == "success"
    job = create_table_job(client, bucket_id, second, path)
    assert job["status"] == "error"
    assert job["error"]["code"] == "storage.buckets.tableAlreadyExists"
    assert job["error"]["message"] == (
        f'The table "orders" in the bucket already has the same display name "{second}".'
    )
    assert [t["id"] for t in client.buckets.list_tables(bucket_id)] == [f"{bucket_id}.orders"]


def test_empty_file_on_create_is_no_columns(client: Any, tmp_path: Path) -> None:
    job = create_table_job(client, new_bucket(client), "t", write(tmp_path / "e.csv", ""))
    assert job["error"]["code"] == "storage.tables.validation.noColumns"


def test_duplicate_table_and_bad_table_name(client: Any, tmp_path: Path) -> None:
    bucket_id = new_bucket(client)
    path = write(tmp_path / "t.csv", "a\n1\n")
    assert create_table_job(client, bucket_id, "t", path)["status"] == "success"
    again = create_table_job(client, bucket_id, "t", path)
    assert again["error"]["code"] == "storage.buckets.tableAlreadyExists"
    file_id = client.files.upload_file(str(path))
    with pytest.raises(requests.HTTPError) as info:
        client.tables.create_raw(bucket_id=bucket_id, name="with.dot", data_file_id=file_id)
    assert info.value.response.json()["code"] == "storage.tables.validation"


def test_primary_key_must_be_a_column(client: Any, tmp_path: Path) -> None:
    job = create_table_job(
        client, new_bucket(client), "t", write(tmp_path / "t.csv", "id,name\n1,a\n"), primary_key=["ID"]
    )
    assert job["error"]["code"] == "storage.tables.validation.invalidPrimaryKeyColumns"


def test_full_load_replaces_rows(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,name\n1,a\n2,b\n")
    job = load_job(client, table_id, write(tmp_path / "l.csv", "id,name\n3,c\n"), is_incremental=False)
    assert job["status"] == "success" and job["operationName"] == "tableImport"
    results = job["results"]
    assert results["importedRowsCount"] == 1 and results["totalRowsCount"] == 1
    assert results["importedColumns"] == ["id", "name"] and results["warnings"] == []
    assert preview_rows(client, table_id) == ['"id","name"', '"3","c"']
    assert client.tables.detail(table_id)["rowsCount"] == 1


def test_incremental_appends_and_pk_upserts(client: Any, tmp_path: Path) -> None:
    plain = make_table(client, tmp_path, "id,v\n1,a\n", name="plain")
    load_job(client, plain, write(tmp_path / "i.csv", "id,v\n1,b\n"), is_incremental=True)
    assert preview_rows(client, plain) == ['"id","v"', '"1","a"', '"1","b"']
    keyed = make_table(client, tmp_path, "id,v\n1,a\n2,b\n", name="keyed", primary_key=["id"])
    job = load_job(client, keyed, write(tmp_path / "k.csv", "id,v\n2,B\n3,c\n"), is_incremental=True)
    assert job["results"]["totalRowsCount"] == 3
    assert preview_rows(client, keyed) == ['"id","v"', '"1","a"', '"2","B"', '"3","c"']
    assert client.tables.detail(keyed)["primaryKey"] == ["id"]


def test_full_load_with_pk_dedups_file_rows(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,v\n1,a\n1,b\n", primary_key=["id"])
    assert client.tables.detail(table_id)["rowsCount"] == 1


def test_missing_columns_fail_with_the_real_error(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,name,missing\n1,a,x\n")
    job = load_job(client, table_id, write(tmp_path / "m.csv", "id,name\n2,b\n"))
    assert job["status"] == "error" and job["error"]["code"] == "csvImport.columnsNotMatch"
    assert job["error"]["message"] == (
        "Some columns are missing in the csv file. Missing columns: missing. Expected columns: "
        'id,name,missing. Please check if the expected delimiter "," is used in the csv file.'
    )
    assert job["results"]["missingColumns"] == ["missing"]
    assert job["results"]["expectedColumns"] == ["id", "name", "missing"]
    assert preview_rows(client, table_id) == ['"id","name","missing"', '"1","a","x"']


def test_case_mismatch_is_missing_columns(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,name\n1,a\n")
    job = load_job(client, table_id, write(tmp_path / "c.csv", "Id,Name\n2,b\n"))
    assert job["error"]["message"].startswith("Some columns are missing in the csv file. Missing columns: id,name.")


def test_empty_file_on_import_is_columns_not_match(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id\n1\n")
    assert load_job(client, table_id, write(tmp_path / "e.csv", ""))["error"]["code"] == "csvImport.columnsNotMatch"


def test_extra_columns_are_appended_and_order_is_by_name(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,name\n1,a\n")
    job = load_job(client, table_id, write(tmp_path / "x.csv", "code,name,id\nX,b,2\n"), is_incremental=True)
    assert job["status"] == "success"
    assert client.tables.detail(table_id)["columns"] == ["id", "name", "code"]
    assert preview_rows(client, table_id) == ['"id","name","code"', '"1","a",""', '"2","b","X"']


def test_ragged_row_fails_and_keeps_old_data(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,name\n1,a\n")
    job = load_job(client, table_id, write(tmp_path / "r.csv", "id,name\n2,b\n3,c,extra\n"))
    assert job["status"] == "error"
    assert "Number of columns in file (3) does not match that of the corresponding table (2)" in job["error"]["message"]
    assert preview_rows(client, table_id) == ['"id","name"', '"1","a"']  # the failed full load changed nothing
    assert client.tables.detail(table_id)["rowsCount"] == 1


def test_invalid_utf8_fails_the_job(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,name\n1,a\n")
    job = load_job(client, table_id, write(tmp_path / "u.csv", "id,name\n2,caf\xe9\n".encode("latin-1")))
    assert job["status"] == "error" and "UTF-8" in job["error"]["message"]
    assert preview_rows(client, table_id) == ['"id","name"', '"1","a"']


def test_bom_is_stripped_and_crlf_works(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "\ufeffid,name\r\n1,a\r\n")
    assert client.tables.detail(table_id)["columns"] == ["id", "name"]
    assert preview_rows(client, table_id) == ['"id","name"', '"1","a"']


def test_gz_file_name_means_gzip(client: Any, tmp_path: Path) -> None:
    bucket_id = new_bucket(client)
    gz = write(tmp_path / "data.csv.gz", "id,name\n1,a\n", gz=True)
    job = create_table_job(client, bucket_id, "gz", gz)
    assert job["status"] == "success" and job["metrics"]["inCompressed"] is True
    assert preview_rows(client, f"{bucket_id}.gz") == ['"id","name"', '"1","a"']
    # compressed bytes under a plain name are read as CSV, so they fail like garbage would
    plain_name = write(tmp_path / "data.csv", (tmp_path / "data.csv.gz").read_bytes())
    assert create_table_job(client, bucket_id, "notgz", plain_name)["status"] == "error"


def test_dialect_delimiter_enclosure_escape(client: Any, tmp_path: Path) -> None:
    bucket_id = new_bucket(client)
    semi = create_table_job(
        client, bucket_id, "semi", write(tmp_path / "s.csv", "a;b\n'x;y';2\n"), delimiter=";", enclosure="'"
    )
    assert semi["status"] == "success"
    assert preview_rows(client, f"{bucket_id}.semi") == ['"a","b"', '"x;y","2"']
    tab = create_table_job(client, bucket_id, "tab", write(tmp_path / "t.csv", "a\tb\n1\t2\n"), delimiter="\t")
    assert tab["status"] == "success"
    esc = create_table_job(
        client, bucket_id, "esc", write(tmp_path / "e.csv", "a,b\nx\\,y,2\n"), enclosure="", escaped_by="\\"
    )
    assert esc["status"] == "success"
    assert preview_rows(client, f"{bucket_id}.esc") == ['"a","b"', '"x,y","2"']
    quoted = create_table_job(client, bucket_id, "q", write(tmp_path / "q.csv", 'a,b\n"say ""hi""","multi\nline"\n'))
    assert quoted["status"] == "success"
    assert client.tables.preview(f"{bucket_id}.q") == '"a","b"\n"say ""hi""","multi\nline"\n'


def test_invalid_delimiter_is_400_invalid_csv(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "a\n1\n")
    file_id = client.files.upload_file(str(write(tmp_path / "x.csv", "a\n2\n")))
    with pytest.raises(requests.HTTPError) as info:
        client.tables.load_raw(table_id=table_id, data_file_id=file_id, delimiter="/t")
    assert info.value.response.status_code == 400 and info.value.response.json()["code"] == "invalidCsv"


def test_preview_formats_and_limits(client: Any, tmp_path: Path, emulator: Emulator) -> None:
    table_id = make_table(client, tmp_path, "id,name\n1,a\n2,b\n3,c\n")
    url = f"{emulator.api_url}/v2/storage/tables/{table_id}/data-preview"
    headers = {"X-StorageApi-Token": emulator.token}
    body = requests.get(url, params={"format": "json", "limit": 1}, headers=headers, timeout=10).json()
    assert body["columns"] == ["id", "name"] and len(body["rows"]) == 1
    assert set(body["rows"][0][0]) == {"columnName", "value", "isTruncated"}
    r = requests.get(url, params={"limit": 1200}, headers=headers, timeout=10)
    assert r.status_code == 400 and r.json()["code"] == "storage.tables.validation" and "1000" in r.json()["error"]
    rfc = requests.get(url, params={"columns": "name", "limit": 2}, headers=headers, timeout=10)
    assert rfc.headers["Content-Type"].startswith("text/csv") and rfc.text.count("\n") == 3
    only = client.tables.preview(table_id, where_column="id", where_values=["2"])
    assert only == '"id","name"\n"2","b"\n'


def test_export_to_file_plain_gzip_and_columns(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,name,x\n1,a,p\n2,b,q\n")
    for gz in (False, True):
        lines = export_table(client, table_id, tmp_path / f"out-{gz}", is_gzip=gz).read_text().splitlines()
        assert sorted(lines) == ['"1","a","p"', '"2","b","q"', '"id","name","x"']
    path = export_table(client, table_id, tmp_path / "cols", columns=["x", "id"])
    assert sorted(path.read_text().splitlines()) == ['"p","1"', '"q","2"', '"x","id"']


def test_delete_table_and_missing_table(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "a\n1\n")
    client.tables.delete(table_id)
    with pytest.raises(requests.HTTPError) as info:
        client.tables.detail(table_id)
    assert info.value.response.status_code == 404
    assert info.value.response.json()["code"] == "storage.tables.notFound"
    with pytest.raises(requests.HTTPError) as info:
        client.tables.detail("in.c-nope.t")
    assert info.value.response.json()["code"] == "storage.buckets.notFound"


def test_sdk_load_raises_runtime_error_with_the_message(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,name\n1,a\n")
    with pytest.raises(RuntimeError, match="Some columns are missing in the csv file"):
        client.tables.load(table_id, str(write(tmp_path / "bad.csv", "id\n1\n")))


def test_import_without_headers_uses_table_columns(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, "id,name\n1,a\n")
    job = load_job(client, table_id, write(tmp_path / "n.csv", "2,b\n3,c\n"), without_headers=True)
    assert job["status"] == "success" and job["results"]["importedRowsCount"] == 2
    assert preview_rows(client, table_id) == ['"id","name"', '"2","b"', '"3","c"']


def test_sdk_compressed_upload_loads(client: Any, tmp_path: Path) -> None:
    """kbcstorage's upload_file(compress=True) names the Storage file `x.csv.gz` (§4.6, §9.7)."""
    table_id = make_table(client, tmp_path, "id,name\n1,a\n")
    file_id = client.files.upload_file(str(write(tmp_path / "c.csv", "id,name\n7,g\n")), compress=True)
    assert client.files.detail(file_id)["name"] == "c.csv.gz"
    job = finished_job(client, client.tables.load_raw(table_id=table_id, data_file_id=file_id))
    assert job["status"] == "success" and job["metrics"]["inCompressed"] is True
    assert preview_rows(client, table_id) == ['"id","name"', '"7","g"']


def wide_csv(width: int, prefix: str = "c") -> str:
    return ",".join(f"{prefix}{i}" for i in range(width)) + "\n" + ",".join(str(i) for i in range(width)) + "\n"


def test_a_table_may_have_1200_columns_not_more(client: Any, tmp_path: Path) -> None:
    """Keboola's column limit (1200, naming.MAX_TABLE_COLUMNS) is a validation error of the job,
    never SQLite's `too many columns` as an internal error — also far past SQLite's own limit."""
    bucket_id = new_bucket(client)
    ok = create_table_job(client, bucket_id, "at_limit", write(tmp_path / "a.csv", wide_csv(1200)))
    assert ok["status"] == "success", ok.get("error")
    assert len(client.tables.detail(f"{bucket_id}.at_limit")["columns"]) == 1200
    for width in (1201, 5000):
        job = create_table_job(client, bucket_id, f"w{width}", write(tmp_path / f"w{width}.csv", wide_csv(width)))
        assert job["status"] == "error"
        assert job["error"]["code"] == "storage.tables.validation.tooManyColumns"
        assert job["error"]["message"] == (
            f"Too many columns. The table would have {width} columns; at most 1200 columns are allowed."
        )
    assert [t["name"] for t in client.buckets.list_tables(bucket_id)] == ["at_limit"]


def test_an_import_may_not_widen_a_table_past_the_limit(client: Any, tmp_path: Path) -> None:
    table_id = make_table(client, tmp_path, wide_csv(1000))
    wider = ",".join([f"c{i}" for i in range(1000)] + [f"x{i}" for i in range(201)]) + "\n" + "1," * 1200 + "1\n"
    job = load_job(client, table_id, write(tmp_path / "wider.csv", wider))
    assert job["status"] == "error" and job["error"]["code"] == "storage.tables.validation.tooManyColumns"
    detail = client.tables.detail(table_id)
    assert len(detail["columns"]) == 1000 and detail["rowsCount"] == 1  # nothing changed


def test_data_preview_of_a_wide_table_fails_as_keboola_does(emulator: Emulator, client: Any, tmp_path: Path) -> None:
    """§12 (PHPT Snowflake TableExportTest): 130 columns -> 400 storage.maxNumberOfColumnsExceed."""
    table_id = make_table(client, tmp_path, wide_csv(130))
    url = f"{emulator.api_url}/v2/storage/tables/{table_id}/data-preview"
    headers = {"X-StorageApi-Token": emulator.token}
    for fmt in ("rfc", "json"):
        r = requests.get(url, params={"format": fmt}, headers=headers, timeout=10)
        assert r.status_code == 400 and r.json()["code"] == "storage.maxNumberOfColumnsExceed"
    with pytest.raises(requests.HTTPError) as info:
        client.tables.preview(table_id)
    assert info.value.response.status_code == 400
    narrow = requests.get(url, params={"columns": "c0,c129"}, headers=headers, timeout=10)
    assert narrow.status_code == 200 and narrow.text == '"c0","c129"\n"0","129"\n'
    at_limit = make_table(client, tmp_path, wide_csv(120), name="t120")
    assert preview_rows(client, at_limit)[1] == ",".join(f'"{i}"' for i in range(120))
