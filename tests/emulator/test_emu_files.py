"""Files (§5): prepare shape, detail with/without federationToken, download, delete, sliced files,
never-uploaded files, and multipart uploads through boto3's transfer manager."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from boto3.s3.transfer import TransferConfig
from emulator_helpers import finished_job, new_bucket, preview_rows, write

from support.emulator import Emulator


@pytest.fixture
def client(emulator: Emulator) -> Any:
    return emulator.client()


def s3_client(emulator: Emulator, creds: dict[str, Any]) -> Any:
    return boto3.client(
        "s3",
        endpoint_url=emulator.s3_url,
        region_name="us-east-1",
        aws_access_key_id=creds["AccessKeyId"],
        aws_secret_access_key=creds["SecretAccessKey"],
        aws_session_token=creds["SessionToken"],
    )


def test_prepare_has_the_aws_upload_shape(client: Any) -> None:
    prepared = client.files.prepare_upload("data.csv", size_bytes=6, tags=["a", "b"])
    assert prepared["provider"] == "aws" and prepared["region"] == "us-east-1"
    assert isinstance(prepared["id"], int) and prepared["maxAgeDays"] == 15 and prepared["tags"] == ["a", "b"]
    params = prepared["uploadParams"]
    assert params["x-amz-server-side-encryption"] and params["acl"] == "private"
    assert params["key"].endswith(".data.csv") and params["bucket"]
    assert set(params["credentials"]) == {"AccessKeyId", "SecretAccessKey", "SessionToken", "Expiration"}
    assert params["credentials"]["Expiration"].endswith("+00:00")


def test_detail_with_and_without_federation_token(client: Any, tmp_path: Path, emulator: Emulator) -> None:
    file_id = client.files.upload_file(str(write(tmp_path / "f.txt", "fooBar")), tags=["x"])
    plain = client.files.detail(file_id)
    assert "credentials" not in plain and "s3Path" not in plain and plain["sizeBytes"] == 6
    assert requests.get(plain["url"], timeout=10).content == b"fooBar"  # signed GET URL
    fed = client.files.detail(file_id, federation_token=True)
    assert fed["credentials"]["AccessKeyId"] and fed["s3Path"]["key"]
    out = tmp_path / "down"
    assert Path(client.files.download(file_id, str(out))).read_bytes() == b"fooBar"


def test_list_and_delete(client: Any, tmp_path: Path) -> None:
    file_id = client.files.upload_file(str(write(tmp_path / "g.txt", "x")), tags=["list-me"])
    assert [f["id"] for f in client.files.list(tags=["list-me"])] == [file_id]
    assert client.files.list(limit=1)[0]["id"] >= file_id  # newest first
    client.files.delete(file_id)
    with pytest.raises(requests.HTTPError) as info:
        client.files.detail(file_id)
    assert info.value.response.status_code == 404 and info.value.response.json()["error"] == "File not found."


def test_file_never_uploaded_fails_the_load(client: Any) -> None:
    bucket_id = new_bucket(client)
    prepared = client.files.prepare_upload("ghost.csv")
    job = finished_job(client, client.tables.create_raw(bucket_id=bucket_id, name="t", data_file_id=prepared["id"]))
    assert job["status"] == "error" and job["error"]["code"] == "storage.fileNotUploaded"


def upload_sliced(
    emulator: Emulator, client: Any, slices: dict[str, bytes], manifest: bool = True, extra_entry: str | None = None
) -> int:
    prepared = client.files.prepare_upload("sliced.csv", is_sliced=True)
    params = prepared["uploadParams"]
    s3 = s3_client(emulator, params["credentials"])
    entries = []
    for suffix, data in slices.items():
        s3.put_object(Bucket=params["bucket"], Key=params["key"] + suffix, Body=data, ServerSideEncryption="AES256")
        entries.append({"url": f"s3://{params['bucket']}/{params['key']}{suffix}"})
    if extra_entry:
        entries.append({"url": f"s3://{params['bucket']}/{params['key']}{extra_entry}"})
    if manifest:
        s3.put_object(  # the manifest is under the encrypted file's prefix too: SSE required (§12)
            Bucket=params["bucket"],
            Key=params["key"] + "manifest",
            Body=json.dumps({"entries": entries}).encode(),
            ServerSideEncryption="AES256",
        )
    return int(prepared["id"])


def test_sliced_file_import(client: Any, emulator: Emulator) -> None:
    import gzip

    bucket_id = new_bucket(client)
    file_id = upload_sliced(emulator, client, {"part0": b"id,name\n1,a\n", "part1.gz": gzip.compress(b"2,b\n")})
    job = finished_job(client, client.tables.create_raw(bucket_id=bucket_id, name="s", data_file_id=file_id))
    assert job["status"] == "success", job.get("error")
    assert preview_rows(client, f"{bucket_id}.s") == ['"id","name"', '"1","a"', '"2","b"']


def test_sliced_without_manifest_or_with_missing_slice(client: Any, emulator: Emulator) -> None:
    bucket_id = new_bucket(client)
    no_manifest = upload_sliced(emulator, client, {"part0": b"id\n1\n"}, manifest=False)
    job = finished_job(client, client.tables.create_raw(bucket_id=bucket_id, name="a", data_file_id=no_manifest))
    assert job["error"]["code"] == "storage.manifestFileMissing"
    missing = upload_sliced(emulator, client, {"part0": b"id\n1\n"}, extra_entry="part9")
    job = finished_job(client, client.tables.create_raw(bucket_id=bucket_id, name="b", data_file_id=missing))
    assert job["error"]["code"] == "storage.importFileMissing"


def test_multipart_upload_with_transfer_manager(client: Any, emulator: Emulator, tmp_path: Path) -> None:
    """The daemon uploads big files with boto3's transfer manager (multipart); loads must read them."""
    rows = 400_000
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("id,text\n")
        for i in range(rows):
            f.write(f"{i},row number {i}\n")
    bucket_id = new_bucket(client)
    prepared = client.files.prepare_upload(path.name, size_bytes=path.stat().st_size)
    params = prepared["uploadParams"]
    config = TransferConfig(multipart_threshold=5 * 1024 * 1024, multipart_chunksize=5 * 1024 * 1024)
    s3_client(emulator, params["credentials"]).upload_file(
        str(path),
        params["bucket"],
        params["key"],
        Config=config,
        ExtraArgs={"ServerSideEncryption": params["x-amz-server-side-encryption"], "ACL": params["acl"]},
    )
    assert path.stat().st_size > 5 * 1024 * 1024  # really more than one part
    job = finished_job(client, client.tables.create_raw(bucket_id=bucket_id, name="big", data_file_id=prepared["id"]))
    assert job["status"] == "success", job.get("error")
    assert client.tables.detail(f"{bucket_id}.big")["rowsCount"] == rows
    assert client.files.detail(prepared["id"])["sizeBytes"] == path.stat().st_size


def access_denied(call: Any) -> None:
    """The S3 call is refused with 403 AccessDenied (not a connection error)."""
    from botocore.exceptions import ClientError

    with pytest.raises(ClientError) as info:
        call()
    assert info.value.response["Error"]["Code"] == "AccessDenied"
    assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 403


def test_upload_credentials_write_exactly_their_key_with_sse(client: Any, emulator: Emulator) -> None:
    """§12 (PHPT AwsFileTest): write-only for the prepared key; an encrypted file's key refuses a PUT
    without `x-amz-server-side-encryption: AES256`; a re-upload to the same key is fine."""
    prepared = client.files.prepare_upload("data.csv")
    other = client.files.prepare_upload("other.csv")
    params = prepared["uploadParams"]
    bucket, key = params["bucket"], params["key"]
    s3 = s3_client(emulator, params["credentials"])
    big = b"id\n" + b"1\n" * (1 << 20)  # 2 MiB: the refused body is read, the answer is a clean 403
    access_denied(lambda: s3.put_object(Bucket=bucket, Key=key, Body=big))
    access_denied(lambda: s3.put_object(Bucket=bucket, Key=key, Body=b"id\n1\n", ServerSideEncryption="aws:kms"))
    access_denied(lambda: s3.create_multipart_upload(Bucket=bucket, Key=key))
    for elsewhere in (other["uploadParams"]["key"], key + "x", key.rsplit("/", 1)[0] + "/mine.csv"):
        access_denied(lambda k=elsewhere: s3.put_object(Bucket=bucket, Key=k, Body=b"x", ServerSideEncryption="AES256"))
    s3.put_object(Bucket=bucket, Key=key, Body=b"id\n1\n", ServerSideEncryption="AES256", ACL="private")
    s3.put_object(Bucket=bucket, Key=key, Body=b"id\n2\n", ServerSideEncryption="AES256")  # re-upload
    access_denied(lambda: s3.delete_object(Bucket=bucket, Key=key))
    assert s3.get_object(Bucket=bucket, Key=key)["Body"].read() == b"id\n2\n"  # reads are not restricted


def test_unknown_credentials_cannot_write(client: Any, emulator: Emulator) -> None:
    params = client.files.prepare_upload("data.csv")["uploadParams"]
    stranger = s3_client(emulator, {"AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "x", "SessionToken": None})
    access_denied(
        lambda: stranger.put_object(
            Bucket=params["bucket"], Key=params["key"], Body=b"x", ServerSideEncryption="AES256"
        )
    )


def test_unencrypted_file_needs_no_sse_header(client: Any, emulator: Emulator) -> None:
    prepared = client.files.prepare_upload("plain.csv", is_encrypted=False)
    params = prepared["uploadParams"]
    assert "x-amz-server-side-encryption" not in params
    s3_client(emulator, params["credentials"]).put_object(Bucket=params["bucket"], Key=params["key"], Body=b"a\n1\n")
    job = finished_job(
        client, client.tables.create_raw(bucket_id=new_bucket(client), name="p", data_file_id=prepared["id"])
    )
    assert job["status"] == "success", job.get("error")


def test_sliced_credentials_cover_their_prefix_only(client: Any, emulator: Emulator) -> None:
    params = client.files.prepare_upload("sliced.csv", is_sliced=True)["uploadParams"]
    s3 = s3_client(emulator, params["credentials"])
    s3.put_object(Bucket=params["bucket"], Key=params["key"] + "part1", Body=b"1\n", ServerSideEncryption="AES256")
    access_denied(lambda: s3.put_object(Bucket=params["bucket"], Key=params["key"] + "part2", Body=b"2\n"))
    outside = params["key"].rstrip("/") + "-evil/part1"
    access_denied(lambda: s3.put_object(Bucket=params["bucket"], Key=outside, Body=b"x", ServerSideEncryption="AES256"))
