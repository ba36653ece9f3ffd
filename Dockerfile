# The `rating` CLI in a container: docker build -t usage-rating:local .
#   docker run --rm usage-rating:local --help
# docker-compose.yml runs it as init, processor-N and simulator.

ARG PYTHON_IMAGE=python:3.11-slim

# ---- build: a self-contained virtualenv with the package and its dependencies
FROM ${PYTHON_IMAGE} AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1
# A C compiler for mypyc, which compiles the hot path to C extensions (setup.py).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gcc libc6-dev \
    && rm -rf /var/lib/apt/lists/*
RUN python -m venv /opt/venv
ENV PATH=/opt/venv/bin:$PATH
WORKDIR /src

# Dependencies first, from pyproject.toml alone: this layer survives code edits.
COPY pyproject.toml ./
RUN python -c "import tomllib; deps = tomllib.load(open('pyproject.toml', 'rb'))['project']['dependencies']; print('\n'.join(deps))" > /tmp/requirements.txt \
    && pip install -r /tmp/requirements.txt

COPY . .
# The check runs from / so that it imports the installed package, not /src.
RUN pip install . \
    && rating --help > /dev/null \
    && cd / && python -c "from stream.compiled import engine_build; b = engine_build(); print(b.describe()); assert b.fully_compiled"

# ---- runtime: the virtualenv, the settings and the schemas; no sources, no pip cache
FROM ${PYTHON_IMAGE}
ENV PATH=/opt/venv/bin:$PATH \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    RATING_SETTINGS=/app/config/settings.yaml
COPY --from=build /opt/venv /opt/venv
WORKDIR /app
# config/ is also bind-mounted read-only by docker-compose.yml, so users edit
# the catalog without rebuilding; the copy makes the image work on its own.
# The Avro schemas ship inside the package (the `schemas` package data).
COPY config/ /app/config/
RUN useradd --system --uid 10001 --user-group --no-create-home \
       --home-dir /app --shell /usr/sbin/nologin rating \
    && rating catalog validate > /dev/null
USER 10001:10001
# Prometheus metrics of `rating process` (scraped by deploy/prometheus/prometheus.yml).
EXPOSE 9400
ENTRYPOINT ["rating"]
CMD ["--help"]
