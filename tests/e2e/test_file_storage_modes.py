"""Issue 14: the daemon against the emulator's Azure and GCP stacks (`--file-storage azure|gcp`): a CSV
becomes a table, a change is a full load, a file big enough for the cloud clients' chunked paths loads
whole. On these stacks the daemon uploads through the kbcstorage SDK's Azure / GCS uploader today
(storage.upload); the bytes go through Azurite / the GCS emulator and its token checks."""

from __future__ import annotations

import uuid

import pytest

from support.daemon import wait_table
from support.emulator import start_emulator, wait_for


@pytest.mark.parametrize("file_storage", ["azure", "gcp"])
def test_the_daemon_syncs_on_azure_and_gcp_stacks(daemon_factory, file_storage, tmp_path):
    emu = start_emulator(extra_args=["--file-storage", file_storage])
    try:
        folder = f"stack{uuid.uuid4().hex[:8]}"
        daemon = daemon_factory(emulator_=emu)
        daemon.write(f"{folder}/small.csv", "id,amount\n1,10\n2,20\n")
        rows = 120_000
        big = "id,value\n" + "".join(f"{i},{i * 7919 % 1000003}-{i:x}\n" for i in range(rows))
        daemon.write(f"{folder}/big.csv", big)
        daemon.start()
        wait_table(emu, f"in.c-{folder}.small", [["id", "amount"], ["1", "10"], ["2", "20"]])
        client = emu.client()
        wait_for(
            lambda: (t := client.tables.detail(f"in.c-{folder}.big")) and t["rowsCount"] == rows,
            timeout=60,
            message="the big table loaded whole",
        )
        daemon.write(f"{folder}/small.csv", "id,amount\n3,30\n")
        wait_table(emu, f"in.c-{folder}.small", [["id", "amount"], ["3", "30"]])
        assert client.tokens.verify()["owner"]["fileStorageProvider"] == file_storage
        assert daemon.stop() == 0, daemon.log()[-3000:]
    finally:
        emu.close()
