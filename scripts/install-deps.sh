#!/usr/bin/env bash
# Installs the Debian packages Dossier builds and tests with, only those missing.
# Used by `make run`, `make test` and .ci/run; a second run does nothing.
set -euo pipefail
PKGS=(build-essential pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libjansson-dev
      libsqlite3-dev libh2o-evloop-dev libssl-dev zlib1g-dev libcmocka-dev
      libcurl4-openssl-dev librdkafka-dev libmongoc-dev libbson-dev
      python3 python3-pytest sqlite3 valgrind kcat)
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
