"""Issue 17: the gaps real Keboola clients (kbagent, pykeboola, keboola-streamlit) hit, one shape test
each, against the JSON shapes of keboola-storage-api.md §1.3 and §12. Raw HTTP where the shape of
the answer is the point, the real kbcstorage client where a table with rows is needed."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import boto3
import pytest
import requests
from botocore.config import Config
from emulator_helpers import create_table_job, load_job, new_bucket, unique, write

from support.emulator import Emulator, wait_for


class Api:
    """Plain HTTP against the emulator with the token; every call bounded by a timeout."""

    def __init__(self, emulator: Emulator) -> None:
        self.base = f"{emulator.api_url}/v2/storage"
        self.headers = {"X-StorageApi-Token": emulator.token}

    def call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return requests.request(method, self.base + path, headers=self.headers, timeout=20, **kwargs)

    def job(self, answer: requests.Response) -> dict[str, Any]:
        assert answer.status_code == 202, answer.text
        job_id = answer.json()["id"]
        return wait_for(
            lambda: (j := self.call("GET", f"/jobs/{job_id}").json())["status"] in ("success", "error") and j,
            timeout=20,
            message=f"job {job_id}",
        )


@pytest.fixture
def api(emulator: Emulator) -> Api:
    return Api(emulator)


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return emulator.client()


def csv_table(client: Any, tmp_path: Path, content: str = "id,name\n1,a\n2,b\n3,c\n") -> str:
    bucket_id = new_bucket(client)
    job = create_table_job(client, bucket_id, "t", write(tmp_path / "t.csv", content))
    assert job["status"] == "success", job.get("error")
    return str(job["results"]["id"])


# -- 1. columnMetadata is {} when empty (§12) --------------------------------------------------------
def test_empty_column_metadata_is_an_object_everywhere(api: Api, client: Any, tmp_path: Path) -> None:
    table_id = csv_table(client, tmp_path)
    bucket_id = table_id.rpartition(".")[0]
    detail = api.call("GET", f"/tables/{table_id}")
    assert '"columnMetadata": {}' in detail.text and detail.json()["columnMetadata"] == {}
    listed = api.call("GET", "/tables", params={"include": "columns,metadata,columnMetadata"}).json()
    assert next(t for t in listed if t["id"] == table_id)["columnMetadata"] == {}
    in_bucket = api.call("GET", f"/buckets/{bucket_id}").json()["tables"]
    assert in_bucket[0]["columnMetadata"] == {}
    assert (
        api.call("GET", f"/buckets/{bucket_id}/tables", params={"include": "columnMetadata"}).json()[0][
            "columnMetadata"
        ]
        == {}
    )


# -- 2. tables-definition: typed create, a job (§12) ---------------------------------------------------
def test_tables_definition_creates_a_typed_table_in_a_job(api: Api, client: Any, tmp_path: Path) -> None:
    bucket_id = new_bucket(client)
    body = {
        "name": "typed",
        "primaryKeysNames": ["id"],
        "columns": [
            {"name": "id", "definition": {"type": "INTEGER", "nullable": False}},
            {"name": "label", "definition": {"type": "VARCHAR", "length": "255"}},
            {"name": "price", "definition": {"type": "NUMBER", "length": "12,2"}},
        ],
    }
    answer = api.call("POST", f"/buckets/{bucket_id}/tables-definition", json=body)
    assert answer.json()["operationName"] == "tableDefinitionCreate" and answer.json()["tableId"] is None
    job = api.job(answer)
    assert job["status"] == "success", job.get("error")
    table_id = f"{bucket_id}.typed"
    assert job["tableId"] == table_id and job["results"]["id"] == table_id
    detail = api.call("GET", f"/tables/{table_id}").json()
    assert detail["isTyped"] is True and detail["columns"] == ["id", "label", "price"]
    assert detail["primaryKey"] == ["id"] and detail["rowsCount"] == 0
    assert detail["definition"]["primaryKeysNames"] == ["id"]
    assert [c["basetype"] for c in detail["definition"]["columns"]] == ["INTEGER", "STRING", "NUMERIC"]
    storage = {
        (col, m["key"]): m["value"]
        for col, items in detail["columnMetadata"].items()
        for m in items
        if m["provider"] == "storage"
    }
    assert storage[("id", "KBC.datatype.basetype")] == "INTEGER"
    assert storage[("id", "KBC.datatype.nullable")] == ""
    assert storage[("label", "KBC.datatype.type")] == "VARCHAR"
    assert storage[("price", "KBC.datatype.length")] == "12,2"
    # a load fills it; an extra column is refused (typed tables never gain columns on import, §0)
    loaded = load_job(client, table_id, write(tmp_path / "a.csv", "id,label,price\n1,x,2.5\n"))
    assert loaded["status"] == "success", loaded.get("error")
    assert api.call("GET", f"/tables/{table_id}").json()["rowsCount"] == 1
    extra = load_job(client, table_id, write(tmp_path / "b.csv", "id,label,price,more\n1,x,2,y\n"))
    assert extra["status"] == "error" and extra["error"]["code"] == "csvImport.columnsNotMatch"


def test_tables_definition_refuses_a_bad_request_before_any_job(api: Api, client: Any) -> None:
    bucket_id = new_bucket(client)
    no_columns = api.call("POST", f"/buckets/{bucket_id}/tables-definition", json={"name": "x", "columns": []})
    assert no_columns.status_code == 400 and no_columns.json()["code"] == "validation.failed"
    no_type = api.call(
        "POST", f"/buckets/{bucket_id}/tables-definition", json={"name": "x", "columns": [{"name": "a"}]}
    )
    assert no_type.status_code == 400
    bad_pk = api.job(
        api.call(
            "POST",
            f"/buckets/{bucket_id}/tables-definition",
            json={"name": "x", "primaryKeysNames": ["zz"], "columns": [{"name": "a", "definition": {"type": "INT"}}]},
        )
    )
    assert bad_pk["status"] == "error"
    assert bad_pk["error"]["code"] == "storage.tables.validation.invalidPrimaryKeyColumns"


# -- 3. metadata: table (JSON and form), bucket, branch (§12) -----------------------------------------
def test_table_metadata_post_json_answers_metadata_and_columns_metadata(api: Api, client: Any, tmp_path: Path) -> None:
    table_id = csv_table(client, tmp_path)
    answer = api.call(
        "POST",
        f"/tables/{table_id}/metadata",
        json={
            "provider": "keboola-sync",
            "metadata": [{"key": "keboola-sync.managed", "value": "true"}],
            "columnsMetadata": {"name": [{"key": "KBC.description", "value": "the name"}]},
        },
    )
    assert answer.status_code == 201
    body = answer.json()
    assert set(body) == {"metadata", "columnsMetadata"}
    (item,) = body["metadata"]
    assert set(item) == {"id", "key", "value", "provider", "timestamp"} and isinstance(item["id"], str)
    assert (item["key"], item["value"], item["provider"]) == ("keboola-sync.managed", "true", "keboola-sync")
    assert body["columnsMetadata"]["name"][0]["value"] == "the name"
    # stored and returned as Keboola does: detail, list with include=metadata, GET metadata
    detail = api.call("GET", f"/tables/{table_id}").json()
    assert [(m["provider"], m["key"]) for m in detail["metadata"]] == [("keboola-sync", "keboola-sync.managed")]
    assert detail["columnMetadata"]["name"][0]["key"] == "KBC.description"
    listed = api.call("GET", "/tables", params={"include": "metadata"}).json()
    assert next(t for t in listed if t["id"] == table_id)["metadata"][0]["provider"] == "keboola-sync"
    assert api.call("GET", f"/tables/{table_id}/metadata").json()[0]["id"] == item["id"]
    # same provider + key is an upsert: one entry, new value, same id
    again = api.call(
        "POST",
        f"/tables/{table_id}/metadata",
        json={"provider": "keboola-sync", "metadata": [{"key": "keboola-sync.managed", "value": "yes"}]},
    ).json()
    assert [(m["id"], m["value"]) for m in again["metadata"]] == [(item["id"], "yes")]
    assert api.call("DELETE", f"/tables/{table_id}/metadata/{item['id']}").status_code == 204
    assert api.call("GET", f"/tables/{table_id}/metadata").json() == []


def test_table_metadata_form_with_php_indexes_answers_the_list(api: Api, client: Any, tmp_path: Path) -> None:
    table_id = csv_table(client, tmp_path)
    answer = api.call(
        "POST",
        f"/tables/{table_id}/metadata",
        data={
            "provider": "user",
            "metadata[0][key]": "KBC.description",
            "metadata[0][value]": "orders",
            "metadata[1][key]": "owner",
            "metadata[1][value]": "ops",
        },
    )
    assert answer.status_code == 201
    assert [(m["key"], m["value"]) for m in answer.json()] == [("KBC.description", "orders"), ("owner", "ops")]


def test_bucket_metadata_get_post_delete_and_in_the_bucket(api: Api, client: Any) -> None:
    bucket_id = new_bucket(client)
    posted = api.call(
        "POST",
        f"/buckets/{bucket_id}/metadata",
        json={"provider": "user", "metadata": [{"key": "KBC.description", "value": "raw data"}]},
    )
    assert posted.status_code == 201
    (item,) = posted.json()
    assert item["key"] == "KBC.description" and isinstance(item["id"], str)
    assert api.call("GET", f"/buckets/{bucket_id}/metadata").json() == [item]
    assert api.call("GET", f"/buckets/{bucket_id}").json()["metadata"] == [item]
    listed = api.call("GET", "/buckets", params={"include": "metadata"}).json()
    assert next(b for b in listed if b["id"] == bucket_id)["metadata"] == [item]
    assert api.call("DELETE", f"/buckets/{bucket_id}/metadata/{item['id']}").status_code == 204
    assert api.call("GET", f"/buckets/{bucket_id}/metadata").json() == []
    missing = api.call("GET", "/buckets/in.c-nope-nope/metadata")
    assert missing.status_code == 404 and missing.json()["code"] == "storage.buckets.notFound"


def test_branch_metadata_get_and_post(api: Api, client: Any) -> None:
    key = unique("project.note")
    posted = api.call(
        "POST", "/branch/default/metadata", json={"provider": "user", "metadata": [{"key": key, "value": "v"}]}
    )
    assert posted.status_code == 201
    assert any(m["key"] == key for m in posted.json())
    assert any(m["key"] == key for m in client.branches.metadata("default"))  # kbcstorage's own call
    assert any(m["key"] == key for m in api.call("GET", "/branch/1/metadata").json())
    assert api.call("GET", "/branch/999/metadata").status_code == 404


# -- 4. PHP-style indexed parameters (§12) --------------------------------------------------------------
def test_php_indexed_params_in_form_and_query(api: Api) -> None:
    tag = unique("tag")
    prepared = api.call("POST", "/files/prepare", data={"name": "a.csv", "tags[0]": tag, "tags[1]": "second"})
    assert prepared.status_code == 201 and prepared.json()["tags"] == [tag, "second"]
    other = api.call("POST", "/files/prepare", data={"name": "b.csv", "tags[]": "unrelated"})
    assert other.json()["tags"] == ["unrelated"]
    for query in ({"tags[0]": tag}, {"tags[]": tag}):
        found = api.call("GET", "/files", params=query).json()
        assert [f["id"] for f in found] == [prepared.json()["id"]], query


# -- 5. tokens/verify (§1.3, §12) -----------------------------------------------------------------------
def test_verify_organization_id_is_a_string_and_real_fields_exist(api: Api) -> None:
    body = api.call("GET", "/tokens/verify").json()
    assert isinstance(body["organization"]["id"], str) and isinstance(body["owner"]["id"], int)
    assert body["owner"]["hasTryModeOn"] == "0" and body["owner"]["hasMysql"] is False
    assert "billedMonthlyPrice" in body["owner"]
    assert body["isBYODB"] is False and body["admin"]["isActivated"] is True


# -- 6. trailing slashes ----------------------------------------------------------------------------
def test_paths_with_a_trailing_slash_reach_the_same_route(api: Api, client: Any, tmp_path: Path) -> None:
    table_id = csv_table(client, tmp_path)
    assert api.call("GET", "/buckets/").status_code == 200
    assert api.call("GET", f"/tables/{table_id}/").json()["id"] == table_id
    assert api.call("DELETE", f"/tables/{table_id}/", params={"force": "true"}).status_code == 204  # pykeboola
    assert api.call("GET", f"/tables/{table_id}").status_code == 404


# -- 7. events (§12) ------------------------------------------------------------------------------------
def test_events_post_answers_201_with_string_id_and_uuid_and_lists(api: Api) -> None:
    message = unique("read table")
    answer = api.call(
        "POST",
        "/events",
        json={"component": "keboola.data-apps", "message": message, "params": {"user": "u"}},
    )
    assert answer.status_code == 201
    event = answer.json()
    assert isinstance(event["id"], str) and event["uuid"] and event["type"] == "info"
    assert event["event"] == "ext.keboola.data-apps." and event["params"] == {"user": "u"}
    listed = api.call("GET", "/events", params={"component": "keboola.data-apps"}).json()
    assert listed[0]["id"] == event["id"] and listed[0]["message"] == message
    blank = api.call("POST", "/events", json={"message": "no component"})
    assert blank.status_code == 400 and blank.json()["code"] == "validation.failed"


# -- 8. truncate (§12) -----------------------------------------------------------------------------
def test_delete_rows_truncates_in_a_job_and_keeps_the_columns(api: Api, client: Any, tmp_path: Path) -> None:
    table_id = csv_table(client, tmp_path)
    refused = api.call("DELETE", f"/tables/{table_id}/rows")
    assert refused.status_code == 400 and refused.json()["code"] == "storage.tables.validation"
    some = api.job(
        api.call("DELETE", f"/tables/{table_id}/rows", params={"whereColumn": "id", "whereValues[]": ["1", "2"]})
    )
    assert some["status"] == "success" and some["operationName"] == "tableRowsDelete"
    assert client.tables.preview(table_id) == '"id","name"\n"3","c"\n'
    job = api.job(api.call("DELETE", f"/tables/{table_id}/rows", params={"allowTruncate": "1"}))
    assert job["status"] == "success" and job["tableId"] == table_id
    detail = api.call("GET", f"/tables/{table_id}").json()
    assert detail["rowsCount"] == 0 and detail["columns"] == ["id", "name"]
    assert client.tables.preview(table_id) == '"id","name"\n'


# -- 9. bucket counts in embedded buckets, include=linkedBuckets ---------------------------------------
def test_embedded_bucket_has_counts_and_linked_buckets_are_listed_on_request(
    api: Api, client: Any, tmp_path: Path
) -> None:
    table_id = csv_table(client, tmp_path)
    bucket_id = table_id.rpartition(".")[0]
    detail = api.call("GET", f"/tables/{table_id}").json()
    assert detail["bucket"]["rowsCount"] == 3 and detail["bucket"]["dataSizeBytes"] == detail["dataSizeBytes"] > 0
    jobs = api.call("GET", "/jobs").json()
    create_job = next(j for j in jobs if j["tableId"] == table_id and j["operationName"] == "tableCreate")
    assert create_job["results"]["bucket"]["rowsCount"] == 3  # the tableCreate results embed it too
    listed = api.call("GET", "/tables").json()
    assert next(t for t in listed if t["id"] == table_id)["bucket"]["rowsCount"] == 3
    plain = next(b for b in api.call("GET", "/buckets").json() if b["id"] == bucket_id)
    assert "linkedBy" not in plain and plain["rowsCount"] == 3
    linked = next(
        b for b in api.call("GET", "/buckets", params={"include": "linkedBuckets"}).json() if b["id"] == bucket_id
    )
    assert linked["linkedBy"] == []


# -- out of scope: Keboola's own "not found" shape ----------------------------------------------------
@pytest.mark.parametrize("path", ["/workspaces", "/components", "/components/keboola.ex-http/configs"])
def test_out_of_scope_apis_answer_not_found(api: Api, path: str) -> None:
    answer = api.call("GET", path)
    assert answer.status_code == 404
    body = answer.json()
    assert body["code"] == "notFound" and body["error"] and body["exceptionId"] and body["status"] == "error"
    assert json.loads(answer.text) == body


# -- reached through a TLS front under a real-looking name (kbagent, tests/clients) -------------------
def test_a_fronted_client_gets_real_looking_urls_and_s3_answers_virtual_hosted_requests(
    emulator: Emulator, api: Api
) -> None:
    fronted = {**api.headers, "Host": "connection.keboola.test"}
    prepared = requests.post(
        f"{api.base}/files/prepare", headers=fronted, data={"name": "v.txt", "federationToken": "1"}, timeout=20
    ).json()
    params = prepared["uploadParams"]
    key = params["key"]
    virtual_host = "kbc-sapi-files.s3.us-east-1.amazonaws.com"
    # Signed with the prepared credentials, as real S3 wants (§12): a presigned PUT for the
    # virtual-hosted AWS address (the bucket in the host, not the path), sent to the emulator's port.
    aws = boto3.client(
        "s3",
        region_name="us-east-1",
        endpoint_url="https://s3.us-east-1.amazonaws.com",  # not AWS_ENDPOINT_URL_S3, which names the emulator
        config=Config(signature_version="s3v4", s3={"addressing_style": "virtual"}),
        aws_access_key_id=params["credentials"]["AccessKeyId"],
        aws_secret_access_key=params["credentials"]["SecretAccessKey"],
        aws_session_token=params["credentials"]["SessionToken"],
    )
    sse = params["x-amz-server-side-encryption"]
    signed = urlsplit(
        aws.generate_presigned_url(
            "put_object", Params={"Bucket": params["bucket"], "Key": key, "ServerSideEncryption": sse}, ExpiresIn=600
        )
    )
    assert signed.hostname == virtual_host and signed.path == f"/{key}"
    put = requests.put(
        f"{emulator.s3_url}{signed.path}?{signed.query}",
        headers={"Host": virtual_host, "x-amz-server-side-encryption": sse},
        data=b"virtual-hosted",
        timeout=20,
    )
    assert put.status_code == 200, put.text
    detail = requests.get(f"{api.base}/files/{prepared['id']}", headers=fronted, timeout=20).json()
    assert detail["url"].startswith(f"https://kbc-sapi-files.s3.us-east-1.amazonaws.com/{key}?")
    assert detail["sizeBytes"] == len(b"virtual-hosted")
    assert api.call("POST", "/buckets", data={"name": unique("front")}).status_code == 201
    bucket = requests.get(f"{api.base}/buckets", headers=fronted, timeout=20).json()
    assert bucket and all(b["uri"].startswith("https://connection.keboola.test/v2/storage/") for b in bucket)
    plain = api.call("GET", f"/files/{prepared['id']}").json()  # the same file over 127.0.0.1
    assert plain["url"].startswith(f"{emulator.s3_url}/kbc-sapi-files/")
    assert requests.get(plain["url"], timeout=20).content == b"virtual-hosted"


def test_a_data_dir_from_before_object_metadata_keeps_its_table_metadata(make_emulator: Any, tmp_path: Path) -> None:
    """--data-dir written by an emulator whose metadata table had no object_type column."""
    data_dir = tmp_path / "state"
    emu = make_emulator(data_dir=data_dir)
    client = emu.client()
    table_id = csv_table(client, tmp_path)
    old = Api(emu)
    old.call("POST", f"/tables/{table_id}/metadata", json={"provider": "p", "metadata": [{"key": "k", "value": "v"}]})
    emu.stop()
    with sqlite3.connect(data_dir / "catalog.sqlite") as db:  # back to the schema before issue 17
        db.executescript(
            "CREATE TABLE m (id INTEGER PRIMARY KEY AUTOINCREMENT, table_id TEXT NOT NULL, column_name TEXT,"
            " provider TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL, timestamp TEXT NOT NULL);"
            "INSERT INTO m SELECT id, table_id, column_name, provider, key, value, timestamp FROM metadata;"
            "DROP TABLE metadata; ALTER TABLE m RENAME TO metadata;"
        )
    emu.restart()
    api = Api(emu)
    assert [(m["key"], m["value"]) for m in api.call("GET", f"/tables/{table_id}/metadata").json()] == [("k", "v")]
    bucket_id = table_id.rpartition(".")[0]
    posted = api.call("POST", f"/buckets/{bucket_id}/metadata", json={"provider": "p", "metadata": [{"key": "b"}]})
    assert posted.status_code == 201 and [m["key"] for m in posted.json()] == ["b"]
