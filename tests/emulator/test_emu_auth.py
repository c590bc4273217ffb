"""Auth and index (§1, §2.2): the real statuses and bodies for missing, wrong and limited tokens."""

from __future__ import annotations

import pytest
import requests
from emulator_helpers import unique
from kbcstorage.client import Client

from support.emulator import Emulator


def test_index_answers_without_a_valid_token(emulator: Emulator) -> None:
    body = requests.get(f"{emulator.api_url}/v2/storage", headers={"X-StorageApi-Token": "nope"}, timeout=10).json()
    assert body["api"] == "storage" and body["version"] == "v2"
    assert "components" in body and "services" in body


def test_missing_token_is_401_access_token_must_be_set(emulator: Emulator) -> None:
    # kbcstorage refuses an empty token client-side, so this one goes over plain HTTP
    r = requests.get(f"{emulator.api_url}/v2/storage/tokens/verify", timeout=10)
    assert r.status_code == 401
    body = r.json()
    assert body["error"] == "Access token must be set" and body["code"] == ""
    assert body["status"] == "error" and body["exceptionId"]


def test_wrong_token_is_401_token_invalid_without_echoing_it(emulator: Emulator) -> None:
    client = Client(emulator.api_url, "definitely-wrong-token")
    with pytest.raises(requests.HTTPError) as info:
        client.tokens.verify()
    assert info.value.response.status_code == 401
    body = info.value.response.json()
    assert body["code"] == "storage.tokenInvalid" and body["error"] == "Invalid access token"
    assert "definitely-wrong-token" not in info.value.response.text


def test_verify_has_the_real_fields(emulator: Emulator) -> None:
    client = emulator.client()
    bucket_id = client.buckets.create(unique("auth"))["id"]
    info = client.tokens.verify()
    assert isinstance(info["id"], str)
    assert isinstance(info["owner"]["id"], int) and info["owner"]["name"]
    assert info["owner"]["fileStorageProvider"] == "aws"
    assert info["canManageBuckets"] is True and info["isMasterToken"] is True
    assert info["admin"]["role"] == "admin"
    assert info["bucketPermissions"][bucket_id] == "manage"


def test_readonly_token_reads_but_cannot_write(make_emulator) -> None:  # type: ignore[no-untyped-def]
    emu = make_emulator(extra_args=["--readonly-token", "reader-token"])
    master = emu.client()
    bucket_id = master.buckets.create("shared")["id"]
    reader = Client(emu.api_url, "reader-token")
    info = reader.tokens.verify()
    assert info["canManageBuckets"] is False
    assert info["bucketPermissions"] == {bucket_id: "read"}
    assert "admin" not in info
    assert [b["id"] for b in reader.buckets.list()] == [bucket_id]
    with pytest.raises(requests.HTTPError) as info_err:
        reader.buckets.create("forbidden")
    assert info_err.value.response.status_code == 403
    assert info_err.value.response.json()["code"] == "accessDenied"


def test_unknown_route_is_an_http_error(emulator: Emulator) -> None:
    r = requests.get(
        f"{emulator.api_url}/v2/storage/not-a-url", headers={"X-StorageApi-Token": emulator.token}, timeout=10
    )
    assert r.status_code == 404 and r.json()["code"] == "notFound"


def test_branch_prefix_default_and_numeric_id(emulator: Emulator) -> None:
    client = emulator.client()
    bucket_id = client.buckets.create(unique("br"))["id"]
    headers = {"X-StorageApi-Token": emulator.token}
    for branch in ("default", "1"):
        r = requests.get(
            f"{emulator.api_url}/v2/storage/branch/{branch}/buckets/{bucket_id}", headers=headers, timeout=10
        )
        assert r.status_code == 200 and r.json()["id"] == bucket_id
    r = requests.get(f"{emulator.api_url}/v2/storage/branch/999/buckets", headers=headers, timeout=10)
    assert r.status_code == 404


def test_large_answers_are_gzipped_when_asked(emulator: Emulator) -> None:
    r = requests.get(
        f"{emulator.api_url}/v2/storage/tokens/verify",
        timeout=10,
        headers={"X-StorageApi-Token": emulator.token, "Accept-Encoding": "gzip"},
    )
    assert r.headers["Content-Encoding"] == "gzip" and r.json()["owner"]["id"]
    plain = requests.get(
        f"{emulator.api_url}/v2/storage/tokens/verify",
        timeout=10,
        headers={"X-StorageApi-Token": emulator.token, "Accept-Encoding": "identity"},
    )
    assert "Content-Encoding" not in plain.headers
