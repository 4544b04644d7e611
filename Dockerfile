# One image for the API (`roster api`) and the worker (`roster worker`).

FROM python:3.11-slim-bookworm AS build
ENV UV_COMPILE_BYTECODE=1 UV_LINK_MODE=copy UV_PYTHON_DOWNLOADS=never
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /srv
COPY pyproject.toml uv.lock README.md ./
RUN uv sync --frozen --no-dev --no-install-project
COPY app ./app
COPY workers ./workers
COPY sandbox ./sandbox
RUN uv sync --frozen --no-dev

FROM python:3.11-slim-bookworm
RUN useradd --system --uid 10001 --home-dir /srv roster
WORKDIR /srv
COPY --from=build /srv/.venv ./.venv
COPY app ./app
COPY workers ./workers
COPY sandbox ./sandbox
COPY migrations ./migrations
COPY alembic.ini ./
ENV PATH="/srv/.venv/bin:$PATH" PYTHONUNBUFFERED=1
# The project's own modules compiled now, so no process compiles them at start.
RUN python -m compileall -q app workers sandbox
USER 10001
EXPOSE 8000
# The API's check. A worker container (`roster worker`) replaces it with the worker's own:
# `roster worker --check` exits 0 while a worker reported itself alive to Redis recently
# (docker run --health-cmd "roster worker --check", or `healthcheck.test` in compose).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD ["python", "-c", "import sys, urllib.request; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz', timeout=4).status != 200)"]
CMD ["roster", "api", "--host", "0.0.0.0", "--port", "8000"]
