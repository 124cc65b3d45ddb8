#!/usr/bin/env bash
# Installs the Debian packages Dossier builds and tests with, only those missing.
# Used by `make run`, `make test` and .ci/run; a second run does nothing.
set -euo pipefail
PKGS=(build-essential pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libjansson-dev
      libsqlite3-dev libh2o-evloop-dev libssl-dev zlib1g-dev libcmocka-dev
      libcurl4-openssl-dev librdkafka-dev libmongoc-dev libbson-dev libmicrohttpd-dev
      python3 python3-pytest sqlite3 valgrind kcat
      wrk nginx)   # make bench: the load generator and the static-file yardstick
missing=()
for p in "${PKGS[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "installing: ${missing[*]}"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# pymongo, for the end-to-end tests' looks into the MongoDB backend, in the python3
# that runs pytest: from PyPI (pip's cache under .cache/pip), or Debian's package
# when that python3 is the system one and pip may not touch it.
if ! python3 -c "import pymongo" 2>/dev/null; then
    ROOT="$(cd "$(dirname "$0")/.." && pwd)"
    echo "installing: pymongo"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --cache-dir "$ROOT/.cache/pip" "pymongo==4.10.1" \
    || { SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
         DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-pymongo >/dev/null; }
    python3 -c "import pymongo"
fi

# The deploy tests (tests/e2e/test_deploy.py): Debian's docker-compose validates
# compose/docker-compose.yml (`docker-compose config` needs no Docker engine, so the
# engine it recommends is left out), and kubernetes-validate checks deploy/k8s/
# against the Kubernetes JSON schemas it ships (offline), in the python3 that runs pytest.
if ! dpkg-query -W -f='${Status}' docker-compose 2>/dev/null | grep -q "install ok installed"; then
    echo "installing: docker-compose"
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends docker-compose >/dev/null
fi
if ! python3 -c "import kubernetes_validate" 2>/dev/null; then
    ROOT="$(cd "$(dirname "$0")/.." && pwd)"
    echo "installing: kubernetes-validate"
    PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --cache-dir "$ROOT/.cache/pip" "kubernetes-validate==1.34.1" \
    || PIP_ROOT_USER_ACTION=ignore python3 -m pip install -q --cache-dir "$ROOT/.cache/pip" --break-system-packages \
           "kubernetes-validate==1.34.1"
    python3 -c "import kubernetes_validate"
fi

# schemathesis (pinned), for tests/e2e/test_openapi.py: the REST API against its
# description, schemas/openapi.json. In a virtualenv of its own under .cache/, so it
# needs no pip in the system python and leaves that python's packages alone.
ST_VERSION=4.32.5
ST_VENV="$(cd "$(dirname "$0")/.." && pwd)/.cache/schemathesis-$ST_VERSION"
if ! "$ST_VENV/bin/python" -c "import schemathesis" 2>/dev/null; then
    echo "installing: schemathesis $ST_VERSION (into $ST_VENV)"
    rm -rf "$ST_VENV"
    if ! python3 -m venv "$ST_VENV" 2>/dev/null; then
        # Debian's python3 keeps venv (ensurepip) in a package of its own
        rm -rf "$ST_VENV"
        SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq python3-venv >/dev/null
        python3 -m venv "$ST_VENV"
    fi
    PIP_ROOT_USER_ACTION=ignore "$ST_VENV/bin/python" -m pip install -q --cache-dir "$(dirname "$ST_VENV")/pip" \
        "schemathesis==$ST_VERSION"
    "$ST_VENV/bin/python" -c "import schemathesis"
fi
