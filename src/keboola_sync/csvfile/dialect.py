"""How the file is written: the delimiter and quoting (sniffed), the header, and Keboola's column names.

Why before the load: a wrong delimiter loads as one wide column, and a header Keboola refuses (empty,
duplicate, too long a name) fails the job minutes later. Both are known from the first bytes, so the pass
checks them as soon as it has read the first record, before a 5 GB file is read to the end.
"""

from __future__ import annotations

import codecs
import csv
import io
import re
from dataclasses import dataclass
from typing import Literal, NoReturn, TypedDict

from keboola_sync.errors import InvalidFile
from keboola_sync.layout import MAX_COLUMN_NAME, sanitize_column_name

# Excel writes (and reads) a first line `sep=;` naming the delimiter; Keboola would take it as the header.
EXCEL_SEP_LINE = re.compile(rb"^sep=.?\r?\n", re.IGNORECASE)
MAX_HEADER_BYTES = 8 << 20  # a first record longer than this is not a header (unclosed quote?)
UTF8_BOM = codecs.BOM_UTF8


@dataclass(frozen=True)
class Dialect:
    """As Keboola's tables-async / import-async want it (§4.2): "" means none."""

    delimiter: str
    enclosure: str
    escaped_by: str


@dataclass(frozen=True)
class Header:
    """What the first bytes of the file say: enough to create the table before the rest is read."""

    dialect: Dialect
    cells: tuple[str, ...]  # raw header cells (BOM removed)
    columns: tuple[str, ...]  # cells after sanitize_column_name (what Keboola will store)
    has_bom: bool
    warnings: tuple[str, ...]  # things Keboola would accept but the user probably did not mean


def parse_header(head: bytes, eof: bool, sniff_bytes: int, delimiters: str, display_path: str) -> Header | None:
    """Sniff and parse the header from the first bytes; None when more bytes are needed.

    `head` is the start of the file (`eof`: all of it). The pass calls this again with a longer head until
    the first record is complete, so a header is never parsed from a truncated line.
    """
    has_bom = head.startswith(UTF8_BOM)
    body = head[len(UTF8_BOM) :] if has_bom else head
    _check_first_line(body, has_bom, eof, display_path)
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
            _raise_header_too_long(body, dialect, display_path)
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
    columns = check_columns(header, display_path)
    return Header(dialect, header, columns, has_bom, tuple(warnings))


def _check_first_line(body: bytes, has_bom: bool, eof: bool, display_path: str) -> None:
    """Refuse what cannot be a header at all: nothing after the BOM, only blank lines, Excel's sep= line."""
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


def _raise_header_too_long(body: bytes, dialect: Dialect, display_path: str) -> NoReturn:
    """The first record is past MAX_HEADER_BYTES: say whether it is one endless line or an open quote."""
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


def _parse_first_record(text: str, dialect: Dialect, eof: bool, display_path: str) -> tuple[str, ...] | None:
    """The header, or None when `text` ends before the first record does (read more and try again)."""
    if not eof and "\n" not in text and "\r" not in text:
        return None  # not even one line yet: a prefix of it would be a truncated header
    stream = io.StringIO(text, newline="")
    reader = csv.reader(stream, **csv_params(dialect), strict=True)
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


class CsvParams(TypedDict, total=False):
    """The keyword arguments of csv.reader that a Dialect sets (typed, so mypy checks the call)."""

    delimiter: str
    doublequote: bool
    quotechar: str
    quoting: Literal[3]  # csv.QUOTE_NONE
    escapechar: str


def csv_params(dialect: Dialect) -> CsvParams:
    """Python's csv module spelling of a Keboola dialect: no enclosure means QUOTE_NONE (§4.2)."""
    params: CsvParams = {"delimiter": dialect.delimiter, "doublequote": True}
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
    params = csv_params(Dialect(delim, enclosure, ""))
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


def check_columns(header: tuple[str, ...], display_path: str) -> tuple[str, ...]:
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
