# syntax=docker/dockerfile:1
#
# One image for every notify process: `notify api` (default), `notify worker`, `notify migrate`,
# `notify sandbox`, `notify keys create --name ...`. See docker-compose.yaml for the whole stack.
#
#   docker build -t notify:local .
#   docker run --rm notify:local --help

ARG PYTHON_IMAGE=python:3.12-slim

# --- builder: build the wheel (migrations are packaged into it as notify/_migrations) and install it with
# its runtime dependencies into /opt/venv. No extras: `dev` holds a local broker binary, `test` the tools.
FROM ${PYTHON_IMAGE} AS builder

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
COPY pyproject.toml README.md ./
COPY src ./src
COPY migrations ./migrations

RUN python -m venv /opt/venv \
    && /opt/venv/bin/pip install --upgrade pip \
    && /opt/venv/bin/pip wheel --no-deps --wheel-dir /build/dist . \
    && /opt/venv/bin/pip install /build/dist/notify-*.whl \
    && /opt/venv/bin/python -c "from notify.adapters.postgres.migrate import migrations_dir; \
assert any(migrations_dir().glob('*.sql')), 'migrations missing from the wheel'"

# --- runtime: the virtualenv only, run as an unprivileged user.
FROM ${PYTHON_IMAGE} AS runtime

LABEL org.opencontainers.image.title="notify" \
      org.opencontainers.image.description="Self-hosted notification backend (API, worker, migrations)"

RUN groupadd --system --gid 10001 notify \
    && useradd --system --uid 10001 --gid notify --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin notify

COPY --from=builder /opt/venv /opt/venv

# Inside a container every listener must bind all interfaces (the settings default to 127.0.0.1).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NOTIFY_API_HOST=0.0.0.0 \
    NOTIFY_WORKER_HTTP_HOST=0.0.0.0 \
    NOTIFY_SANDBOX_HOST=0.0.0.0

WORKDIR /app
USER 10001:10001

# 8080 API, 8081 worker /health + /metrics, 9100 sandbox provider.
EXPOSE 8080 8081 9100

# No HEALTHCHECK here: the same image runs different processes; docker-compose.yaml defines one per service.
# The processes handle SIGTERM themselves (graceful drain), so they can run as PID 1.
STOPSIGNAL SIGTERM
ENTRYPOINT ["notify"]
CMD ["api"]
