# syntax=docker/dockerfile:1
# One image for every gristmill service: the app to run is the argument.
#
#   docker build -t gristmill .
#   docker run --rm -e GRISTMILL_REDIS_URL=redis://redis:6379/0 gristmill services.orders:app
#
# Settings come only from GRISTMILL_* variables at run time; none is baked in here (the Redis
# URL may hold a password). See docs/deploy.md.
#
# BASE is any Debian-like image with python3 (3.11+) and its venv module. Both stages use it.
# Where pip needs a private CA to reach the package index, pass it as a build secret; it is
# mounted for the one RUN that downloads and never stays in a layer:
#   docker build --secret id=cabundle,src=/etc/ssl/certs/ca-certificates.crt .
ARG BASE=python:3.11-slim-bookworm

# -- wheels: the package and every runtime dependency, as wheels ------------------------------
FROM ${BASE} AS wheels

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1

WORKDIR /build
# README.md* matches nothing rather than failing while the README does not exist yet
COPY pyproject.toml README.md* ./
COPY src/ src/
# `.` alone: the runtime dependencies of pyproject.toml, never the dev or bench extras
RUN --mount=type=secret,id=cabundle \
    if [ -s /run/secrets/cabundle ]; then export PIP_CERT=/run/secrets/cabundle; fi \
    && python3 -m venv /opt/build \
    && /opt/build/bin/pip wheel --wheel-dir /wheels .

# -- runtime: a venv with the wheels installed offline, the example services, a non-root user --
FROM ${BASE}

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/gristmill/bin:$PATH

# A numeric uid: Kubernetes can only verify runAsNonRoot for a numeric USER.
RUN groupadd --system --gid 10001 gristmill \
    && useradd --system --uid 10001 --gid gristmill --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin gristmill

# Installed from the wheels stage only (--no-index): nothing is downloaded here, and the
# wheels themselves are bind-mounted, so they take no room in the image. pip then leaves.
RUN --mount=type=bind,from=wheels,source=/wheels,target=/wheels \
    python3 -m venv /opt/gristmill \
    && /opt/gristmill/bin/pip install --no-index --find-links /wheels gristmill \
    && /opt/gristmill/bin/pip uninstall --yes pip

# `runtime serve` imports `services.x:app` from the working directory, and the services load
# their schemas from ../schemas relative to their own files: keep both side by side here.
WORKDIR /app
COPY services/ services/
COPY schemas/ schemas/
# Compiled now, as root: at run time the root filesystem may be read-only and /app is not ours.
RUN python3 -m compileall -q services

USER 10001:10001

# The health server (GRISTMILL_HEALTH_PORT, 8080 by default): /livez, /readyz, /metrics.
EXPOSE 8080
# Healthy = the event loop turns (/livez): a Redis outage is no reason to restart a container
# (docs/deploy.md, "Health"); readiness is for the chart's probe. (Docker image format only.)
HEALTHCHECK --interval=15s --timeout=5s --start-period=30s --retries=3 \
    CMD ["runtime", "health", "--live"]

# Exec form: `runtime` is PID 1 and receives SIGTERM itself; it drains, then exits 0.
STOPSIGNAL SIGTERM
ENTRYPOINT ["runtime", "serve"]
CMD ["services.orders:app"]
