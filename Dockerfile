# keboola-sync container image.
#
#   docker build --network host -t keboola-sync .      (CI: the build reaches PyPI through the host)
#   docker compose up -d                                (macOS: see docs/deployment.md)
#
# Two stages so the final image holds only the interpreter, tini and a ready virtualenv: no compiler,
# no pip cache, no build tools. Every runtime dependency comes pinned from requirements.txt.
ARG PYTHON_IMAGE=python:3.12-slim
# The runtime stage's base; it must carry the builder's Python (the venv links to that interpreter).
# Only tests change it: they build on a tini-less copy of the base to prove the tini install below.
ARG RUNTIME_IMAGE=${PYTHON_IMAGE}

# --- builder: a virtualenv with the pinned dependencies and the package itself ---------------------------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /build
# Dependencies first, in their own layer, so editing the source does not reinstall them.
# --only-binary: every pin has a manylinux wheel; refusing sdists keeps a compiler out of the picture.
COPY requirements.txt ./
RUN pip install --no-cache-dir --only-binary=:all: -r requirements.txt
COPY pyproject.toml README.md* ./
COPY src ./src
# --no-deps: the dependencies are exactly the pinned set above, nothing resolved a second time.
# pip (and setuptools, which 3.11 venvs carry) go afterwards: nobody installs into the runtime venv.
# pip has already compiled every module to .pyc, so the non-root runtime never needs to write there.
RUN pip install --no-cache-dir --no-deps . \
    && pip uninstall --yes pip setuptools
# Marks the finished builder stage (not its dependency layer), so superseded ones can be pruned with
# `docker image prune --filter label=keboola-sync.stage=builder` without losing the pip cache layer.
LABEL keboola-sync.stage=builder

# --- runtime -----------------------------------------------------------------------------------------------
FROM ${RUNTIME_IMAGE}
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
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

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
