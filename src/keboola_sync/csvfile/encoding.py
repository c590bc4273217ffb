"""Is it UTF-8 text at all? The binary, NUL and UTF-8 checks of the pass, and the encoding hint.

Why here, in the pass: a workbook, a UTF-16 export or a Windows-1250 file is the commonest bad input, and
Keboola would either refuse it minutes later with a vague job error or, worse, load mojibake. Catching it
while the file is read anyway costs almost nothing (`bytes.isascii()` skips the decode for ASCII chunks)
and the message can say which byte, which line, and what the file probably is.
"""

from __future__ import annotations

import codecs
import unicodedata
from pathlib import Path
from typing import Protocol

import charset_normalizer

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


# The legacy encodings a CSV export is likely to be in, as the message names them. The order breaks ties
# when a sample is too short to tell them apart (e.g. "Zürich" is the same in all the Latin ones).
_ENCODING_NAMES: dict[str, str] = {
    "cp1252": "Windows-1252 / Latin-1",
    "cp1250": "Windows-1250 (Central European)",
    "mac_roman": "Mac Roman (saved by an older Mac program)",
    "iso8859_2": "ISO-8859-2 (Latin-2)",
    "cp1251": "Windows-1251 (Cyrillic)",
    "cp1253": "Windows-1253 (Greek)",
    "cp1254": "Windows-1254 (Turkish)",
    "cp1257": "Windows-1257 (Baltic)",
    "cp932": "Shift_JIS (Japanese)",
    "gb18030": "GB18030 (Chinese)",
    "big5": "Big5 (Traditional Chinese)",
    "cp949": "EUC-KR (Korean)",
}
_PUNCTUATION_BESIDE_WORDS = frozenset({"Pi", "Pf", "Pd", "Ps", "Pe", "Zs"})  # quotes, dashes, brackets, spaces
HINT_HEAD = 64 << 10  # bytes from the start of the file the guess reads (error path only)
HINT_WINDOW = 4 << 10  # bytes around the bad byte, when it lies beyond the head


def _guess_encoding(path: Path, position: int) -> str:
    """A hint for the message: which legacy encoding the file looks like, or nothing if no guess fits.

    charset-normalizer (already installed: requests depends on it) decodes a sample in each candidate and
    ranks them by how garbled the text comes out and how well it fits a language's letter frequencies.
    A few lines give it little to go on, so candidates whose text cannot be words are dropped first (see
    `_reads_as_words`), and when two still tie but read differently (a Czech "Plzeň" reads as "Plzeò" in
    Windows-1252), both are named rather than one picked at random.
    """
    sample = _hint_sample(path, position)
    if not sample:
        return ""
    order = list(_ENCODING_NAMES)
    readings: list[tuple[tuple[float, float], int, str]] = []
    for match in charset_normalizer.from_bytes(sample, cp_isolation=order):
        text = str(match)
        # Encodings that decode the sample to the very same text come as one match: name the likeliest.
        same = [order.index(e) for e in match.could_be_from_charset if e in _ENCODING_NAMES]
        if same and _reads_as_words(text):
            evidence = (round(match.chaos, 3), -round(match.coherence, 3))
            readings.append((evidence, min(same), text))
    if not readings:
        return ""
    readings.sort()
    evidence, best, text = readings[0]
    hint = _ENCODING_NAMES[order[best]]
    rival = next((r for r in readings[1:] if r[0] == evidence and r[2] != text), None)
    if rival is not None:
        hint += f" or {_ENCODING_NAMES[order[rival[1]]]}"
    return f"; it looks like {hint}"


def _hint_sample(path: Path, position: int) -> bytes:
    """The file's first lines plus the lines around the bad byte, cut at line ends (a multi-byte
    character is never split)."""
    try:
        with open(path, "rb") as handle:
            head = handle.read(HINT_HEAD)
            window = b""
            if position >= len(head):
                handle.seek(max(0, position - HINT_WINDOW // 2))
                window = handle.read(HINT_WINDOW)
    except OSError:
        return b""
    if len(head) == HINT_HEAD:
        head = head[: head.rfind(b"\n") + 1] or head
    if window:
        window = window[window.find(b"\n") + 1 : window.rfind(b"\n") + 1]
    return head + window


def _reads_as_words(text: str) -> bool:
    """False when a non-ASCII character sits next to an ASCII letter as no real word has it: a letter of
    another script ("cafй"), a capital inside a word ("ZŸrich") or a symbol ("Z˘rich", "Wei§" for a Mac's
    "Weiß"). Quotes, dashes, brackets, spaces, ¡, ¿ and … are fine."""
    for index, char in enumerate(text):
        if char.isascii():
            continue
        before = text[index - 1] if index else " "
        after = text[index + 1] if index + 1 < len(text) else " "
        if not (_is_ascii_letter(before) or _is_ascii_letter(after)):
            continue
        category = unicodedata.category(char)
        if category in _PUNCTUATION_BESIDE_WORDS or char in "¡¿…":
            continue
        if not category.startswith("L") or not unicodedata.name(char, "").startswith("LATIN"):
            return False
        if category == "Lu" and _is_ascii_letter(before) and (before.islower() or after.islower()):
            return False
    return True


def _is_ascii_letter(char: str) -> bool:
    return char.isascii() and char.isalpha()
