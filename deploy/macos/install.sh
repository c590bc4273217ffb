#!/bin/bash
# Runs keboola-sync natively on macOS as a launchd agent (no Docker): events come straight from FSEvents,
# so none of the Docker Desktop file-sharing caveats apply.
#
#   deploy/macos/install.sh --watch ~/KeboolaSync        install (or upgrade) and start at once and at login
#   deploy/macos/install.sh --uninstall                  stop and remove the agent (keeps config, ledger, logs)
#   deploy/macos/install.sh --render-only --watch DIR    print the filled-in plist and config, touch nothing
#
# Options: --home DIR (default ~/Library/Application Support/keboola-sync: venv, config.yaml, .env,
# ledger), --python PY (default python3, needs 3.11+), --no-check (skip `keboola-sync check`).
# Same config.yaml and .env as the container; only the paths differ (written once, never overwritten).
set -euo pipefail

LABEL=com.keboola.sync
REPO=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
TEMPLATE="$REPO/deploy/macos/$LABEL.plist.template"
HOME_DIR="$HOME/Library/Application Support/keboola-sync"
LOG_DIR="$HOME/Library/Logs/keboola-sync"
PLIST="$HOME/Library/LaunchAgents/$LABEL.plist"
PY=python3
WATCH=""
MODE=install
CHECK=1

die() { echo "install.sh: $*" >&2; exit 2; }
say() { echo "install.sh: $*" >&2; }

while (($#)); do
  case "$1" in
    --watch) WATCH=${2:?--watch needs a folder}; shift 2 ;;
    --home) HOME_DIR=${2:?--home needs a folder}; shift 2 ;;
    --python) PY=${2:?--python needs an interpreter}; shift 2 ;;
    --render-only) MODE=render; shift ;;
    --uninstall) MODE=uninstall; shift ;;
    --no-check) CHECK=0; shift ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
done

CONFIG="$HOME_DIR/config.yaml"
ENV_FILE="$HOME_DIR/.env"
VENV="$HOME_DIR/venv"
GUI="gui/$(id -u)"

# Values go into XML and YAML through Python's own escaping, so a path with spaces, '&' or quotes is safe.
render_plist() {
  "$PY" - "$TEMPLATE" "$VENV/bin/keboola-sync" "$CONFIG" "$ENV_FILE" "$HOME_DIR" "$LOG_DIR" <<'PYEOF'
import sys
from xml.sax.saxutils import escape
template, program, config, env_file, home, logs = sys.argv[1:]
text = open(template, encoding="utf-8").read()
for key, value in {"@KEBOOLA_SYNC@": program, "@CONFIG@": config, "@ENV_FILE@": env_file,
                   "@HOME_DIR@": home, "@LOG_DIR@": logs}.items():
    text = text.replace(key, escape(value))
sys.stdout.write(text)
PYEOF
}

render_config() {
  "$PY" - "$WATCH" "$HOME_DIR" "$LOG_DIR" <<'PYEOF'
import json, sys
watch, home, logs = sys.argv[1:]
q = json.dumps  # a JSON string is a valid YAML double-quoted scalar
print(f"""# Written by deploy/macos/install.sh for a native (launchd) run. Every key left out keeps its
# default; config.yaml.example in the repository lists them all.
watch:
  path: {q(watch)}
state:
  path: {q(home + "/state.db")}
daemon:
  health_file: {q(home + "/health.json")}
upload:
  spool_dir: {q(home + "/spool")}
logging:
  file: {q(logs + "/keboola-sync.log")}""")
PYEOF
}

absolute() { (cd "$1" && pwd -P); }

case "$MODE" in
  uninstall)
    launchctl bootout "$GUI/$LABEL" 2>/dev/null || true
    rm -f "$PLIST"
    say "stopped and removed $LABEL; $HOME_DIR and $LOG_DIR are kept (delete them to forget everything)"
    exit 0 ;;
  render)
    [[ -n $WATCH ]] || die "--render-only needs --watch FOLDER"
    [[ -d $WATCH ]] && WATCH=$(absolute "$WATCH")
    render_plist
    render_config
    exit 0 ;;
esac

[[ $(uname -s) == Darwin ]] || die "this installs a macOS launchd agent; elsewhere use docker compose (docs/deployment.md)"
"$PY" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null \
  || die "$PY is missing or older than 3.11; install Python 3.12 (python.org or Homebrew) and pass --python"
mkdir -p "$HOME_DIR" "$LOG_DIR" "$(dirname "$PLIST")"

if [[ ! -f $CONFIG ]]; then
  [[ -n $WATCH ]] || die "no $CONFIG yet: pass --watch FOLDER (the folder to sync)"
  [[ -d $WATCH ]] || die "the folder '$WATCH' does not exist; create it or pass another --watch"
  WATCH=$(absolute "$WATCH")
  render_config >"$CONFIG"
  say "wrote $CONFIG (watching $WATCH)"
elif [[ -n $WATCH ]]; then
  say "kept the existing $CONFIG; --watch ignored (edit watch.path there to change the folder)"
fi

if [[ ! -f $ENV_FILE ]]; then
  if [[ -f $REPO/.env ]]; then cp "$REPO/.env" "$ENV_FILE"; else cp "$REPO/.env.example" "$ENV_FILE"; fi
  say "wrote $ENV_FILE; put your KBC_STORAGE_API_TOKEN there if it is empty"
fi
chmod 600 "$ENV_FILE"

say "installing the pinned dependencies into $VENV"
[[ -x $VENV/bin/python ]] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$REPO/requirements.txt"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps --force-reinstall "$REPO"

if ((CHECK)); then
  "$VENV/bin/keboola-sync" --config "$CONFIG" --env-file "$ENV_FILE" check \
    || die "'keboola-sync check' failed (above); fix $CONFIG or $ENV_FILE and run this again (or --no-check)"
fi

render_plist >"$PLIST"
plutil -lint "$PLIST" >/dev/null || die "the rendered $PLIST is not a valid plist"
launchctl bootout "$GUI/$LABEL" 2>/dev/null || true   # an upgrade replaces the running agent
launchctl bootstrap "$GUI" "$PLIST"
say "started $LABEL. Status: launchctl print $GUI/$LABEL | head; $VENV/bin/keboola-sync --config \"$CONFIG\" status"
say "log: $LOG_DIR/keboola-sync.log"
