"""The docs tell the truth about the code (in the spirit of sqlite-utils' test_docs.py).

1. docs/configuration.md documents exactly the keys of the schema in config.py: a key added without a row,
   or a row left behind for a removed key, fails here.
2. Every WARNING/ERROR line the daemon can log has a row in docs/troubleshooting.md. The calls are found by
   reading the whole package's source (ast), not a fixed list of files, so moving a call between modules
   changes nothing here. For each call the literal text of its format string is cut at the placeholders
   (`%s`, `%d`, `%.1f`, the `{...}` of an f-string) and its longest literal fragment must appear in
   troubleshooting.md.

   Some calls log text made elsewhere: `log.warning("%s", warning)` or `log.warning("skipped %s", message)`,
   whose longest fragment is too short to find anything (`PASS_THROUGH_MIN`). Those are listed in
   PASS_THROUGH by the source of their first argument, each with the place the real texts are documented
   and checked (the e2e corpus pins those texts; the rows are in the named section). A new pass-through
   call fails the test until it is listed here, and a listed one that no longer exists fails too, so the
   list stays the truth.
3. The user docs (README and docs/ but architecture, development and sources) cite no research notes:
   those live outside the repository; docs/sources.md, for developers, maps them.
4. configuration.md's table of keys that need a restart is exactly the keys `live.py` does not apply while
   running (`restart_keys()`): a key added to the schema is restart-only until its room reads it per use.
"""

from __future__ import annotations

import ast
import dataclasses
import re
from pathlib import Path

import pytest

from keboola_sync import config as cfgmod
from keboola_sync.live import LIVE_KEYS, restart_keys

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "keboola_sync"
CONFIGURATION = REPO / "docs" / "configuration.md"
TROUBLESHOOTING = REPO / "docs" / "troubleshooting.md"

LOG_METHODS = frozenset({"warning", "error", "exception", "critical"})
LOGGER_NAMES = re.compile(r"^_?(log|logger|LOG|LOGGER|logging)$")
PLACEHOLDER = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(?:\d+|\*)?(?:\.\d+)?[sdifrxXeEgGa%]|\x00")
PASS_THROUGH_MIN = 10  # a fragment shorter than this (after stripping) is not distinctive

# First argument (as ast.unparse writes it) -> where the texts it passes through are documented.
PASS_THROUGH: dict[str, str] = {
    "'%s'": "cli: a ConfigError found after start-up, or a config warning (section 1, Configuration and Security)",
    "'skipped %s'": "an InvalidFile's text: every 'skipped F/x.csv: ...' row of section 2",
    "'%s: %s'": "a CSV warning of the loaded file (section 2, 'Things Keboola accepts but you probably did not mean')",
    "'%s. %s'": "a folder's problem and fix, e.g. 'folder F cannot be read' (section 2, The filesystem)",
    "'sync --once: %s'": "the paused reason of the watched folder (section 2, The filesystem: 'the watched folder')",
}


# --- 1. configuration.md <-> the schema --------------------------------------------------------------
def schema_keys() -> set[str]:
    return {f"{section}.{f.name}" for section, cls in cfgmod._SECTIONS.items() for f in dataclasses.fields(cls)}


def documented_keys() -> set[str]:
    """`section.key` for every table row under a `## \\`section\\`` heading of configuration.md."""
    keys: set[str] = set()
    section: str | None = None
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        heading = re.match(r"^## `(\w+)`", line)
        if heading:
            section = heading.group(1)
        elif line.startswith("## "):
            section = None
        elif section:
            row = re.match(r"^\| `(\w+)` \|", line)
            if row:
                keys.add(f"{section}.{row.group(1)}")
    return keys


def test_every_documented_key_is_in_the_schema() -> None:
    assert documented_keys() - schema_keys() == set()


def test_every_schema_key_is_documented() -> None:
    assert schema_keys() - documented_keys() == set()


# --- 2. troubleshooting.md <-> what the daemon logs --------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LogCall:
    where: str  # file:line, for the failure message
    level: str
    first_arg: str  # ast.unparse of the format argument
    literal: str | None  # the format string with every placeholder as \x00, None if not literal at all


def _literal_text(node: ast.expr) -> str | None:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    if isinstance(node, ast.JoinedStr):  # an f-string: its {...} parts are placeholders
        parts = [v.value if isinstance(v, ast.Constant) else "\x00" for v in node.values]
        return "".join(str(p) for p in parts)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):  # "a" "b" spread over lines + ...
        left, right = _literal_text(node.left), _literal_text(node.right)
        return (left or "\x00") + (right or "\x00")
    return None


def warning_and_error_calls() -> list[LogCall]:
    calls = []
    for path in sorted(PACKAGE.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args):
                continue
            target = node.func.value
            if node.func.attr in LOG_METHODS and isinstance(target, ast.Name) and LOGGER_NAMES.match(target.id):
                where = f"{path.relative_to(REPO)}:{node.lineno}"
                first = node.args[0]
                calls.append(LogCall(where, node.func.attr, ast.unparse(first), _literal_text(first)))
    return calls


def distinctive_fragment(literal: str) -> str:
    fragments = [f.strip(" :;,.'\"()") for f in PLACEHOLDER.split(literal)]
    return max(fragments, key=len, default="")


def test_the_scan_finds_the_daemons_log_calls() -> None:
    """Guards the scanner itself: if it found nothing, every check below would pass vacuously."""
    calls = warning_and_error_calls()
    assert len(calls) >= 20
    assert {c.level for c in calls} >= {"warning", "error", "exception"}


def test_every_warning_and_error_has_a_row_in_troubleshooting() -> None:
    doc = TROUBLESHOOTING.read_text(encoding="utf-8")
    missing = []
    for call in warning_and_error_calls():
        if call.first_arg in PASS_THROUGH:
            continue
        fragment = distinctive_fragment(call.literal) if call.literal is not None else ""
        if len(fragment) < PASS_THROUGH_MIN:
            missing.append(f"{call.where}: {call.first_arg} passes text through: list it in PASS_THROUGH")
        elif fragment not in doc:
            missing.append(f"{call.where}: no row in docs/troubleshooting.md contains {fragment!r}")
    assert missing == []


def test_the_pass_through_list_has_no_stale_entries() -> None:
    found = {call.first_arg for call in warning_and_error_calls()}
    assert set(PASS_THROUGH) - found == set()


@pytest.mark.parametrize(
    ("literal", "fragment"),
    [
        ("failed %s: %s; trying again in %.0f s or when the file changes", "s or when the file changes"),
        ("%s failed (attempt %d/%d): %s; retrying in %.1f s", "failed (attempt"),
        ("cannot watch \x00: \x00; relying on rescans", "relying on rescans"),
        ("skipped %s", "skipped"),
    ],
)
def test_distinctive_fragment(literal: str, fragment: str) -> None:
    assert distinctive_fragment(literal) == fragment


# --- 3. user docs cite no research notes (issue 15 item 9) -------------------------------------------
# The notes live outside this repository (beside it, in the steering repository); a user has no copy.
# Developer docs may name them; docs/sources.md maps them.
DEVELOPER_DOCS = frozenset({"architecture.md", "development.md", "sources.md"})
# A section sign right after a backtick is an example header cell (`§5` -> `S5`), not a citation.
NOTE_REFERENCES = re.compile(r"\.\./shared/|/work/|keboola-storage-api\.md|peers\.md|(?<!`)§\d")


def user_docs() -> list[Path]:
    docs = sorted(p for p in (REPO / "docs").glob("*.md") if p.name not in DEVELOPER_DOCS)
    return [REPO / "README.md", *docs]


def test_user_docs_cite_no_research_notes() -> None:
    assert len(user_docs()) >= 8  # README and the user docs were found
    found = [
        f"{path.relative_to(REPO)}:{number}: {line.strip()}"
        for path in user_docs()
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if NOTE_REFERENCES.search(line)
    ]
    assert found == []


# --- 4. configuration.md's restart table <-> live.py -------------------------------------------------
def documented_restart_keys() -> set[str]:
    """The rows of the table under `## Changing the configuration while it runs`."""
    keys: set[str] = set()
    inside = False
    for line in CONFIGURATION.read_text(encoding="utf-8").splitlines():
        if line.startswith("## "):
            inside = line.startswith("## Changing the configuration while it runs")
        elif inside:
            row = re.match(r"^\| `(\w+\.\w+)` \|", line)
            if row:
                keys.add(row.group(1))
    return keys


def test_the_keys_that_need_a_restart_are_documented_exactly() -> None:
    """A key the daemon cannot apply while running has a row saying why; a key it applies has none."""
    assert documented_restart_keys() == set(restart_keys())


def test_every_live_key_is_in_the_schema() -> None:
    assert LIVE_KEYS - schema_keys() == set()
