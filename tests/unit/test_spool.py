"""spool.py on real files: the reader an overlapped upload follows, and the cleanup of leftovers at start-up."""

from __future__ import annotations

import gzip
import logging
import os
from pathlib import Path

import pytest

from keboola_sync.csvfile import Dialect, SpoolReader, inspect_and_spool, stream
from keboola_sync.errors import FileChanged
from keboola_sync.spool import clean_spool

ROWS = b"".join(b"%d,customer %d,%d.50\n" % (i, i % 977, i % 313) for i in range(60_000))
DATA = b"id,name,price\n" + ROWS  # about 1.2 MB: several chunks of 256 KiB


def spool_with_reader(path: Path, spool_dir: Path, readers: list[SpoolReader], **kw):
    def on_header(_dialect: Dialect, _columns: tuple[str, ...], reader: SpoolReader | None) -> None:
        if reader is not None:
            readers.append(reader)

    return inspect_and_spool(
        path,
        spool_dir=spool_dir,
        gzip_threshold_bytes=0,
        gzip_level=1,
        sniff_bytes=65536,
        delimiters=",;\t|",
        display_path=path.name,
        on_header=on_header,
        **kw,
    )


def test_the_reader_sees_the_whole_spool_through_windows(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(stream, "CHUNK_SIZE", 256 << 10)  # the header is known after the first chunk
    source = tmp_path / "orders.csv"
    source.write_bytes(DATA)
    readers: list[SpoolReader] = []
    _info, spool = spool_with_reader(source, tmp_path / "spool", readers)
    assert len(readers) == 1
    reader = readers[0]
    try:
        assert reader.name.startswith("orders") and reader.name.endswith(".csv.gz")
        written, complete = reader.wait_for(1 << 40)  # more than there will ever be: returns once complete
        assert (written, complete) == (spool.size, True)
        assert not reader.abandoned
        half = written // 2
        first, second = reader.window(0, half), reader.window(half, written - half)
        assert len(first) == half and len(second) == written - half
        head = first.read(10)
        assert first.tell() == 10
        assert first.seek(0) == 0
        body = first.read() + second.read()
        assert second.read() == b""  # a window ends where it says
        assert head == body[:10]
        assert body == spool.path.read_bytes()
        assert gzip.decompress(body) == DATA
    finally:
        reader.close()
        spool.discard()


def test_a_pass_that_fails_after_the_header_abandons_the_reader(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(stream, "CHUNK_SIZE", 256 << 10)
    source = tmp_path / "orders.csv"
    source.write_bytes(DATA)
    readers: list[SpoolReader] = []

    def append(index: int, _read: int) -> None:
        if index == 1:
            with open(source, "ab") as handle:
                handle.write(b"60001,late,1.50\n")

    with pytest.raises(FileChanged):
        spool_with_reader(source, tmp_path / "spool", readers, _on_chunk=append)
    reader = readers[0]
    try:
        assert reader.abandoned
        with pytest.raises(OSError, match="the spool was abandoned"):
            reader.wait_for(1 << 40)
    finally:
        reader.close()
    assert list((tmp_path / "spool").iterdir()) == []


def test_clean_spool_removes_only_spool_files(tmp_path: Path, caplog) -> None:
    ours = [".orders-a1B2c3D4.part", "orders-a1B2c3D4.csv", "orders-Zz9_yy8x.csv.gz"]
    theirs = ["orders.csv", "notes.txt", "orders-short.csv", "orders-a1B2c3D4.csv.bak"]
    for name in ours + theirs:
        (tmp_path / name).write_bytes(b"x")
    os.mkdir(tmp_path / "dir-a1B2c3D4.csv")  # a folder with a spool-like name is not ours to remove
    with caplog.at_level(logging.INFO, logger="keboola_sync.daemon"):
        clean_spool(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*theirs, "dir-a1B2c3D4.csv"])
    assert f"removed 3 spool file(s) left in {tmp_path} by an earlier run" in caplog.text


def test_clean_spool_of_a_clean_directory_says_nothing(tmp_path: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="keboola_sync.daemon"):
        clean_spool(tmp_path)
    assert "removed" not in caplog.text
