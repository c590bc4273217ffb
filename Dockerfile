# keboola-sync container image.
#
#   docker build --network host -t keboola-sync .      (CI: the build reaches PyPI through the host)
#   docker compose up -d                                (macOS: see docs/deployment.md)
#
# Built in stages so the final image holds only the interpreter, tini and a ready virtualenv: no compiler,
# no pip cache, no build tools. Every runtime dependency comes pinned with its hash from requirements.lock.
# The Keboola Storage API emulator is not in it: `docker build --target emulator` adds it (docs/emulator.md).
ARG PYTHON_IMAGE=python:3.12-slim
# The runtime stage's base; it must carry the builder's Python (the venv links to that interpreter).
# Only tests change it: they build on a tini-less copy of the base to prove the tini install below.
ARG RUNTIME_IMAGE=${PYTHON_IMAGE}

# --- builder: a virtualenv with the hash-pinned dependencies and the package itself ----------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
# A venv without pip: the base image's pip installs into it (`pip --python`), so the runtime venv never
# holds pip or setuptools and nothing has to be uninstalled from it afterwards.
RUN python -m venv --without-pip /opt/venv
WORKDIR /build
# Dependencies first, in their own layer, so editing the source does not reinstall them.
# requirements.lock is requirements.txt with the sha256 of every file (scripts/lock-requirements.sh):
# --require-hashes refuses anything else, --no-deps installs exactly that set (nothing resolved a second
# time; `pip check` proves the set is complete), and --only-binary keeps a compiler out of the picture.
COPY requirements.lock ./
RUN pip --python /opt/venv/bin/python install --no-cache-dir --only-binary=:all: --require-hashes --no-deps \
        -r requirements.lock \
    && pip --python /opt/venv/bin/python check
COPY pyproject.toml README.md* ./
COPY src ./src
# The package itself (its build backend, setuptools, lives only in pip's temporary build environment).
# pip compiles every module to .pyc, so the non-root runtime never needs to write to the venv.
RUN pip --python /opt/venv/bin/python install --no-cache-dir --no-deps . \
    && pip --python /opt/venv/bin/python check
# Marks the finished builder stage (not its dependency layer), so superseded ones can be pruned with
# `docker image prune --filter label=keboola-sync.stage=builder` without losing the pip cache layer.
LABEL keboola-sync.stage=builder

# --- runtime -----------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE} AS runtime
# Keep in step with pyproject.toml (tests/docker checks the built label against keboola_sync.__version__).
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="keboola-sync" \
      org.opencontainers.image.description="Keeps a folder of CSV files in sync with Keboola Storage tables" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT"

# tini as PID 1 forwards SIGTERM to the daemon and reaps zombies. It comes from Debian's package so the
# same line works on the official python:3.12-slim (which lacks tini) and on CI's stand-in base (which
# already has it: apt then has nothing to do). `docker run --init` would also work, but only if every
# caller remembers the flag; baking it in makes plain `docker run` and compose behave the same.
# The unpinned version is deliberate: the base image's Debian release decides which tini exists.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install --yes --no-install-recommends tini \
    && apt-get clean \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/*.bin /var/log/apt /var/log/dpkg.log \
    && groupadd --system --gid 10001 keboola \
    && useradd --system --uid 10001 --gid keboola --home-dir /app --no-create-home \
       --shell /usr/sbin/nologin keboola \
    && mkdir -p /app/logs /state /data /config /tmp/keboola-sync \
    && chown keboola:keboola /app/logs /state /tmp/keboola-sync \
    && ln -s /config/config.yaml /app/config.yaml

COPY --from=builder /opt/venv /opt/venv
# Picks the daemon's user (the owner of the mounted logs folder, else keboola) and starts tini as it.
COPY deploy/docker/entrypoint.sh /usr/local/bin/keboola-sync-entrypoint
# KEBOOLA_SYNC_IN_IMAGE: in this image a start-up problem waits, unhealthy, instead of a crash loop
# (daemon.startup_problem: auto).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    KEBOOLA_SYNC_IN_IMAGE=1

# ./config.yaml (the CLI's default) is /app/config.yaml, a link to /config/config.yaml: compose mounts
# the project's config/ folder read-only at /config, so a missing config.yaml stays missing (built-in defaults)
# instead of Docker creating an empty directory in its place. `-v $PWD/config.yaml:/app/config.yaml:ro`
# also works (Docker follows the link inside the image). Logs go to /app/logs, the ledger and the
# heartbeat to /state (a named volume in compose), the watched folder is mounted read-only at /data.
WORKDIR /app
# No USER line: the entrypoint starts as root only to choose the user (see deploy/docker/entrypoint.sh),
# then runs tini and the daemon as that user. `docker run --user ...` skips the choice.

STOPSIGNAL SIGTERM
# `health` reads only the heartbeat file: no Keboola call, so it is cheap every 30 s.
HEALTHCHECK --interval=30s --timeout=10s --start-period=60s --retries=3 \
    CMD ["keboola-sync", "health"]
ENTRYPOINT ["/usr/local/bin/keboola-sync-entrypoint"]
CMD ["keboola-sync", "run"]

# --- emulator-builder: the emulator extra (moto, Flask, ...), outside the venv -------------------------------
# Only the `emulator` target uses it. It stands after `runtime` so that a build of `runtime` (compose's
# target) never makes it, even with the classic builder, which builds every stage before its target. The packages go to a folder of their own, so the emulator image
# is the runtime image plus one layer (PYTHONPATH points there) and shares every other layer with it.
FROM builder AS emulator-builder
COPY requirements-emulator.lock ./
# That lock holds only the extra's own packages (their dependencies on the daemon's pins are met by the
# venv: `pip check` with both on the path proves it).
RUN pip --python /opt/venv/bin/python install --no-cache-dir --only-binary=:all: --require-hashes --no-deps \
        --target /opt/emulator -r requirements-emulator.lock \
    && PYTHONPATH=/opt/emulator pip --python /opt/venv/bin/python check
LABEL keboola-sync.stage=builder

# --- emulator: the runtime image plus the emulator extra (docker-compose.local.yml, `--target emulator`) -----
FROM runtime AS emulator
COPY --from=emulator-builder /opt/emulator /opt/emulator
ENV PYTHONPATH=/opt/emulator

# --- the default target: the runtime image (the last stage is what a plain `docker build` makes) ----------
FROM runtime
