#!/bin/sh
# Puts `docker-compose` on PATH so that tests/deploy/test_compose.py can run
# `docker-compose config -q` (validates docker-compose.yml; needs no Docker daemon).
# Called by `make test`. A no-op when docker-compose is already installed.
#
# Installs Debian's docker-compose (v1.29) without its recommended docker.io:
# only the compose file parser is needed, never a container engine.
set -eu

if command -v docker-compose >/dev/null 2>&1; then
    exit 0
fi

if ! command -v apt-get >/dev/null 2>&1; then
    echo "$0: docker-compose is not on PATH and there is no apt-get to install it;" >&2
    echo "$0: install docker-compose (or Docker with its compose plugin's docker-compose)" >&2
    exit 1
fi

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo"
else
    echo "$0: docker-compose is missing; run as root: apt-get install docker-compose" >&2
    exit 1
fi

echo "$0: installing docker-compose (Debian package) for the compose file check" >&2
$SUDO apt-get update -qq
$SUDO env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
command -v docker-compose >/dev/null 2>&1
