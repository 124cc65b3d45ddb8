#!/usr/bin/env bash
# The MongoDB wire-protocol server the tests run against: FerretDB v1 embedded in
# the small Go program tests/ferretdb/ (SQLite handler, 127.0.0.1 only).
#   scripts/ferretdb.sh build   builds .cache/ferretdb/ferretdb once (Go modules and
#                               build cache under .cache/go; a second run builds nothing)
#   scripts/ferretdb.sh path    prints the binary's path
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SRC="$ROOT/tests/ferretdb"
OUT="$ROOT/.cache/ferretdb"
BIN="$OUT/ferretdb"
STAMP="$OUT/source.sha256"

# The binary is current when it was built from exactly these sources.
s_source_sum () {
    cat "$SRC/go.mod" "$SRC/go.sum" "$SRC/main.go" | sha256sum | cut -d' ' -f1
}

s_build () {
    local sum
    sum="$(s_source_sum)"
    if [ -x "$BIN" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$sum" ]; then
        return 0
    fi
    if ! command -v go >/dev/null 2>&1; then
        echo "ferretdb.sh: Go (1.24 or newer) is needed to build the test MongoDB server" >&2
        exit 1
    fi
    mkdir -p "$OUT" "$ROOT/.cache/go/mod" "$ROOT/.cache/go/build"
    echo "building FerretDB test server into $BIN"
    # go.sum pins every module; -mod=readonly refuses to change it. GOTOOLCHAIN=local:
    # build with the installed Go, never fetch another toolchain.
    (cd "$SRC" && GOMODCACHE="$ROOT/.cache/go/mod" GOCACHE="$ROOT/.cache/go/build" \
        GOFLAGS="-mod=readonly -buildvcs=false" GOTOOLCHAIN=local CGO_ENABLED=0 \
        go build -trimpath -ldflags="-s -w" -o "$BIN.tmp" .)
    mv "$BIN.tmp" "$BIN"
    echo "$sum" > "$STAMP"
}

case "${1:-}" in
    build) s_build ;;
    path)  echo "$BIN" ;;
    *)     echo "usage: scripts/ferretdb.sh build|path" >&2; exit 2 ;;
esac
