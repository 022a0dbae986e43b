# syntax=docker/dockerfile:1
#
#   docker build -t interpserve .
#   docker run --rm -p 8000:8000 --cpus 2 interpserve
#
# Serves examples/hello.py. For your own app, copy it into /app in place of the example and set
# INTERPSERVE_APP (or build FROM this image). Every option is an INTERPSERVE_* variable, or a flag
# after the image name: `docker run interpserve --workers 4`. Left unset, the number of workers
# follows the container's CPU limit (--cpus, Kubernetes limits.cpu).

ARG PYTHON_IMAGE=python:3.13-slim

# --- build: wheels for interpserve and every dependency; nothing of this stage is shipped -------
FROM ${PYTHON_IMAGE} AS build
# A C compiler for interpserve's compiled module (interpserve/_speedups.c): without it the wheel
# would quietly leave the module out, and the server run the slower Python it replaces.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY pyproject.toml setup.py README.md ./
COPY interpserve ./interpserve
# fast: httptools; metrics: prometheus-client, for --metrics-port.
ARG EXTRAS=fast,metrics
RUN pip wheel --no-cache-dir --wheel-dir /wheels ".[${EXTRAS}]"

# --- runtime: Python, the wheels installed, the app; no compiler, no pip cache, not root ---------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1
# The wheels come in through a bind mount, so they take no layer of the final image.
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index /wheels/*.whl
# A fixed numeric id: Kubernetes' runAsNonRoot can only verify a numeric USER.
RUN groupadd --system --gid 10001 interpserve \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
        --shell /usr/sbin/nologin interpserve
WORKDIR /app
# Owned by root and read-only to the server's user: a compromised app cannot rewrite its code.
COPY examples/__init__.py examples/hello.py ./examples/
# Bytecode now: PYTHONDONTWRITEBYTECODE keeps it from being written at run time, and without it
# every worker interpreter compiles the app from source at each start (time, and memory each).
RUN python -m compileall -q /app
ENV INTERPSERVE_APP=examples.hello:app \
    INTERPSERVE_HOST=0.0.0.0 \
    INTERPSERVE_PORT=8000 \
    INTERPSERVE_HEALTH_PATH=/healthz
USER 10001:10001
EXPOSE 8000
# Answered by the front end, not the app: 200 once the workers are ready, 503 when draining.
# The slim image has no curl; Python's urllib exits non-zero on an error status or no answer.
# It reads the port and path from the variables: change them with -e INTERPSERVE_PORT=...,
# not with --port after the image name, or the probe asks the wrong port.
HEALTHCHECK --interval=10s --timeout=3s --start-period=30s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s%s' % (os.environ.get('INTERPSERVE_PORT', '8000'), os.environ.get('INTERPSERVE_HEALTH_PATH', '/healthz')), timeout=2)"]
# Exec form: interpserve's supervisor is PID 1 and gets SIGTERM itself, and drains before exiting.
ENTRYPOINT ["interpserve"]
