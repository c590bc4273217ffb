"""`upload.gzip_level: auto` on a running daemon: the first big load goes at the first level, its upload
measures the uplink, the next big load's level is chosen from that measurement, and both tables equal
their files (exported through the SDK and compared row by row, in any order)."""

from __future__ import annotations

import csv
import random
import uuid

from support.emulator import wait_for
from support.tables import rows_digest, table_digest

ROWS = 450_000  # ~20 MB of CSV that gzips only ~2x: 8+ MB on the wire, enough to measure the uplink


def _noisy_csv(seed: int) -> str:
    noise = random.Random(seed).randbytes(16 * ROWS).hex()
    return "id,token\n" + "".join(f"{i},{noise[32 * i : 32 * i + 32]}\n" for i in range(ROWS))


def test_auto_level_follows_the_measured_uplink_and_tables_equal_files(daemon_factory, emulator, tmp_path):
    folder = f"gz{uuid.uuid4().hex[:8]}"
    daemon = daemon_factory({"upload": {"gzip_threshold_mb": 1, "gzip_level": "auto"}, "logging": {"level": "DEBUG"}})
    daemon.start()
    daemon.wait_log("watching with")
    client = emulator.client()
    files = {}
    for n, name in enumerate(("first", "second")):
        text = _noisy_csv(n)
        files[name] = text
        daemon.write(f"{folder}/{name}.csv", text)
        daemon.wait_log(f"{name}.csv -> ", timeout=180)
    log = daemon.log()
    choices = [ln for ln in log.splitlines() if "(auto):" in ln]
    assert len(choices) == 2, log[-3000:]
    assert "no upload measured yet" in choices[0]
    assert "uplink" in choices[1] and "MB/s" in choices[1], choices[1]  # chosen from the first upload's rate
    assert "uploading the finished file" not in log  # both uploads overlapped their pass
    for name, text in files.items():
        line = next(ln for ln in log.splitlines() if f"{name}.csv -> " in ln)
        assert "gzip" in line, line
        table_id = f"in.c-{folder}.{name}"
        wait_for(lambda t=table_id: client.tables.detail(t)["rowsCount"] == ROWS, timeout=60, message=table_id)
        expected = rows_digest(csv.reader(text.splitlines()[1:]))
        assert table_digest(client, table_id, tmp_path / name) == expected
    daemon.stop()
