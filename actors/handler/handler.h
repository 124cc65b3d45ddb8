/* handler — the command handler actor: takes cmd.* from the broker, loads the case
 * from the store, decides with the pure domain and appends the new events with an
 * expected version, then answers reply.ok / reply.error. Many commands are in flight
 * at once; commands of one case run one after the other. Holds nothing durable. */
#ifndef DOSSIER_HANDLER_H
#define DOSSIER_HANDLER_H

#include "config.h"

#include <czmq.h>

#include <stdint.h>

typedef struct _handler_t handler_t;

/* Loads the rules file (rules_file), sets up the configuration service client when
 * config_service_url is set (handler_rules.h), and connects to the broker backend and
 * the store. Returns NULL on failure (already logged): a missing or bad rules file is
 * one, a config_service_url that is not http(s) another. */
handler_t *handler_new (config_t *config);
void handler_destroy (handler_t **self_p);

/* Sends ctl.ready, then serves until SIGINT/SIGTERM (zsys_interrupted) or, when pipe
 * is not NULL (an actor thread, in tests), until "$TERM" arrives on it.
 * Returns 0 on a normal stop, -1 if polling failed. */
int handler_run (handler_t *self, zsock_t *pipe);

#endif
