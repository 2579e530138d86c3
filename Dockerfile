# syntax=docker/dockerfile:1.7
# One image for every Tidemark process: the command picks it, e.g.
#   tidemark-ingest-svc serve --host 0.0.0.0 --port 8000   (any of the six services)
#   tidemark-connector-svc migrate                          (migrations, the Helm hook runs these)
#   tidemark-worker run RUN_ID                              (an ingest worker; the Kubernetes launcher)
#   tidemark up --host 0.0.0.0 --demo                       (the embedded platform, the default)
# Python 3.11 is the version the test suite runs on; the lockfile admits it.

FROM ghcr.io/astral-sh/uv:0.13.9 AS uv

FROM python:3.11-slim-bookworm AS builder
COPY --from=uv /uv /usr/local/bin/uv
# Bytecode is compiled once here, not by every pod at start; copy mode because the cache mount is
# another filesystem; never download a Python: the base image's is the one the runtime stage has.
ENV UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/opt/tidemark
WORKDIR /src
# Dependencies first (only the lockfile and the members' pyproject files), so a code change
# reuses this layer.
COPY pyproject.toml uv.lock ./
COPY libs/common/pyproject.toml libs/common/
COPY libs/cli/pyproject.toml libs/cli/
COPY libs/testing/pyproject.toml libs/testing/
COPY services/connector-svc/pyproject.toml services/connector-svc/
COPY services/ingest-svc/pyproject.toml services/ingest-svc/
COPY services/orchestrator-svc/pyproject.toml services/orchestrator-svc/
COPY services/jobs-svc/pyproject.toml services/jobs-svc/
COPY services/schema-svc/pyproject.toml services/schema-svc/
COPY services/impact-svc/pyproject.toml services/impact-svc/
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-install-workspace
COPY libs libs
COPY services services
# Non-editable: the runtime stage gets the installed packages, not links into /src.
RUN --mount=type=cache,target=/root/.cache/uv \
    uv sync --frozen --no-dev --no-editable

FROM python:3.11-slim-bookworm AS runtime
LABEL org.opencontainers.image.title="tidemark" \
      org.opencontainers.image.description="Tidemark lakehouse ingestion: every service and the ingest worker"
# A fixed numeric uid/gid, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
RUN groupadd --system --gid 10001 tidemark \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/tidemark --create-home --shell /usr/sbin/nologin tidemark
COPY --from=builder /opt/tidemark /opt/tidemark
ENV PATH=/opt/tidemark/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TIDEMARK_HOME=/home/tidemark/.tidemark
USER 10001:10001
WORKDIR /home/tidemark
EXPOSE 8000
CMD ["tidemark", "up", "--host", "0.0.0.0", "--port", "8000", "--demo"]
