# syntax=docker/dockerfile:1
# The model gateway image.
#   docker build -t model-gateway .
#   docker run --rm -p 8080:8080 -v "$PWD/routes.yaml:/etc/gateway/routes.yaml:ro" model-gateway
# The base is pinned by tag; pin it by digest too (python:3.11.13-slim-bookworm@sha256:...) for
# fully reproducible builds. Both stages must use the same image: the venv links to its python.
ARG PYTHON_IMAGE=python:3.11.13-slim-bookworm

# ---- builder: install the package and its dependencies into a self-contained venv ----------
FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_NO_INPUT=1 \
    PYTHONDONTWRITEBYTECODE=1
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src
# Dependencies first, from the lock alone (a layer cached until it changes): the exact versions
# and hashes of requirements/runtime.txt (scripts/lock makes it), the build backend included.
COPY requirements/runtime.txt requirements/runtime.txt
RUN pip install --require-hashes -r requirements/runtime.txt
# Then the package: no dependency resolution, built by the locked hatchling (no unpinned backend
# fetched). Only what the wheel needs (pyproject: packages gateway + policies, readme, version).
# pip check fails the build if pyproject.toml asks for something the lock does not have.
COPY pyproject.toml README.md ./
COPY gateway ./gateway
COPY policies ./policies
RUN pip install --no-deps --no-build-isolation . \
    && pip check \
    && gateway --version

# ---- runtime: the venv, a default routes.yaml, a non-root user ------------------------------
FROM ${PYTHON_IMAGE} AS runtime
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN groupadd --system --gid 10001 gateway \
    && useradd --system --uid 10001 --gid 10001 --no-create-home --home-dir /nonexistent \
       --shell /usr/sbin/nologin gateway
COPY --from=builder /opt/venv /opt/venv
# A default route table; mount your own over /etc/gateway (compose: a file, k8s: a ConfigMap).
COPY routes.yaml /etc/gateway/routes.yaml
USER 10001:10001
EXPOSE 8080
# No curl in slim images: probe with the standard library. urlopen raises on non-2xx.
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
    CMD ["python", "-c", \
         "import urllib.request; urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2)"]
# Exec form: gateway is PID 1 and gets SIGTERM (graceful drain) and SIGHUP (reload routes).
ENTRYPOINT ["gateway"]
CMD ["serve", "--config", "/etc/gateway/routes.yaml", "--host", "0.0.0.0", "--port", "8080"]
