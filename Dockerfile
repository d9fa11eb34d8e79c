# syntax=docker/dockerfile:1
# One image for every gristmill service: the app to run is the argument.
#
#   docker build -t gristmill .
#   docker run --rm -e GRISTMILL_REDIS_URL=redis://redis:6379/0 gristmill services.orders:app
#
# Settings come only from GRISTMILL_* variables at run time; none is baked in here (the Redis
# URL may hold a password). See docs/deploy.md.

# Both stages use the same base, so the venv's interpreter symlinks stay valid when copied.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

# -- build: install the package and its runtime dependencies into a venv -----------------------
FROM ${PYTHON_IMAGE} AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

RUN python -m venv /opt/gristmill

WORKDIR /build
# README.md* matches nothing rather than failing while the README does not exist yet
COPY pyproject.toml README.md* ./
COPY src/ src/
# `.` alone: the runtime dependencies of pyproject.toml, never the dev or bench extras
RUN /opt/gristmill/bin/pip install --no-cache-dir .

# -- runtime: the venv, the example services and their .proto files, a non-root user -----------
FROM ${PYTHON_IMAGE}

# A numeric uid: Kubernetes can only verify runAsNonRoot for a numeric USER.
RUN groupadd --system --gid 10001 gristmill \
    && useradd --system --uid 10001 --gid gristmill --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin gristmill

ENV PATH=/opt/gristmill/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

COPY --from=build /opt/gristmill /opt/gristmill

# `runtime serve` imports `services.x:app` from the working directory, and the services load
# their schemas from ../schemas relative to their own files: keep both side by side here.
WORKDIR /app
COPY services/ services/
COPY schemas/ schemas/
# Compiled now, as root: at run time the root filesystem may be read-only and /app is not ours.
RUN python -m compileall -q services

USER 10001:10001

# Alive = the event loop turns (the health port's /livez); a Redis outage is not a reason to
# restart (docs/deploy.md, "Health").
HEALTHCHECK --interval=15s --timeout=5s --retries=3 CMD ["runtime", "health", "--live"]
# Exec form: `runtime` is PID 1 and receives SIGTERM itself; it drains, then exits 0.
ENTRYPOINT ["runtime", "serve"]
CMD ["services.orders:app"]
