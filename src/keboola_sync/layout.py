"""Pure naming rules: which path becomes which Keboola bucket and table, and what is ignored.

Every Keboola naming rule lives here (one place for each fact), as pure functions over strings, so
the watcher, rescans, `status`, the sync service and the emulator-backed tests agree on one answer.
`Layout` (built once from the config) is the one place the ignore rules are applied, to files and
folders alike. Nothing here touches the filesystem: the caller says whether a name is a folder.
"""

from __future__ import annotations

import fnmatch
import re
import unicodedata
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import PurePosixPath
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .config import Config

# keboola-storage-api.md §3.3 / §4.3: the server's maximum length is UNCONFIRMED; the Go SDK validates
# 1..96 characters client-side for the bucket name *including* its "c-" prefix and for the table name.
MAX_BUCKET_NAME = 96  # len("c-" + bucket_name)  (UNCONFIRMED server-side)
MAX_TABLE_NAME = 96  # (UNCONFIRMED server-side)
# keboola-storage-api.md §4.4: "Column name cannot be longer than 64 characters."
MAX_COLUMN_NAME = 64


@dataclass(frozen=True)
class Target:
    """Where one CSV goes."""

    rel_path: str  # posix path relative to the watch root, e.g. "sales/orders.csv"
    folder: str
    file_name: str
    bucket_name: str  # as sent in POST /buckets `name` (no "c-"), e.g. "sales"
    bucket_id: str  # "in.c-sales"
    table_name: str  # "orders"
    table_id: str  # "in.c-sales.orders"
    renamed: bool  # sanitising changed the folder or file name: the caller warns once

    def in_bucket(self, bucket_id: str) -> Target:
        """The same table in the bucket Keboola actually has for the folder (found by name or display
        name, or created with the id Keboola chose: §12, buckets without `c-`)."""
        if bucket_id == self.bucket_id:
            return self
        return replace(self, bucket_id=bucket_id, table_id=f"{bucket_id}.{self.table_name}")


@dataclass(frozen=True)
class Ignored:
    rel_path: str
    reason: str
    # True for things a user may not expect to be ignored (log once at INFO); junk such as
    # .DS_Store or editor lock files is ignored silently.
    notable: bool = False


@dataclass(frozen=True)
class Rejected:
    """A CSV we would load but whose name Keboola refuses (or we were told not to rename)."""

    rel_path: str
    problem: str
    fix: str

    def __str__(self) -> str:
        return f"{self.rel_path}: {self.problem}. {self.fix}"


# ---------------------------------------------------------------------------------------------------
# Ignore rules as data: (glob on the lower-cased name, reason). Order matters: the specific reason
# wins over the generic "hidden file" so the log says *why* a dot-file was skipped.
_JUNK_PATTERNS: tuple[tuple[str, str], ...] = (
    ("~$*", "Microsoft Office lock file"),
    (".~lock.*#", "LibreOffice lock file"),
    (".#*", "editor lock file"),
    ("*.swp", "editor swap file"),
    ("*.swo", "editor swap file"),
    ("*.swx", "editor swap file"),
    ("4913", "editor write-test file"),  # vim probes a directory with this name before saving
    ("*~", "editor backup file"),
    ("*.tmp", "temporary file"),
    ("*.temp", "temporary file"),
    ("*.part", "partial download"),
    ("*.partial", "partial download"),
    ("*.crdownload", "partial download"),
    ("*.download", "partial download"),
    (".ds_store", "macOS Finder metadata"),
    ("._*", "macOS resource fork"),
    ("thumbs.db", "Windows thumbnail cache"),
    ("desktop.ini", "Windows folder settings"),
    (".goutputstream-*", "temporary file"),
)


def nfc(name: str) -> str:
    """A file or folder name in composed form (NFC), the first step of every naming rule here.

    Why: macOS hands out decomposed names (NFD: "Tržby" as "Trz" + COMBINING CARON + "by"), Linux and
    Windows composed ones, and both may meet in one synced folder. Decomposed, the accent is a separate
    character that would become "_" ("Trz_by"); composed, the two spellings name the same table, so the
    clash rule (one file per table) applies to them like to any other pair.
    """
    return unicodedata.normalize("NFC", name)


def is_ignored_name(name: str, ignore_patterns: tuple[str, ...] | list[str] = ()) -> str | None:
    """Why a single file or folder name is never synced, or None.

    Covers hidden names, editor/office temp and lock files and the user's `watch.ignore_patterns`
    (globs, compared case-insensitively because macOS and Windows folders are case-insensitive, and in
    NFC on both sides, so a pattern typed on Linux matches a name made on a Mac).
    """
    name = nfc(name)
    lower = name.lower()
    for pattern, reason in _JUNK_PATTERNS:
        if fnmatch.fnmatchcase(lower, pattern):
            return reason
    if name.startswith("."):
        return "hidden"
    for pattern in ignore_patterns:
        if fnmatch.fnmatchcase(lower, nfc(pattern).lower()):
            return f"matches watch.ignore_patterns entry {pattern!r}"
    return None


# ---------------------------------------------------------------------------------------------------
# Bucket and table names (keboola-storage-api.md §3.3, §4.3): letters, digits, "-" and "_"; a table's
# display name must not start with "_".

_NAME_RUN = re.compile(r"[^A-Za-z0-9_-]+")

# Letters that Unicode does not decompose into an ASCII base + accent.
_EXTRA_ASCII = {
    "ß": "ss", "ẞ": "SS", "æ": "ae", "Æ": "AE", "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O",
    "đ": "d", "Đ": "D", "ł": "l", "Ł": "L", "þ": "th", "Þ": "TH", "ð": "d", "Ð": "D",
    "ı": "i", "ŀ": "l", "Ŀ": "L", "ħ": "h", "Ħ": "H",
}  # fmt: skip


def _transliterate(text: str) -> str:
    """Readable ASCII for names we create ourselves: `Prodej ČR` -> `Prodej CR`.

    Characters with no ASCII form (emoji, CJK) are left alone; the caller turns them into "_".
    """
    out = []
    for char in text:
        if char.isascii():
            out.append(char)
            continue
        if char in _EXTRA_ASCII:
            out.append(_EXTRA_ASCII[char])
            continue
        decomposed = unicodedata.normalize("NFKD", char)
        base = "".join(c for c in decomposed if not unicodedata.combining(c))
        out.append(base if base.isascii() and base else char)
    return "".join(out)


def sanitize_name(name: str) -> str:
    """A bucket or table name Keboola accepts, as close to `name` as possible ("" if nothing is left)."""
    ascii_name = _transliterate(nfc(name))
    return _NAME_RUN.sub("_", ascii_name).strip("_-")


def _name_problem(raw: str, sanitized: str, limit: int, what: str) -> tuple[str, str] | None:
    if not sanitized:
        return (
            f"the {what} name {raw!r} has no letters or digits Keboola accepts",
            f"Rename it using letters, digits, '-' or '_' (e.g. {('my_' + what)!r}).",
        )
    if len(sanitized) > limit:
        return (
            f"the {what} name {sanitized!r} is {len(sanitized)} characters long; Keboola accepts at most {limit}",
            f"Rename it to at most {limit} characters.",
        )
    return None


def _csv_extension(name: str, extensions: tuple[str, ...]) -> str | None:
    lower = name.lower()
    for ext in extensions:
        if lower.endswith(ext.lower()) and len(name) > len(ext):
            return name[len(name) - len(ext) :]
    return None


# Files people drop meaning "this is my table": said once (notable), unlike any other non-CSV file.
SPREADSHEET_ENDINGS = (".xlsx", ".xlsm", ".xls", ".ods", ".numbers")
TEXT_TABLE_ENDINGS = (".tsv", ".tab")  # not .txt: README.txt files are common and not tables

ROOT_CSV = "CSV files directly in the watched folder are not synced; put them in a folder"
NOT_UTF8 = (
    "its name is not valid UTF-8 (made on a system with another encoding?), so it cannot be tracked or"
    " named in Keboola; rename it"
)
# Python hands out the bytes of a name that is not UTF-8 as lone surrogates (surrogateescape); the ledger
# (SQLite, UTF-8), the log and Keboola can hold none of them.
_UNDECODABLE = re.compile("[\ud800-\udfff]")
SUBFOLDER = "folders inside folders are not synced (only first-level folders are buckets)"
LINKED_FOLDER = (
    "a symbolic link to a folder, which is not followed; move or copy the folder itself into the watched"
    " folder to sync it"
)


def _not_a_csv(rel: str, name: str, extensions: tuple[str, ...]) -> Ignored:
    """Why a file that is not a CSV is skipped; said once for the endings people mistake for one."""
    stripped = name[:-3] if name.lower().endswith(".gz") else None
    if stripped and _csv_extension(stripped, extensions):
        return Ignored(
            rel, "compressed CSVs are not loaded; decompress it (keep the plain .csv in the folder)", notable=True
        )
    lower = name.lower()
    if lower.endswith(SPREADSHEET_ENDINGS):
        return Ignored(
            rel,
            "a spreadsheet, not a CSV; save it as 'CSV UTF-8 (Comma delimited)' (.csv) in this folder",
            notable=True,
        )
    if lower.endswith(TEXT_TABLE_ENDINGS):
        return Ignored(
            rel,
            "not a .csv file; rename it to .csv (tabs and semicolons are detected) or add its ending to"
            " watch.csv_extensions",
            notable=True,
        )
    return Ignored(rel, "not a CSV file")


@dataclass(frozen=True)
class Layout:
    """The folder's shape as Keboola sees it, built once from the config.

    The ONE place that applies the ignore rules (junk names, hidden names, `watch.ignore_patterns`,
    `watch.csv_extensions`) to files and folders alike: the watcher's hints, rescans, `status` and the
    sync service all ask it, so a folder ignored by a rescan is ignored when it appears live too.
    """

    stage: str = "in"
    extensions: tuple[str, ...] = (".csv",)
    ignore_patterns: tuple[str, ...] = ()
    on_invalid_name: str = "sanitize"
    # "c-" on projects with Keboola's legacy bucket prefix, "" with `disable-legacy-bucket-prefix` (§12):
    # only the *predicted* id; the id Keboola returns for a folder's bucket wins (`Target.in_bucket`).
    bucket_prefix: str = "c-"

    @classmethod
    def from_config(cls, config: Config, *, bucket_prefix: str = "c-") -> Layout:
        return cls(
            stage=config.keboola.stage,
            extensions=tuple(config.watch.csv_extensions),
            ignore_patterns=tuple(config.watch.ignore_patterns),
            on_invalid_name=config.mapping.on_invalid_name,
            bucket_prefix=bucket_prefix,
        )

    def ignored_name(self, name: str) -> str | None:
        """Why one file or folder name is never synced, or None."""
        return is_ignored_name(name, self.ignore_patterns)

    def folder(self, name: str) -> tuple[str, str] | Ignored | Rejected:
        """A first-level folder -> (bucket_name, bucket_id), or why it is not a bucket."""
        reason = self.ignored_name(name)
        if reason is not None:
            return Ignored(name, f"{reason} folder")
        if _UNDECODABLE.search(name):
            return Ignored(name, NOT_UTF8, notable=True)
        bucket_name = sanitize_name(name)
        # §3.3: the limit (UNCONFIRMED) counts the "c-" the server prepends.
        problem = _name_problem(name, bucket_name, MAX_BUCKET_NAME - 2, "folder")
        if problem is not None:
            return Rejected(name, *problem)
        if bucket_name != name and self.on_invalid_name == "reject":
            return Rejected(
                name,
                f"the folder name {name!r} is not a valid Keboola bucket name (only letters, digits, '-' and '_')",
                f"Rename the folder to {bucket_name!r}, or set mapping.on_invalid_name: sanitize.",
            )
        return bucket_name, f"{self.stage}.{self.bucket_prefix}{bucket_name}"

    def folder_ignored(self, name: str) -> bool:
        """Hidden, junk and `ignore_patterns` folders are not synced at all (their files are not looked at)."""
        return isinstance(self.folder(name), Ignored)

    def subfolder(self, rel_path: str) -> Ignored:
        """A folder inside a first-level folder: never synced; said once unless its name is ignored anyway."""
        reason = self.ignored_name(rel_path.rsplit("/", 1)[-1])
        return Ignored(rel_path, reason or SUBFOLDER, notable=reason is None)

    def linked_folder(self, name: str) -> Ignored:
        """A first-level symbolic link to a folder: never followed (its files may live anywhere, or be
        another bucket's), and said once, since it looks like a bucket to whoever made it."""
        reason = self.ignored_name(name)
        return Ignored(name + "/", reason or LINKED_FOLDER, notable=reason is None)

    def classify(self, rel_path: str) -> Target | Ignored | Rejected:
        """What one file (relative to the watch root, "/"-separated) is: a table, or why not."""
        parts = PurePosixPath(rel_path).parts
        rel = "/".join(parts)
        for index, part in enumerate(parts):
            reason = self.ignored_name(part)
            if reason is not None:
                where = "" if index == len(parts) - 1 else f" (in {'/'.join(parts[: index + 1])})"
                return Ignored(rel, reason + where)
        name = parts[-1] if parts else ""
        ext = _csv_extension(name, self.extensions)
        if len(parts) == 1 and ext is not None:
            return Ignored(rel, ROOT_CSV, notable=True)
        if len(parts) != 2:  # the watcher and rescans look one level deep only
            return Ignored(rel, SUBFOLDER if len(parts) > 2 else "not a CSV file")
        if ext is None:
            return _not_a_csv(rel, name, self.extensions)
        if _UNDECODABLE.search(name):
            return Ignored(rel, NOT_UTF8, notable=True)
        return self._target(rel, parts[0], name, ext)

    def _target(self, rel: str, folder: str, name: str, ext: str) -> Target | Ignored | Rejected:
        folder_result = self.folder(folder)
        if isinstance(folder_result, Ignored):
            return Ignored(rel, folder_result.reason)
        if isinstance(folder_result, Rejected):
            return Rejected(rel, folder_result.problem, folder_result.fix)
        bucket_name, bucket_id = folder_result
        stem = name[: -len(ext)]
        table_name = sanitize_name(stem)
        problem = _name_problem(stem, table_name, MAX_TABLE_NAME, "file")
        if problem is not None:
            return Rejected(rel, *problem)
        if table_name != stem and self.on_invalid_name == "reject":
            return Rejected(
                rel,
                f"the file name {stem!r} is not a valid Keboola table name (only letters, digits, '-' and '_',"
                " not starting with '_' or '-')",
                f"Rename the file to {table_name + ext!r}, or set mapping.on_invalid_name: sanitize.",
            )
        return Target(
            rel_path=rel,
            folder=folder,
            file_name=name,
            bucket_name=bucket_name,
            bucket_id=bucket_id,
            table_name=table_name,
            table_id=f"{bucket_id}.{table_name}",
            renamed=bucket_name != folder or table_name != stem,
        )


def classify_folder(
    name: str, *, stage: str, on_invalid_name: str, ignore_patterns: tuple[str, ...] = ()
) -> tuple[str, str] | Ignored | Rejected:
    """`Layout.folder` for callers without a Layout (kept for other modules; prefer a Layout)."""
    return Layout(stage=stage, ignore_patterns=ignore_patterns, on_invalid_name=on_invalid_name).folder(name)


def classify(
    rel_path: str,
    *,
    stage: str,
    extensions: tuple[str, ...],
    ignore_patterns: tuple[str, ...],
    on_invalid_name: str,
) -> Target | Ignored | Rejected:
    """`Layout.classify` for callers without a Layout (kept for other modules; prefer a Layout)."""
    return Layout(stage, extensions, ignore_patterns, on_invalid_name).classify(rel_path)


# ---------------------------------------------------------------------------------------------------
# Column names: keboola-storage-api.md §4.4 and §12 (keboola/sanitizer, glibc branch, which Keboola
# runs on every CSV header). Re-implemented from the described algorithm:
#   1. drop control characters and combining marks (U+0300..U+036F), keep tab/LF/CR;
#   2. transliterate to Windows-1250 (glibc iconv //TRANSLIT), then map its accented letters to ASCII
#      with the sanitizer's fixed table (so "ß" -> "s", "§" -> "S", "×" -> "x"; "€", "™", which
#      cp1250 has, stay non-ASCII -> "_");
#   3. every run of characters outside [A-Za-z0-9_] -> "_", then trim "_";
#   4. Postgres system column names get a trailing "_"; case is kept.
# Characters outside cp1250 depend on the server's glibc locale (§12, UNCONFIRMED which one). We
# predict glibc's C.UTF-8, as the emulator models it (§12: "Ørsted" -> "Orsted", "Имя" -> ""):
# accents and strokes stripped, compatibility forms decomposed (ligatures, full-width letters),
# anything else (CJK, Cyrillic, emoji) is iconv's "?", i.e. a separator. tests/data/column_names.py
# is the table of examples this function and the emulator are both tested against.

_DROP_CHARS = re.compile("[^\x09\x0a\x0d\x20-\x7e\xa0-\u02ff\u0370-\U0010ffff]")
_COLUMN_RUN = re.compile(r"[^A-Za-z0-9_]+")
_SYSTEM_COLUMNS = frozenset({"oid", "tableoid", "xmin", "cmin", "xmax", "cmax", "ctid"})
# Windows-1250 characters that php-utils maps to an ASCII letter after iconv; all other cp1250
# characters (€, ÷, µ, ...) stay non-ASCII and become "_" in step 3.
_CP1250_SPECIAL = {"Ł": "L", "ł": "l", "Đ": "D", "đ": "d", "ß": "s", "§": "S", "×": "x"}
# glibc C.UTF-8 transliterations of letters outside cp1250 that Unicode does not decompose.
_GLIBC_TRANSLIT = {
    "Æ": "AE", "æ": "ae", "Œ": "OE", "œ": "oe", "ĳ": "ij", "Ĳ": "IJ", "Ø": "O", "ø": "o", "Ħ": "H",
    "ħ": "h", "ı": "i", "Ŧ": "T", "ŧ": "t", "Ŀ": "L", "ŀ": "l", "Ð": "D", "ð": "d", "Þ": "TH", "þ": "th",
}  # fmt: skip


@lru_cache(maxsize=1)
def _cp1250_to_ascii() -> dict[str, str]:
    table: dict[str, str] = {}
    for byte in range(0x80, 0x100):
        try:
            char = bytes([byte]).decode("cp1250")
        except UnicodeDecodeError:
            continue
        if char in _CP1250_SPECIAL:
            table[char] = _CP1250_SPECIAL[char]
            continue
        base = unicodedata.normalize("NFKD", char)[0]
        if char.isalpha() and base.isascii() and base.isalpha():
            table[char] = base
        else:
            table[char] = "\x00"  # stays non-ASCII after iconv -> becomes "_"
    return table


def _column_to_ascii(name: str) -> str:
    name = _DROP_CHARS.sub("", name)
    cp1250 = _cp1250_to_ascii()
    out = []
    for char in name:
        if char.isascii():
            out.append(char)
        elif char in cp1250:
            out.append(cp1250[char])
        elif char in _GLIBC_TRANSLIT:
            out.append(_GLIBC_TRANSLIT[char])
        else:
            out.append(_translit_outside_cp1250(char))
    return "".join(out)


def _translit_outside_cp1250(char: str) -> str:
    compat = unicodedata.normalize("NFKC", char)
    if not compat.isascii():
        decomposed = unicodedata.normalize("NFKD", char)
        compat = "".join(c for c in decomposed if not unicodedata.combining(c))
    if not compat or not compat.isascii():
        return "?"  # no ASCII form: iconv writes "?", which step 3 turns into "_"
    # toAscii drops the ` ' " ^ ~ that iconv's transliteration produced itself.
    return compat.translate({ord(c): None for c in "`'\"^~"})


def sanitize_column_name(name: str) -> str:
    """The column name Keboola stores for a CSV header cell (keboola-storage-api.md §4.4)."""
    sanitized = _COLUMN_RUN.sub("_", _column_to_ascii(name)).strip("_")
    if sanitized.lower() in _SYSTEM_COLUMNS:
        sanitized += "_"
    return sanitized
