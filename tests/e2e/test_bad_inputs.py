"""Every bad input gets a clear answer (issue 5): the corpus of bad files, names and filesystem oddities.

Design for speed: every file-level entry lives in ONE watched folder built by a module-scoped fixture,
which runs ONE `sync --once` and ONE `status --json` against its own emulator; each entry then has its
own parametrised test asserting the promised outcome:

* its log line: exactly one line naming the file, the problem and the fix (WARNING/ERROR for a file that
  is skipped or loaded with a warning, INFO for a file that is ignored on purpose);
* its `status` row state (skipped / synced), or no row at all for ignored files;
* that a valid file in the same folder was still loaded;
* and, once for the module, that `sync --once` exits 1 because something was skipped.

What the daemon catches itself (cheap, in the one streaming pass of csvfile.py, before any upload):
encodings, NUL bytes, binary and compressed files, empty files, header problems, CR-only line ends,
names. What only Keboola can tell (it needs a full parse): ragged rows and broken quoting in the data,
reported as the job error Keboola returns (keboola-storage-api.md §4.2, §7.2 `invalidCsv`) -> skipped
with Keboola's message. What Keboola would accept although the user probably did not mean it (a wrong
delimiter read as one wide column): loaded, with a warning.

Entries that need their own process (timing, Keboola state, tokens, URLs) are separate tests below.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import socket
import stat
import subprocess
import tempfile
import threading
import unicodedata
import uuid
import zipfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from support.daemon import Daemon, table_rows, wait_table
from support.emulator import IN, Emulator, start_emulator, wait_for

VALID = "id,name\n1,Alice\n2,Bob\n"
VALID_ROWS = [["id", "name"], ["1", "Alice"], ["2", "Bob"]]
SAVE_AS_UTF8 = "Save it as UTF-8"


def uid() -> str:
    return uuid.uuid4().hex[:8]


# --------------------------------------------------------------------------------------------------
# The corpus: one Entry per bad input, with the outcome we promise.


@dataclass(frozen=True)
class Entry:
    """One bad input and its promised outcome.

    `state` is the `status` row state, or None when the file is ignored (no row at all).
    `line` are substrings the one log line about the file must contain (its problem and its fix);
    `level` is that line's level. `table`/`rows`: the table the file must (or, with rows=None and
    state != synced, must not) produce. `folder_ok`: the entry's folder maps to a bucket, so a valid
    sibling file there must be loaded.
    """

    id: str
    path: str  # relative to the watched folder; the name in `status` and in the log
    make: Callable[[Path, Path], None]  # (watched folder, a scratch dir outside it)
    state: str | None
    line: tuple[str, ...]
    level: str = "WARNING"
    table: str | None = None
    rows: list[list[str]] | None = None
    folder_ok: bool = True
    extra: dict[str, Any] = field(default_factory=dict)


def write(data: bytes | str) -> Callable[[Path, Path], None]:
    payload = data.encode() if isinstance(data, str) else data

    def make(path: Path, scratch: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(payload)

    return make


def at(rel: str, data: bytes | str) -> tuple[str, Callable[[Path, Path], None]]:
    maker = write(data)

    def make(watch: Path, scratch: Path) -> None:
        maker(watch / rel, scratch)

    return rel, make


def big_with_bad_byte_at_end(size: int = 5 << 20) -> bytes:
    """A multi-MB valid ASCII CSV with one Latin-1 byte in its last megabyte (the pass must read to the end)."""
    row = b"123456,some plain ascii text for padding\n"
    body = bytearray(b"id,text\n")
    while len(body) < size:
        body += row
    body += b"999999,Z\xfcrich\n"  # 0xFC = u-umlaut in Latin-1, invalid as UTF-8
    body += row * 100
    return bytes(body)


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("data.csv", VALID)
    return buffer.getvalue()


def one_100mb_line() -> Callable[[Path, Path], None]:
    def make(watch: Path, scratch: Path) -> None:
        path = watch / "st" / "one_long_line.csv"
        path.parent.mkdir(parents=True, exist_ok=True)
        block = b"x" * (1 << 20)
        with path.open("wb") as handle:
            for _ in range(100):
                handle.write(block)

    return make


def symlink(rel: str, target: str | Callable[[Path, Path], str]) -> Callable[[Path, Path], None]:
    def make(watch: Path, scratch: Path) -> None:
        path = watch / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.symlink_to(target(watch, scratch) if callable(target) else target)

    return make


def outside_target(watch: Path, scratch: Path) -> str:
    secret = scratch / "outside-secret.csv"
    secret.write_text("id,secret\n1,do not load me\n")
    return str(secret)


def nested_dir(rel: str) -> Callable[[Path, Path], None]:
    def make(watch: Path, scratch: Path) -> None:
        (watch / rel).mkdir(parents=True, exist_ok=True)
        (watch / rel / "inner.csv").write_text(VALID)

    return make


def nfd(text: str) -> str:
    """A name as macOS hands it out: decomposed (an accent is a character of its own)."""
    return unicodedata.normalize("NFD", text)


def shown(text: str) -> str:
    """How a name is shown in the log and the status table (issue 12 item 14): control characters
    escaped as Python writes them, so one outcome is one line and nothing drives the terminal."""
    return re.sub("[\x00-\x1f\x7f-\x9f\ud800-\udfff]", lambda m: repr(m.group())[1:-1], text)


LATIN1_NAME = b"caf\xe9".decode("utf-8", "surrogateescape")  # how Python lists a name that is not UTF-8


def fifo(rel: str) -> Callable[[Path, Path], None]:
    def make(watch: Path, scratch: Path) -> None:
        (watch / rel).parent.mkdir(parents=True, exist_ok=True)
        os.mkfifo(watch / rel)

    return make


def unix_socket(rel: str) -> Callable[[Path, Path], None]:
    def make(watch: Path, scratch: Path) -> None:
        (watch / rel).parent.mkdir(parents=True, exist_ok=True)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.bind(str(watch / rel))  # the socket file stays after the socket is closed

    return make


def device(rel: str) -> Callable[[Path, Path], None]:
    def make(watch: Path, scratch: Path) -> None:
        (watch / rel).parent.mkdir(parents=True, exist_ok=True)
        os.mknod(watch / rel, stat.S_IFCHR | 0o600, os.makedev(1, 3))  # what /dev/null is

    return make


def can_make_devices() -> bool:
    """mknod needs root (CAP_MKNOD): where it is refused the device entry is left out of the corpus."""
    with tempfile.TemporaryDirectory() as scratch:
        try:
            os.mknod(Path(scratch) / "probe", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        except OSError:
            return False
    return True


def linked_folder(rel: str) -> Callable[[Path, Path], None]:
    def make(watch: Path, scratch: Path) -> None:
        target = scratch / f"linked-{rel.replace('/', '_')}"
        target.mkdir()
        (target / "inside.csv").write_text(VALID)
        (watch / rel).parent.mkdir(parents=True, exist_ok=True)
        (watch / rel).symlink_to(target)

    return make


def columns_header(count: int) -> str:
    names = [f"c{i}" for i in range(count)]
    return ",".join(names) + "\n" + ",".join(str(i) for i in range(count)) + "\n"


LONG_STEM = "a" * 100
# A few lines of real-looking names: enough for the encoding hint to tell the legacy encodings apart.
CZECH_PEOPLE = "id,jmeno,mesto\n1,Jiří Novák,Plzeň\n2,Petra Dvořáková,České Budějovice\n3,Tomáš Černý,Žďár\n"
GERMAN_PEOPLE = "id,name,stadt\n1,Jürgen Müller,Köln\n2,Anna Weiß,Düsseldorf\n3,Björn Groß,München\n"

ENTRIES: list[Entry] = [
    # --- encodings -------------------------------------------------------------------------------
    Entry(
        "latin1",
        *at("enc/latin1.csv", "id,city\n1,Zürich\n".encode("latin-1")),
        "skipped",
        ("enc/latin1.csv", "not valid UTF-8", "line 2", "Latin-1", SAVE_AS_UTF8),
    ),
    Entry(
        "windows1250",
        *at("enc/cp1250.csv", CZECH_PEOPLE.encode("cp1250")),
        "skipped",
        ("enc/cp1250.csv", "not valid UTF-8", "it looks like Windows-1250 (Central European).", SAVE_AS_UTF8),
    ),
    Entry(
        # A Mac program's export (Numbers, old Excel for Mac): was misnamed Windows-1250 before (issue 15).
        "mac_roman",
        *at("enc/macroman.csv", GERMAN_PEOPLE.encode("mac_roman")),
        "skipped",
        ("enc/macroman.csv", "not valid UTF-8", "line 2", "it looks like Mac Roman", SAVE_AS_UTF8),
    ),
    Entry(
        "utf16_bom",
        *at("enc/utf16_bom.csv", "id,name\n1,Zoë\n".encode("utf-16")),
        "skipped",
        ("enc/utf16_bom.csv", "UTF-16", "Keboola needs UTF-8", SAVE_AS_UTF8),
    ),
    Entry(
        "utf16_no_bom",
        *at("enc/utf16le.csv", "id,name\n1,Zoë\n".encode("utf-16-le")),
        "skipped",
        ("enc/utf16le.csv", "UTF-16", "Keboola needs UTF-8", SAVE_AS_UTF8),
    ),
    Entry(
        "utf16_be_no_bom",
        *at("enc/utf16be.csv", "id,name\n1,Zoë\n".encode("utf-16-be")),
        "skipped",
        ("enc/utf16be.csv", "UTF-16", SAVE_AS_UTF8),
    ),
    Entry(
        "utf32",
        *at("enc/utf32.csv", "id,name\n1,Zoë\n".encode("utf-32")),
        "skipped",
        ("enc/utf32.csv", "UTF-32", SAVE_AS_UTF8),
    ),
    Entry(
        "utf8_bom_is_valid",
        *at("enc/bom.csv", b"\xef\xbb\xbfid,name\n1,Zo\xc3\xab\n"),
        "synced",
        (),
        table=f"{IN}enc.bom",
        rows=[["id", "name"], ["1", "Zoë"]],
    ),
    Entry(
        "bad_byte_in_last_megabyte",
        *at("enc/big_bad_tail.csv", big_with_bad_byte_at_end()),
        "skipped",
        ("enc/big_bad_tail.csv", "not valid UTF-8", "0xFC", "line ", SAVE_AS_UTF8),
    ),
    Entry(
        "nul_bytes",
        *at("enc/nul.csv", b"id,name\n1,Al\x00ice\n"),
        "skipped",
        ("enc/nul.csv", "NUL byte", "line 2", "Export the data again as a UTF-8 CSV"),
    ),
    Entry(
        "utf8_truncated_at_end",
        *at("enc/truncated.csv", "id,name\n1,Zoë\n2,Ž".encode()[:-1]),
        "skipped",
        ("enc/truncated.csv", "not valid UTF-8", SAVE_AS_UTF8),
    ),
    # --- structure -------------------------------------------------------------------------------
    Entry(
        "empty_file",
        *at("st/empty.csv", b""),
        "skipped",
        ("st/empty.csv", "empty (0 bytes)", "Write at least the header line"),
    ),
    Entry(
        "blank_lines_only",
        *at("st/blank.csv", "\n\n\n"),
        "skipped",
        ("st/blank.csv", "no header", "column names on the first line"),
    ),
    Entry(
        "header_only_is_valid",
        *at("st/header_only.csv", "id,name\n"),
        "synced",
        (),
        table=f"{IN}st.header_only",
        rows=[["id", "name"]],
    ),
    Entry(
        "blank_header_cell",
        *at("st/blank_cell.csv", "id,,name\n1,2,3\n"),
        "skipped",
        ("st/blank_cell.csv", "column 2 of the header has no name", "Give every column a name"),
    ),
    Entry(
        "header_ends_with_delimiter",
        *at("st/trailing_delim.csv", "id,name,\n1,a,\n"),
        "skipped",
        ("st/trailing_delim.csv", "column 3 of the header has no name", "Remove the delimiter at the end"),
    ),
    Entry(
        "duplicate_column",
        *at("st/dup.csv", "id,name,name\n1,a,b\n"),
        "skipped",
        ("st/dup.csv", "columns 2 ('name') and 3 ('name')", "same name", "Give every column a different name"),
    ),
    Entry(
        "duplicate_after_sanitising",
        *at("st/dup_sanitised.csv", "id,a b,a_b\n1,x,y\n"),
        "skipped",
        ("st/dup_sanitised.csv", "'a b'", "'a_b'", "same column for Keboola", "different name"),
    ),
    Entry(
        "duplicate_ignoring_case",
        *at("st/dup_case.csv", "id,Name,name\n1,x,y\n"),
        "skipped",
        ("st/dup_case.csv", "'Name'", "'name'", "same column for Keboola", "Keboola ignores case"),
    ),
    Entry(
        "column_longer_than_64",
        *at("st/long_column.csv", "id," + "c" * 70 + "\n1,2\n"),
        "skipped",
        ("st/long_column.csv", "70 characters long", "at most 64", "Shorten the column name"),
    ),
    Entry(
        "column_without_letters",
        *at("st/symbols.csv", "id,$$$\n1,2\n"),
        "skipped",
        ("st/symbols.csv", "column 2", "no letters or digits", "Rename the column"),
    ),
    Entry(
        "system_column_clash",
        *at("st/system.csv", "id,oid,oid_\n1,2,3\n"),
        "skipped",
        ("st/system.csv", "'oid'", "'oid_'", "same column for Keboola"),
    ),
    Entry(
        "excel_sep_hint_line",
        *at("st/excel_sep.csv", "sep=;\nid;name\n1;a\n"),
        "skipped",
        ("st/excel_sep.csv", "sep=", "Remove"),
    ),
    Entry(
        "semicolons_with_decimal_commas_are_valid",
        *at("st/decimal_commas.csv", "id;price\n1;3,50\n2;4,20\n"),
        "synced",
        (),
        table=f"{IN}st.decimal_commas",
        rows=[["id", "price"], ["1", "3,50"], ["2", "4,20"]],
    ),
    Entry(
        "excel_csv_utf8_export_is_valid",
        *at("st/excel_export.csv", '\ufeffČíslo;Název\r\n1;Žluťoučký kůň\r\n2;"a;b"\r\n'.encode()),
        "synced",
        (),
        table=f"{IN}st.excel_export",
        rows=[["Cislo", "Nazev"], ["1", "Žluťoučký kůň"], ["2", "a;b"]],
    ),
    # Keboola allows 1200 columns per table (docs/emulator.md); a table at the limit loads.
    Entry("thousands_of_columns", *at("st/wide.csv", columns_header(1200)), "synced", (), table=f"{IN}st.wide"),
    Entry(
        "ragged_more_cells",
        *at("st/ragged_more.csv", "id,name\n1,a\n2,b,extra\n"),
        "skipped",
        (
            "st/ragged_more.csv",
            "Keboola refused the file",
            "Number of columns in file (3)",
            "table (2)",
            "invalidCsv",
            "Fix the file",
        ),
    ),
    Entry(
        "ragged_fewer_cells",
        *at("st/ragged_fewer.csv", "id,name,city\n1,a,b\n2,c\n"),
        "skipped",
        (
            "st/ragged_fewer.csv",
            "Keboola refused the file",
            "Number of columns in file (2)",
            "table (3)",
            "Fix the file",
        ),
    ),
    Entry(
        "unclosed_quote_in_header",
        *at("st/quote_header.csv", 'id,"name\n1,a\n2,b\n'),
        "skipped",
        ("st/quote_header.csv", "quote", "never closed", "Close the quote in the first line"),
    ),
    Entry(
        "unclosed_quote_in_data",
        *at("st/quote_data.csv", 'id,name\n1,"Alice\n2,Bob\n'),
        "skipped",
        ("st/quote_data.csv", "Keboola refused the file", "Fix the file"),
    ),
    Entry(
        "cr_only_line_ends",
        *at("st/cr_only.csv", "id,name\r1,a\r2,b\r"),
        "skipped",
        ("st/cr_only.csv", "bare carriage return", "Save it with Windows (CRLF) or Unix (LF) line breaks"),
    ),
    Entry(
        "mixed_lf_crlf_is_valid",
        *at("st/mixed_endings.csv", "id,name\r\n1,a\n2,b\r\n3,c\n"),
        "synced",
        (),
        table=f"{IN}st.mixed_endings",
        rows=[["id", "name"], ["1", "a"], ["2", "b"], ["3", "c"]],
    ),
    Entry(
        "single_line_of_100mb",
        "st/one_long_line.csv",
        one_100mb_line(),
        "skipped",
        ("st/one_long_line.csv", "first record is longer than 8 MiB"),
    ),
    Entry(
        "binary_png",
        *at("st/picture.csv", b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4),
        "skipped",
        ("st/picture.csv", "a PNG image, not a CSV text file", "Export the data as a UTF-8 CSV"),
    ),
    Entry(
        "binary_random_bytes",
        *at("st/random.csv", bytes((i * 7919 + 13) % 256 for i in range(4096))),
        "skipped",
        ("st/random.csv", "NUL byte", "not a text CSV", "Export the data again"),
    ),
    Entry(
        "zip_renamed_to_csv",
        *at("st/export.csv", zip_bytes()),
        "skipped",
        ("st/export.csv", "a ZIP archive", "save it as 'CSV UTF-8"),
    ),
    Entry(
        "gzip_renamed_to_csv",
        *at("st/packed.csv", b"\x1f\x8b\x08\x00" + b"\x00" * 40),
        "skipped",
        ("st/packed.csv", "gzip-compressed", "Decompress it"),
    ),
    Entry(
        "xlsx_renamed_to_csv",
        *at("st/old_excel.csv", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 512),
        "skipped",
        ("st/old_excel.csv", "old Excel (.xls)", "CSV UTF-8"),
    ),
    Entry(
        "csv_gz_is_ignored",
        *at("st/archive.csv.gz", b"\x1f\x8b\x08\x00" + b"\x00" * 40),
        None,
        ("ignoring st/archive.csv.gz", "compressed CSVs are not loaded", "decompress it"),
        level="INFO",
    ),
    Entry(
        "wrong_delimiter_warns",
        *at("st/colon.csv", "id:name:city\n1:a:b\n2:c:d\n"),
        "synced",
        ("st/colon.csv", "the header has one column only", "one of the delimiters"),
        table=f"{IN}st.colon",
        rows=[["id_name_city"], ["1:a:b"], ["2:c:d"]],
    ),
    Entry(
        "backslash_escaped_quotes_warn",
        *at("st/backslash.csv", 'id,note\n1,"say \\"hi\\" now"\n2,plain\n'),
        "skipped",
        ("st/backslash.csv", "Keboola refused the file", "escaped with a backslash", "doubled"),
    ),
    # --- names -----------------------------------------------------------------------------------
    Entry(
        "folder_and_file_with_spaces_and_diacritics",
        *at("Prodej ČR/Obrat 2024.csv", VALID),
        "synced",
        ("Prodej ČR/Obrat 2024.csv", f"is loaded as table {IN}Prodej_CR.Obrat_2024", "only letters, digits, - and _"),
        table=f"{IN}Prodej_CR.Obrat_2024",
        rows=VALID_ROWS,
    ),
    Entry(
        "dots_in_file_name",
        *at("names/my.data.v2.csv", VALID),
        "synced",
        ("names/my.data.v2.csv", f"is loaded as table {IN}names.my_data_v2"),
        table=f"{IN}names.my_data_v2",
        rows=VALID_ROWS,
    ),
    Entry(
        "emoji_in_file_name",
        *at("names/🚀 launch.csv", VALID),
        "synced",
        ("names/🚀 launch.csv", f"is loaded as table {IN}names.launch"),
        table=f"{IN}names.launch",
        rows=VALID_ROWS,
    ),
    Entry(
        "leading_underscore",
        *at("names/_private.csv", VALID),
        "synced",
        ("names/_private.csv", f"is loaded as table {IN}names.private"),
        table=f"{IN}names.private",
        rows=VALID_ROWS,
    ),
    Entry(
        "leading_dash",
        *at("names/-draft.csv", VALID),
        "synced",
        ("names/-draft.csv", f"is loaded as table {IN}names.draft"),
        table=f"{IN}names.draft",
        rows=VALID_ROWS,
    ),
    Entry(
        "uppercase_extension", *at("names/REPORT.CSV", VALID), "synced", (), table=f"{IN}names.REPORT", rows=VALID_ROWS
    ),
    Entry(
        "file_name_too_long",
        *at(f"names/{LONG_STEM}.csv", VALID),
        "skipped",
        (f"names/{LONG_STEM}.csv", "100 characters long", "at most 96", "Rename it"),
    ),
    Entry(
        "file_name_without_letters",
        *at("names/🎉.csv", VALID),
        "skipped",
        ("names/🎉.csv", "no letters or digits Keboola accepts", "Rename it"),
    ),
    Entry(
        "folder_name_without_letters",
        *at("📊/data.csv", VALID),
        "skipped",
        ("📊/data.csv", "the folder name '📊' has no letters or digits", "Rename it"),
        folder_ok=False,
    ),
    Entry(
        "folder_name_too_long",
        *at(("f" * 100) + "/data.csv", VALID),
        "skipped",
        (("f" * 100) + "/data.csv", "the folder name", "100 characters long", "at most 94", "Rename it"),
        folder_ok=False,
    ),
    Entry(
        "folder_with_leading_underscore",
        *at("_internal/data.csv", VALID),
        "synced",
        ("_internal/data.csv", f"is loaded as table {IN}internal.data"),
        table=f"{IN}internal.data",
        rows=VALID_ROWS,
    ),
    Entry(
        "two_names_one_table",
        *at("clash/a b.csv", VALID),
        "skipped",
        (f"maps to table {IN}clash.a_b", "already loads", "Rename one of the two files"),
        table=f"{IN}clash.a_b",
        extra={"partner": "clash/a_b.csv"},
    ),
    # --- names as macOS and everyone else make them (issue 12 items 13, 14) --------------------------
    Entry(
        "decomposed_file_name_from_a_mac",
        *at(nfd("names/Tržby.csv"), VALID),
        "synced",
        (nfd("names/Tržby.csv"), f"is loaded as table {IN}names.Trzby"),
        table=f"{IN}names.Trzby",
        rows=VALID_ROWS,
    ),
    Entry(
        "decomposed_folder_name_from_a_mac",
        *at(nfd("Obchod ČR/data.csv"), VALID),
        "synced",
        (nfd("Obchod ČR/data.csv"), f"is loaded as table {IN}Obchod_CR.data"),
        table=f"{IN}Obchod_CR.data",
        rows=VALID_ROWS,
    ),
    Entry(
        "decomposed_and_composed_spelling_are_one_table",
        *at(nfd("clash/Účet.csv"), VALID),
        "skipped",
        (f"maps to table {IN}clash.Ucet", "already loads", "Rename one of the two files"),
        table=f"{IN}clash.Ucet",
        extra={"partner": "clash/Účet.csv"},
    ),
    Entry(
        "newline_in_file_name",
        *at("names/two\nlines.csv", VALID),
        "synced",
        ("names/two\\nlines.csv", f"is loaded as table {IN}names.two_lines"),
        table=f"{IN}names.two_lines",
        rows=VALID_ROWS,
    ),
    Entry(
        "terminal_escape_in_file_name",
        *at("names/\x1b[31mred\x1b[0m.csv", VALID),
        "synced",
        ("names/\\x1b[31mred\\x1b[0m.csv", f"is loaded as table {IN}names.31mred_0m"),
        table=f"{IN}names.31mred_0m",
        rows=VALID_ROWS,
    ),
    Entry(
        "control_characters_only_in_a_file_name",
        *at("names/\r\x07.csv", VALID),
        "skipped",
        ("names/\\r\\x07.csv", "no letters or digits Keboola accepts", "Rename it"),
    ),
    Entry(
        "file_name_not_utf8",
        *at(f"names/{LATIN1_NAME}.csv", VALID),
        None,
        (f"ignoring names/{shown(LATIN1_NAME)}.csv", "not valid UTF-8", "rename it"),
        level="INFO",
    ),
    Entry(
        "folder_name_not_utf8",
        f"{LATIN1_NAME}/",
        nested_dir(LATIN1_NAME),
        None,
        (f"ignoring {shown(LATIN1_NAME)}/", "not valid UTF-8", "rename it"),
        level="INFO",
        folder_ok=False,
    ),
    Entry(
        "newline_in_folder_name",
        *at("two\nlines/data.csv", VALID),
        "synced",
        ("two\\nlines/data.csv", f"is loaded as table {IN}two_lines.data"),
        table=f"{IN}two_lines.data",
        rows=VALID_ROWS,
    ),
    Entry(
        "folder_named_x_csv",
        "names/x.csv/",
        nested_dir("names/x.csv"),
        None,
        ("ignoring names/x.csv/", "folders inside folders are not synced"),
        level="INFO",
    ),
    Entry(
        "csv_in_the_root_folder",
        *at("root.csv", VALID),
        None,
        ("ignoring root.csv", "CSV files directly in the watched folder are not synced", "put them in a folder"),
        level="INFO",
        folder_ok=False,
    ),
    Entry(
        "excel_workbook_is_ignored_with_a_hint",
        *at("names/report.xlsx", zip_bytes()),
        None,
        ("ignoring names/report.xlsx", "CSV"),
        level="INFO",
    ),
    Entry(
        "tsv_file_is_ignored_with_a_hint",
        *at("names/export.tsv", "id\tname\n1\ta\n"),
        None,
        ("ignoring names/export.tsv", "watch.csv_extensions"),
        level="INFO",
    ),
    Entry("office_lock_file_is_silent", *at("names/~$REPORT.csv", b"\x00\x01lock"), None, (), level="NONE"),
    # --- filesystem ------------------------------------------------------------------------------
    Entry(
        "symlink_inside_is_loaded",
        "fs/alias.csv",
        symlink("fs/alias.csv", "valid.csv"),
        "synced",
        (),
        table=f"{IN}fs.alias",
        rows=VALID_ROWS,
    ),
    Entry(
        "symlink_outside_is_not_followed",
        "fs/outside.csv",
        symlink("fs/outside.csv", outside_target),
        "skipped",
        ("fs/outside.csv", "points outside the watched folder", "not followed", "Copy the file into the folder"),
    ),
    Entry(
        "symlink_loop",
        "fs/loop.csv",
        symlink("fs/loop.csv", "loop.csv"),
        "skipped",
        ("fs/loop.csv", "symbolic link loop", "Replace the link with the file itself"),
    ),
    Entry(
        "dangling_symlink",
        "fs/dangling.csv",
        symlink("fs/dangling.csv", "does-not-exist.csv"),
        "skipped",
        ("fs/dangling.csv", "points nowhere", "target does not exist", "Replace the link with the file itself"),
    ),
    # --- not files at all (issue 12 item 15): judged by their stat, never opened -------------------------
    Entry(
        "fifo_named_csv",
        "fs/pipe.csv",
        fifo("fs/pipe.csv"),
        "skipped",
        ("fs/pipe.csv", "not a regular file but a named pipe (FIFO)", "Put a regular CSV file there instead"),
    ),
    Entry(
        "socket_named_csv",
        "fs/sock.csv",
        unix_socket("fs/sock.csv"),
        "skipped",
        ("fs/sock.csv", "not a regular file but a socket", "Put a regular CSV file there instead"),
    ),
    Entry(
        "symlink_to_a_first_level_folder",
        "linked/",
        linked_folder("linked"),
        None,
        ("ignoring linked/", "a symbolic link to a folder, which is not followed", "move or copy the folder itself"),
        level="INFO",
        folder_ok=False,
    ),
    Entry(
        "symlink_to_a_folder_inside_a_folder",
        "fs/archive/",
        linked_folder("fs/archive"),
        None,
        ("ignoring fs/archive/", "folders inside folders are not synced"),
        level="INFO",
    ),
]
if can_make_devices():
    ENTRIES.append(
        Entry(
            "device_named_csv",
            "fs/null.csv",
            device("fs/null.csv"),
            "skipped",
            ("fs/null.csv", "not a regular file but a character device", "Put a regular CSV file there instead"),
        )
    )

ENTRY_IDS = [e.id for e in ENTRIES]


def test_corpus_is_big_enough():
    """Issue 5 asks for at least 40 bad inputs (the separate tests below add more)."""
    assert len(ENTRIES) >= 40
    assert len(set(ENTRY_IDS)) == len(ENTRY_IDS)


# --------------------------------------------------------------------------------------------------
# One sync --once over the whole corpus.


@dataclass
class CorpusRun:
    daemon: Daemon
    emulator: Emulator
    returncode: int
    stdout: str
    stderr: str
    status: dict[str, dict[str, Any]]
    log_lines: list[str]
    seconds: float


LINE = re.compile(r"^\S+ \S+ (DEBUG|INFO|WARNING|ERROR|CRITICAL) ")


def level_of(line: str) -> str:
    match = LINE.match(line)
    return match.group(1) if match else ""


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory, file_storage: str):
    import time

    emulator = start_emulator(file_storage=file_storage)
    try:
        tmp = tmp_path_factory.mktemp("corpus")
        scratch = tmp / "scratch"
        scratch.mkdir()
        daemon = Daemon(tmp, emulator, {"logging": {"level": "INFO"}})
        folders: set[str] = set()
        for entry in ENTRIES:
            entry.make(daemon.watch, scratch)
            if "/" in entry.path.rstrip("/") and entry.folder_ok:
                folders.add(entry.path.split("/", 1)[0])
        for entry in ENTRIES:
            if "partner" in entry.extra:
                (daemon.watch / entry.extra["partner"]).write_text(VALID)
        folders.add("good")
        for folder in folders:
            (daemon.watch / folder).mkdir(exist_ok=True)
            (daemon.watch / folder / "valid.csv").write_text(VALID)
        started = time.monotonic()
        result = daemon.run("sync", "--once", timeout=300)
        seconds = time.monotonic() - started
        status = daemon.run("status", "--json")
        assert status.returncode == 0, status.stderr
        rows = {json.loads(line)["file"]: json.loads(line) for line in status.stdout.splitlines() if line.strip()}
        yield CorpusRun(
            daemon, emulator, result.returncode, result.stdout, result.stderr, rows, daemon.log().splitlines(), seconds
        )
    finally:
        emulator.close()


def test_sync_once_exits_1_and_the_daemon_survives_the_corpus(corpus: CorpusRun):
    assert corpus.returncode == 1, corpus.stderr[-3000:]
    log = "\n".join(corpus.log_lines)
    assert "Traceback" not in log and "Traceback" not in corpus.stderr
    assert "sync --once done:" in log
    assert "\x1b" not in log  # no name drives the terminal of whoever reads the log
    # Everything the corpus should load was loaded in one run of a few seconds' work per file.
    print(f"corpus sync --once: {corpus.seconds:.1f} s for {len(ENTRIES)} entries")


def lines_about(corpus: CorpusRun, needle: str, levels: tuple[str, ...]) -> list[str]:
    return [ln for ln in corpus.log_lines if needle in ln and level_of(ln) in levels]


BUCKETS = {
    "Prodej ČR": f"{IN}Prodej_CR",
    "_internal": f"{IN}internal",
    nfd("Obchod ČR"): f"{IN}Obchod_CR",
    "two\nlines": f"{IN}two_lines",
}


def bucket_for(folder: str) -> str:
    return BUCKETS.get(folder, f"{IN}{folder}")


@pytest.mark.parametrize("entry", ENTRIES, ids=ENTRY_IDS)
def test_corpus_entry(entry: Entry, corpus: CorpusRun):
    path = entry.path
    if "partner" in entry.extra:
        # Two files, one table: whichever is looked at second is skipped, naming the first.
        lines = lines_about(corpus, f"maps to table {entry.table},", ("WARNING", "ERROR"))
        assert len(lines) == 1, lines
        loser = path if f"skipped {path}:" in lines[0] else entry.extra["partner"]
        winner = entry.extra["partner"] if loser == path else path
        assert f"skipped {loser}:" in lines[0] and f"which {winner} already loads" in lines[0], lines[0]
        path = loser
        assert corpus.status[winner]["state"] == "synced"
        assert table_rows(corpus.emulator, entry.table) == VALID_ROWS
    row = corpus.status.get(path.rstrip("/"))
    # 1. the status row
    if entry.state is None:
        assert row is None, f"{path} is ignored, so status lists no row for it: {row}"
    else:
        assert row is not None, f"no status row for {path}: {sorted(corpus.status)}"
        assert row["state"] == entry.state, row
        if entry.state == "skipped":
            assert row["error"], row
    # 2. exactly one log line naming the file, the problem and the fix
    if entry.level == "NONE":
        assert not [ln for ln in corpus.log_lines if path in ln], "junk files are ignored silently"
    elif entry.line:
        levels = ("INFO",) if entry.level == "INFO" else ("WARNING", "ERROR")
        lines = lines_about(corpus, shown(path), levels)
        if entry.level == "INFO":
            lines = [ln for ln in lines if "ignoring" in ln]
        assert len(lines) == 1, f"expected one {entry.level} line about {shown(path)}, got {lines}"
        for part in entry.line:
            assert part in lines[0], f"{part!r} missing from: {lines[0]}"
        if entry.state == "skipped":
            assert row is not None and shown(row["error"]) in lines[0], (row, lines[0])
    else:
        problems = lines_about(corpus, shown(path), ("WARNING", "ERROR"))
        assert problems == [], problems
    # 3. the table: loaded as promised, or never created (a skipped file touches nothing in Keboola)
    if entry.state == "skipped" and row is not None and row["table_id"] and "partner" not in entry.extra:
        assert table_rows(corpus.emulator, row["table_id"]) is None
    if entry.table is not None:
        if entry.rows is not None:
            assert table_rows(corpus.emulator, entry.table) == entry.rows
        else:
            detail = corpus.emulator.client().tables.detail(entry.table)
            assert detail["rowsCount"] >= 1
    # 4. the valid file next to it was still loaded
    folder = path.split("/", 1)[0] if entry.folder_ok and "/" in path.rstrip("/") else "good"
    assert table_rows(corpus.emulator, f"{bucket_for(folder)}.valid") == VALID_ROWS
    assert corpus.status[f"{folder}/valid.csv"]["state"] == "synced"


def test_status_shows_every_name_on_one_line(corpus: CorpusRun):
    """`status` keeps one line per file whatever the names hold (issue 12 item 14): the table shows them
    escaped, `status --json` stays valid JSON lines whose `file` is the real name."""
    table = corpus.daemon.run("status")
    assert table.returncode == 0, table.stderr
    # Above the table: the daemon's lines; in it, one row per file, its error wrapped on indented lines.
    lines = table.stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.startswith("FILE "))
    assert all(line.startswith(("daemon: ", "paused: ", "now: ")) for line in lines[:header]), lines[:header]
    rows = [line for line in lines[header + 1 :] if not line.startswith(" ")]
    assert len(rows) == len(corpus.status), rows
    assert "\x1b" not in table.stdout
    for name in ("names/two\nlines.csv", "names/\x1b[31mred\x1b[0m.csv", "names/\r\x07.csv"):
        assert name in corpus.status  # the JSON row carries the real name
        assert sum(line.startswith(shown(name) + " ") for line in rows) == 1, (shown(name), rows)
    json_lines = corpus.daemon.run("status", "--json").stdout.splitlines()
    assert len(json_lines) == len(corpus.status)


def test_fixed_files_are_loaded_by_the_next_run(corpus: CorpusRun):
    """Runs after the per-entry tests (same module fixture): fixing a skipped file is all it takes."""
    daemon, emulator = corpus.daemon, corpus.emulator
    fixed = {
        "enc/latin1.csv": "id,city\n1,Zürich\n",
        "st/empty.csv": "id,name\n1,a\n",
        "st/ragged_more.csv": "id,name\n1,a\n2,b\n",
        "st/dup_case.csv": "id,Name,name2\n1,x,y\n",
    }
    for rel, text in fixed.items():
        daemon.write(rel, text)
    result = daemon.run("sync", "--once", timeout=300)
    assert result.returncode == 1  # the rest of the corpus is still bad
    rows = status_rows(daemon)
    for rel, text in fixed.items():
        assert rows[rel]["state"] == "synced", rows[rel]
        table = f"{IN}{rel.split('/')[0]}.{rel.split('/')[1].removesuffix('.csv')}"
        expected = [list(r.split(",")) for r in text.strip().split("\n")]
        assert table_rows(emulator, table) == [expected[0], *sorted(expected[1:])]
    # Nothing that was already judged is looked at again, let alone logged again.
    assert daemon.log().count("skipped enc/cp1250.csv") == 1


def test_the_daemon_keeps_running_over_the_corpus(corpus: CorpusRun):
    """`run` over the judged corpus: stays up and healthy, says nothing new about judged files, loads new ones."""
    daemon, emulator = corpus.daemon, corpus.emulator
    skipped_lines = daemon.log().count("skipped ")
    daemon.start()
    try:
        daemon.wait_log("watching with")
        daemon.write("good/after.csv", VALID)
        wait_table(emulator, f"{IN}good.after", VALID_ROWS)
        wait_for(lambda: daemon.run("health").returncode == 0, timeout=20, message="a healthy daemon")
        assert daemon.alive
        assert daemon.log().count("skipped ") == skipped_lines
        assert daemon.stop() == 0
    finally:
        daemon.kill()


# --------------------------------------------------------------------------------------------------
# Entries that need their own process: timing, the filesystem changing under a load, Keboola state.


def status_rows(daemon: Daemon) -> dict[str, dict[str, Any]]:
    result = daemon.run("status", "--json")
    assert result.returncode == 0, result.stderr
    return {json.loads(ln)["file"]: json.loads(ln) for ln in result.stdout.splitlines() if ln.strip()}


def problem_lines(daemon: Daemon, needle: str) -> list[str]:
    return [ln for ln in daemon.log().splitlines() if needle in ln and level_of(ln) in ("WARNING", "ERROR")]


def test_file_empty_at_first_and_filled_a_second_later_is_loaded_once(daemon_factory, emulator):
    """A writer that creates the file and fills it a second later: never judged while empty, loaded once.
    stable_seconds 3 leaves two seconds of margin for a loaded CI machine."""
    folder = f"late{uid()}"
    daemon = daemon_factory({"watch": {"stable_seconds": 3}})
    (daemon.watch / folder).mkdir()
    daemon.start()
    daemon.wait_log("watching with")
    path = daemon.watch / folder / "late.csv"
    path.write_bytes(b"")
    # The input itself: the writer pauses one second before writing the content (not a wait for a condition).
    threading.Event().wait(1.0)
    with path.open("ab") as handle:
        handle.write(VALID.encode())
    wait_table(emulator, f"{IN}{folder}.late", VALID_ROWS)
    log = daemon.wait_log(f"created {folder}/late.csv")
    assert problem_lines(daemon, f"{folder}/late.csv") == []
    assert log.count(f"{folder}/late.csv ->") == 1  # one load, no second one of the same content
    assert daemon.stop() == 0


def test_empty_file_is_skipped_then_picked_up_as_soon_as_it_is_filled(daemon_factory, emulator):
    folder = f"fill{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/orders.csv", b"")
    daemon.start()
    line = daemon.wait_log(f"skipped {folder}/orders.csv")
    assert "empty (0 bytes)" in line
    wait_for(lambda: status_rows(daemon)[f"{folder}/orders.csv"]["state"] == "skipped", timeout=10)
    daemon.write(f"{folder}/orders.csv", VALID)
    wait_table(emulator, f"{IN}{folder}.orders", VALID_ROWS)
    wait_for(lambda: status_rows(daemon)[f"{folder}/orders.csv"]["state"] == "synced", timeout=10)
    assert len(problem_lines(daemon, f"{folder}/orders.csv")) == 1  # the one skip line, said once
    assert daemon.stop() == 0


def test_file_deleted_between_the_event_and_the_load_is_forgotten_quietly(daemon_factory, emulator):
    folder = f"gone{uid()}"
    daemon = daemon_factory({"watch": {"stable_seconds": 1}})
    (daemon.watch / folder).mkdir()
    daemon.start()
    daemon.wait_log("watching with")
    daemon.write(f"{folder}/brief.csv", VALID)
    (daemon.watch / folder / "brief.csv").unlink()
    daemon.write(f"{folder}/marker.csv", VALID)
    wait_table(emulator, f"{IN}{folder}.marker", VALID_ROWS)
    assert table_rows(emulator, f"{IN}{folder}.brief") is None
    assert problem_lines(daemon, "brief.csv") == []
    assert f"{folder}/brief.csv" not in status_rows(daemon)
    assert daemon.alive
    assert daemon.stop() == 0


def test_big_files_uploaded_during_the_pass_still_refuse_a_bad_tail(daemon_factory, emulator):
    """Above upload.gzip_threshold_mb the upload overlaps the pass; an invalid byte in the last megabyte is
    found only at the end, so what was uploaded must never be imported (the file is skipped, no table)."""
    folder = f"bigbad{uid()}"
    daemon = daemon_factory({"upload": {"gzip_threshold_mb": 1}})
    daemon.write(f"{folder}/bad_tail.csv", big_with_bad_byte_at_end(6 << 20))
    good = b"id,text\n" + b"".join(b"%d,some plain ascii text for padding\n" % i for i in range(160_000))
    daemon.write(f"{folder}/good_big.csv", good)
    assert daemon.run("sync", "--once", timeout=180).returncode == 1
    lines = problem_lines(daemon, f"{folder}/bad_tail.csv")
    assert len(lines) == 1 and "not valid UTF-8" in lines[0] and SAVE_AS_UTF8 in lines[0], lines
    assert table_rows(emulator, f"{IN}{folder}.bad_tail") is None
    assert not [ln for ln in daemon.log().splitlines() if "bad_tail.csv" in ln and "INFO" in ln]
    jobs = [j for j in emulator.client().jobs.list() if "bad_tail" in json.dumps(j)]
    assert jobs == [], jobs  # uploaded perhaps, but never imported
    assert emulator.client().tables.detail(f"{IN}{folder}.good_big")["rowsCount"] == 160_000
    assert status_rows(daemon)[f"{folder}/bad_tail.csv"]["state"] == "skipped"


def test_folders_renamed_or_deleted_while_their_files_load(daemon_factory, emulator):
    """Loads in flight finish (nothing in Keboola is ever deleted); a renamed folder becomes a new bucket,
    a deleted one is forgotten; the daemon keeps running without a traceback."""
    u = uid()
    old, new, gone = f"ren{u}", f"renamed{u}", f"del{u}"
    daemon = daemon_factory()
    emulator.set_faults(job_seconds=1.5)
    daemon.write(f"{old}/data.csv", VALID)
    daemon.write(f"{gone}/data.csv", VALID)
    client = emulator.client()
    daemon.start()
    wait_for(
        lambda: sum(f"{IN}{old}." in json.dumps(j) or f"{IN}{gone}." in json.dumps(j) for j in client.jobs.list()) >= 2,
        timeout=20,
        message="the create jobs of both folders",
    )
    os.rename(daemon.watch / old, daemon.watch / new)
    shutil.rmtree(daemon.watch / gone)
    emulator.reset_faults()
    wait_table(emulator, f"{IN}{new}.data", VALID_ROWS)
    wait_table(emulator, f"{IN}{old}.data", VALID_ROWS)  # the finished load stays
    wait_for(
        lambda: daemon.log().count(f"{gone}/data.csv ->") == 1, timeout=20, message="the load of the deleted folder"
    )
    wait_for(lambda: set(status_rows(daemon)) >= {f"{new}/data.csv"}, timeout=10)
    rows = status_rows(daemon)
    assert f"{old}/data.csv" not in rows and f"{gone}/data.csv" not in rows
    assert daemon.alive
    assert "Traceback" not in daemon.log() + daemon.output()
    assert problem_lines(daemon, gone) == []
    assert daemon.stop() == 0


def test_table_deleted_in_keboola_is_created_again(daemon_factory, emulator):
    folder = f"tdel{uid()}"
    table = f"{IN}{folder}.orders"
    daemon = daemon_factory()
    daemon.write(f"{folder}/orders.csv", VALID)
    assert daemon.run("sync", "--once").returncode == 0
    emulator.client().tables.delete(table)
    assert table_rows(emulator, table) is None
    daemon.write(f"{folder}/orders.csv", "id,name\n3,Carol\n")
    result = daemon.run("sync", "--once")
    assert result.returncode == 0, daemon.log()[-3000:]
    assert table_rows(emulator, table) == [["id", "name"], ["3", "Carol"]]
    lines = problem_lines(daemon, table)
    assert len(lines) == 1 and "no longer exists in Keboola; creating it again" in lines[0], lines


def test_table_deleted_in_keboola_while_its_file_is_unchanged_comes_back(daemon_factory, emulator):
    folder = f"tgone{uid()}"
    table = f"{IN}{folder}.orders"
    daemon = daemon_factory()
    daemon.write(f"{folder}/orders.csv", VALID)
    assert daemon.run("sync", "--once").returncode == 0
    emulator.client().tables.delete(table)
    result = daemon.run("sync", "--once")
    assert result.returncode == 0, daemon.log()[-3000:]
    assert table_rows(emulator, table) == VALID_ROWS
    lines = problem_lines(daemon, table)
    assert len(lines) == 1, lines
    assert "deleted in Keboola" in lines[0] or "no longer exists in Keboola" in lines[0], lines


def test_bucket_deleted_in_keboola_is_created_again(daemon_factory, emulator):
    folder = f"bdel{uid()}"
    table = f"{IN}{folder}.orders"
    daemon = daemon_factory()
    daemon.write(f"{folder}/orders.csv", VALID)
    assert daemon.run("sync", "--once").returncode == 0
    emulator.client().buckets.delete(f"{IN}{folder}", force=True)
    daemon.write(f"{folder}/orders.csv", "id,name\n3,Carol\n")
    result = daemon.run("sync", "--once")
    assert result.returncode == 0, daemon.log()[-3000:]
    assert table_rows(emulator, table) == [["id", "name"], ["3", "Carol"]]
    assert any(b["id"] == f"{IN}{folder}" for b in emulator.client().buckets.list())
    assert "Traceback" not in daemon.log()


# --------------------------------------------------------------------------------------------------
# Keboola: tokens and stack URLs. Start-up problems exit 2 with a message that names what to fix.


def assert_startup_error(result, *parts: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stdout, result.stderr)
    text = result.stdout + result.stderr
    for part in parts:
        assert part in text, f"{part!r} missing from:\n{text}"
    assert "Traceback" not in text


@pytest.mark.parametrize("token", ["not-the-token", "x" * 200], ids=["wrong", "long"])
def test_invalid_or_expired_token_stops_start_up(daemon_factory, token):
    daemon = daemon_factory(env={"KBC_STORAGE_API_TOKEN": token})
    daemon.write(f"tok{uid()}/a.csv", VALID)
    for command in (("sync", "--once"), ("check",)):
        result = daemon.run(*command)
        assert_startup_error(result, "KBC_STORAGE_API_TOKEN", "refused the token", "storage.tokenInvalid")
        assert token not in result.stdout + result.stderr


def test_missing_token_stops_start_up(daemon_factory):
    daemon = daemon_factory(env={"KBC_STORAGE_API_TOKEN": ""})
    result = daemon.run("sync", "--once")
    assert_startup_error(result, "KBC_STORAGE_API_TOKEN is not set", ".env")


def test_token_without_write_permission_stops_start_up(daemon_factory, make_emulator):
    emulator = make_emulator(extra_args=["--readonly-token", "read-only-token-1234"])
    daemon = daemon_factory(emulator_=emulator, env={"KBC_STORAGE_API_TOKEN": "read-only-token-1234"})
    daemon.write(f"ro{uid()}/a.csv", VALID)
    assert_startup_error(
        daemon.run("sync", "--once"),
        "KBC_STORAGE_API_TOKEN",
        "can neither create buckets",
        "Full access to all buckets",
    )
    check = daemon.run("check")
    assert_startup_error(check, "can neither create buckets")
    assert emulator.client().buckets.list() == []


def test_stack_url_that_is_not_keboola_stops_start_up(daemon_factory, emulator):
    # The emulator's S3 port: a live HTTP server that is not a Keboola Storage API.
    daemon = daemon_factory({"keboola": {"url": emulator.s3_url}})
    for command in (("sync", "--once"), ("check",)):
        assert_startup_error(daemon.run(*command), "keboola.url", emulator.s3_url)


def test_stack_url_that_is_not_reachable_stops_start_up(daemon_factory):
    from support.emulator import free_port

    url = f"http://127.0.0.1:{free_port()}"
    daemon = daemon_factory({"keboola": {"url": url}})
    for command in (("sync", "--once"), ("check",)):
        assert_startup_error(
            daemon.run(*command, timeout=60), "keboola.url", f"cannot reach Keboola at {url}", "KBC_STORAGE_API_HOST"
        )


def test_names_are_refused_instead_of_renamed_when_configured(daemon_factory, emulator):
    u = uid()
    daemon = daemon_factory({"mapping": {"on_invalid_name": "reject"}})
    daemon.write(f"ok{u}/my report.csv", VALID)
    daemon.write(f"ok{u}/fine.csv", VALID)
    daemon.write(f"bad folder{u}/data.csv", VALID)
    assert daemon.run("sync", "--once").returncode == 1
    assert table_rows(emulator, f"{IN}ok{u}.fine") == VALID_ROWS
    assert table_rows(emulator, f"{IN}ok{u}.my_report") is None
    assert not any(b["id"] == f"{IN}bad_folder{u}" for b in emulator.client().buckets.list())
    file_line = problem_lines(daemon, f"ok{u}/my report.csv")
    assert len(file_line) == 1, file_line
    assert "not a valid Keboola table name" in file_line[0] and "Rename the file to 'my_report.csv'" in file_line[0]
    assert "mapping.on_invalid_name: sanitize" in file_line[0]
    folder_line = problem_lines(daemon, f"bad folder{u}/data.csv")
    assert len(folder_line) == 1 and f"Rename the folder to 'bad_folder{u}'" in folder_line[0], folder_line
    rows = status_rows(daemon)
    assert rows[f"ok{u}/my report.csv"]["state"] == "skipped" and rows[f"bad folder{u}/data.csv"]["state"] == "skipped"


# --------------------------------------------------------------------------------------------------
# Permissions. The tests may run as root, which reads everything; `setpriv` drops the two capabilities
# that let root ignore file modes, so the daemon meets the permission bits like any user would.


def unprivileged(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]


def run_unprivileged(daemon: Daemon, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        unprivileged(daemon.command(*args)), env=daemon.env(), capture_output=True, text=True, timeout=120, check=False
    )


def test_file_and_folder_without_read_permission(daemon_factory, emulator):
    folder = f"perm{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/good.csv", VALID)
    locked = daemon.write(f"{folder}/locked.csv", VALID)
    locked.chmod(0)
    closed = daemon.watch / f"{folder}closed"
    closed.mkdir()
    (closed / "inside.csv").write_text(VALID)
    closed.chmod(0)
    try:
        result = run_unprivileged(daemon, "sync", "--once")
        assert result.returncode == 1, result.stderr
        assert table_rows(emulator, f"{IN}{folder}.good") == VALID_ROWS
        assert table_rows(emulator, f"{IN}{folder}.locked") is None
        lines = problem_lines(daemon, f"{folder}/locked.csv")
        assert len(lines) == 1, lines
        assert "cannot be read (permission denied)" in lines[0] and f"chmod a+r '{folder}/locked.csv'" in lines[0]
        folder_lines = problem_lines(daemon, f"{folder}closed")
        assert len(folder_lines) == 1 and "ermission denied" in folder_lines[0], folder_lines
        assert status_rows(daemon)[f"{folder}/locked.csv"]["state"] == "skipped"

        # Doing what the message says is enough: the file is loaded on the next run.
        locked.chmod(0o644)
        result = run_unprivileged(daemon, "sync", "--once")
        assert table_rows(emulator, f"{IN}{folder}.locked") == VALID_ROWS, daemon.log()[-2000:]
    finally:
        closed.chmod(0o755)
        locked.chmod(0o644)


def test_corrupt_ledger_is_a_clear_start_up_error(daemon_factory):
    folder = f"ledger{uid()}"
    daemon = daemon_factory()
    daemon.write(f"{folder}/a.csv", VALID)
    assert daemon.run("sync", "--once").returncode == 0
    for suffix in ("-wal", "-shm", "-journal"):
        Path(str(daemon.state) + suffix).unlink(missing_ok=True)
    daemon.state.write_bytes(b"not an SQLite database at all " * 64)
    for command in (("status",), ("status", "--json"), ("sync", "--once")):
        result = daemon.run(*command)
        text = result.stdout + result.stderr
        assert result.returncode == 2, (command, text)
        assert "Traceback" not in text
        assert "state.path" in text and str(daemon.state) in text and "Move it aside" in text, text


def test_token_revoked_while_running(tmp_path, daemon_factory):
    """The token stops working under a running daemon: each load fails with a line that says what to do,
    the daemon keeps running, and health turns unhealthy only through its own checks."""
    from support.emulator import Emulator, free_port

    port, s3_port, data = free_port(), free_port(), tmp_path / "emu-data"
    first = Emulator(token="tok-before-1234", data_dir=data, extra_args=(), port=port, s3_port=s3_port)
    second = None
    try:
        folder = f"revoke{uid()}"
        daemon = daemon_factory(emulator_=first)
        daemon.write(f"{folder}/a.csv", VALID)
        daemon.start()
        wait_table(first, f"{IN}{folder}.a", VALID_ROWS)
        daemon.wait_log(f"created {folder}/a.csv")
        first.stop()
        second = Emulator(token="tok-after-5678", data_dir=data, extra_args=(), port=port, s3_port=s3_port)
        daemon.write(f"{folder}/a.csv", "id,name\n3,Carol\n")
        line = daemon.wait_log(f"failed {folder}/a.csv")
        failed = next(ln for ln in line.splitlines() if f"failed {folder}/a.csv" in ln)
        assert "401" in failed or "refused the token" in failed, failed
        assert "KBC_STORAGE_API_TOKEN" in failed, failed
        assert "tok-before-1234" not in daemon.log()
        assert daemon.alive
        assert daemon.stop() == 0
    finally:
        first.close()
        if second is not None:
            second.close()


def test_spool_directory_lost_while_running_fails_the_load_not_the_file(daemon_factory, emulator):
    """An environment problem (the spool directory gone or unwritable, a full disk) is not the CSV's fault:
    the file is `failed` (tried again later) with a line naming upload.spool_dir, never `skipped`."""
    folder = f"spool{uid()}"
    daemon = daemon_factory()
    (daemon.watch / folder).mkdir()
    daemon.start()
    daemon.wait_log("watching with")
    spool = daemon.tmp / "spool"
    shutil.rmtree(spool)
    spool.write_text("a file where the spool directory was\n")
    daemon.write(f"{folder}/a.csv", VALID)
    line = wait_for(lambda: problem_lines(daemon, f"{folder}/a.csv"), timeout=30, message="a line about a.csv")[0]
    assert f"failed {folder}/a.csv" in line and "upload.spool_dir" in line, line
    assert status_rows(daemon)[f"{folder}/a.csv"]["state"] == "failed"
    spool.unlink()
    wait_table(emulator, f"{IN}{folder}.a", VALID_ROWS, timeout=30)
    assert daemon.stop() == 0


def test_a_load_that_keeps_failing_logs_one_error_line(daemon_factory, emulator):
    """A failure is logged at ERROR when a version of the file starts failing, not again on every retry
    (those show at DEBUG only, whatever status code each got); the file loads once Keboola recovers."""
    folder = f"fail{uid()}"
    daemon = daemon_factory(
        {
            "logging": {"level": "DEBUG"},
            "retry": {"max_attempts": 1, "failed_retry_seconds": 0.5},
            "watch": {"rescan_seconds": 0.5},
        }
    )
    (daemon.watch / folder).mkdir()
    daemon.start()
    daemon.wait_log("watching with")
    emulator.set_faults(fail_rate=1.0, paths=["files/prepare"])  # every upload gets a 5xx
    daemon.write(f"{folder}/a.csv", VALID)
    needle = f"failed {folder}/a.csv: "
    daemon.wait_log(needle, count=3, timeout=60)  # three loads failed: the first at ERROR, the others at DEBUG
    lines = [ln for ln in daemon.log().splitlines() if needle in ln]
    assert [level_of(ln) for ln in lines[:3]] == ["ERROR", "DEBUG", "DEBUG"], lines
    assert status_rows(daemon)[f"{folder}/a.csv"]["state"] == "failed"
    emulator.reset_faults()
    wait_table(emulator, f"{IN}{folder}.a", VALID_ROWS, timeout=30)
    assert len(problem_lines(daemon, needle)) == 1
    assert daemon.stop() == 0
