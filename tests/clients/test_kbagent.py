"""kbagent (PyPI `keboola-cli` 0.100.2) against the emulator, through a TLS front.

kbagent accepts only `https://` stack URLs, uploads to `https://<bucket>.s3.<region>.amazonaws.com`
itself and refuses downloads from loopback addresses. So the test gives it what a real stack looks
like: the stack `https://connection.keboola.test` and AWS's S3 host, both reached through the TLS
front (tlsfront.py) via kbagent's own `HTTPS_PROXY` and `SSL_CERT_FILE` settings. kbagent itself is
unpatched and runs in its own venv; every command is `kbagent --json …`.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import pytest
import requests
from clientenv import clean_env, client_venv
from tlsfront import TlsFront

from support.emulator import Emulator, start_emulator

STACK = "https://connection.keboola.test"
PROJECT = "emu"


@dataclass
class Kbagent:
    binary: Path
    home: Path
    env: dict[str, str]
    emulator: Emulator
    front: TlsFront
    added: dict[str, Any] = field(default_factory=dict)

    def __call__(self, *args: str, ok: bool = True) -> dict[str, Any]:
        done = subprocess.run(
            [str(self.binary), "--json", "--config-dir", str(self.home / "config"), *args],
            capture_output=True,
            text=True,
            timeout=120,
            env=self.env,
            cwd=self.home,
        )
        try:
            answer: dict[str, Any] = json.loads(done.stdout)
        except ValueError:
            raise AssertionError(f"kbagent {args}: no JSON (exit {done.returncode}):\n{done.stderr[-3000:]}") from None
        if ok:
            assert answer.get("status") == "ok", f"kbagent {args}:\n{json.dumps(answer, indent=1)[:3000]}"
        return answer

    def storage(self, *args: str) -> Any:
        return self("storage", args[0], "--project", PROJECT, *args[1:])["data"]

    def seed(self, bucket: str, table: str, content: str) -> str:
        """A table made with kbcstorage, for tests whose subject is not kbagent's upload."""
        client = self.emulator.client()
        path = self.home / f"{bucket}-{table}.csv"
        path.write_text(content)
        return str(client.tables.create(client.buckets.create(bucket)["id"], table, str(path)))

    def rows(self, table_id: str) -> list[str]:
        lines = self.emulator.client().tables.preview(table_id).split("\n")
        return [lines[0], *sorted(lines[1:-1])]


@pytest.fixture(scope="module")
def kbagent(client_installs: dict[str, Future[Path]], tmp_path_factory: pytest.TempPathFactory) -> Iterator[Kbagent]:
    binary = client_venv(client_installs, "keboola-cli") / "bin" / "kbagent"
    emulator = start_emulator()
    home = tmp_path_factory.mktemp("kbagent")
    api, s3 = urlparse(emulator.api_url), urlparse(emulator.s3_url)

    def route(host: str) -> tuple[str, int] | None:
        if host.endswith(".keboola.test"):  # the stack and the services kbagent derives from it
            return str(api.hostname), int(api.port or 0)
        if host.endswith(".amazonaws.com"):
            return str(s3.hostname), int(s3.port or 0)
        return None

    front = TlsFront(home, route)
    env = clean_env(
        HOME=str(home),
        HTTPS_PROXY=front.proxy_url,
        SSL_CERT_FILE=str(front.ca_file),
        KBAGENT_AUTO_UPDATE="false",
        KBAGENT_SKIP_UPDATE="1",
        EMULATOR_TOKEN=emulator.token,
        COLUMNS="200",
        NO_COLOR="1",
    )
    agent = Kbagent(binary, home, env, emulator, front)
    try:
        agent.added = agent("project", "add", "--project", PROJECT, "--url", STACK, "--token-env", "EMULATOR_TOKEN")
        yield agent
    finally:
        front.close()
        emulator.close()


def write(agent: Kbagent, name: str, content: str) -> str:
    path = agent.home / name
    path.write_text(content)
    return str(path)


def test_project_add_verifies_the_token(kbagent: Kbagent) -> None:
    data = kbagent.added["data"]
    assert data["project_id"] == 1234 and data["project_name"] == "Keboola Emulator"
    assert data["stack_url"] == STACK and data["org_id"] == 1  # organization.id "1" (a string, §12)
    assert "connection.keboola.test" in kbagent.front.tunnels


def test_buckets_create_list_and_detail(kbagent: Kbagent) -> None:
    created = kbagent.storage("create-bucket", "--stage", "in", "--name", "listing")
    assert created["id"] == "in.c-listing" and created["display_name"] == "listing"
    listed = kbagent.storage("buckets")
    assert "in.c-listing" in json.dumps(listed)
    detail = kbagent.storage("bucket-detail", "--bucket-id", "in.c-listing")
    assert "in.c-listing" in json.dumps(detail)


def test_upload_table_creates_the_table_and_table_detail_reads_it(kbagent: Kbagent) -> None:
    csv = write(kbagent, "orders.csv", "id,name\n1,a\n2,b\n")
    loaded = kbagent.storage("upload-table", "--table-id", "in.c-shop.orders", "--file", csv)
    assert loaded["auto_created_bucket"] is True and loaded["auto_created_table"] is True  # tables-definition
    assert loaded["job_status"] == "success" and loaded["imported_rows"] == 2
    assert any(h.endswith(".amazonaws.com") for h in kbagent.front.tunnels)  # its own S3 upload
    detail = kbagent.storage("table-detail", "--table-id", "in.c-shop.orders")
    assert detail["columns"] == ["id", "name"] and detail["rows_count"] == 2
    assert [c["type"] for c in detail["column_details"]] == ["STRING", "STRING"]
    assert kbagent.rows("in.c-shop.orders") == ['"id","name"', '"1","a"', '"2","b"']


def test_full_and_incremental_load(kbagent: Kbagent) -> None:
    table_id = "in.c-loads.items"
    kbagent.storage("upload-table", "--table-id", table_id, "--file", write(kbagent, "a.csv", "id,v\n1,x\n2,y\n"))
    full = kbagent.storage("upload-table", "--table-id", table_id, "--file", write(kbagent, "b.csv", "id,v\n3,z\n"))
    assert full["incremental"] is False and full["imported_rows"] == 1
    assert kbagent.rows(table_id) == ['"id","v"', '"3","z"']
    more = write(kbagent, "c.csv", "id,v\n4,w\n")
    incremental = kbagent.storage("upload-table", "--table-id", table_id, "--file", more, "--incremental")
    assert incremental["incremental"] is True and incremental["imported_rows"] == 1
    assert kbagent.rows(table_id) == ['"id","v"', '"3","z"', '"4","w"']


def test_download_table(kbagent: Kbagent) -> None:
    table_id = kbagent.seed("export", "rows", "k,v\n1,one\n2,two\n")
    out = kbagent.home / "downloaded.csv"
    kbagent.storage("download-table", "--table-id", table_id, "--output", str(out))
    lines = out.read_text().splitlines()
    assert lines[0] == '"k","v"' and sorted(lines[1:]) == ['"1","one"', '"2","two"']


def test_file_upload_and_download_by_tag(kbagent: Kbagent) -> None:
    uploaded = kbagent.storage(
        "file-upload", "--file", write(kbagent, "notes.txt", "hello file"), "--tag", "report", "--tag", "q4"
    )
    assert isinstance(uploaded["id"], int)
    # a newer file with only one of the tags: a server that ignored the tag filter would hand this one out
    kbagent.storage("file-upload", "--file", write(kbagent, "other.txt", "wrong file"), "--tag", "report")
    target = kbagent.home / "got.txt"
    kbagent.storage("file-download", "--tag", "report", "--tag", "q4", "-o", str(target))
    assert target.read_text() == "hello file"
    listed = kbagent.storage("files", "--tag", "q4")
    assert [f["name"] for f in listed["files"]] == ["notes.txt"]


def test_truncate_table(kbagent: Kbagent) -> None:
    table_id = kbagent.seed("trunc", "rows", "a,b\n1,2\n3,4\n")
    kbagent.storage("truncate-table", "--table-id", table_id, "--yes")
    detail = kbagent.storage("table-detail", "--table-id", table_id)
    assert detail["rows_count"] == 0 and detail["columns"] == ["a", "b"]


def test_delete_table_and_bucket(kbagent: Kbagent) -> None:
    kbagent.seed("gone", "t", "a\n1\n")
    kbagent.storage("delete-table", "--table-id", "in.c-gone.t", "--yes")
    client = kbagent.emulator.client()
    assert client.buckets.list_tables("in.c-gone") == []
    kbagent.storage("delete-bucket", "--bucket-id", "in.c-gone", "--yes")
    assert "in.c-gone" not in [b["id"] for b in client.buckets.list()]


def test_usage_events_reach_the_events_api(kbagent: Kbagent) -> None:
    kbagent.storage("buckets")
    events = requests.get(
        f"{kbagent.emulator.api_url}/v2/storage/events",
        params={"component": "keboola.cli"},
        headers={"X-StorageApi-Token": kbagent.emulator.token},
        timeout=20,
    ).json()
    assert any(e["message"] == "storage buckets command done." for e in events)


def test_queue_api_is_out_of_scope_and_answers_not_found(kbagent: Kbagent) -> None:
    answer = kbagent("job", "list", "--project", PROJECT, ok=False)
    assert "queue.keboola.test" in kbagent.front.tunnels  # kbagent derived the Queue host from the stack
    (error,) = answer["data"]["errors"]  # kbagent reports per project and keeps going
    assert error["error_code"] == "NOT_FOUND" and error["message"].startswith("Resource not found: Not found")
