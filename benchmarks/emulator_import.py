"""How fast the emulator turns an uploaded CSV into a table (tableCreate), plain and gzipped.

    .venv/bin/python benchmarks/emulator_import.py [--size-mb 200] [--primary-key order_id] [--repeat 1]

Generates a CSV with datagen (in a temp dir outside the repository, deleted at the end), starts a
fresh emulator, uploads the file once as-is and once gzipped (level 1, as the daemon sends big files)
through the real kbcstorage client, then creates a table from each upload and times only the job:
wall seconds from the create call until the job is `success` (polled every 100 ms: finer than the
jobs' 1 s timestamps, and faster polling would cost the emulator measurable CPU), MB/s of
uncompressed CSV, the emulator process's CPU seconds meanwhile (less noisy than wall time on a
shared machine), its RSS before the job and its peak RSS during it (psutil, sampled every 50 ms).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

import datagen
import psutil
from harness import RssSampler, cpu_seconds, emulator, machine, wait_for
from isal import igzip


def gzip_file(src: Path, dst: Path) -> None:
    with open(src, "rb") as raw, igzip.open(dst, "wb", compresslevel=1) as out:
        shutil.copyfileobj(raw, out, 1 << 20)


def timed_create(emu: Any, client: Any, bucket_id: str, name: str, file_id: int, pk: list[str]) -> dict[str, Any]:
    cpu0 = cpu_seconds(emu.pid)
    rss0 = psutil.Process(emu.pid).memory_info().rss
    with RssSampler(emu.pid) as rss:
        start = time.monotonic()
        job = client.tables.create_raw(bucket_id=bucket_id, name=name, data_file_id=file_id, primary_key=pk or None)
        done = wait_for(
            lambda: (d := client.jobs.detail(job["id"]))["status"] in ("success", "error") and d,
            timeout=3600,
            interval=0.1,
            message=f"job {job['id']}",
        )
        wall = time.monotonic() - start
    if done["status"] != "success":
        raise SystemExit(f"job failed: {done.get('error')}")
    return {
        "wall": wall,
        "cpu": cpu_seconds(emu.pid) - cpu0,
        "rss0": rss0,
        "rss": rss.peak,
        "rows": done["results"]["rowsCount"],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size-mb", type=float, default=200, help="CSV size in MB (default 200)")
    parser.add_argument("--primary-key", default="", help="comma-separated PK columns (default: none)")
    parser.add_argument("--repeat", type=int, default=1, help="create each table this many times")
    args = parser.parse_args()
    pk = [c for c in args.primary_key.split(",") if c]
    info = machine()
    print(
        f"# {info['cpu']}, {info['cores']} cores, Python {info['python']}, git {info['git']}, "
        f"load {info['load_at_start']}"
    )
    tmp = Path(tempfile.mkdtemp(prefix="emulator-import-bench-"))
    try:
        csv_path = tmp / "orders.csv"
        gen = datagen.write_csv(csv_path, int(args.size_mb * 1e6))
        gz_path = tmp / "orders.csv.gz"
        gzip_file(csv_path, gz_path)
        mb = gen.size / 1e6
        print(
            f"# CSV {mb:.0f} MB, {gen.rows:,} rows; gzipped {gz_path.stat().st_size / 1e6:.0f} MB"
            + (f"; primary key {','.join(pk)}" if pk else "")
        )
        with emulator() as emu:
            client = emu.client()
            bucket_id = client.buckets.create("bench")["id"]
            uploads = {"plain": client.files.upload_file(str(csv_path)), "gzip": client.files.upload_file(str(gz_path))}
            print(
                f"{'source':<8}{'MB/s':>8}{'wall s':>9}{'CPU s':>8}{'RSS before MB':>15}{'peak RSS MB':>13}{'rows':>12}"
            )
            for i in range(args.repeat):
                for kind, file_id in uploads.items():
                    r = timed_create(emu, client, bucket_id, f"{kind}{i}", file_id, pk)
                    if r["rows"] != gen.rows and not pk:
                        raise SystemExit(f"{kind}: {r['rows']} rows, expected {gen.rows}")
                    print(
                        f"{kind:<8}{mb / r['wall']:>8.1f}{r['wall']:>9.2f}{r['cpu']:>8.2f}"
                        f"{r['rss0'] / 2**20:>15.0f}{r['rss'] / 2**20:>13.0f}{r['rows']:>12,}",
                        flush=True,
                    )
                    client.tables.delete(f"{bucket_id}.{kind}{i}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
