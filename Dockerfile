# syntax=docker/dockerfile:1
# segflow: one image for `segflow consume` (default), `segflow serve` and `segflow upload`.
#
#   docker build -t segflow:0.1.0 .
#   docker run --rm -e SEGFLOW_KAFKA__BOOTSTRAP_SERVERS=... segflow:0.1.0            # consume
#   docker run --rm -e SEGFLOW_HEALTH_PORT=8080 ... segflow:0.1.0 serve             # export API
#   docker run --rm -v "$PWD:/data:ro" ... segflow:0.1.0 upload /data/file.ndjson    # one-shot
#
# Stage 1 builds the wheel and installs it with its dependencies into a virtualenv; stage 2
# copies only that virtualenv onto the same slim base (no compiler, no sources, no pip cache)
# and runs as an unprivileged numeric user.
ARG PYTHON_IMAGE=python:3.11.14-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_NO_CACHE_DIR=1 PYTHONDONTWRITEBYTECODE=1
WORKDIR /src
# The venv's own pip (bundled with the pinned Python) builds the wheel through the PEP 517
# backend (hatchling, isolated); dependencies are installed from wheels only: the slim base
# has no compiler, and a source build would silently differ from what CI tested.
RUN python -m venv /opt/segflow
COPY pyproject.toml README.md ./
COPY segflow segflow
COPY consumer consumer
COPY producer_tools producer_tools
COPY http_api http_api
COPY schemas schemas
RUN /opt/segflow/bin/pip wheel --no-deps --wheel-dir /dist . \
    && /opt/segflow/bin/pip install --only-binary=:all: /dist/*.whl \
    && /opt/segflow/bin/pip uninstall --yes pip

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="segflow" \
      org.opencontainers.image.description="Segment-membership ingestion: files -> Kafka -> Cassandra" \
      org.opencontainers.image.licenses="Apache-2.0"
RUN groupadd --system --gid 10001 segflow \
    && useradd --system --uid 10001 --gid 10001 --home-dir /home/segflow --create-home segflow \
    && mkdir -p /var/lib/segflow/exports \
    && chown -R 10001:10001 /var/lib/segflow
COPY --from=build /opt/segflow /opt/segflow
# Containers listen on every interface (the defaults, 127.0.0.1, suit a laptop);
# SEGFLOW_HEALTH_PORT tells the HEALTHCHECK which process it probes (9400 consume, 8080 serve).
ENV PATH=/opt/segflow/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    SEGFLOW_CONSUMER__HTTP_HOST=0.0.0.0 \
    SEGFLOW_SERVE__HOST=0.0.0.0 \
    SEGFLOW_SERVE__EXPORT_DIR=/var/lib/segflow/exports \
    SEGFLOW_HEALTH_PORT=9400
USER 10001:10001
WORKDIR /home/segflow
EXPOSE 9400 8080
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('SEGFLOW_HEALTH_PORT', '9400') + '/healthz', timeout=2)"]
ENTRYPOINT ["segflow"]
CMD ["consume"]
