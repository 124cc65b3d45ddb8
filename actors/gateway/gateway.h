/* gateway — the REST API actor: an h2o HTTP/1.1 server on one event-loop thread,
 * reads answered from the read models, writes turned into broker commands whose
 * replies come back asynchronously (command_bridge). main.c only wires it up. */
#ifndef DOSSIER_GW_GATEWAY_H
#define DOSSIER_GW_GATEWAY_H

#include "config.h"

typedef struct _gateway_t gateway_t;

/* Binds the listener (config "http_addr", host:port, port 0 = any free port), opens
 * the read models lazily (<data_dir>/readmodels.db, or the MongoDB collections when
 * config "store" is mongodb: readmodel_reader.h) and connects to the broker
 * (endpoint broker_front). Config "gateway_cache_bytes" (default 8 MiB, 0 = off)
 * bounds the cache of GET answers (response_cache.h); "body_limit" and
 * "command_timeout_ms" bound writes. config is borrowed and must outlive the gateway.
 * Returns NULL on failure (logged). The gateway belongs to the thread that calls
 * gateway_run; create it there or hand it over before running. */
gateway_t *gateway_new (config_t *config);
void gateway_destroy (gateway_t **self_p);

/* The TCP port actually listened on. */
int gateway_port (gateway_t *self);

/* Serves until gateway_stop is called or SIGINT/SIGTERM (zsys_interrupted).
 * Returns 0. */
int gateway_run (gateway_t *self);

/* Asks a running gateway to return from gateway_run. Safe from any thread. */
void gateway_stop (gateway_t *self);

#endif
