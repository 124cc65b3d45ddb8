#!/usr/bin/env bash
# Fetches the Apache Kafka broker the end-to-end tests start (tests/e2e/kafka_harness.py):
# the jars of scripts/kafka/pom.xml into .cache/kafka/libs/, Maven's repository in
# .cache/m2, so CI's cache holds everything and a second run downloads nothing.
#
#   scripts/kafka.sh fetch    jars into .cache/kafka/libs/ (skipped when already there)
#   scripts/kafka.sh libs     prints the directory of the jars (a classpath is "<dir>/*")
#   scripts/kafka.sh run      starts a throw-away single-node broker in the foreground,
#                             prints its address; Ctrl-C stops it and removes its files
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
POM="$ROOT/scripts/kafka/pom.xml"
LIBS="$ROOT/.cache/kafka/libs"
STAMP="$LIBS/.fetched"

# The stamp holds the pom's checksum: editing the pom (another Kafka version) fetches again.
s_wanted () { sha1sum "$POM" | cut -d' ' -f1; }

s_need_tools () {
    local missing=()
    command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
    command -v mvn  >/dev/null 2>&1 || missing+=(maven)
    command -v kcat >/dev/null 2>&1 || missing+=(kcat)
    if [ "${#missing[@]}" -gt 0 ]; then
        echo "kafka.sh: installing ${missing[*]}" >&2
        local sudo=""
        [ "$(id -u)" -eq 0 ] || sudo="sudo"
        $sudo apt-get update -qq
        DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
}

s_fetched () { [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$(s_wanted)" ]; }

s_fetch () {
    s_fetched && return 0
    # Two fetches at once (two `make e2e` in one tree) must not both move a folder into
    # place: the second waits for the first, then finds the stamp.
    mkdir -p "$ROOT/.cache"
    exec 9>"$ROOT/.cache/kafka.lock"
    flock 9
    if s_fetched; then
        flock -u 9
        return 0
    fi
    s_need_tools
    echo "kafka.sh: fetching the Kafka broker jars into .cache/kafka/libs" >&2
    # A half-copied folder from an interrupted run must not look complete: copy into a
    # fresh folder and rename it only when Maven succeeded.
    local tmp="$LIBS.tmp.$$"
    rm -rf "$tmp"
    mkdir -p "$ROOT/.cache/m2"
    local log="$ROOT/.cache/kafka-fetch.log"
    if ! mvn -B -f "$POM" -Dmaven.repo.local="$ROOT/.cache/m2" \
             dependency:copy-dependencies -DincludeScope=runtime -DoutputDirectory="$tmp" >"$log" 2>&1; then
        rm -rf "$tmp"
        flock -u 9
        tail -n 40 "$log" >&2
        echo "kafka.sh: maven could not fetch the Kafka jars (log: $log)" >&2
        return 1
    fi
    s_wanted > "$tmp/.fetched"
    rm -rf "$LIBS"
    mv "$tmp" "$LIBS"
    flock -u 9
}

case "${1:-fetch}" in
    fetch) s_fetch ;;
    libs)  echo "$LIBS" ;;
    run)   s_fetch; exec python3 "$ROOT/tests/e2e/kafka_harness.py" ;;
    *)     echo "usage: scripts/kafka.sh [fetch|libs|run]" >&2; exit 2 ;;
esac
