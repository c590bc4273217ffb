"""Is it UTF-8 text at all? The binary, NUL and UTF-8 checks of the pass, and the encoding hint.

Why here, in the pass: a workbook, a UTF-16 export or a Windows-1250 file is the commonest bad input, and
Keboola would either refuse it minutes later with a vague job error or, worse, load mojibake. Catching it
while the file is read anyway costs almost nothing (`bytes.isascii()` skips the decode for ASCII chunks)
and the message can say which byte, which line, and what the file probably is.
"""

from __future__ import annotations

import codecs
from pathlib import Path
from typing import Protocol

from keboola_sync.errors import InvalidFile

UTF8_SLICE = 64 << 10  # see Utf8Validator.feed
LINE_COUNT_BLOCK = 4 << 20  # read size when counting lines for a message (error path only)

SAVE_AS_UTF8 = "Save it as UTF-8 (in Excel: File > Save As > 'CSV UTF-8 (Comma delimited)')."


class Hasher(Protocol):
    """What the validator needs of a hashlib object (hashlib's own type is private)."""

    def update(self, data: bytes, /) -> None: ...


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


def check_magic(first: bytes, display_path: str) -> None:
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


class Utf8Validator:
    """Validates the whole file as UTF-8 and rejects NUL bytes, chunk by chunk."""

    def __init__(self, path: Path, display_path: str) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")("strict")
        self._path = path
        self._display = display_path

    def feed(self, chunk: bytes, offset: int, sha: Hasher | None) -> None:
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
                block = handle.read(min(LINE_COUNT_BLOCK, remaining))
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
