/* broker_pending — commands waiting for a handler when none is alive: a bounded
 * FIFO; what waits too long is taken out to be answered 503. */
#ifndef DOSSIER_BROKER_PENDING_H
#define DOSSIER_BROKER_PENDING_H

#include "broker_command.h"

#include <stddef.h>
#include <stdint.h>

typedef struct _broker_pending_t broker_pending_t;

/* A queue of at most max commands. Returns NULL on failure. Caller owns. */
broker_pending_t *broker_pending_new (size_t max);
void broker_pending_destroy (broker_pending_t **self_p);
size_t broker_pending_size (broker_pending_t *self);

/* Queues *command_p (taking it; its wait starts at now_ms). Returns 0, or -1
 * when the queue is full or out of memory: then the caller keeps the command. */
int broker_pending_push (broker_pending_t *self, broker_command_t **command_p, int64_t now_ms);
/* The oldest command, or NULL. Caller owns. */
broker_command_t *broker_pending_pop (broker_pending_t *self);
/* The oldest command if it has waited more than max_age_ms, else NULL. Caller owns. */
broker_command_t *broker_pending_take_expired (broker_pending_t *self, int64_t now_ms, int64_t max_age_ms);

#endif
