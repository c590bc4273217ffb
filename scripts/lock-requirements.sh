#!/bin/bash
# Writes the hash-pinned lock files the Docker image installs with `pip install --require-hashes`:
#
#   requirements.lock           <- requirements.txt           the daemon: everything the runtime image holds
#   requirements-emulator.lock  <- requirements-emulator.txt  the emulator extra's own packages only (the
#                                                              image's `emulator` target adds them on top)
#
# Run it after changing requirements*.txt (`make lock`). pip-compile (pip-tools, in requirements-dev.txt)
# resolves the exact pins against PyPI and records the sha256 of every file PyPI has for each pin, so the
# locks hold for every platform and Python the pins have wheels for (Apple Silicon and Intel Macs alike;
# scripts/docker-check-wheels.sh checks those wheels exist). Local pip settings (extra indexes, find-links)
# are ignored, so no locally built file's hash ends up in a lock.
set -euo pipefail
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$REPO"
BIN=${BIN:-$REPO/.venv/bin}
compile() {
  env -u PIP_FIND_LINKS -u PIP_EXTRA_INDEX_URL -u PIP_INDEX_URL PIP_CONFIG_FILE=/dev/null \
    "$BIN/pip-compile" --quiet --generate-hashes --allow-unsafe --strip-extras --no-emit-index-url \
    --no-emit-find-links --index-url https://pypi.org/simple --pip-args "--isolated" --output-file "$2" "$1"
}
compile requirements.txt requirements.lock
compile requirements-emulator.txt requirements-emulator.lock
# Drop the daemon's pins from the emulator lock: each entry is a `name==version \` line and its indented lines.
"$BIN/python" - <<'PY'
import re
from pathlib import Path

def name(line: str) -> str:
    return re.sub(r"[-_.]+", "-", line.split("==")[0]).lower()

daemon = {name(l) for l in Path("requirements.lock").read_text().splitlines() if "==" in l and not l[0].isspace()}
kept, keep = [], True
for line in Path("requirements-emulator.lock").read_text().splitlines():
    if line and not line[0].isspace() and "==" in line:
        keep = name(line) not in daemon
    elif line and not line[0].isspace():
        keep = True  # comments at the top
    if keep:
        kept.append(line)
kept.insert(6, "# Only the packages requirements.lock does not hold (scripts/lock-requirements.sh removes the rest).\n#")
Path("requirements-emulator.lock").write_text("\n".join(kept) + "\n")
PY
echo "wrote requirements.lock and requirements-emulator.lock"
