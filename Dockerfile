# syntax=docker/dockerfile:1
#
# The runtime image (the default target) runs every production process: `notify-api` (default),
# `notify-worker`, `notify migrate`, `notify keys create --name ...`. It leaves out the development tools
# (notify.devtools: the sandbox provider, the local stack); the `sandbox` target is the same image with them,
# for the sandbox provider of docker-compose.yaml.
#
#   docker build -t notify:local .
#   docker build --target sandbox -t notify-sandbox:local .
#   docker run --rm notify:local notify --help

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
assert any(migrations_dir().glob('*.sql')), 'migrations missing from the wheel'" \
    && cp -a /opt/venv /opt/runtime-venv \
    && rm -r /opt/runtime-venv/lib/python*/site-packages/notify/devtools

# --- base: what both images share (an unprivileged user, the environment).
FROM ${PYTHON_IMAGE} AS base

RUN groupadd --system --gid 10001 notify \
    && useradd --system --uid 10001 --gid notify --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin notify

COPY --from=builder /opt/venv /opt/venv

# Inside a container every listener must bind all interfaces (the settings default to 127.0.0.1). The virtualenv
# is copied to /opt/venv in each image below (its scripts name /opt/venv/bin/python).
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    NOTIFY_API_HOST=0.0.0.0 \
    NOTIFY_WORKER_HTTP_HOST=0.0.0.0 \
    NOTIFY_SANDBOX_HOST=0.0.0.0

WORKDIR /app

# No HEALTHCHECK here: the same image runs different processes; docker-compose.yaml defines one per service.
# The processes handle SIGTERM themselves (graceful drain), so they can run as PID 1.
STOPSIGNAL SIGTERM

# --- sandbox: the sandbox provider gateway, for development stacks only (it shows what it received).
FROM base AS sandbox

COPY --from=builder /opt/venv /opt/venv
USER 10001:10001
EXPOSE 9100
CMD ["notify", "sandbox", "--host", "0.0.0.0", "--port", "9100"]

# --- runtime (the default target): the virtualenv without the development tools.
FROM base AS runtime

LABEL org.opencontainers.image.title="notify" \
      org.opencontainers.image.description="Self-hosted notification backend (API, worker, migrations)"

COPY --from=builder /opt/runtime-venv /opt/venv
USER 10001:10001

# 8080 API, 8081 worker /health + /metrics.
EXPOSE 8080 8081
CMD ["notify-api"]
