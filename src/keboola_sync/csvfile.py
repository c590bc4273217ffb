"""One streaming pass over a CSV: sniff the dialect, validate UTF-8, read the header, hash, spool.

Why one pass: files can be many GB and the network, not the CPU, should set the pace of a load. Reading
the file once, in 4 MiB chunks, keeps memory flat whatever the size and lets the expensive parts
overlap: the main thread only reads and validates UTF-8 (`bytes.isascii()` skips decoding for
pure-ASCII chunks); the gzip compression (python-isal, which releases the GIL) runs on worker threads,
and the spool writer hashes each chunk as it writes it (hashlib releases the GIL on large buffers too).
Compression is split into chunk-sized deflate blocks, each primed with the previous 32 KiB, as pigz does:
one ordinary gzip member, compressed on as many cores as the machine has (see `_ParallelGzip`).

Why the checks: everything we can catch here is cheaper and clearer than a Keboola job error minutes
later. A bad file raises `InvalidFile(display_path, problem, fix)`; a file that changed while we read
it raises `FileChanged` (the writer is still busy: try again later, it is not the user's fault).
Ragged rows are not checked (that needs a full CSV parse; Keboola reports them, §4.2).

Nothing is ever written next to the source: spools go to `spool_dir` as a temp name + os.replace.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import queue
import re
import struct
import tempfile
import threading
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from isal import isal_zlib

from keboola_sync.errors import FileChanged, InvalidFile, SpoolError
from keboola_sync.fileid import Fingerprint, fingerprint
from keboola_sync.layout import MAX_COLUMN_NAME, sanitize_column_name, sanitize_name

# 4 MiB reads: the compressor thread needs the GIL a few times per chunk, so fewer, bigger chunks mean
# fewer waits; memory stays flat at a few chunks whatever the file size.
CHUNK_SIZE = 4 << 20
UTF8_SLICE = 64 << 10  # see _Utf8Validator.feed
# Excel writes (and reads) a first line `sep=;` naming the delimiter; Keboola would take it as the header.
EXCEL_SEP_LINE = re.compile(rb"^sep=.?\r?\n", re.IGNORECASE)
QUEUE_CHUNKS = 3  # chunks buffered between the reader and the compressor (bounds memory at ~12 MiB)
MAX_HEADER_BYTES = 8 << 20  # a first record longer than this is not a header (unclosed quote?)
ISAL_MAX_LEVEL = 3  # isal's levels are 0-3; config allows 0-9 (4-9 use zlib: smaller, much slower)
UTF8_BOM = codecs.BOM_UTF8

SAVE_AS_UTF8 = "Save it as UTF-8 (in Excel: File > Save As > 'CSV UTF-8 (Comma delimited)')."


@dataclass(frozen=True)
class Dialect:
    """As Keboola's tables-async / import-async want it (§4.2): "" means none."""

    delimiter: str
    enclosure: str
    escaped_by: str


@dataclass(frozen=True)
class CsvInfo:
    dialect: Dialect
    header: tuple[str, ...]  # raw header cells (BOM removed)
    columns: tuple[str, ...]  # header after sanitize_column_name (what Keboola will store)
    sha256: str  # of the file's bytes
    size: int  # bytes read
    fingerprint: Fingerprint  # stat before the pass (the pass verified it did not change)
    has_bom: bool
    warnings: tuple[str, ...]  # things Keboola would accept but the user probably did not mean


@dataclass(frozen=True)
class Spool:
    path: Path  # in spool_dir; ends ".csv" or ".csv.gz" (Keboola gunzips by NAME, §4.6)
    gzipped: bool
    size: int  # bytes to upload

    def discard(self) -> None:
        """Delete the spool (after the upload, or when it is no longer needed)."""
        self.path.unlink(missing_ok=True)


ChunkHook = Callable[[int, int], None]  # (chunk index, bytes read so far): lets tests act mid-pass
# Called once, in the pass, as soon as the header is known: it may raise to stop the pass (a header the
# caller will refuse), or start uploading the spool while the rest of the file is still compressed.
HeaderHook = Callable[[Dialect, tuple[str, ...], "SpoolReader | None"], None]


def inspect(
    path: Path,
    *,
    sniff_bytes: int,
    delimiters: str,
    display_path: str,
    _on_chunk: ChunkHook | None = None,
) -> CsvInfo:
    """Check the file and describe it, without writing anything."""
    return _run_pass(
        path,
        sniff_bytes=sniff_bytes,
        delimiters=delimiters,
        display_path=display_path,
        sink=None,
        on_chunk=_on_chunk,
    )


def inspect_and_spool(
    path: Path,
    *,
    spool_dir: Path,
    gzip_threshold_bytes: int,
    gzip_level: int,
    sniff_bytes: int,
    delimiters: str,
    display_path: str,
    gzip_threads: int = 0,
    on_header: HeaderHook | None = None,
    _on_chunk: ChunkHook | None = None,
) -> tuple[CsvInfo, Spool]:
    """Check the file and copy it to the spool in the same pass, gzipped when above the threshold.

    The spool is a private, immutable copy: the upload cannot be corrupted by a later save of the
    source, and the hash in CsvInfo is exactly the bytes in the spool (before compression).
    """
    size_hint = fingerprint(path).size
    gzipped = size_hint > gzip_threshold_bytes
    # _SpoolWriter creates spool_dir if it vanished, and raises SpoolError if it cannot.
    sink = _SpoolWriter(spool_dir, _spool_stem(path), gzipped, gzip_level, gzip_threads)
    try:
        info = _run_pass(
            path,
            sniff_bytes=sniff_bytes,
            delimiters=delimiters,
            display_path=display_path,
            sink=sink,
            on_chunk=_on_chunk,
            on_header=on_header,
        )
        spool = sink.commit()
    except BaseException:
        sink.abort()
        raise
    return info, spool


# --- the pass -----------------------------------------------------------------------------------------
def _run_pass(
    path: Path,
    *,
    sniff_bytes: int,
    delimiters: str,
    display_path: str,
    sink: _SpoolWriter | None,
    on_chunk: ChunkHook | None,
    on_header: HeaderHook | None = None,
) -> CsvInfo:
    before = fingerprint(path)
    try:
        return _read_and_check(path, before, sniff_bytes, delimiters, display_path, sink, on_chunk, on_header)
    except InvalidFile:
        # A half-written file looks invalid (truncated UTF-8, unclosed quote): if it moved on, it is
        # a change in progress, not a bad file.
        _raise_if_changed(path, before, None, display_path)
        raise


def _read_and_check(
    path: Path,
    before: Fingerprint,
    sniff_bytes: int,
    delimiters: str,
    display_path: str,
    sink: _SpoolWriter | None,
    on_chunk: ChunkHook | None,
    on_header: HeaderHook | None = None,
) -> CsvInfo:
    if before.size == 0:
        raise InvalidFile(
            display_path,
            "the file is empty (0 bytes)",
            "Write at least the header line (the column names); a header-only file creates an empty table.",
        )
    # With a spool, its writer thread hashes each chunk as it writes it (in file order, GIL released), so
    # this thread only reads and checks UTF-8; without one (inspect), this thread hashes.
    sha = sink.sha if sink is not None else hashlib.sha256()
    utf8 = _Utf8Validator(path, display_path)
    head = bytearray()
    head_done = False
    header_info: tuple[Dialect, tuple[str, ...], tuple[str, ...], bool, list[str]] | None = None
    total = 0
    index = 0
    with open(path, "rb") as handle:
        if sink is not None:
            sink.start()
        while True:
            chunk = handle.read(CHUNK_SIZE)
            if not chunk:
                break
            if sink is not None:
                sink.put(chunk)  # hashed, compressed and written on other threads while we validate here
            if index == 0:
                _check_magic(chunk, display_path)
            utf8.feed(chunk, total, None if sink is not None else sha)
            total += len(chunk)
            if not head_done:
                head += chunk
                if len(head) >= max(sniff_bytes, CHUNK_SIZE) or len(head) >= MAX_HEADER_BYTES:
                    header_info = _try_header(bytes(head), False, sniff_bytes, delimiters, display_path)
                    if header_info is not None:
                        head_done = True
                        head = bytearray()
                        if on_header is not None:
                            on_header(header_info[0], header_info[2], sink.reader() if sink else None)
            if on_chunk is not None:
                on_chunk(index, total)
            index += 1
        utf8.finish(total)
        if not head_done:
            header_info = _try_header(bytes(head), True, sniff_bytes, delimiters, display_path)
            if on_header is not None and header_info is not None:
                on_header(header_info[0], header_info[2], None)  # small file: nothing to overlap
        if sink is not None:
            sink.finish()
    assert header_info is not None
    dialect, header, columns, has_bom, warnings = header_info
    _raise_if_changed(path, before, total, display_path)
    info = CsvInfo(
        dialect=dialect,
        header=header,
        columns=columns,
        sha256=sha.hexdigest(),
        size=total,
        fingerprint=before,
        has_bom=has_bom,
        warnings=tuple(warnings),
    )
    return info


def _raise_if_changed(path: Path, before: Fingerprint, bytes_read: int | None, display_path: str) -> None:
    try:
        after = fingerprint(path)
    except FileNotFoundError:
        raise FileChanged(f"{display_path}: the file was deleted or renamed while it was read") from None
    if after != before or (bytes_read is not None and bytes_read != before.size):
        raise FileChanged(
            f"{display_path}: the file changed while it was read (size {before.size} -> {after.size},"
            f" {bytes_read if bytes_read is not None else '?'} bytes read); it will be read again"
        )


# --- encoding and binary checks ------------------------------------------------------------------------
_MAGIC: tuple[tuple[bytes, str, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (an .xlsx workbook is one)",
     "Open it in Excel and save it as 'CSV UTF-8 (Comma delimited)', or unzip it and use the CSV inside."),
    (b"PK\x05\x06", "an empty ZIP archive", "Export the data as a UTF-8 CSV file."),
    (b"\x1f\x8b", "a gzip-compressed file",
     "Decompress it (e.g. gunzip) and put the plain .csv in the folder."),
    (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1", "an old Excel (.xls) or other Office document",
     "Open it in Excel and save it as 'CSV UTF-8 (Comma delimited)'."),
    (b"%PDF", "a PDF document", "Export the data as a UTF-8 CSV file."),
    (b"\x89PNG", "a PNG image", "Export the data as a UTF-8 CSV file."),
    (b"GIF8", "a GIF image", "Export the data as a UTF-8 CSV file."),
    (b"\xff\xd8\xff", "a JPEG image", "Export the data as a UTF-8 CSV file."),
    (b"BZh", "a bzip2-compressed file", "Decompress it (bunzip2) and put the plain .csv in the folder."),
    (b"\xfd7zXZ\x00", "an xz-compressed file", "Decompress it (unxz) and put the plain .csv in the folder."),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive", "Extract it and put the plain .csv in the folder."),
    (b"\x28\xb5\x2f\xfd", "a zstd-compressed file", "Decompress it (unzstd) and put the plain .csv in the folder."),
    (b"SQLite format 3\x00", "an SQLite database", "Export the table as a UTF-8 CSV file."),
    (b"PAR1", "a Parquet file", "Export the data as a UTF-8 CSV file."),
    (b"\xff\xfe\x00\x00", "UTF-32 encoded", SAVE_AS_UTF8),
    (b"\x00\x00\xfe\xff", "UTF-32 encoded", SAVE_AS_UTF8),
    (b"\xff\xfe", "UTF-16 encoded (it starts with a UTF-16 byte order mark)", SAVE_AS_UTF8),
    (b"\xfe\xff", "UTF-16 encoded (it starts with a UTF-16 byte order mark)", SAVE_AS_UTF8),
)  # fmt: skip


def _check_magic(first: bytes, display_path: str) -> None:
    for magic, kind, fix in _MAGIC:
        if first.startswith(magic):
            if "encoded" in kind:
                raise InvalidFile(display_path, f"the file is {kind}; Keboola needs UTF-8", fix)
            raise InvalidFile(display_path, f"the file is {kind}, not a CSV text file", fix)
    sample = first[:4096]
    nuls = sample.count(0)
    if nuls and nuls >= len(sample) // 4:
        odd = sample[1::2].count(0)
        even = sample[0::2].count(0)
        if max(odd, even) >= nuls * 0.9:
            raise InvalidFile(
                display_path,
                "the file is UTF-16 encoded (every other byte is NUL); Keboola needs UTF-8",
                SAVE_AS_UTF8,
            )


class _Utf8Validator:
    """Validates the whole file as UTF-8 and rejects NUL bytes, chunk by chunk."""

    def __init__(self, path: Path, display_path: str) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._path = path
        self._display = display_path

    def feed(self, chunk: bytes, offset: int, sha: hashlib._Hash | None) -> None:
        """Validate `chunk` (at `offset` in the file) and add it to `sha`, if given (when no spool writer
        hashes it on its own thread)."""
        if b"\x00" in chunk:
            self._fail_nul(offset + chunk.index(b"\x00"))
        if sha is not None:
            sha.update(chunk)
        if not self._decoder.getstate()[0] and chunk.isascii():
            return  # pure ASCII is valid UTF-8: skip the decode
        # Slices of 64 KiB: a big decode builds a big str through mmap (page faults); small ones reuse
        # heap memory and run about twice as fast, and ASCII slices are skipped.
        for start in range(0, len(chunk), UTF8_SLICE):
            piece = chunk[start : start + UTF8_SLICE]
            pending = self._decoder.getstate()[0]
            if not pending and piece.isascii():
                continue
            try:
                self._decoder.decode(piece)
            except UnicodeDecodeError as exc:
                self._fail_utf8(offset + start - len(pending) + exc.start, exc)

    def finish(self, total: int) -> None:
        pending = self._decoder.getstate()[0]
        try:
            self._decoder.decode(b"", final=True)
        except UnicodeDecodeError as exc:
            self._fail_utf8(total - len(pending) + exc.start, exc)

    def _fail_nul(self, position: int) -> None:
        line = _line_of(self._path, position)
        raise InvalidFile(
            self._display,
            f"the file contains a NUL byte (at byte {position}, line {line}), so it is binary or corrupt,"
            " not a text CSV",
            "Export the data again as a UTF-8 CSV file.",
        )

    def _fail_utf8(self, position: int, exc: UnicodeDecodeError) -> None:
        bad = exc.object[exc.start : exc.start + 1]
        line = _line_of(self._path, position)
        guess = _guess_encoding(self._path, position)
        raise InvalidFile(
            self._display,
            f"the file is not valid UTF-8: byte 0x{bad.hex().upper() or '??'} at byte {position}, line {line}"
            f" ({exc.reason}){guess}",
            SAVE_AS_UTF8,
        )


def _line_of(path: Path, position: int) -> int:
    """1-based line number of a byte offset (only on the error path, so a second read is fine)."""
    line = 1
    remaining = position
    try:
        with open(path, "rb") as handle:
            while remaining > 0:
                block = handle.read(min(CHUNK_SIZE, remaining))
                if not block:
                    break
                line += block.count(b"\n")
                remaining -= len(block)
    except OSError:
        return 0
    return line


def _guess_encoding(path: Path, position: int) -> str:
    """A hint for the message: which legacy encoding the bytes around the error look like."""
    try:
        with open(path, "rb") as handle:
            handle.seek(max(0, position - 64))
            window = handle.read(128)
    except OSError:
        return ""
    high = {b for b in window if b >= 0x80}
    central = {0x8A, 0x8D, 0x8E, 0x9A, 0x9D, 0x9E, 0xC8, 0xD8, 0xE8, 0xEC, 0xF8, 0xF9, 0xEF, 0xE5}
    if high & central:
        return "; it looks like Windows-1250 (Central European)"
    if high:
        return "; it looks like Windows-1252 / Latin-1"
    return ""


# --- dialect and header ----------------------------------------------------------------------------------
def _try_header(
    head: bytes, eof: bool, sniff_bytes: int, delimiters: str, display_path: str
) -> tuple[Dialect, tuple[str, ...], tuple[str, ...], bool, list[str]] | None:
    """Sniff and parse the header from the first bytes; None when more bytes are needed."""
    has_bom = head.startswith(UTF8_BOM)
    body = head[len(UTF8_BOM) :] if has_bom else head
    if not body.strip(b"\r\n\t "):
        if has_bom and not body:
            raise InvalidFile(
                display_path,
                "the file has no content after its UTF-8 byte order mark",
                "Write at least the header line (the column names).",
            )
        if eof:
            raise InvalidFile(
                display_path,
                "the file has no header: it contains only blank lines",
                "Put the column names on the first line.",
            )
    hint = EXCEL_SEP_LINE.match(body)
    if hint:
        shown = hint.group(0).decode("utf-8", errors="replace").strip()
        raise InvalidFile(
            display_path,
            f"the first line is Excel's delimiter hint '{shown}', not the header",
            "Remove that line: the column names must be on the first line (the delimiter is detected).",
        )
    sample_bytes = body[:sniff_bytes]
    sample_complete = eof and len(body) <= sniff_bytes
    sample = sample_bytes.decode("utf-8", errors="replace")
    if "\r" in sample and "\n" not in sample:
        raise InvalidFile(
            display_path,
            "the lines end with a bare carriage return (CR, classic Mac line breaks); Keboola reads LF or"
            " CRLF line breaks",
            "Save it with Windows (CRLF) or Unix (LF) line breaks.",
        )
    dialect, warnings = sniff_dialect(sample, delimiters, complete=sample_complete)
    # Parse from a small prefix first: headers are short, and decoding the whole 4 MiB head into a
    # str (and a StringIO copy) for every file would cost tens of MB of memory for nothing.
    header = None
    for limit in (64 << 10, 1 << 20, len(body)):
        prefix = body[:limit]
        whole = len(prefix) == len(body)
        header = _parse_first_record(prefix.decode("utf-8", errors="replace"), dialect, eof and whole, display_path)
        if header is not None or whole:
            break
    if header is None:
        if len(head) >= MAX_HEADER_BYTES:
            if b"\n" not in body and b"\r" not in body:
                raise InvalidFile(
                    display_path,
                    f"the first record is longer than {MAX_HEADER_BYTES >> 20} MiB and has no line break, so it"
                    " is not a header line",
                    "Check that the file is a CSV with the column names on the first line.",
                )
            raise InvalidFile(
                display_path,
                f"the first record is longer than {MAX_HEADER_BYTES >> 20} MiB; it probably has a quote"
                f" ({dialect.enclosure}) that is never closed",
                "Check the quoting of the first line (the header).",
            )
        return None
    if len(header) == 1:
        # A one-column table is fine ("id"); one column whose name holds a separator-like character is
        # what a wrong or unsupported delimiter looks like, which Keboola would accept as one wide column.
        cell = header[0]
        others = [d for d in ",;\t|:^~#" if d in cell]
        if others:
            warnings.append(
                f"the header has one column only (it contains {_show_delim(others[0])}: is that the delimiter?);"
                f" a file with several columns needs one of the delimiters"
                f" {', '.join(_show_delim(d) for d in delimiters)}"
            )
    # Checked as soon as the header is known, so a bad header fails before a 5 GB file is read.
    columns = _check_columns(header, display_path)
    return dialect, header, columns, has_bom, warnings


def _parse_first_record(text: str, dialect: Dialect, eof: bool, display_path: str) -> tuple[str, ...] | None:
    """The header, or None when `text` ends before the first record does (read more and try again)."""
    if not eof and "\n" not in text and "\r" not in text:
        return None  # not even one line yet: a prefix of it would be a truncated header
    stream = io.StringIO(text, newline="")
    reader = csv.reader(stream, **_csv_params(dialect), strict=True)
    try:
        record = next(reader, None)
    except csv.Error as exc:
        if not eof and "end of data" in str(exc):
            return None  # the quoted field goes on past what we have read so far
        if "field larger than field limit" in str(exc):
            raise InvalidFile(
                display_path,
                f"a header value is longer than {csv.field_size_limit()} characters; the header probably"
                f" has a quote ({dialect.enclosure}) that is never closed",
                "Close the quote in the first line, or remove it.",
            ) from None
        if "end of data" in str(exc):
            raise InvalidFile(
                display_path,
                f"the header has a quote ({dialect.enclosure}) that is never closed",
                "Close the quote in the first line, or remove it.",
            ) from None
        raise InvalidFile(
            display_path,
            f"the header is not valid CSV ({exc})",
            f"Check the quoting in the first line; a quote ({dialect.enclosure}) inside a value must be doubled.",
        ) from None
    consumed = text[: stream.tell()]
    if not eof and not consumed.endswith(("\n", "\r")):
        return None  # the first line goes on past what we have read so far
    if record is None or record == []:
        raise InvalidFile(
            display_path,
            "the first line is empty, so the file has no header",
            "Put the column names on the first line (remove the blank lines above them).",
        )
    return tuple(record)


def _csv_params(dialect: Dialect) -> dict[str, object]:
    params: dict[str, object] = {"delimiter": dialect.delimiter, "doublequote": True}
    if dialect.enclosure:
        params["quotechar"] = dialect.enclosure
    else:
        params["quoting"] = csv.QUOTE_NONE
    if dialect.escaped_by:
        params["escapechar"] = dialect.escaped_by
    return params


def sniff_dialect(sample: str, delimiters: str, *, complete: bool) -> tuple[Dialect, list[str]]:
    """Pick the delimiter whose field counts are consistent over the sample's complete records.

    csv.Sniffer alone is flaky on real files (it happily picks a letter or a space), so we only choose
    among the configured delimiters and score each by how many records agree with the header's field
    count, then by that count. `complete` says the sample is the whole file.
    """
    warnings: list[str] = []
    text = sample
    if not complete:
        cut = max(text.rfind("\n"), text.rfind("\r"))
        text = text[: cut + 1] if cut > 0 else text
    enclosure = _sniff_enclosure(text, delimiters)
    best: tuple[float, int, int] | None = None
    chosen = delimiters[0] if delimiters else ","
    for order, delim in enumerate(delimiters):
        counts = _field_counts(text, delim, enclosure, drop_last=not complete)
        if not counts or counts[0] < 2:
            continue
        agree = sum(1 for c in counts if c == counts[0]) / len(counts)
        score = (agree, counts[0], -order)
        if best is None or score > best:
            best = score
            chosen = delim
    escaped_by = ""
    if f"\\{enclosure}" in text and f"{enclosure}{enclosure}" not in text:
        warnings.append(
            f"quotes inside values look escaped with a backslash (\\{enclosure}); Keboola expects them"
            f" doubled ({enclosure}{enclosure}), so those rows may load wrongly"
        )
    elif f"\\{chosen}" in text and '"' not in text and "'" not in text:
        # MySQL-style export: no quoting at all, delimiters inside values escaped with a backslash.
        # Keboola takes either an enclosure or escapedBy, not both (§4.2).
        escaped_by, enclosure = "\\", ""
    return Dialect(delimiter=chosen, enclosure=enclosure, escaped_by=escaped_by), warnings


def _field_counts(text: str, delim: str, enclosure: str, *, drop_last: bool, limit: int = 2000) -> list[int]:
    params = _csv_params(Dialect(delim, enclosure, ""))
    counts: list[int] = []
    try:
        for record in csv.reader(io.StringIO(text, newline=""), **params):
            if record:  # blank lines are not records
                counts.append(len(record))
            if len(counts) >= limit:
                return counts
    except csv.Error:
        pass
    if drop_last and len(counts) > 1:
        counts.pop()  # the sample may end inside the last record
    return counts


def _sniff_enclosure(text: str, delimiters: str) -> str:
    """'"' unless the file clearly encloses values in single quotes and never in double quotes."""
    delims = re.escape(delimiters)
    starts = f"(?:^|[{delims}])"
    ends = f"(?=[{delims}]|\r?$)"
    double = len(re.findall(f'{starts}"[^"]*"{ends}', text, flags=re.MULTILINE))
    single = len(re.findall(f"{starts}'[^']*'{ends}", text, flags=re.MULTILINE))
    lines = max(1, text.count("\n"))
    if double == 0 and single >= 2 and single >= lines // 2:
        return "'"
    return '"'


def _show_delim(delim: str) -> str:
    return {"\t": "tab", " ": "space"}.get(delim, repr(delim))


def _check_columns(header: tuple[str, ...], display_path: str) -> tuple[str, ...]:
    """Keboola's column names for the header (§4.4), or InvalidFile for names Keboola refuses."""
    columns: list[str] = []
    seen: dict[str, int] = {}
    for number, cell in enumerate(header, start=1):
        if not cell.strip():
            trailing = number == len(header) and number > 1
            raise InvalidFile(
                display_path,
                f"column {number} of the header has no name"
                + (" (the first line ends with a delimiter)" if trailing else ""),
                "Remove the delimiter at the end of the first line."
                if trailing
                else "Give every column a name in the first line.",
            )
        column = sanitize_column_name(cell)
        if not column:
            raise InvalidFile(
                display_path,
                f"column {number} of the header ({cell!r}) has no letters or digits Keboola can use in a column name",
                "Rename the column using Latin letters, digits or '_'.",
            )
        if len(column) > MAX_COLUMN_NAME:
            raise InvalidFile(
                display_path,
                f"column {number} of the header is {len(column)} characters long as a Keboola column name"
                f" ({column[:40]}...); Keboola accepts at most {MAX_COLUMN_NAME}",
                f"Shorten the column name to at most {MAX_COLUMN_NAME} characters.",
            )
        key = column.lower()
        if key in seen:
            first = seen[key]
            same = header[first - 1] == cell
            raise InvalidFile(
                display_path,
                f"columns {first} ({header[first - 1]!r}) and {number} ({cell!r}) of the header"
                + (" have the same name" if same else f" are the same column for Keboola ({column!r})"),
                "Give every column a different name (Keboola ignores case and turns characters other than"
                " letters, digits and '_' into '_').",
            )
        seen[key] = number
        columns.append(column)
    return tuple(columns)


# --- the spool ---------------------------------------------------------------------------------------------
def _spool_stem(path: Path) -> str:
    stem = path.name
    for suffix in (".gz", ".csv", ".tsv", ".txt"):
        if stem.lower().endswith(suffix):
            stem = stem[: -len(suffix)]
    return sanitize_name(stem)[:60] or "data"


class SpoolReader:
    """Reads the spool while the pass is still writing it, so the upload overlaps the compression.
    `read` blocks until the bytes exist; it raises if the pass fails (the upload is then abandoned)."""

    def __init__(self, writer: _SpoolWriter) -> None:
        self._writer = writer
        self._file = open(writer.tmp_path, "rb")  # noqa: SIM115 - closed by close(); survives the rename
        self._pos = 0
        self.name = writer.stem + (".csv.gz" if writer.gzipped else ".csv")

    def read(self, size: int = -1) -> bytes:
        writer = self._writer
        with writer.progress:
            while True:
                if writer.failed is not None:
                    raise OSError(f"the spool was abandoned: {writer.failed}")
                available = writer.written - self._pos
                if writer.done or (size >= 0 and available >= size):
                    break
                writer.progress.wait(0.5)
            want = available if size < 0 else min(size, available)
        data = self._file.read(want)
        self._pos += len(data)
        return data

    def wait_for(self, end: int) -> tuple[int, bool]:
        """Block until the spool holds `end` bytes or is complete: (bytes written, complete?)."""
        writer = self._writer
        with writer.progress:
            while True:
                if writer.failed is not None:
                    raise OSError(f"the spool was abandoned: {writer.failed}")
                if writer.done or writer.written >= end:
                    return writer.written, writer.done
                writer.progress.wait(0.5)

    def window(self, start: int, length: int) -> _Window:
        """A seekable, read-only view of [start, start + length) for one multipart part."""
        return _Window(self._file.fileno(), start, length)

    @property
    def abandoned(self) -> bool:
        """The pass stopped (bad file, file changed, spool trouble): whatever read this is moot."""
        return self._writer.failed is not None

    def close(self) -> None:
        self._file.close()


class _Window:
    """What botocore needs of a part body (read, seek, tell), over a slice of the spool, read with pread
    so several parts can be read at once from one descriptor and nothing is held in memory."""

    def __init__(self, fd: int, start: int, length: int) -> None:
        self._fd, self._start, self._length, self._pos = fd, start, length, 0

    def read(self, size: int = -1) -> bytes:
        left = self._length - self._pos
        size = left if size is None or size < 0 else min(size, left)
        data = os.pread(self._fd, size, self._start + self._pos) if size > 0 else b""
        self._pos += len(data)
        return data

    def seek(self, offset: int, whence: int = os.SEEK_SET) -> int:
        base = {os.SEEK_SET: 0, os.SEEK_CUR: self._pos, os.SEEK_END: self._length}[whence]
        self._pos = max(0, min(self._length, base + offset))
        return self._pos

    def tell(self) -> int:
        return self._pos

    def __len__(self) -> int:
        return self._length


class _SpoolWriter:
    """Copies or compresses chunks into a temp file in a worker thread; commit = fsync-free rename."""

    def __init__(self, spool_dir: Path, stem: str, gzipped: bool, level: int, threads: int = 0) -> None:
        self.spool_dir = spool_dir
        self.stem = stem
        self.gzipped = gzipped
        self._gzip = _ParallelGzip(level, threads) if gzipped else None
        self.sha = hashlib.sha256()  # of the chunks as they come, i.e. of the source file
        # Each entry: the chunk, and (gzip) the future of its compressed block, already running.
        self._queue: queue.Queue[tuple[bytes, Future[bytes] | None] | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        try:
            spool_dir.mkdir(parents=True, exist_ok=True)  # a tmpfs cleaned by the OS comes back
            fd, name = tempfile.mkstemp(prefix=f".{stem}-", suffix=".part", dir=spool_dir)
        except OSError as exc:
            raise SpoolError(spool_dir, exc) from exc
        self._tmp = Path(name)
        self._file: BinaryIO = os.fdopen(fd, "wb", buffering=0)
        self._written = 0
        # What a SpoolReader follows: bytes on disk so far, and whether the writer ended well or badly.
        self.progress = threading.Condition()
        self.written = 0
        self.done = False
        self.failed: BaseException | None = None

    @property
    def tmp_path(self) -> Path:
        return self._tmp

    def reader(self) -> SpoolReader:
        return SpoolReader(self)

    def _announce(self, *, done: bool = False, failed: BaseException | None = None) -> None:
        with self.progress:
            self.written = self._written
            self.done = self.done or done
            self.failed = self.failed or failed
            self.progress.notify_all()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._work, name="keboola-sync-spool", daemon=True)
        self._thread.start()

    def put(self, chunk: bytes) -> None:
        if self._error is not None:
            raise self._error  # e.g. the spool disk is full: stop reading a big file at once
        self._queue.put((chunk, self._gzip.submit(chunk) if self._gzip is not None else None))

    def finish(self) -> None:
        self._stop()
        if self._error is not None:
            self._announce(failed=self._error)
            raise self._error
        self._announce(done=True)

    def _stop(self) -> None:
        if self._thread is not None:
            self._queue.put(None)
            self._thread.join()
            self._thread = None
        if self._gzip is not None:
            self._gzip.close()

    def _work(self) -> None:
        """Writes blocks in file order: a copied chunk as is, a compressed one when its future is done.
        After a failure it keeps draining the queue, so the reader never blocks on a dead worker."""
        gzip = self._gzip
        if gzip is not None:
            self._guarded(self._write, gzip.header())
        while (item := self._queue.get()) is not None:
            if self._error is None:
                self._guarded(self._put_block, *item)
        if gzip is not None and self._error is None:
            self._guarded(self._write, gzip.trailer())

    def _put_block(self, chunk: bytes, block: Future[bytes] | None) -> None:
        self.sha.update(chunk)
        if block is not None and self._gzip is not None:
            self._gzip.account(chunk)
            data = block.result()
        else:
            data = chunk
        if data:
            self._write(data)

    def _guarded(self, step: Callable[..., None], *args: object) -> None:
        """Runs one step of the worker; a failure is kept and re-raised in the reader's thread."""
        try:
            step(*args)
        except OSError as exc:
            self._error = SpoolError(self.spool_dir, exc)
        except BaseException as exc:
            self._error = exc

    def _write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:  # an unbuffered write may be partial
            written = self._file.write(view)
            view = view[written:]
        self._written += len(data)
        self._announce()

    def commit(self) -> Spool:
        suffix = ".csv.gz" if self.gzipped else ".csv"
        try:
            self._file.close()
            fd, final = tempfile.mkstemp(prefix=f"{self.stem}-", suffix=suffix, dir=self.spool_dir)
            os.close(fd)
            os.replace(self._tmp, final)
        except OSError as exc:
            raise SpoolError(self.spool_dir, exc) from exc
        return Spool(path=Path(final), gzipped=self.gzipped, size=self._written)

    def abort(self) -> None:
        self._announce(failed=self._error or RuntimeError("the pass stopped"))
        try:
            self._stop()
        finally:
            self._file.close()
            self._tmp.unlink(missing_ok=True)


# A gzip member header: magic, deflate, no flags, no mtime (the bytes depend on the data only), no extra
# flags, OS "unknown" (RFC 1952 §2.3).
GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"
DEFLATE_WINDOW = 32 << 10
# An empty final deflate block (fixed Huffman, BFINAL=1, just the end-of-block code), as pigz ends with.
DEFLATE_LAST_EMPTY_BLOCK = b"\x03\x00"
MAX_GZIP_THREADS = 4


class _ParallelGzip:
    """One gzip member compressed on several threads, the way pigz does it.

    Why: the compressor is the slowest part of the pass (about as fast as the disk on one core), and it
    would otherwise leave the second core idle. Each chunk becomes raw deflate blocks of its own, primed
    with the last 32 KiB of the data before it (so the ratio is what a single stream gets) and ended with
    a sync flush (so the blocks simply concatenate). The header, CRC-32 and length are written around
    them, so the result is an ordinary single-member .gz that every gunzip reads. isal and zlib release
    the GIL while they compress, so the threads really run in parallel.
    """

    def __init__(self, level: int, threads: int) -> None:
        self._level = level
        workers = threads or min(os.cpu_count() or 1, MAX_GZIP_THREADS)
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="keboola-sync-gzip")
        self._previous = b""  # the last DEFLATE_WINDOW bytes submitted, the next block's dictionary
        self._crc = 0
        self._size = 0

    def submit(self, chunk: bytes) -> Future[bytes]:
        """Start compressing `chunk`; called in file order, from one thread."""
        dictionary = self._previous
        self._previous = (
            (dictionary + chunk)[-DEFLATE_WINDOW:] if len(chunk) < DEFLATE_WINDOW else (chunk[-DEFLATE_WINDOW:])
        )
        return self._pool.submit(_deflate_block, chunk, dictionary, self._level)

    def account(self, chunk: bytes) -> None:
        """Add `chunk` to the trailer's CRC-32 and length; called in file order."""
        self._crc = isal_zlib.crc32(chunk, self._crc)
        self._size += len(chunk)

    @staticmethod
    def header() -> bytes:
        return GZIP_HEADER

    def trailer(self) -> bytes:
        return DEFLATE_LAST_EMPTY_BLOCK + struct.pack("<II", self._crc & 0xFFFFFFFF, self._size & 0xFFFFFFFF)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)


def _deflate_block(chunk: bytes, dictionary: bytes, level: int) -> bytes:
    """Raw deflate of one chunk, primed with `dictionary`, ending on a byte boundary (sync flush).
    Levels 0-3 use ISA-L; 4-9 use zlib, for users who trade speed for a smaller upload."""
    if level <= ISAL_MAX_LEVEL:
        if dictionary:
            compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15, 9, 0, dictionary)
        else:
            compressor = isal_zlib.compressobj(level, isal_zlib.DEFLATED, -15)
        return compressor.compress(chunk) + compressor.flush(isal_zlib.Z_SYNC_FLUSH)
    if dictionary:
        zcompressor = zlib.compressobj(level, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, dictionary)
    else:
        zcompressor = zlib.compressobj(level, zlib.DEFLATED, -15)
    return zcompressor.compress(chunk) + zcompressor.flush(zlib.Z_SYNC_FLUSH)
