"""Issue 14: the daemon against the emulator's Azure and GCP stacks (`--file-storage azure|gcp`), through
its own uploaders (storage/absupload.py: parallel Put Block + Put Block List; storage/gcsupload.py: a
resumable upload chunk by chunk): a CSV becomes a table, a change is a full load, a 60 MB file is gzipped
and uploaded while the pass still writes the spool, and a burst of small files loads. The bytes go through
Azurite / the GCS emulator and their credential checks; every table is compared with its file."""

from __future__ import annotations

import csv
import uuid

import pytest

from support.daemon import wait_table
from support.emulator import start_emulator, wait_for
from support.tables import rows_digest, table_digest

BIG_ROWS = 1_700_000  # about 60 MB of CSV
BURST = 25


def _big_csv() -> str:
    return "id,value,note\n" + "".join(
        f"{i},{i * 7919 % 1000003}-{i:x},row {i} of the big one\n" for i in range(BIG_ROWS)
    )


@pytest.mark.parametrize("file_storage", ["azure", "gcp"])
def test_the_daemon_syncs_on_azure_and_gcp_stacks_through_its_own_uploaders(daemon_factory, file_storage, tmp_path):
    emu = start_emulator(extra_args=["--file-storage", file_storage])
    try:
        folder = f"stack{uuid.uuid4().hex[:8]}"
        daemon = daemon_factory(emulator_=emu)
        daemon.write(f"{folder}/small.csv", "id,amount\n1,10\n2,20\n")
        big = _big_csv()
        assert len(big) > 60_000_000
        daemon.write(f"{folder}/big.csv", big)
        daemon.start()
        wait_table(emu, f"in.c-{folder}.small", [["id", "amount"], ["1", "10"], ["2", "20"]])
        client = emu.client()
        try:
            wait_for(
                lambda: (t := client.tables.detail(f"in.c-{folder}.big")) and t["rowsCount"] == BIG_ROWS,
                timeout=240,
                message="the big table loaded whole",
            )
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{daemon.log()[-4000:]}") from None
        big_rows = csv.reader(big.splitlines()[1:])
        assert table_digest(client, f"in.c-{folder}.big", tmp_path / "export") == rows_digest(big_rows)
        log = daemon.log()
        big_line = next(ln for ln in log.splitlines() if "big.csv ->" in ln)
        assert "gzip" in big_line, big_line
        assert "uploading the finished file" not in log, log[-3000:]  # the upload overlapped the pass

        # A burst of small files, each a table equal to its file.
        for n in range(BURST):
            daemon.write(f"{folder}/burst{n}.csv", f"id,name\n{n},first {n}\n{n + 100},second {n}\n")
        for n in range(BURST):
            wait_table(
                emu, f"in.c-{folder}.burst{n}", [["id", "name"], [str(n), f"first {n}"], [str(n + 100), f"second {n}"]]
            )

        daemon.write(f"{folder}/small.csv", "id,amount\n3,30\n")
        wait_table(emu, f"in.c-{folder}.small", [["id", "amount"], ["3", "30"]])
        # Through the daemon's own uploaders: one files/prepare per upload (the SDK's uploader prepares
        # a second time for each file it uploads), and no upload redone from the finished spool.
        loads = 2 + BURST + 1
        assert emu.stats()["files_prepared"] == loads
        assert client.tokens.verify()["owner"]["fileStorageProvider"] == file_storage
        assert daemon.stop() == 0, daemon.log()[-3000:]
    finally:
        emu.close()
