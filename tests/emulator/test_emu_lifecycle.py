"""The process contract (architecture.md §1): READY line, --help, SIGTERM exit 0, --data-dir persistence."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from emulator_helpers import create_table_job, load_job, preview_rows, write

from support.emulator import free_port

FAULT_FLAGS = [
    "--fail-rate",
    "--rate-limit-rate",
    "--drop-rate",
    "--latency-ms",
    "--job-seconds",
    "--fail-jobs",
    "--s3-bandwidth-mbps",
]


def test_help_documents_every_fault_flag() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "keboola_emulator", "--help"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    for flag in [*FAULT_FLAGS, "--port", "--token", "--data-dir", "--s3-port", "--readonly-token"]:
        assert flag in out


def test_ready_line_exact_and_sigterm_exits_zero(make_emulator) -> None:  # type: ignore[no-untyped-def]
    port = free_port()
    emu = make_emulator(port=port)
    assert re.fullmatch(r"http://127\.0\.0\.1:\d+", emu.s3_url) and emu.api_url == f"http://127.0.0.1:{port}"
    assert requests.get(f"{emu.api_url}/v2/storage", timeout=10).json()["api"] == "storage"
    emu.stop()
    assert emu.returncode == 0


def test_port_zero_picks_free_ports() -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "keboola_emulator", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        assert re.fullmatch(r"READY api=http://127\.0\.0\.1:\d+ s3=http://127\.0\.0\.1:\d+\n", line)
        api = line.split()[1].split("=", 1)[1]
        assert requests.get(f"{api}/v2/storage", timeout=10).status_code == 200
    finally:
        proc.terminate()
        assert proc.wait(timeout=15) == 0
        assert proc.stdout is not None
        assert proc.stdout.read() == ""  # exactly one line on stdout


@pytest.mark.parametrize("bad", [["--fail-rate", "2"], ["--latency-ms", "-1"]])
def test_bad_flag_values_are_rejected(bad: list[str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "keboola_emulator", *bad], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and bad[0] in proc.stderr


def test_data_dir_survives_a_restart(make_emulator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    emu = make_emulator(data_dir=tmp_path / "state")
    client = emu.client()
    bucket_id = client.buckets.create("keep")["id"]
    job = create_table_job(client, bucket_id, "t", write(tmp_path / "t.csv", "id,name\n1,a\n2,b\n"))
    loaded = load_job(client, f"{bucket_id}.t", write(tmp_path / "u.csv", "id,name\n3,c\n"), is_incremental=True)
    file_id = client.files.upload_file(str(write(tmp_path / "f.txt", "persisted bytes")), tags=["keep"])
    emu.restart()
    client = emu.client()
    assert client.buckets.detail(bucket_id)["id"] == bucket_id
    assert client.tables.detail(f"{bucket_id}.t")["rowsCount"] == 3
    assert preview_rows(client, f"{bucket_id}.t") == ['"id","name"', '"1","a"', '"2","b"', '"3","c"']
    assert client.jobs.detail(job["id"])["status"] == "success"
    assert client.jobs.detail(loaded["id"])["results"]["importedRowsCount"] == 1
    out = tmp_path / "down"
    assert Path(client.files.download(file_id, str(out))).read_bytes() == b"persisted bytes"
    # new ids continue after the old ones
    assert client.files.upload_file(str(write(tmp_path / "g.txt", "x"))) > file_id


def test_without_data_dir_nothing_survives(make_emulator) -> None:  # type: ignore[no-untyped-def]
    emu = make_emulator()
    emu.client().buckets.create("gone")
    emu.restart()
    assert emu.client().buckets.list() == []


def test_unfinished_job_runs_again_after_restart(make_emulator, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from support.emulator import wait_for

    emu = make_emulator(data_dir=tmp_path / "state")
    client = emu.client()
    bucket_id = client.buckets.create("resume")["id"]
    file_id = client.files.upload_file(str(write(tmp_path / "r.csv", "id\n1\n2\n")))
    emu.set_faults(job_seconds=60)
    job = client.tables.create_raw(bucket_id=bucket_id, name="t", data_file_id=file_id)
    wait_for(lambda: client.jobs.detail(job["id"])["status"] == "processing", timeout=10, message="processing")
    with pytest.raises(requests.HTTPError):
        client.tables.detail(f"{bucket_id}.t")  # a job's work is visible only when it is done
    emu.restart()  # faults are not persisted: the resumed job runs at once
    client = emu.client()
    done = wait_for(
        lambda: (d := client.jobs.detail(job["id"]))["status"] in ("success", "error") and d,
        timeout=20,
        message="the resumed job",
    )
    assert done["status"] == "success"
    assert client.tables.detail(f"{bucket_id}.t")["rowsCount"] == 2
