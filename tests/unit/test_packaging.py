"""The split between the daemon and the emulator extra holds (issue 15 item 7).

The runtime image installs requirements.lock only, so the daemon must never import the emulator's packages,
and the requirement files, the locks and pyproject.toml must tell the same story. Fast: no network, no build.
"""

from __future__ import annotations

import re
import subprocess
import sys
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# What `pip install keboola-sync[emulator]` adds (import names); none of it is in the runtime image.
EMULATOR_ONLY = ("moto", "flask", "flask_cors", "werkzeug", "jinja2", "markupsafe", "itsdangerous", "blinker",
                 "xmltodict", "py_partiql_parser")  # fmt: skip

BLOCK_AND_IMPORT_ALL = """
import importlib, importlib.abc, pkgutil, sys
BLOCKED = set(sys.argv[1:])
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ModuleNotFoundError(f"{name} is the emulator's (blocked by the test)")
        return None
sys.meta_path.insert(0, Block())
import keboola_sync
names = [m.name for m in pkgutil.walk_packages(keboola_sync.__path__, "keboola_sync.")]
for name in names:
    if not name.endswith("__main__"):  # that one runs the CLI
        importlib.import_module(name)
print(len(names))
"""


def _normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(path: Path) -> dict[str, str]:
    """name -> version of every `name==version` line of a requirements or lock file (not its -r includes)."""
    found = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^([A-Za-z0-9][A-Za-z0-9_.\-]*)(?:\[[^\]]*\])?==([^\s\\;]+)", line)
        if match:
            found[_normalise(match.group(1))] = match.group(2)
    return found


def requirement_names(specs: list[str]) -> set[str]:
    return {_normalise(re.split(r"[\[<>=!~; ]", spec, maxsplit=1)[0]) for spec in specs}


def test_the_daemon_imports_nothing_of_the_emulator_extra() -> None:
    proc = subprocess.run(
        [sys.executable, "-c", BLOCK_AND_IMPORT_ALL, *EMULATOR_ONLY], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.strip()) > 20  # every module of the package was imported, not just a few


def test_pyproject_and_the_requirement_files_agree() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = pins(REPO / "requirements.txt")
    emulator = pins(REPO / "requirements-emulator.txt")
    assert requirement_names(project["dependencies"]) <= set(runtime)
    extra = requirement_names(project["optional-dependencies"]["emulator"])
    assert extra <= set(emulator) and not extra & set(runtime)
    assert {_normalise(m) for m in EMULATOR_ONLY} - {"py-partiql-parser"} <= set(emulator)
    assert not set(runtime) & set(emulator)  # each pin in one file only
    dev = (REPO / "requirements-dev.txt").read_text(encoding="utf-8")
    assert "-r requirements-emulator.txt" in dev  # the tests need the daemon and the emulator
    assert "-r requirements.txt" in (REPO / "requirements-emulator.txt").read_text(encoding="utf-8")


def test_the_locks_hold_exactly_the_pins_each_with_hashes() -> None:
    """scripts/lock-requirements.sh regenerates them; a pin changed without a new lock fails here."""
    assert pins(REPO / "requirements.lock") == pins(REPO / "requirements.txt")
    assert pins(REPO / "requirements-emulator.lock") == pins(REPO / "requirements-emulator.txt")
    for lock in ("requirements.lock", "requirements-emulator.lock"):
        entries = re.split(r"\n(?=\S)", (REPO / lock).read_text(encoding="utf-8"))
        for entry in (e for e in entries if "==" in e.split("\n", 1)[0]):
            assert "--hash=sha256:" in entry, f"{lock}: {entry.splitlines()[0]} has no hash"
