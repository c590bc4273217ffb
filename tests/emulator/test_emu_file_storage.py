"""Issue 14: `--file-storage aws|azure|gcp`. Each mode answers in its provider's shape (§5.1, §5.2, §5.4)
and the bytes really go through Azurite / gcp-storage-emulator; the real kbcstorage client uploads,
imports, exports and downloads through its own ABS / GCS code paths (§9.8), and upload credentials
reach only the prepared object.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
import requests
from emulator_helpers import new_bucket, preview_rows, write

from support.emulator import Emulator, start_emulator

MODES = ("aws", "azure", "gcp")
CLOUDS = ("azure", "gcp")


@pytest.fixture
def file_storage(mode: str) -> str:
    """Each test's `mode` picks the session emulator of that file storage (support/emulator.py)."""
    return mode


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return emulator.client()


def _mode(emu: Emulator) -> str:
    return "azure" if emu.azure_url else "gcp" if emu.gcs_url else "aws"


every_mode = pytest.mark.parametrize("mode", MODES)
cloud_modes = pytest.mark.parametrize("mode", CLOUDS)


@every_mode
def test_ready_line_keeps_api_and_s3_first_and_names_the_cloud_emulator(emulator: Emulator) -> None:
    words = emulator.ready_line.split()
    assert words[0] == "READY"
    assert words[1].startswith("api=http://127.0.0.1:")
    assert words[2].startswith("s3=http://127.0.0.1:")
    extra = {"aws": [], "azure": ["azure"], "gcp": ["gcs"]}[_mode(emulator)]
    assert [w.split("=", 1)[0] for w in words[3:]] == extra


@every_mode
def test_token_names_the_file_storage_provider(emulator: Emulator, client: Any) -> None:
    assert client.tokens.verify()["owner"]["fileStorageProvider"] == _mode(emulator)


@every_mode
def test_prepare_answers_in_the_providers_shape(emulator: Emulator, client: Any) -> None:
    prepared = client.files.prepare_upload("shape.csv", size_bytes=10)
    mode = _mode(emulator)
    assert prepared["provider"] == mode
    if mode == "azure":
        params = prepared["absUploadParams"]
        assert set(params) == {"blobName", "accountName", "container", "absCredentials"}
        assert set(params["absCredentials"]) == {"SASConnectionString", "expiration"}
        connection = params["absCredentials"]["SASConnectionString"]
        assert connection.startswith(f"BlobEndpoint={emulator.azure_url};SharedAccessSignature=")
        assert "sr=b" in connection  # a blob SAS: this blob only
    elif mode == "gcp":
        params = prepared["gcsUploadParams"]
        assert set(params) >= {"projectId", "bucket", "key", "access_token", "token_type", "expires_in"}
        assert params["token_type"] == "Bearer"
    else:
        assert set(prepared["uploadParams"]) >= {"bucket", "key", "acl", "credentials"}
    expected = {"aws": "uploadParams", "azure": "absUploadParams", "gcp": "gcsUploadParams"}[mode]
    assert {k for k in prepared if k.endswith("ploadParams")} == {expected}


@every_mode
def test_file_detail_has_read_credentials_only_with_federation_token(
    emulator: Emulator, client: Any, tmp_path: Path
) -> None:
    file_id = client.files.upload_file(str(write(tmp_path / "d.csv", "a\n1\n")))
    keys = {
        "aws": ("credentials", "s3Path"),
        "azure": ("absCredentials", "absPath"),
        "gcp": ("gcsCredentials", "gcsPath"),
    }
    credentials_key, path_key = keys[_mode(emulator)]
    plain = client.files.detail(file_id)
    assert credentials_key not in plain and path_key not in plain
    detail = client.files.detail(file_id, federation_token=True)
    assert credentials_key in detail and path_key in detail
    assert detail["sizeBytes"] == 4
    # §5.1 url: a GET that works without any credentials
    assert requests.get(detail["url"], timeout=10).content == b"a\n1\n"


@every_mode
def test_upload_create_import_export_and_download_through_the_sdk(
    emulator: Emulator, client: Any, tmp_path: Path
) -> None:
    bucket = new_bucket(client)
    table = client.tables.create(bucket, "rows", str(write(tmp_path / "rows.csv", "id,name\n1,a\n2,b\n")))
    # a gzipped full load of a file big enough for the clients' chunked/resumable paths
    body = "id,name\n" + "".join(f"{i},name-{i}\n" for i in range(400_000))
    gz = write(tmp_path / "big.csv.gz", body, gz=True)
    assert gz.stat().st_size > 1_000_000
    client.tables.load(table, str(gz), is_incremental=False)
    assert client.tables.detail(table)["rowsCount"] == 400_000
    exported = client.tables.export_to_file(table, str(tmp_path))  # sliced file: manifest + slice
    assert Path(exported).read_text().splitlines()[1:4] == ['"0","name-0"', '"1","name-1"', '"2","name-2"']
    file_id = client.files.upload_file(str(gz))
    downloaded = client.files.download(file_id, str(tmp_path / "dl"))
    assert gzip.decompress(Path(downloaded).read_bytes()).decode() == body


@every_mode
def test_export_manifest_uses_the_providers_urls(emulator: Emulator, client: Any, tmp_path: Path) -> None:
    bucket = new_bucket(client)
    table = client.tables.create(bucket, "m", str(write(tmp_path / "m.csv", "x\n1\n")))
    job = client.tables.export_raw(table)
    file_id = client.jobs.block_until_completed(job["id"])["results"]["file"]["id"]
    detail = client.files.detail(file_id, federation_token=True)
    manifest = requests.get(detail["url"], timeout=10).json()
    scheme = {"aws": "s3://", "azure": "azure://devstoreaccount1.blob.core.windows.net/", "gcp": "gs://"}
    assert all(e["url"].startswith(scheme[_mode(emulator)]) for e in manifest["entries"])


def _upload_sliced(emu: Emulator, client: Any, slices: dict[str, bytes]) -> int:
    """A sliced upload as the PHP client does it (§5.2): slices under the prefix, then the manifest."""
    prepared = client.files.prepare_upload("sliced.csv", is_sliced=True)
    mode = _mode(emu)
    if mode == "azure":
        from azure.storage.blob import BlobServiceClient

        params = prepared["absUploadParams"]
        container = BlobServiceClient.from_connection_string(
            params["absCredentials"]["SASConnectionString"]
        ).get_container_client(params["container"])
        prefix = params["blobName"]
        for suffix, data in slices.items():
            container.upload_blob(prefix + suffix, data)
        base = f"azure://{params['accountName']}.blob.core.windows.net/{params['container']}/{prefix}"
        manifest = {"entries": [{"url": base + s} for s in slices]}
        container.upload_blob(prefix + "manifest", json.dumps(manifest).encode())
    else:
        assert mode == "gcp"
        bucket = _gcs_bucket(emu, prepared["gcsUploadParams"]["access_token"])
        prefix = prepared["gcsUploadParams"]["key"]
        for suffix, data in slices.items():
            bucket.blob(prefix + suffix).upload_from_string(data)
        manifest = {"entries": [{"url": f"gs://{bucket.name}/{prefix}{s}"} for s in slices]}
        bucket.blob(prefix + "manifest").upload_from_string(json.dumps(manifest).encode())
    return int(prepared["id"])


def _gcs_bucket(emu: Emulator, token: str, bucket: str = "kbc-sapi-files") -> Any:
    from google.cloud import storage
    from google.oauth2 import credentials

    os.environ["STORAGE_EMULATOR_HOST"] = str(emu.gcs_url)
    return storage.Client(project="p", credentials=credentials.Credentials(token=token)).bucket(bucket)


@cloud_modes
def test_sliced_upload_imports(emulator: Emulator, client: Any, tmp_path: Path) -> None:
    bucket = new_bucket(client)
    table = client.tables.create(bucket, "s", str(write(tmp_path / "s.csv", "id,v\n0,z\n")))
    file_id = _upload_sliced(
        emulator,
        client,
        {"part001.gz": gzip.compress(b"id,v\n1,a\n2,b\n"), "part002.gz": gzip.compress(b"3,c\n")},
    )
    job = client.tables.load_raw(table, data_file_id=file_id, is_incremental=False)
    done = client.jobs.block_until_completed(job["id"])
    assert done["status"] == "success", done
    assert preview_rows(client, table) == ['"id","v"', '"1","a"', '"2","b"', '"3","c"']


@cloud_modes
def test_sliced_file_without_manifest_is_manifest_file_missing(emulator: Emulator, client: Any, tmp_path: Path) -> None:
    bucket = new_bucket(client)
    table = client.tables.create(bucket, "n", str(write(tmp_path / "n.csv", "id\n1\n")))
    prepared = client.files.prepare_upload("nomanifest.csv", is_sliced=True)
    done = client.jobs.block_until_completed(client.tables.load_raw(table, data_file_id=prepared["id"])["id"])
    assert done["status"] == "error" and done["error"]["code"] == "storage.manifestFileMissing"


def _status(call: Any) -> int:
    try:
        call()
    except Exception as exc:  # each SDK raises its own HTTP error type; both carry the status
        return int(getattr(exc, "status_code", None) or getattr(exc, "code", 0) or 0)
    return 200


@pytest.mark.parametrize("mode", ["azure"])
def test_azure_sas_reaches_only_the_prepared_blob(emulator: Emulator, client: Any, tmp_path: Path) -> None:
    """Azurite itself checks the SAS (signed with its account key): scope, permissions, expiry."""
    from azure.storage.blob import BlobServiceClient

    params = client.files.prepare_upload("scoped.csv")["absUploadParams"]
    service = BlobServiceClient.from_connection_string(params["absCredentials"]["SASConnectionString"])
    mine = service.get_blob_client(params["container"], params["blobName"])
    other = service.get_blob_client(params["container"], params["blobName"] + ".other")
    assert _status(lambda: mine.upload_blob(b"a\n1\n")) == 200
    assert _status(lambda: other.upload_blob(b"x")) == 403
    assert _status(lambda: mine.download_blob().readall()) == 403  # upload SAS: write only
    file_id = client.files.upload_file(str(write(tmp_path / "r.csv", "a\n1\n")))
    detail = client.files.detail(file_id, federation_token=True)
    reader = BlobServiceClient.from_connection_string(detail["absCredentials"]["SASConnectionString"])
    blob = reader.get_blob_client(detail["absPath"]["container"], detail["absPath"]["name"])
    assert blob.download_blob().readall() == b"a\n1\n"
    assert _status(lambda: blob.upload_blob(b"overwrite", overwrite=True)) == 403  # read SAS: read only


@pytest.mark.parametrize("mode", ["gcp"])
def test_gcs_token_reaches_only_the_prepared_object(emulator: Emulator, client: Any, tmp_path: Path) -> None:
    """gcp-storage-emulator checks no tokens; the emulator's front door does (docs/emulator.md)."""
    params = client.files.prepare_upload("scoped.csv")["gcsUploadParams"]
    bucket = _gcs_bucket(emulator, params["access_token"], params["bucket"])
    assert _status(lambda: bucket.blob(params["key"]).upload_from_string(b"a\n1\n")) == 200
    assert _status(lambda: bucket.blob(params["key"] + ".other").upload_from_string(b"x")) == 403
    assert _status(lambda: list(bucket.list_blobs())) == 403
    media = f"{emulator.gcs_url}/download/storage/v1/b/{params['bucket']}/o/{quote(params['key'], safe='')}"
    assert requests.get(media, params={"alt": "media"}, timeout=10).status_code == 401  # no token
    stranger = {"Authorization": "Bearer ya29.not-issued"}
    assert requests.get(media, params={"alt": "media"}, headers=stranger, timeout=10).status_code == 401
    file_id = client.files.upload_file(str(write(tmp_path / "r.csv", "a\n1\n")))
    detail = client.files.detail(file_id, federation_token=True)
    reader = _gcs_bucket(emulator, detail["gcsCredentials"]["access_token"], detail["gcsPath"]["bucket"])
    assert reader.blob(detail["gcsPath"]["key"]).download_as_bytes() == b"a\n1\n"
    assert _status(lambda: reader.blob(detail["gcsPath"]["key"]).upload_from_string(b"overwrite")) == 403
    tampered = detail["url"][:-4] + ("0000" if not detail["url"].endswith("0000") else "1111")
    assert requests.get(tampered, timeout=10).status_code == 403
    assert requests.get(detail["url"], timeout=10).content == b"a\n1\n"


@pytest.mark.parametrize("cloud", CLOUDS)
def test_data_dir_keeps_cloud_objects_across_a_restart(cloud: str, tmp_path: Path) -> None:
    emu = start_emulator(extra_args=["--file-storage", cloud], data_dir=tmp_path / "data")
    try:
        client = emu.client()
        file_id = client.files.upload_file(str(write(tmp_path / "kept.csv", "id\n7\n")))
        emu.restart()
        client = emu.client()  # the cloud emulator's port may change: new URLs in every answer
        assert (
            client.files.download(file_id, str(tmp_path / "dl"))
            and (tmp_path / "dl" / "kept.csv").read_text() == "id\n7\n"
        )
        bucket = new_bucket(client)
        table = client.tables.create(bucket, "k", str(write(tmp_path / "k.csv", "id\n1\n")))
        done = client.jobs.block_until_completed(client.tables.load_raw(table, data_file_id=file_id)["id"])
        assert done["status"] == "success", done
        assert preview_rows(client, table) == ['"id"', '"7"']
    finally:
        emu.close()


@pytest.mark.parametrize("cloud", CLOUDS)
def test_the_cloud_emulator_dies_with_the_emulator_even_on_kill_9(cloud: str) -> None:
    import signal

    import psutil

    from support.emulator import wait_for

    emu = start_emulator(extra_args=["--file-storage", cloud])
    try:
        children = psutil.Process(emu.pid).children()
        assert children, "the cloud emulator runs as a child process"
        os.kill(emu.pid, signal.SIGKILL)
        wait_for(
            lambda: not any(c.is_running() and c.status() != psutil.STATUS_ZOMBIE for c in children),
            timeout=15,
            message="the cloud emulator to exit after its parent was killed",
        )
    finally:
        emu.close()
