"""The csvfile package on real files: the corpus of good and bad inputs, the spool, and files that change mid-pass."""

from __future__ import annotations

import gzip
import hashlib
import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest
from isal import igzip

from keboola_sync import spool as spool_room
from keboola_sync.csvfile import (
    CsvInfo,
    Dialect,
    dialect,
    inspect,
    inspect_and_spool,
    sniff_dialect,
    stream,
)
from keboola_sync.errors import FileChanged, InvalidFile, SpoolError
from keboola_sync.fileid import Fingerprint, fingerprint

DELIMS = ",;\t|"
SNIFF = 65536


def load_corpus() -> ModuleType:
    path = Path(__file__).resolve().parents[1] / "data" / "csv_corpus.py"
    spec = importlib.util.spec_from_file_location("csv_corpus", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


CORPUS = load_corpus()
VALID = [pytest.param(c, id=c.id) for c in CORPUS.CASES if c.problem is None]
INVALID = [pytest.param(c, id=c.id) for c in CORPUS.CASES if c.problem is not None]


def write(tmp_path: Path, data: bytes, name: str = "orders.csv") -> Path:
    folder = tmp_path / "watch" / "sales"
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(data)
    return path


def run_inspect(path: Path) -> CsvInfo:
    return inspect(path, sniff_bytes=SNIFF, delimiters=DELIMS, display_path="sales/orders.csv")


def spool(path: Path, spool_dir: Path, threshold: int = 0, level: int = 1, **kw):
    return inspect_and_spool(
        path,
        spool_dir=spool_dir,
        gzip_threshold_bytes=threshold,
        gzip_level=level,
        sniff_bytes=SNIFF,
        delimiters=DELIMS,
        display_path="sales/orders.csv",
        **kw,
    )


def test_corpus_is_large_enough() -> None:
    assert len(CORPUS.CASES) >= 40
    assert len({c.id for c in CORPUS.CASES}) == len(CORPUS.CASES)


@pytest.mark.parametrize("case", VALID)
def test_valid_files(tmp_path: Path, case) -> None:
    data = case.build()
    path = write(tmp_path, data)
    info = run_inspect(path)
    expect = case.expect
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.size == len(data)
    assert info.fingerprint == fingerprint(path)
    for key in ("delimiter", "enclosure", "escaped_by"):
        if key in expect:
            assert getattr(info.dialect, key) == expect[key], key
    if "header" in expect:
        assert info.header == expect["header"]
    if "columns" in expect:
        assert info.columns == expect["columns"]
    if "n_columns" in expect:
        assert len(info.columns) == expect["n_columns"]
    assert info.has_bom is expect.get("has_bom", data.startswith(b"\xef\xbb\xbf"))
    if "warning" in expect:
        assert any(expect["warning"] in w for w in info.warnings), info.warnings
    else:
        assert info.warnings == ()
    assert len(info.columns) == len(info.header)


@pytest.mark.parametrize("case", INVALID)
def test_invalid_files(tmp_path: Path, case) -> None:
    path = write(tmp_path, case.build())
    with pytest.raises(InvalidFile) as err:
        run_inspect(path)
    assert case.problem in err.value.problem
    assert err.value.path == "sales/orders.csv"
    assert err.value.fix  # every problem comes with what to do
    assert str(err.value).startswith("sales/orders.csv: ")


@pytest.mark.parametrize("case", INVALID)
def test_invalid_files_leave_no_spool_behind(tmp_path: Path, case) -> None:
    path = write(tmp_path, case.build())
    spool_dir = tmp_path / "spool"
    with pytest.raises(InvalidFile):
        spool(path, spool_dir)
    assert list(spool_dir.iterdir()) == []
    assert sorted(p.name for p in path.parent.iterdir()) == ["orders.csv"]


def test_non_utf8_message_says_how_to_fix_it(tmp_path: Path) -> None:
    path = write(tmp_path, "id,name\n1,Plzeň\n".encode("cp1250"))
    with pytest.raises(InvalidFile) as err:
        run_inspect(path)
    assert "CSV UTF-8" in err.value.fix
    assert "line 2" in err.value.problem


@pytest.mark.parametrize(
    ("size", "threshold", "level", "gzipped"),
    [
        (1000, 0, 1, True),
        (1000, 1000, 1, False),  # threshold is "larger than"
        (1001, 1000, 1, True),
        (3 * 1024 * 1024 + 17, 1024, 1, True),  # several chunks through the worker
        (3 * 1024 * 1024 + 17, 50 * 1024 * 1024, 1, False),
        (200_000, 0, 0, True),
        (200_000, 0, 3, True),
        (200_000, 0, 6, True),  # zlib above isal's level 3
    ],
)
def test_spool_holds_exactly_the_file(tmp_path: Path, size: int, threshold: int, level: int, gzipped: bool) -> None:
    line = b"1,Zlutoucky kun,12.50,2024-01-01\n"
    data = "id,name,price,day\n0,Žluťoučký kůň,1,2\n".encode() + (line * (size // len(line) + 1))
    data = data[: size - 1] + b"\n"
    path = write(tmp_path, data)
    spool_dir = tmp_path / "spool"
    info, result = spool(path, spool_dir, threshold=threshold, level=level)
    assert result.gzipped is gzipped
    assert result.path.parent == spool_dir
    assert result.path.name.endswith(".csv.gz" if gzipped else ".csv")
    assert result.path.name.startswith("orders-")
    assert result.size == result.path.stat().st_size
    raw = result.path.read_bytes()
    assert (gzip.decompress(raw) if gzipped else raw) == data
    assert info.sha256 == hashlib.sha256(data).hexdigest()
    assert info.header == ("id", "name", "price", "day")
    assert [p.name for p in spool_dir.iterdir()] == [result.path.name]  # no temp file left
    assert sorted(p.name for p in path.parent.iterdir()) == ["orders.csv"]  # nothing next to the source
    assert (result.path.stat().st_mode & 0o077) == 0  # private to us
    result.discard()
    assert not result.path.exists()
    result.discard()  # twice is fine


@pytest.mark.parametrize("level", [0, 1, 3, 6])
def test_parallel_gzip_is_one_plain_member_whatever_the_thread_count(tmp_path: Path, monkeypatch, level: int) -> None:
    """pigz-style blocks: the same bytes from 1 or 3 threads, readable by gzip, isal and gunzip, with
    the ratio of one stream (each block is primed with the 32 KiB before it)."""
    monkeypatch.setattr(stream, "CHUNK_SIZE", 256 << 10)  # many blocks, and a 10 KiB tail block
    rows = b"".join(b"%d,customer %d,%d.50,2024-01-%02d\n" % (i, i % 977, i % 313, i % 28 + 1) for i in range(60_000))
    data = b"id,name,price,day\n" + rows[: (5 << 20) + 10_000 - 18]
    path = write(tmp_path, data)
    outputs = []
    for threads in (1, 3):
        _info, result = spool(path, tmp_path / f"spool{threads}", level=level, gzip_threads=threads)
        outputs.append(result.path.read_bytes())
    assert outputs[0] == outputs[1]
    raw = outputs[0]
    assert gzip.decompress(raw) == data
    assert igzip.decompress(raw) == data
    assert subprocess.run(["gzip", "-t", str(result.path)], check=False).returncode == 0
    one_stream = (
        len(gzip.compress(data, compresslevel=max(level, 1), mtime=0))
        if level >= 4
        else len(igzip.compress(data, compresslevel=level))
    )
    assert len(raw) <= one_stream * 1.02


def test_parallel_gzip_of_a_file_smaller_than_the_window(tmp_path: Path) -> None:
    data = b"a,b\n1,2\n"
    _info, result = spool(write(tmp_path, data), tmp_path / "spool", gzip_threads=2)
    assert gzip.decompress(result.path.read_bytes()) == data


def test_two_spools_of_one_file_do_not_collide(tmp_path: Path) -> None:
    path = write(tmp_path, b"a,b\n1,2\n")
    _, first = spool(path, tmp_path / "spool")
    _, second = spool(path, tmp_path / "spool")
    assert first.path != second.path
    assert first.path.exists() and second.path.exists()


def test_append_during_the_pass_raises_file_changed(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(stream, "CHUNK_SIZE", 1 << 20)
    data = b"id,name\n" + b"1,abcdefghij\n" * 300_000  # ~3.9 MiB: four chunks
    path = write(tmp_path, data)
    spool_dir = tmp_path / "spool"

    def writer_appends(index: int, _read: int) -> None:
        if index == 1:
            with open(path, "ab") as handle:
                handle.write(b"2,appended\n")

    with pytest.raises(FileChanged, match="changed while it was read"):
        spool(path, spool_dir, _on_chunk=writer_appends)
    assert list(spool_dir.iterdir()) == []
    # Once the writer is done, the same file passes.
    info, result = spool(path, spool_dir)
    assert info.size == len(data) + len(b"2,appended\n")
    result.discard()


def test_atomic_replace_during_the_pass_raises_file_changed(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,name\n" + b"1,abcdefghij\n" * 200_000)
    replacement = tmp_path / "new.csv"
    replacement.write_bytes(b"id,name\n2,b\n")

    def editor_saves(index: int, _read: int) -> None:
        if index == 0:
            os.replace(replacement, path)  # what editors and Excel do on save

    with pytest.raises(FileChanged):
        run = inspect(path, sniff_bytes=SNIFF, delimiters=DELIMS, display_path="x", _on_chunk=editor_saves)
        del run


def test_rewrite_with_same_size_is_detected_by_mtime(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,name\n" + b"1,abcdefghij\n" * 200_000)

    def rewrite_in_place(index: int, _read: int) -> None:
        if index == 0:
            st = path.stat()
            with open(path, "r+b") as handle:
                handle.seek(10)
                handle.write(b"9")
            os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000_000))

    with pytest.raises(FileChanged):
        inspect(path, sniff_bytes=SNIFF, delimiters=DELIMS, display_path="x", _on_chunk=rewrite_in_place)


def test_deleted_during_the_pass_raises_file_changed(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,name\n" + b"1,abcdefghij\n" * 200_000)
    spool_dir = tmp_path / "spool"

    def delete(index: int, _read: int) -> None:
        if index == 0:
            path.unlink()

    with pytest.raises(FileChanged, match="deleted or renamed"):
        spool(path, spool_dir, _on_chunk=delete)
    assert list(spool_dir.iterdir()) == []


def test_half_written_file_is_a_change_not_an_invalid_file(tmp_path: Path) -> None:
    # A writer caught mid-character: the bytes so far end in a truncated UTF-8 sequence.
    path = write(tmp_path, b"id,name\n" + b"1,abc\n" * 200_000 + "2,ž".encode()[:-1])

    def writer_finishes(index: int, _read: int) -> None:
        if index == 0:
            with open(path, "ab") as handle:
                handle.write(b"\xbe\n")

    with pytest.raises(FileChanged):
        run_inspect_with_hook(path, writer_finishes)
    assert run_inspect(path).size == path.stat().st_size


def run_inspect_with_hook(path: Path, hook) -> CsvInfo:
    return inspect(path, sniff_bytes=SNIFF, delimiters=DELIMS, display_path="sales/orders.csv", _on_chunk=hook)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        run_inspect(tmp_path / "nope.csv")


def test_fingerprint(tmp_path: Path) -> None:
    path = write(tmp_path, b"a\n")
    st = path.stat()
    assert fingerprint(path) == Fingerprint(st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


def test_header_longer_than_the_sniff_sample(tmp_path: Path) -> None:
    names = [f"a_rather_long_column_name_number_{i:05d}" for i in range(5000)]  # ~200 KB header
    data = (";".join(names) + "\n" + ";".join("1" for _ in names) + "\n").encode()
    info = inspect(path=write(tmp_path, data), sniff_bytes=4096, delimiters=DELIMS, display_path="x")
    assert info.dialect.delimiter == ";"
    assert info.columns == tuple(names)


def test_header_spanning_chunks(tmp_path: Path) -> None:
    names = [f"c{i:07d}" for i in range(150_000)]  # a 1.2 MB first line: more than one chunk
    data = (",".join(names) + "\n" + ",".join("1" for _ in names) + "\n").encode()
    info = run_inspect(write(tmp_path, data))
    assert info.columns == tuple(names)
    # Quoted newlines across chunks: 15 cells of 100 KB each are parsed whole, then refused by name length.
    cell = '"' + "y\n" * 50_000 + '"'
    big = ("id," + ",".join([cell] * 15) + "\n1,2\n").encode()
    with pytest.raises(InvalidFile, match="column 2 of the header is 99999 characters long"):
        run_inspect(write(tmp_path, big, "big.csv"))


def test_unclosed_quote_in_a_big_file_stops_at_the_header_limit(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(dialect, "MAX_HEADER_BYTES", 2 * 1024 * 1024)
    data = b'id,"name\n' + b"1,abcdefghij\n" * 400_000  # 5 MB, the quote never closes
    with pytest.raises(InvalidFile, match="never closed"):
        run_inspect(write(tmp_path, data))


@pytest.mark.parametrize(
    ("sample", "complete", "expected"),
    [
        ("a,b,c\n1,2,3\n4,5,6\n", True, Dialect(",", '"', "")),
        ("a;b;c\n1,5;2,5;3\n", True, Dialect(";", '"', "")),
        ("a,b\n1;2,3\n4;5,6\n", True, Dialect(",", '"', "")),  # semicolons in data only
        ("a\tb\n1,5\t2,5\n", True, Dialect("\t", '"', "")),
        ("a|b|c\n1|2|3\n", True, Dialect("|", '"', "")),
        ("a;b;c\n", True, Dialect(";", '"', "")),  # header only: most fields wins
        ("a,b;c\n", True, Dialect(",", '"', "")),  # a tie: the first configured delimiter
        ("just text\n", True, Dialect(",", '"', "")),
        ('a,b\n1,"x;y;z"\n2,"p;q"\n3,r\n4,s', False, Dialect(",", '"', "")),
    ],
)
def test_sniff_dialect(sample: str, complete: bool, expected: Dialect) -> None:
    dialect, _ = sniff_dialect(sample, DELIMS, complete=complete)
    assert dialect == expected


def test_sniff_respects_configured_delimiters() -> None:
    dialect, _ = sniff_dialect("a;b\n1;2\n", ",", complete=True)
    assert dialect.delimiter == ","


def test_backslash_escaped_quotes_get_a_warning(tmp_path: Path) -> None:
    info = run_inspect(write(tmp_path, b'id,text\n1,"say \\"hi\\" now"\n'))
    assert any("backslash" in w for w in info.warnings)


@pytest.mark.parametrize(
    "position",
    [9, 65535, 65536, 65537, 1024 * 1024, 2 * 1024 * 1024 + 65536 + 3, (4 << 20) - 1, 4 << 20, (4 << 20) + 1],
)
def test_invalid_utf8_is_located_exactly_across_slice_and_chunk_boundaries(tmp_path: Path, position: int) -> None:
    line = "1,Žluťoučký kůň úpěl\n".encode()  # multi-byte characters straddle every boundary somewhere
    data = bytearray(b"id,text\n" + line * (position // len(line) + 10))
    data[position] = 0xFF  # never valid in UTF-8
    path = write(tmp_path, bytes(data))
    with pytest.raises(InvalidFile) as err:
        run_inspect(path)
    # Where Python's own decoder says the first bad sequence starts (the lead byte when 0xFF cut a
    # character in half) is where our chunked, sliced validation must say it is.
    with pytest.raises(UnicodeDecodeError) as reference:
        bytes(data).decode("utf-8")
    start = reference.value.start
    assert start in (position, position - 1, position - 2)
    expected_line = data[:start].count(b"\n") + 1
    assert f"byte 0x{data[start]:02X} at byte {start}, line {expected_line}" in err.value.problem


def test_truncated_character_at_a_slice_boundary_is_fine_when_completed(tmp_path: Path) -> None:
    head = b"id,text\n1,"
    pad = b"a" * (65536 - len(head) - 1)
    data = head + pad + "ž".encode() + b"\n"  # ž starts at byte 65535 and ends at 65536
    assert run_inspect(write(tmp_path, data)).size == len(data)


def test_a_bad_header_fails_before_the_rest_of_a_big_file_is_read(tmp_path: Path) -> None:
    path = write(tmp_path, b"id,name,name\n" + b"1,abcdefghij,k\n" * 400_000)  # ~6 MiB
    chunks: list[int] = []
    with pytest.raises(InvalidFile, match="same name"):
        run_inspect_with_hook(path, lambda index, _read: chunks.append(index))
    assert chunks == []  # failed while handling the first chunk


def test_a_failing_spool_write_stops_the_pass_and_leaves_nothing(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(stream, "CHUNK_SIZE", 1 << 20)
    path = write(tmp_path, b"id,name\n" + b"1,abcdefghij\n" * 1_700_000)  # ~21 MiB: 21 chunks
    spool_dir = tmp_path / "spool"

    def disk_full(_self, _data: bytes) -> int:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(spool_room.SpoolWriter, "_write", disk_full)
    chunks: list[int] = []
    # A SpoolError, not an OSError: the daemon must blame its own disk, not the user's file.
    with pytest.raises(SpoolError, match=r"No space left.*upload\.spool_dir"):
        # A plain copy writes every chunk at once; a gzip stream of such repetitive rows may hold its
        # first output back for many chunks, which made the failing write (and this test) late.
        spool(path, spool_dir, threshold=1 << 40, _on_chunk=lambda index, _read: chunks.append(index))
    assert list(spool_dir.iterdir()) == []
    # The reader notices at its next hand-over, a few chunks later (the queue holds 3), not at the end.
    assert len(chunks) < 20


# --- not a regular file (issue 12 item 15): judged by stat, never opened --------------------------------
def test_a_fifo_named_csv_is_refused_without_being_opened(tmp_path: Path) -> None:
    import os

    from keboola_sync.csvfile.stream import inspect
    from keboola_sync.errors import InvalidFile

    pipe = tmp_path / "pipe.csv"
    os.mkfifo(pipe)
    # Opening a FIFO with no writer blocks forever: reaching the assertion at all proves it was not opened.
    with pytest.raises(InvalidFile) as caught:
        inspect(pipe, sniff_bytes=1000, delimiters=",;", display_path="f/pipe.csv")
    assert "not a regular file but a named pipe (FIFO)" in str(caught.value)
    assert "Put a regular CSV file there instead" in str(caught.value)
    assert "empty" not in str(caught.value)


def test_a_csv_replaced_by_a_folder_is_a_change_not_a_bad_file(tmp_path: Path) -> None:
    from keboola_sync.csvfile.stream import inspect
    from keboola_sync.errors import FileChanged
    from keboola_sync.fileid import observe

    folder = tmp_path / "was_a_file.csv"
    folder.mkdir()
    with pytest.raises(FileChanged, match="a folder now"):
        inspect(folder, sniff_bytes=1000, delimiters=",;", display_path="f/was_a_file.csv")
    assert observe(folder) is None  # the scheduler sees no file there


def test_not_a_file_names_each_kind() -> None:
    import stat

    from keboola_sync.fileid import not_a_file

    assert not_a_file(stat.S_IFREG | 0o644) is None
    assert not_a_file(stat.S_IFIFO | 0o644) == "a named pipe (FIFO)"
    assert not_a_file(stat.S_IFSOCK | 0o644) == "a socket"
    assert not_a_file(stat.S_IFCHR | 0o644) == "a character device"
    assert not_a_file(stat.S_IFBLK | 0o644) == "a block device"
    assert not_a_file(stat.S_IFDIR | 0o755) == "a folder"
