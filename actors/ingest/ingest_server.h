/* ingest_server — the ingest actor: takes records from its sources (the CLI's
 * ingest.record messages on a ROUTER now; Kafka later), turns each into a
 * cmd.create_case for the broker with many in flight, and answers each source
 * when the handler's reply arrives, or with 503 when none comes in time. */
#ifndef DOSSIER_INGEST_SERVER_H
#define DOSSIER_INGEST_SERVER_H

#include "config.h"

#include <czmq.h>

typedef struct _ingest_server_t ingest_server_t;

/* Binds the CLI ROUTER at endpoint "ingest" (only instance 0, by $DOSSIER_INSTANCE:
 * one ipc path cannot have two owners) and connects a DEALER to "broker_front". Settings (section dossier): body_limit (bytes, default 1 MiB),
 * ingest_timeout_ms (default 15000), ingest_max_pending (default 100000).
 * Returns NULL (logged) on failure. config is borrowed and must outlive the server. */
ingest_server_t *ingest_server_new (config_t *config);
void ingest_server_destroy (ingest_server_t **self_p);

/* Serves until interrupted (zsys_interrupted) or, when pipe is not NULL, until any
 * message arrives on it. Returns 0. */
int ingest_server_run (ingest_server_t *self, zsock_t *pipe);

/* zactor body for tests and embedding: args is the config_t *. Signals the pipe
 * once bound (status 0, or 1 if the server could not start, in which case it
 * returns at once), then serves until $TERM. */
void ingest_server_actor (zsock_t *pipe, void *args);

#endif
