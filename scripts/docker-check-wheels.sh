#!/bin/bash
# Checks that every pin in requirements.txt and requirements-emulator.txt has a wheel for the image's Python on both Docker Desktop
# architectures (Apple Silicon = linux/arm64, Intel = linux/amd64). The Dockerfile installs with
# --only-binary=:all:, so a pin without such a wheel would break `docker compose up` on that Mac.
# Run it after changing requirements*.txt:
#
#   scripts/docker-check-wheels.sh [PYTHON_VERSION]     (default 3.12, the image's Python)
#
# Resolves against plain PyPI with metadata only (pip --dry-run); downloads no wheels. Exit 1 on a gap.
set -euo pipefail
PYV=${1:-3.12}
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PIP=${PIP:-$REPO/.venv/bin/pip}
status=0
for arch in aarch64 x86_64; do
  out=$(mktemp -d)
  if "$PIP" --isolated install --quiet --dry-run --ignore-installed --no-deps \
      --index-url https://pypi.org/simple --only-binary=:all: \
      --platform "manylinux2014_$arch" --platform "manylinux_2_28_$arch" --platform "manylinux_2_34_$arch" \
      --python-version "$PYV" --implementation cp --target "$out/t" \
      -r "$REPO/requirements-emulator.txt" 2>"$out/err"; then
    echo "ok   linux/$arch, CPython $PYV: every pin has a wheel"
  else
    echo "FAIL linux/$arch, CPython $PYV:"; grep -E 'ERROR' "$out/err" | sed 's/^/     /'
    status=1
  fi
  rm -rf "$out"
done
exit $status
