#!/bin/sh
# The image's entrypoint: choose the user the daemon runs as, then hand over to tini (PID 1).
#
# Why: ./logs is a folder on the host. Docker Desktop lets any container user write there, but on a Linux
# engine (and Colima, Rancher Desktop) only its owner can, and that owner is whoever cloned the project,
# whose uid the image cannot know in advance. So, started as root (the image's default), the daemon runs
# as the owner of /app/logs, and its log files belong to that person on the host; when the folder belongs
# to root (Docker made it), as `keboola` (10001). No other host folder is touched: /state (a named volume)
# and the spool in /tmp are the container's own, handed to the chosen user. Started with `--user`, this
# changes nothing. tini and the daemon never run as root.
set -eu
if [ "$(id -u)" != 0 ]; then
    exec /usr/bin/tini -- "$@"
fi
uid=$(stat -c %u /app/logs)
gid=$(stat -c %g /app/logs)
if [ "$uid" = 0 ]; then
    uid=10001
    gid=10001
    chown 10001:10001 /app/logs
fi
for dir in /state /tmp/keboola-sync; do
    if [ -d "$dir" ] && [ "$(stat -c %u "$dir")" != "$uid" ]; then
        chown -R "$uid:$gid" "$dir"
    fi
done
export HOME=/app
exec setpriv --reuid="$uid" --regid="$gid" --clear-groups -- /usr/bin/tini -- "$@"
