"""The corpus of CSV files people drop into the folder, with the outcome csvfile promises for each.

Shared data, not a test: tests/unit/test_csvfile.py checks every entry against csvfile.inspect, and
end-to-end tests can write the same files into a watched folder and expect the same problem text in
the log and `status`. Load it with `load_corpus()` from tests/unit/test_csvfile.py or importlib.

Each entry builds its bytes on demand (some are several MiB, so nothing big is kept in the repo).
`problem` is a substring of InvalidFile.problem, or None for a valid file; `expect` holds the
details a valid file must produce (dialect, header, columns, a warning substring).
"""

from __future__ import annotations

import codecs
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

MiB = 1 << 20


@dataclass(frozen=True)
class Case:
    id: str
    build: Callable[[], bytes]
    problem: str | None = None  # substring of InvalidFile.problem; None = valid
    expect: dict[str, Any] = field(default_factory=dict)
    why: str = ""  # what the case stands for, when the id does not say it


def _rows(n: int, delim: str = ",") -> str:
    return "".join(f"{i}{delim}name {i}{delim}{i * 1.5}\n" for i in range(n))


def _big_with_bad_byte_near_end() -> bytes:
    body = ("id,name\n" + "".join(f"{i},row number {i}\n" for i in range(200_000))).encode()
    return body + b"200001,caf\xe9\n" + b"200002,ok\n" * 20


def _char_across_chunk_boundary() -> bytes:
    head = b"id,text\n"
    filler = b"1," + b"a" * (MiB - len(head) - 2 - 1) + "ž\n".encode()  # ž's 2 bytes straddle 1 MiB
    return head + filler + "2,ščř\n".encode()


def _long_line() -> bytes:
    return b"id,blob\n1," + b"x" * (3 * MiB) + b"\n2,short\n"


def _many_columns(n: int) -> bytes:
    header = ",".join(f"column_{i}" for i in range(n))
    row = ",".join(str(i) for i in range(n))
    return f"{header}\n{row}\n{row}\n".encode()


CASES: tuple[Case, ...] = (
    # --- valid files: the dialect is sniffed and passed to Keboola -------------------------------------
    Case("comma", lambda: b"id,name,price\n1,Alice,10.5\n2,Bob,3\n",
         expect={"delimiter": ",", "enclosure": '"', "escaped_by": "", "header": ("id", "name", "price")}),
    Case("semicolon-decimal-comma", lambda: b"id;name;price\n1;Alice;10,5\n2;Bob;3,25\n",
         expect={"delimiter": ";", "header": ("id", "name", "price")}),
    Case("tab", lambda: b"id\tname\tnote\n1\tAlice\ta, b; c\n2\tBob\tx\n",
         expect={"delimiter": "\t", "header": ("id", "name", "note")}),
    Case("pipe", lambda: b"id|name\n1|Alice\n2|Bob, Jr.\n",
         expect={"delimiter": "|", "header": ("id", "name")}),
    Case("quoted-newlines-in-data", lambda: b'id,comment\n1,"line one\nline two"\n2,"a ""quoted"" word"\n',
         expect={"delimiter": ",", "header": ("id", "comment")}),
    Case("quoted-newline-in-header", lambda: b'id,"first\nsecond",x\n1,2,3\n',
         expect={"header": ("id", "first\nsecond", "x"), "columns": ("id", "first_second", "x")}),
    Case("quoted-delimiter-in-header", lambda: b'"id","name, full"\n1,"A, B"\n',
         expect={"delimiter": ",", "header": ("id", "name, full"), "columns": ("id", "name_full")}),
    Case("utf8-bom", lambda: codecs.BOM_UTF8 + b"id,name\n1,a\n",
         expect={"header": ("id", "name"), "has_bom": True}),
    Case("utf8-bom-semicolon-excel", lambda: codecs.BOM_UTF8 + "Jméno;Příjmení\r\nJan;Novák\r\n".encode(),
         expect={"delimiter": ";", "header": ("Jméno", "Příjmení"), "columns": ("Jmeno", "Prijmeni")}),
    Case("crlf", lambda: b"id,name\r\n1,a\r\n2,b\r\n", expect={"header": ("id", "name")}),
    Case("mixed-lf-crlf", lambda: b"id,name\r\n1,a\n2,b\r\n", expect={"header": ("id", "name")}),
    Case("header-only", lambda: b"id,name,price\n", expect={"header": ("id", "name", "price")},
         why="valid: creates an empty table"),
    Case("header-only-no-newline", lambda: b"id,name", expect={"header": ("id", "name")}),
    Case("one-column", lambda: b"email\na@example.com\nb@example.com\n",
         expect={"header": ("email",)}),  # a one-column table is fine: no warning
    Case("one-column-wrong-delimiter", lambda: b"id:name:price\n1:a:2\n",
         expect={"header": ("id:name:price",), "columns": ("id_name_price",), "warning": "one column only"},
         why="Keboola would load one wide column: warn"),
    Case("thousands-of-columns", lambda: _many_columns(3000),
         expect={"delimiter": ",", "n_columns": 3000}),
    Case("columns-renamed-by-keboola", lambda: "Order ID,ščř,_x,oid,language-id\n1,2,3,4,5\n".encode(),
         expect={"columns": ("Order_ID", "scr", "x", "oid_", "language_id")}),
    Case("single-quote-enclosure", lambda: b"'id','name'\n'1','a, b'\n'2','c'\n",
         expect={"delimiter": ",", "enclosure": "'", "header": ("id", "name")}),
    Case("backslash-escaped", lambda: b"id,text\n1,a\\,b\n2,c\n",
         expect={"delimiter": ",", "enclosure": "", "escaped_by": "\\"}),
    Case("ragged-rows", lambda: b"a,b,c\n1,2\n1,2,3,4\n1,2,3\n",
         expect={"delimiter": ",", "header": ("a", "b", "c")},
         why="not checked here: Keboola reports ragged rows as a job error"),
    Case("utf8-multibyte-across-chunks", _char_across_chunk_boundary, expect={"header": ("id", "text")}),
    Case("long-line-3mib", _long_line, expect={"header": ("id", "blob")}),
    Case("emoji-in-data", lambda: "id,mood\n1,🎉\n2,😀\n".encode(), expect={"header": ("id", "mood")}),
    # --- encodings ---------------------------------------------------------------------------------------
    Case("empty", lambda: b"", problem="empty (0 bytes)"),
    Case("bom-only", lambda: codecs.BOM_UTF8, problem="no content after its UTF-8 byte order mark"),
    Case("blank-lines-only", lambda: b"\n\n\r\n", problem="only blank lines"),
    Case("blank-first-line", lambda: b"\nid,name\n1,a\n", problem="first line is empty"),
    Case("utf16-le-bom", lambda: codecs.BOM_UTF16_LE + "id,name\n1,a\n".encode("utf-16-le"), problem="UTF-16"),
    Case("utf16-be-bom", lambda: codecs.BOM_UTF16_BE + "id,name\n1,a\n".encode("utf-16-be"), problem="UTF-16"),
    Case("utf16-le-no-bom", lambda: "id,name\n1,a\n2,b\n".encode("utf-16-le"), problem="UTF-16"),
    Case("utf16-be-no-bom", lambda: "id,name\n1,a\n2,b\n".encode("utf-16-be"), problem="UTF-16"),
    Case("utf32", lambda: "id,name\n".encode("utf-32"), problem="UTF-32"),
    Case("latin1", lambda: "id,name\n1,café\n".encode("latin-1"),
         problem="not valid UTF-8: byte 0xE9 at byte 13, line 2"),
    Case("windows-1250", lambda: "id,město\n1,Plzeň\n".encode("cp1250"),
         problem="not valid UTF-8: byte 0xEC at byte 4, line 1"),
    Case("windows-1250-hint", lambda: "id,name\n1,Čeněk Šťastný\n".encode("cp1250"),
         problem="it looks like Windows-1250 (Central European)"),
    Case("windows-1252-hint", lambda: "id,name,city\n1,Jürgen Müller,Köln\n2,Anna Weiß,Düsseldorf\n".encode("cp1252"),
         problem="it looks like Windows-1252 / Latin-1"),
    Case("mac-roman-hint", lambda: "id,name,city\n1,Jürgen Müller,Köln\n2,Anna Weiß,Düsseldorf\n".encode("mac_roman"),
         problem="it looks like Mac Roman"),
    Case("ambiguous-hint-names-both", lambda: "id,mesto\n1,Plzeň\n".encode("cp1250"),
         problem="it looks like Windows-1252 / Latin-1 or Windows-1250 (Central European)",
         why="'Plzeò' reads as well as 'Plzeň' in two lines: both encodings are named"),
    Case("invalid-byte-in-last-mib", _big_with_bad_byte_near_end, problem="line 200002"),
    Case("truncated-utf8-at-eof", lambda: b"id,name\n1,caf\xc3", problem="not valid UTF-8"),
    Case("nul-bytes", lambda: b"id,name\n1,a\x00b\n", problem="NUL byte (at byte 11, line 2)"),
    # --- not a CSV at all --------------------------------------------------------------------------------
    Case("zip-renamed", lambda: b"PK\x03\x04\x14\x00\x00\x00" + b"\x00" * 40, problem="ZIP archive"),
    Case("gzip-renamed", lambda: b"\x1f\x8b\x08\x00" + b"\x00" * 20, problem="gzip-compressed"),
    Case("xls-renamed", lambda: b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 40, problem=".xls"),
    Case("pdf-renamed", lambda: b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", problem="PDF"),
    Case("png-renamed", lambda: b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, problem="PNG"),
    # --- header problems ---------------------------------------------------------------------------------
    Case("blank-header-cell", lambda: b"id,,name\n1,2,3\n", problem="column 2 of the header has no name"),
    Case("whitespace-header-cell", lambda: b"id,  ,name\n1,2,3\n", problem="column 2 of the header has no name"),
    Case("trailing-delimiter", lambda: b"id,name,\n1,a,\n", problem="ends with a delimiter"),
    Case("duplicate-names", lambda: b"id,name,name\n1,a,b\n", problem="have the same name"),
    Case("duplicate-case-insensitive", lambda: b"id,Name,name\n1,a,b\n",
         problem="columns 2 ('Name') and 3 ('name')"),
    Case("duplicate-after-sanitising", lambda: b"id,a b,a_b\n1,2,3\n",
         problem="are the same column for Keboola ('a_b')"),
    Case("duplicate-after-transliteration", lambda: "cena,céna\n1,2\n".encode(), problem="same column"),
    Case("column-name-too-long", lambda: ("id," + "x" * 65 + "\n1,2\n").encode(),
         problem="65 characters long"),
    Case("column-name-too-long-after-sanitising", lambda: ("id," + "a b " * 17 + "\n1,2\n").encode(),
         problem="Keboola accepts at most 64"),
    Case("column-name-no-usable-chars", lambda: b"id,%%%\n1,2\n", problem="no letters or digits"),
    Case("column-name-cjk", lambda: "id,名前\n1,2\n".encode(), problem="no letters or digits"),
    Case("unclosed-quote-in-header", lambda: b'id,"name\n1,a\n2,b\n', problem="never closed"),
    Case("junk-after-quote-in-header", lambda: b'id,"name"x,y\n1,2,3\n', problem="not valid CSV"),
    Case("cr-only-line-endings", lambda: b"id,name\r1,a\r2,b\r", problem="bare carriage return"),
    Case("excel-sep-hint-line", lambda: b"sep=;\r\nid;name\r\n1;a\r\n", problem="Excel's delimiter hint 'sep=;'"),
)  # fmt: skip
