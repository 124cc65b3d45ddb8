#!/bin/sh
# dossier-entrypoint — runs one Dossier process as the main process of a container
# (the image's ENTRYPOINT, under tini). Without a supervisor, the readiness handshake
# (common/ready.c: "ready" written on $DOSSIER_READY_FD once sockets are bound and
# files open) goes to a file, which health checks read with `dossier-entrypoint --ready`.
# ENTRYPOINT_READY_FILE names another file (several processes on one host: tests).
set -eu
ready_file="${ENTRYPOINT_READY_FILE:-/tmp/dossier.ready}"

if [ "${1:-}" = "--ready" ]; then
    [ "$(cat "$ready_file" 2>/dev/null)" = ready ]
    exit
fi
if [ $# -eq 0 ]; then
    echo "usage: dossier-entrypoint COMMAND [ARG...]   (or --ready: exit 0 once the process said ready)" >&2
    exit 2
fi
case "$1" in
    dossier-handler|*/dossier-handler)
        # The broker tells handlers apart by identity, handler-$DOSSIER_INSTANCE, else
        # handler-<host name>-<pid>. The host name alone (container id, pod name) is
        # unique and also stays across restarts of the container, so the broker
        # re-dispatches what a restarted handler had. The
        # handler keeps 32 characters of it: the last ones, where pod names differ.
        if [ -z "${DOSSIER_INSTANCE:-}" ]; then
            DOSSIER_INSTANCE="$(cat /proc/sys/kernel/hostname)"
            while [ "${#DOSSIER_INSTANCE}" -gt 32 ]; do DOSSIER_INSTANCE="${DOSSIER_INSTANCE#?}"; done
            export DOSSIER_INSTANCE
        fi
        ;;
esac
# Opened (truncated) anew on every start: a restarted process is not ready until it
# says so again.
exec 3>"$ready_file"
DOSSIER_READY_FD=3
export DOSSIER_READY_FD
exec "$@"
