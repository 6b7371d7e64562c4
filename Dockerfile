# Kameng API and worker image (docker-compose.yml runs `kameng serve`, `kameng worker`
# and `kameng migrate` from it).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy \
    UV_PYTHON_DOWNLOADS=never \
    UV_PROJECT_ENVIRONMENT=/app/.venv \
    PATH=/app/.venv/bin:$PATH

# uv from PyPI, pinned: the version that wrote uv.lock.
RUN pip install --no-cache-dir uv==0.13.9

WORKDIR /app

# Dependencies first (their layer is reused until uv.lock changes), then the project itself.
COPY pyproject.toml uv.lock ./
RUN uv sync --frozen --no-dev --no-install-project
COPY . .
RUN uv sync --frozen --no-dev

# An unprivileged user; the code and the venv stay root-owned (read-only to the app).
# /tmp/prometheus: PROMETHEUS_MULTIPROC_DIR must exist (compose mounts a tmpfs over it).
RUN useradd --system --uid 10001 --no-create-home --home-dir /app kameng \
    && mkdir -p /tmp/prometheus \
    && chown kameng /tmp/prometheus
USER kameng

EXPOSE 8000
CMD ["kameng", "serve", "--host", "0.0.0.0", "--port", "8000"]
