# Dossier — one image with every binary (dossier-supervisor, the processes, the dossier
# CLI). Each container runs one process (compose/docker-compose.yml, deploy/k8s/);
# the default command runs them all under the supervisor. docs/DEPLOY.md explains.

# ---- build: the same Debian packages and Makefile as `make` on a developer machine ----
FROM debian:bookworm-slim AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        build-essential pkg-config libzmq3-dev libczmq-dev libmsgpack-dev libjansson-dev \
        libsqlite3-dev libh2o-evloop-dev libssl-dev zlib1g-dev libcurl4-openssl-dev \
        librdkafka-dev libmongoc-dev libbson-dev libmicrohttpd-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The whole context: .dockerignore leaves out build output, caches, tests and docs.
COPY . .
# The binaries only: the unit tests (cmocka) run in CI, not in the image build.
RUN make -j"$(nproc)" build/bin/dossier build/bin/dossier-supervisor build/bin/dossier-broker \
        build/bin/dossier-store build/bin/dossier-handler build/bin/dossier-projector \
        build/bin/dossier-notifier build/bin/dossier-scheduler build/bin/dossier-gateway \
        build/bin/dossier-ingest \
 && strip --strip-unneeded build/bin/*

# ---- runtime: shared libraries only, no compiler, no headers ----
FROM debian:bookworm-slim
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
        libczmq4 libzmq5 libmsgpackc2 libjansson4 libsqlite3-0 libh2o-evloop0.13 \
        librdkafka1 libmongoc-1.0-0 libbson-1.0-0 libcurl4 libssl3 zlib1g libmicrohttpd12 \
        ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --user-group --home-dir /data --no-create-home --shell /usr/sbin/nologin dossier \
 && mkdir -p /data /etc/dossier \
 && chown dossier:dossier /data
COPY --from=build /src/build/bin/ /usr/local/bin/
COPY deploy/entrypoint.sh /usr/local/bin/dossier-entrypoint
COPY config/dossier.cfg config/rules.json /etc/dossier/

# Every process reads its settings from the environment (`dossier config keys`); these
# are the image's defaults, which compose and Kubernetes extend.
# MONGOC_DISABLE_SHM: libmongoc keeps its counters in memory, not in /dev/shm (see
# supervisor/supervisor.c: a leftover file makes it print a plain-text warning).
ENV DOSSIER_DATA_DIR=/data \
    DOSSIER_RULES_FILE=/etc/dossier/rules.json \
    DOSSIER_HTTP_ADDR=0.0.0.0:8080 \
    MONGOC_DISABLE_SHM=1
USER 10001:10001
WORKDIR /data
VOLUME ["/data"]
# 8080: the gateway's HTTP; 9100: any process's own /metrics, /healthz and /ready
# when DOSSIER_METRICS_PORT says so (compose and Kubernetes do).
EXPOSE 8080 9100
# tini reaps children and forwards signals; the entrypoint wires the readiness file.
ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/dossier-entrypoint"]
CMD ["dossier-supervisor", "--config", "/etc/dossier/dossier.cfg"]
