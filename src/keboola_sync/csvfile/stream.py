"""The one streaming pass over a CSV: read once, check, hash, and (for a load) spool.

Why one pass: files can be many GB and the network, not the CPU, should set the pace of a load. Reading
the file once, in 4 MiB chunks, keeps memory flat whatever the size and lets the expensive parts
overlap: this thread only reads, validates UTF-8 (encoding.py) and parses the header (dialect.py); the
spool writer (spool.py) hashes each chunk as it writes it and the gzip workers (pgzip.py) compress on
other cores (isal, zlib and hashlib release the GIL on large buffers).

Why the checks: everything we can catch here is cheaper and clearer than a Keboola job error minutes
later. A bad file raises `InvalidFile(display_path, problem, fix)`; a file that changed while we read
it raises `FileChanged` (the writer is still busy: try again later, it is not the user's fault).
Ragged rows are not checked (that needs a full CSV parse; Keboola reports them, §4.2).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from keboola_sync.errors import FileChanged, InvalidFile
from keboola_sync.fileid import Fingerprint, fingerprint, not_a_file
from keboola_sync.spool import Spool, SpoolReader, SpoolWriter, spool_stem

from . import dialect
from .dialect import Dialect, Header, parse_header
from .encoding import Utf8Validator, check_magic

# 4 MiB reads: the compressor thread needs the GIL a few times per chunk, so fewer, bigger chunks mean
# fewer waits; memory stays flat at a few chunks whatever the file size.
CHUNK_SIZE = 4 << 20


@dataclass(frozen=True)
class CsvInfo:
    """What the pass learnt about the file: what the load needs, and what the ledger remembers."""

    dialect: Dialect
    header: tuple[str, ...]  # raw header cells (BOM removed)
    columns: tuple[str, ...]  # header after sanitize_column_name (what Keboola will store)
    sha256: str  # of the file's bytes
    size: int  # bytes read
    fingerprint: Fingerprint  # stat before the pass (the pass verified it did not change)
    has_bom: bool
    warnings: tuple[str, ...]  # things Keboola would accept but the user probably did not mean


ChunkHook = Callable[[int, int], None]  # (chunk index, bytes read so far): lets tests act mid-pass
# Called once, in the pass, as soon as the header is known: it may raise to stop the pass (a header the
# caller will refuse), or start uploading the spool while the rest of the file is still compressed.
HeaderHook = Callable[[Dialect, tuple[str, ...], SpoolReader | None], None]


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
    gzip_level: int | str,  # 0-9, or "auto" (gzipauto.py)
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
    # SpoolWriter creates spool_dir if it vanished, and raises SpoolError if it cannot.
    sink = SpoolWriter(spool_dir, spool_stem(path), gzipped, gzip_level, gzip_threads)
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


def _run_pass(
    path: Path,
    *,
    sniff_bytes: int,
    delimiters: str,
    display_path: str,
    sink: SpoolWriter | None,
    on_chunk: ChunkHook | None,
    on_header: HeaderHook | None = None,
) -> CsvInfo:
    st = os.stat(path)
    _refuse_what_is_not_a_file(st.st_mode, display_path)
    before = Fingerprint.of(st)
    watch = _HeaderWatch(sniff_bytes, delimiters, display_path)
    try:
        return _read_and_check(path, before, display_path, watch, sink, on_chunk, on_header)
    except InvalidFile:
        # A half-written file looks invalid (truncated UTF-8, unclosed quote): if it moved on, it is
        # a change in progress, not a bad file.
        _raise_if_changed(path, before, None, display_path)
        raise


def _refuse_what_is_not_a_file(mode: int, display_path: str) -> None:
    """Judge the entry by its stat before anything opens it: opening a FIFO blocks until a writer comes."""
    kind = not_a_file(mode)
    if kind is None:
        return
    if kind == "a folder":  # the CSV was replaced by a folder of its name: gone as a file, not a bad file
        raise FileChanged(f"{display_path}: it is a folder now, not a file")
    raise InvalidFile(
        display_path,
        f"not a regular file but {kind}, so it is not read",
        "Put a regular CSV file there instead (pipes, sockets and devices are never read), or move it out of"
        " the watched folder.",
    )


class _HeaderWatch:
    """Keeps the first bytes until the header parses from them, then lets them go (memory stays flat).

    Why not parse at once: the first record may be longer than a chunk (a quoted newline, a wide
    header), and sniffing wants `sniff_bytes` of sample; so it waits for enough bytes, or the end.
    """

    def __init__(self, sniff_bytes: int, delimiters: str, display_path: str) -> None:
        self._sniff_bytes = sniff_bytes
        self._delimiters = delimiters
        self._display = display_path
        self._head = bytearray()
        self.header: Header | None = None

    def feed(self, chunk: bytes) -> Header | None:
        """Add the next chunk; the header when it has just become known, else None."""
        if self.header is not None:
            return None
        self._head += chunk
        size = len(self._head)
        if size < max(self._sniff_bytes, CHUNK_SIZE) and size < dialect.MAX_HEADER_BYTES:
            return None
        return self._parse(eof=False)

    def finish(self) -> Header | None:
        """At the end of the file: the header when it has just become known (a small file), else None."""
        if self.header is not None:
            return None
        return self._parse(eof=True)

    def _parse(self, *, eof: bool) -> Header | None:
        self.header = parse_header(bytes(self._head), eof, self._sniff_bytes, self._delimiters, self._display)
        if self.header is not None:
            self._head = bytearray()
        return self.header


def _read_and_check(
    path: Path,
    before: Fingerprint,
    display_path: str,
    watch: _HeaderWatch,
    sink: SpoolWriter | None,
    on_chunk: ChunkHook | None,
    on_header: HeaderHook | None,
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
    utf8 = Utf8Validator(path, display_path)
    total = 0
    index = 0
    with open(path, "rb") as handle:
        if sink is not None:
            sink.start()
        while chunk := handle.read(CHUNK_SIZE):
            if sink is not None:
                sink.put(chunk)  # hashed, compressed and written on other threads while we validate here
            if index == 0:
                check_magic(chunk, display_path)
            utf8.feed(chunk, total, None if sink is not None else sha)
            total += len(chunk)
            found = watch.feed(chunk)
            if found is not None and on_header is not None:
                on_header(found.dialect, found.columns, sink.reader() if sink is not None else None)
            if on_chunk is not None:
                on_chunk(index, total)
            index += 1
        utf8.finish(total)
        found = watch.finish()
        if found is not None and on_header is not None:
            on_header(found.dialect, found.columns, None)  # small file: nothing to overlap
        if sink is not None:
            sink.finish()
    header = watch.header
    if header is None:  # parse_header at the end of the file returns a header or raises
        raise AssertionError("the header was not parsed at the end of the file")
    _raise_if_changed(path, before, total, display_path)
    return CsvInfo(
        dialect=header.dialect,
        header=header.cells,
        columns=header.columns,
        sha256=sha.hexdigest(),
        size=total,
        fingerprint=before,
        has_bom=header.has_bom,
        warnings=header.warnings,
    )


def _raise_if_changed(path: Path, before: Fingerprint, bytes_read: int | None, display_path: str) -> None:
    """FileChanged when the file is not what it was when the pass began (a writer is still busy)."""
    try:
        after = fingerprint(path)
    except FileNotFoundError:
        raise FileChanged(f"{display_path}: the file was deleted or renamed while it was read") from None
    if after != before or (bytes_read is not None and bytes_read != before.size):
        raise FileChanged(
            f"{display_path}: the file changed while it was read (size {before.size} -> {after.size},"
            f" {bytes_read if bytes_read is not None else '?'} bytes read); it will be read again"
        )
