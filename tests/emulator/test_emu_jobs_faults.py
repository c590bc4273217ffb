"""Jobs (§6) and fault injection (issue 2): job lifecycle, job list, and every fault knob."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
import requests
from emulator_helpers import finished_job, new_bucket, write
from kbcstorage.base import Endpoint

from support.emulator import Emulator, wait_for


def raw_get(emulator: Emulator, path: str) -> requests.Response:
    return requests.get(f"{emulator.api_url}{path}", headers={"X-StorageApi-Token": emulator.token}, timeout=10)


def test_job_goes_waiting_processing_success(emulator: Emulator, tmp_path: Path) -> None:
    client = emulator.client()
    bucket_id = new_bucket(client)
    file_id = client.files.upload_file(str(write(tmp_path / "a.csv", "a\n1\n")))
    emulator.set_faults(job_seconds=3)  # the POST waits <= 1 s for a job; 2 s remain to see `processing`
    job = client.tables.create_raw(bucket_id=bucket_id, name="slow", data_file_id=file_id)
    assert job["status"] == "waiting" and isinstance(job["id"], int)
    assert job["url"].endswith(f"/v2/storage/jobs/{job['id']}")
    wait_for(lambda: client.jobs.detail(job["id"])["status"] == "processing", timeout=5, message="processing")
    done = finished_job(client, job)
    assert done["status"] == "success" and done["startTime"] and done["endTime"] and "error" not in done


def test_jobs_list_newest_first_with_file_id(emulator: Emulator, tmp_path: Path) -> None:
    client = emulator.client()
    bucket_id = new_bucket(client)
    file_id = client.files.upload_file(str(write(tmp_path / "b.csv", "a\n1\n")))
    job = finished_job(client, client.tables.create_raw(bucket_id=bucket_id, name="t", data_file_id=file_id))
    listed = raw_get(emulator, "/v2/storage/jobs?limit=5").json()
    assert len(listed) <= 5 and listed[0]["id"] >= job["id"]
    assert [j["id"] for j in listed] == sorted((j["id"] for j in listed), reverse=True)
    mine = [j for j in listed if j["id"] == job["id"]]
    assert mine and mine[0]["operationParams"]["source"]["fileId"] == file_id


def test_fail_jobs_ends_jobs_in_error(emulator: Emulator, tmp_path: Path) -> None:
    client = emulator.client()
    bucket_id = new_bucket(client)
    file_id = client.files.upload_file(str(write(tmp_path / "c.csv", "a\n1\n")))
    emulator.set_faults(fail_jobs=1.0)
    job = finished_job(client, client.tables.create_raw(bucket_id=bucket_id, name="t", data_file_id=file_id))
    assert job["status"] == "error" and job["error"]["code"] == "storage.jobs.internalError"
    assert {"code", "message", "exceptionId"} <= set(job["error"])
    emulator.reset_faults()
    with pytest.raises(requests.HTTPError):
        client.tables.detail(f"{bucket_id}.t")  # the failed job changed nothing
    assert emulator.stats()["faults_injected"]["fail_jobs"] >= 1


def test_fail_rate_answers_500_502_503_with_json(emulator: Emulator) -> None:
    emulator.set_faults(fail_rate=1.0)
    statuses = set()
    for _ in range(40):
        r = raw_get(emulator, "/v2/storage/buckets")
        statuses.add(r.status_code)
        body = r.json()
        if r.status_code == 503:
            assert body["status"] == "maintenance" and r.headers["Retry-After"]
        else:
            assert body["status"] == "error" and "exceptionId" in body
    assert statuses == {500, 502, 503}
    # the control plane is never faulted
    assert emulator.faults()["fail_rate"] == 1.0


def test_kbcstorage_retries_through_a_partial_fail_rate(emulator: Emulator) -> None:
    """kbcstorage retries 5xx (§9.2): with a low fail rate calls still succeed."""

    def injected() -> int:
        return sum(v for k, v in emulator.stats()["faults_injected"].items() if k.startswith("fail_"))

    before = injected()
    emulator.set_faults(fail_rate=0.2)  # low enough that kbcstorage rarely backs off twice in a row
    client = emulator.client()
    for _ in range(60):
        assert client.tokens.verify()["id"]  # every call succeeds despite the injected 5xx
        if injected() > before:
            break
    assert injected() > before


def test_rate_limit_is_429_with_retry_after(emulator: Emulator) -> None:
    emulator.set_faults(rate_limit_rate=1.0)
    r = raw_get(emulator, "/v2/storage/tokens/verify")
    assert r.status_code == 429 and r.headers["Retry-After"] == "1"
    # kbcstorage does not retry 429 (§9.2): it surfaces as HTTPError at once
    with pytest.raises(requests.HTTPError) as info:
        emulator.client().tokens.verify()
    assert info.value.response.status_code == 429


def test_drop_closes_the_connection_without_a_response(emulator: Emulator) -> None:
    emulator.set_faults(drop_rate=1.0)
    with pytest.raises(requests.ConnectionError):
        raw_get(emulator, "/v2/storage/tokens/verify")
    with pytest.raises(requests.ConnectionError):
        Endpoint(emulator.api_url, "tokens", emulator.token)._get(f"{emulator.api_url}/v2/storage/tokens/verify")
    assert emulator.stats()["faults_injected"]["drop"] >= 2
    emulator.reset_faults()
    assert raw_get(emulator, "/v2/storage/tokens/verify").status_code == 200


def test_latency_delays_api_requests(emulator: Emulator) -> None:
    emulator.set_faults(latency_ms=300)
    started = time.monotonic()
    assert raw_get(emulator, "/v2/storage/tokens/verify").status_code == 200
    assert time.monotonic() - started >= 0.3  # a lower bound: the delay really happened


def test_s3_bandwidth_cap_throttles_uploads(emulator: Emulator, tmp_path: Path) -> None:
    client = emulator.client()
    path = write(tmp_path / "one-mb.bin", b"x" * 1_000_000)
    emulator.set_faults(s3_bandwidth_mbps=8)  # 8 Mbit/s = 1 MB/s
    before = emulator.stats()["s3_put_bytes"]
    started = time.monotonic()
    client.files.upload_file(str(path))
    assert time.monotonic() - started >= 0.7  # 1 MB at 1 MB/s, minus the initial burst allowance
    assert emulator.stats()["s3_put_bytes"] - before >= 1_000_000


def test_faults_endpoint_validates_merges_and_resets(emulator: Emulator) -> None:
    url = f"{emulator.api_url}/_emulator/faults"
    assert requests.post(url, json={"nope": 1}, timeout=10).status_code == 400
    assert requests.post(url, json={"fail_rate": 2}, timeout=10).status_code == 400
    emulator.set_faults(latency_ms=5)
    emulator.set_faults(job_seconds=0.5)
    merged = emulator.faults()
    assert merged["latency_ms"] == 5 and merged["job_seconds"] == 0.5
    emulator.reset_faults()
    reset = emulator.faults()
    assert reset.pop("paths") == [] and reset.pop("fail_jobs_code") == "" and reset.pop("cloud_fault_match") == ""
    assert reset.pop("cloud_fault") == "" and reset.pop("cloud_fault_nth") == reset.pop("cloud_fault_times") == 1
    assert set(reset.values()) == {0}
    # the scripted cloud fault: a kind the front door knows, at a request that exists
    assert requests.post(url, json={"cloud_fault": "explode"}, timeout=10).status_code == 400
    assert requests.post(url, json={"cloud_fault": "lose", "cloud_fault_nth": 0}, timeout=10).status_code == 400


def test_lost_response_does_the_work_but_drops_the_answer(emulator: Emulator) -> None:
    """§9.4: a POST whose answer is lost may have happened; a retry then meets alreadyExists."""
    client = emulator.client()
    name = f"lost-{time.monotonic_ns()}"
    emulator.set_faults(lost_response_rate=1.0, paths=["/buckets"])
    with pytest.raises(requests.ConnectionError):
        client.buckets.create(name)
    assert client.tokens.verify()["id"]  # other paths are not faulted
    emulator.reset_faults()
    assert client.buckets.detail(f"in.c-{name}")["id"] == f"in.c-{name}"
    with pytest.raises(requests.HTTPError) as info:
        client.buckets.create(name)
    assert info.value.response.json()["code"] == "storage.buckets.alreadyExists"


def test_paths_limit_request_faults(emulator: Emulator) -> None:
    emulator.set_faults(fail_rate=1.0, paths=["/files"])
    assert raw_get(emulator, "/v2/storage/buckets").status_code == 200
    assert raw_get(emulator, "/v2/storage/files").status_code in (500, 502, 503)


def test_stats_count_requests_by_route_template(emulator: Emulator, tmp_path: Path) -> None:
    client = emulator.client()
    before: dict[str, Any] = emulator.stats()
    client.files.upload_file(str(write(tmp_path / "s.txt", "abc")))
    after = emulator.stats()
    key = "POST /v2/storage/files/prepare"
    assert after["requests"][key] == before["requests"].get(key, 0) + 1
    assert after["files_prepared"] == before["files_prepared"] + 1
    assert after["s3_put_bytes"] >= before["s3_put_bytes"] + 3


def test_cli_fault_flags_apply_from_start(make_emulator) -> None:  # type: ignore[no-untyped-def]
    emu = make_emulator(extra_args=["--rate-limit-rate", "1", "--latency-ms", "1"])
    assert emu.faults()["rate_limit_rate"] == 1.0 and emu.faults()["latency_ms"] == 1
    assert raw_get(emu, "/v2/storage/buckets").status_code == 429
