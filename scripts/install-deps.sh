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
