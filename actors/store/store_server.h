/* store_server — the store actor: a ROUTER for requests and a PUB for the live
 * feed in front of one store_backend_t, with group commit (all appends waiting on
 * the socket share one transaction, then replies, then one feed message). */
#ifndef DOSSIER_STORE_SERVER_H
#define DOSSIER_STORE_SERVER_H

#include "store_backend.h"

#include <czmq.h>

/* Most messages taken off the socket for one batch (so at most this many appends
 * share a transaction). */
#define STORE_SERVER_DRAIN_MAX 1000

typedef struct _store_server_t store_server_t;

/* Binds the request ROUTER and the feed PUB and takes the backend (*backend_p is
 * nulled, also on failure). Returns NULL if a bind fails (logged). Caller owns. */
store_server_t *store_server_new (store_backend_t **backend_p, const char *router_endpoint,
                                  const char *pub_endpoint);
void store_server_destroy (store_server_t **self_p);

/* Appends and stream reads whose envelope is older than expiry_ms (the senders'
 * timeout) are answered store.error "expired" without being done; 0 turns it off. */
void store_server_set_expiry (store_server_t *self, int64_t expiry_ms);

/* Serves until interrupted (SIGINT/SIGTERM) or until pipe, which may be NULL,
 * delivers "$TERM". The batch in hand is always finished first. Returns 0. */
int store_server_run (store_server_t *self, zsock_t *pipe);

/* zactor body for tests: args is a store_server_args_t whose backend the actor
 * takes. Signals the pipe once bound (status 0) or on failure (status -1). */
typedef struct {
    store_backend_t *backend;
    const char *router_endpoint;
    const char *pub_endpoint;
    int64_t expiry_ms;          /* store_server_set_expiry; 0 off */
} store_server_args_t;
void store_server_actor (zsock_t *pipe, void *args);

#endif
