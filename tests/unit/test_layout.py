"""Tables of examples for the naming rules (keboola-storage-api.md §3.3, §4.3, §4.4)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from keboola_sync.errors import ConfigError, FileChanged, InvalidFile, KeboolaSyncError
from keboola_sync.layout import (
    SUBFOLDER,
    Ignored,
    Layout,
    Rejected,
    Target,
    classify,
    classify_folder,
    is_ignored_name,
    sanitize_column_name,
    sanitize_name,
)

EXT = (".csv",)


def run(rel_path: str, *, on_invalid_name: str = "sanitize", patterns: tuple[str, ...] = (), **kw):
    return classify(
        rel_path, stage="in", extensions=EXT, ignore_patterns=patterns, on_invalid_name=on_invalid_name, **kw
    )


@pytest.mark.parametrize(
    ("rel_path", "bucket_id", "table_id", "renamed"),
    [
        ("sales/orders.csv", "in.c-sales", "in.c-sales.orders", False),
        ("sales/ORDERS.CSV", "in.c-sales", "in.c-sales.ORDERS", False),
        ("sales/Orders.Csv", "in.c-sales", "in.c-sales.Orders", False),
        ("Sales-EU/order_lines.csv", "in.c-Sales-EU", "in.c-Sales-EU.order_lines", False),
        ("sales/2024.csv", "in.c-sales", "in.c-sales.2024", False),
        ("my sales/open orders.csv", "in.c-my_sales", "in.c-my_sales.open_orders", True),
        ("sales/orders.2024.csv", "in.c-sales", "in.c-sales.orders_2024", True),
        ("Prodej ČR/objednávky.csv", "in.c-Prodej_CR", "in.c-Prodej_CR.objednavky", True),
        ("straße/Größe.csv", "in.c-strasse", "in.c-strasse.Grosse", True),
        ("sales/_orders.csv", "in.c-sales", "in.c-sales.orders", True),
        ("sales/-orders-.csv", "in.c-sales", "in.c-sales.orders", True),
        ("_sales/orders.csv", "in.c-sales", "in.c-sales.orders", True),
        ("sales/orders 📦.csv", "in.c-sales", "in.c-sales.orders", True),
        ("sales/a  &  b.csv", "in.c-sales", "in.c-sales.a_b", True),
        ("x.csv/orders.csv", "in.c-x_csv", "in.c-x_csv.orders", True),
        ("c-sales/orders.csv", "in.c-c-sales", "in.c-c-sales.orders", False),
    ],
)
def test_targets(rel_path: str, bucket_id: str, table_id: str, renamed: bool) -> None:
    result = run(rel_path)
    assert isinstance(result, Target), result
    assert (result.bucket_id, result.table_id, result.renamed) == (bucket_id, table_id, renamed)
    assert result.rel_path == rel_path
    assert result.folder == rel_path.split("/")[0]
    assert result.file_name == rel_path.split("/")[1]
    assert result.bucket_id == f"in.c-{result.bucket_name}"
    assert result.table_id == f"{result.bucket_id}.{result.table_name}"


def test_stage_and_extensions_come_from_config() -> None:
    result = classify(
        "exports/data.TSV",
        stage="out",
        extensions=(".csv", ".tsv"),
        ignore_patterns=(),
        on_invalid_name="sanitize",
    )
    assert isinstance(result, Target)
    assert (result.bucket_id, result.table_id) == ("out.c-exports", "out.c-exports.data")


@pytest.mark.parametrize(
    ("rel_path", "notable", "reason_part"),
    [
        ("orders.csv", True, "directly in the watched folder"),
        ("sales/2024/orders.csv", False, "folders inside folders"),
        ("sales/orders.csv.gz", True, "compressed CSVs are not loaded; decompress it"),
        ("sales/ORDERS.CSV.GZ", True, "compressed"),
        ("sales/orders.xlsx", True, "save it as 'CSV UTF-8"),
        ("sales/export.tsv", True, "watch.csv_extensions"),
        ("sales/readme.txt", False, "not a CSV"),
        ("sales/csv", False, "not a CSV"),
        ("sales/.csv", False, "hidden"),
        ("sales/.hidden.csv", False, "hidden"),
        (".git/orders.csv", False, "hidden"),
        (".sales/orders.csv", False, "hidden"),
        ("sales/~$orders.csv", False, "Microsoft Office lock file"),
        ("sales/.~lock.orders.csv#", False, "LibreOffice lock file"),
        ("sales/.orders.csv.swp", False, "editor swap file"),
        ("sales/orders.csv.swp", False, "editor swap file"),
        ("sales/.#orders.csv", False, "editor lock file"),
        ("sales/orders.csv~", False, "editor backup file"),
        ("sales/orders.csv.tmp", False, "temporary file"),
        ("sales/orders.tmp", False, "temporary file"),
        ("sales/orders.csv.part", False, "partial download"),
        ("sales/orders.csv.crdownload", False, "partial download"),
        ("sales/.DS_Store", False, "macOS Finder metadata"),
        (".DS_Store", False, "macOS Finder metadata"),
        ("sales/Thumbs.db", False, "Windows thumbnail cache"),
        ("sales/desktop.ini", False, "Windows folder settings"),
        ("sales/._orders.csv", False, "macOS resource fork"),
        ("notes.txt", False, "not a CSV"),
    ],
)
def test_ignored(rel_path: str, notable: bool, reason_part: str) -> None:
    result = run(rel_path)
    assert isinstance(result, Ignored), result
    assert result.notable is notable
    assert reason_part in result.reason
    assert result.rel_path == rel_path


def test_subfolders_are_notable_unless_their_name_is_ignored() -> None:
    layout = Layout(ignore_patterns=("old*",))
    assert layout.subfolder("sales/x.csv") == Ignored("sales/x.csv", SUBFOLDER, notable=True)
    assert layout.subfolder("sales/.git").notable is False
    assert layout.subfolder("sales/Old_2023").notable is False
    # A first-level folder called x.csv is just a (renamed) bucket: its CSVs load.
    assert isinstance(layout.classify("x.csv/a.csv"), Target)


def test_ignore_patterns_apply_to_first_level_folders() -> None:
    """One rule for rescans and live folder events: an ignored folder never becomes a bucket."""
    layout = Layout(ignore_patterns=("ARCHIVE*",))
    assert layout.folder_ignored("archive_2023")
    assert layout.folder("archive_2023") == Ignored(
        "archive_2023", "matches watch.ignore_patterns entry 'ARCHIVE*' folder"
    )
    assert isinstance(layout.classify("archive_2023/orders.csv"), Ignored)
    assert not layout.folder_ignored("sales")
    assert isinstance(
        classify_folder("archive", stage="in", on_invalid_name="sanitize", ignore_patterns=("archive",)), Ignored
    )


def test_ignore_patterns_from_config_are_case_insensitive_globs() -> None:
    result = run("sales/Backup_orders.csv", patterns=("backup_*",))
    assert isinstance(result, Ignored)
    assert "watch.ignore_patterns" in result.reason
    assert isinstance(run("archive/orders.csv", patterns=("ARCHIVE",)), Ignored)
    assert isinstance(run("sales/orders.csv", patterns=("backup_*",)), Target)


@pytest.mark.parametrize(
    ("rel_path", "problem_part", "fix_part"),
    [
        ("sales/" + "a" * 97 + ".csv", "97 characters long; Keboola accepts at most 96", "at most 96"),
        ("s" * 95 + "/orders.csv", "95 characters long; Keboola accepts at most 94", "at most 94"),
        ("sales/📦.csv", "has no letters or digits", "Rename it"),
        ("sales/___.csv", "has no letters or digits", "Rename it"),
        ("日本/orders.csv", "has no letters or digits", "Rename it"),
    ],
)
def test_rejected_names(rel_path: str, problem_part: str, fix_part: str) -> None:
    result = run(rel_path)
    assert isinstance(result, Rejected), result
    assert problem_part in result.problem
    assert fix_part in result.fix
    assert str(result).startswith(rel_path + ": ")


def test_longest_names_keboola_accepts_are_targets() -> None:
    result = run("b" * 94 + "/" + "t" * 96 + ".csv")
    assert isinstance(result, Target)
    assert len("c-" + result.bucket_name) == 96
    assert len(result.table_name) == 96


@pytest.mark.parametrize(
    ("rel_path", "suggestion"),
    [
        ("sales/open orders.csv", "'open_orders.csv'"),
        ("my sales/orders.csv", "'my_sales'"),
        ("sales/_orders.csv", "'orders.csv'"),
        ("sales/objednávky.CSV", "'objednavky.CSV'"),
    ],
)
def test_reject_mode_refuses_names_that_need_sanitising(rel_path: str, suggestion: str) -> None:
    result = run(rel_path, on_invalid_name="reject")
    assert isinstance(result, Rejected), result
    assert suggestion in result.fix
    assert "mapping.on_invalid_name: sanitize" in result.fix
    assert isinstance(run("sales/orders.csv", on_invalid_name="reject"), Target)


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sales", ("sales", "in.c-sales")),
        ("Sales EU", ("Sales_EU", "in.c-Sales_EU")),
        (".git", Ignored(".git", "hidden folder")),
        ("~$x", Ignored("~$x", "Microsoft Office lock file folder")),
    ],
)
def test_classify_folder(name: str, expected: object) -> None:
    assert classify_folder(name, stage="in", on_invalid_name="sanitize") == expected


def test_classify_folder_reject_mode() -> None:
    result = classify_folder("Sales EU", stage="in", on_invalid_name="reject")
    assert isinstance(result, Rejected)
    assert "'Sales_EU'" in result.fix


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("orders", "orders"),
        ("Open Orders", "Open_Orders"),
        ("a.b.c", "a_b_c"),
        ("  padded  ", "padded"),
        ("__x__", "x"),
        ("--x--", "x"),
        ("a-b_c", "a-b_c"),
        ("Žluťoučký kůň", "Zlutoucky_kun"),
        ("Łódź", "Lodz"),
        ("Ærø", "AEro"),
        ("emoji 🎉 party", "emoji_party"),
        ("🎉", ""),
        ("", ""),
    ],
)
def test_sanitize_name(name: str, expected: str) -> None:
    assert sanitize_name(name) == expected


def _load_column_names():  # tests/ is not a package: import the shared table by path
    path = Path(__file__).resolve().parents[1] / "data" / "column_names.py"
    spec = importlib.util.spec_from_file_location("column_names", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("column_names", module)
    spec.loader.exec_module(module)
    return module


COLUMN_NAMES = _load_column_names()


@pytest.mark.parametrize("case", COLUMN_NAMES.settled(), ids=lambda c: repr(c.header)[:40])
def test_sanitize_column_name_settled(case) -> None:
    """The shared table (tests/data/column_names.py): what Keboola stores, §4.4 and §12."""
    assert sanitize_column_name(case.header) == case.column


@pytest.mark.parametrize("case", COLUMN_NAMES.locale_dependent(), ids=lambda c: repr(c.header)[:40])
def test_sanitize_column_name_outside_cp1250_agrees_with_the_emulator(case) -> None:
    """Outside Windows-1250 the server's locale decides (§12, UNCONFIRMED); the daemon predicts what
    the emulator models (the table's `column`), so the two never disagree in tests."""
    assert sanitize_column_name(case.header) == case.column


@pytest.mark.parametrize(
    ("name", "reason"),
    [
        ("orders.csv", None),
        ("Orders.CSV", None),
        (".DS_Store", "macOS Finder metadata"),
        (".env", "hidden"),
        ("~$Book1.csv", "Microsoft Office lock file"),
    ],
)
def test_is_ignored_name(name: str, reason: str | None) -> None:
    assert is_ignored_name(name) == reason


def test_error_messages_name_the_place_and_the_fix() -> None:
    err = InvalidFile("sales/orders.csv", "invalid UTF-8 at byte 10", "Save it as UTF-8.")
    assert str(err) == "sales/orders.csv: invalid UTF-8 at byte 10. Save it as UTF-8."
    assert err.path == "sales/orders.csv"
    assert (err.problem, err.fix) == ("invalid UTF-8 at byte 10", "Save it as UTF-8.")
    cfg = ConfigError("upload.gzip_level", "must be 0-9, got 12")
    assert cfg.key == "upload.gzip_level"
    assert str(cfg) == "upload.gzip_level: must be 0-9, got 12"
    assert str(ConfigError("x.y", "x.y must be set")) == "x.y must be set"
    for cls in (ConfigError, InvalidFile, FileChanged):
        assert issubclass(cls, KeboolaSyncError)


# --- names as macOS spells them (issue 12 item 13): decomposed (NFD) names map like composed ones -----
def nfd(text: str) -> str:
    import unicodedata

    return unicodedata.normalize("NFD", text)


@pytest.mark.parametrize(
    ("rel_path", "bucket_id", "table_id"),
    [
        ("Prodej ČR/Tržby.csv", "in.c-Prodej_CR", "in.c-Prodej_CR.Trzby"),
        ("straße/Größe.csv", "in.c-strasse", "in.c-strasse.Grosse"),
        ("Účty/objednávky 2024.csv", "in.c-Ucty", "in.c-Ucty.objednavky_2024"),
        ("sales/Ångström.csv", "in.c-sales", "in.c-sales.Angstrom"),
    ],
)
def test_decomposed_names_map_like_composed_ones(rel_path: str, bucket_id: str, table_id: str) -> None:
    decomposed = nfd(rel_path)
    assert decomposed != rel_path or rel_path.isascii()
    for spelling in (rel_path, decomposed):
        result = run(spelling)
        assert isinstance(result, Target), result
        assert (result.bucket_id, result.table_id) == (bucket_id, table_id)
        assert result.rel_path == spelling  # the real name stays: it is the one that opens the file
    assert sanitize_name(nfd("Tržby")) == "Trzby"
    assert Layout().folder(nfd("Prodej ČR")) == ("Prodej_CR", "in.c-Prodej_CR")


def test_ignore_patterns_match_either_spelling() -> None:
    layout = Layout(ignore_patterns=("přehled*",))
    assert layout.ignored_name(nfd("Přehled 2024.csv")) is not None
    assert Layout(ignore_patterns=(nfd("přehled*"),)).ignored_name("Přehled 2024.csv") is not None


def test_names_that_are_not_utf8_are_said_once_and_never_tracked() -> None:
    """The bytes of a non-UTF-8 name arrive as lone surrogates, which the ledger, the log and Keboola
    cannot hold: such a CSV or folder is ignored with a line that says why (a hidden one stays silent)."""
    latin1 = b"caf\xe9".decode("utf-8", "surrogateescape")
    layout = Layout()
    for rel_path in (f"sales/{latin1}.csv", f"{latin1}/a.csv"):
        result = layout.classify(rel_path)
        assert isinstance(result, Ignored), result
        assert "not valid UTF-8" in result.reason and "rename it" in result.reason
    assert layout.classify(f"sales/{latin1}.csv") == Ignored(
        f"sales/{latin1}.csv", layout.classify(f"sales/{latin1}.csv").reason, notable=True
    )
    folder = layout.folder(latin1)
    assert isinstance(folder, Ignored) and folder.notable
    assert layout.classify(f"sales/.{latin1}.csv") == Ignored(f"sales/.{latin1}.csv", "hidden")
    assert layout.classify(f"sales/{latin1}.txt") == Ignored(f"sales/{latin1}.txt", "not a CSV file")
