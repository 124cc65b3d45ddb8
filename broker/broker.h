/* broker — the command router actor: a frontend ROUTER for clients (gateway,
 * ingest), a backend ROUTER for handlers, partitioning by case id, handler
 * liveness and re-dispatch, and a bounded wait when no handler is alive. */
#ifndef DOSSIER_BROKER_H
#define DOSSIER_BROKER_H

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t worker_timeout_ms;      /* handler silent this long is dead (3,000) */
    int64_t queue_timeout_ms;       /* command waiting for a handler this long gets 503 (10,000) */
    size_t queue_max;               /* commands waiting for a handler (100,000) */
    int64_t inflight_timeout_ms;    /* unanswered command forgotten after (60,000) */
    size_t inflight_max;            /* commands in flight before new ones get 503 (100,000) */
} broker_options_t;

/* Fills the defaults above. */
void broker_options_default (broker_options_t *options);

typedef struct _broker_t broker_t;

/* Binds both sockets. options may be NULL (defaults). Returns NULL if a bind
 * fails (logged). Caller owns. */
broker_t *broker_new (const char *front_endpoint, const char *back_endpoint, const broker_options_t *options);
void broker_destroy (broker_t **self_p);

/* Routes until interrupted (SIGINT/SIGTERM) or until pipe, which may be NULL,
 * delivers "$TERM". Returns 0. */
int broker_run (broker_t *self, zsock_t *pipe);

/* zactor body for tests: args is a broker_actor_args_t. Signals the pipe once
 * both sockets are bound. */
typedef struct {
    const char *front_endpoint;
    const char *back_endpoint;
    broker_options_t options;
} broker_actor_args_t;
void broker_actor (zsock_t *pipe, void *args);

#endif
