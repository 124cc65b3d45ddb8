/* broker_workers — the registry of live handlers and the partitioning rule.
 * Handlers are kept sorted by identity; a key goes to the handler with the
 * highest hash of (key, identity) (rendezvous hashing), so every broker agrees. */
#ifndef DOSSIER_BROKER_WORKERS_H
#define DOSSIER_BROKER_WORKERS_H

#include "broker_command.h"

#include <stddef.h>
#include <stdint.h>

#define BROKER_WORKERS_MAX 1024

typedef struct _broker_workers_t broker_workers_t;

/* Returns NULL on failure. Caller owns. */
broker_workers_t *broker_workers_new (void);
void broker_workers_destroy (broker_workers_t **self_p);

/* Marks id alive at now_ms, registering it if unknown.
 * Returns 1 newly registered, 0 known, -1 refused (registry full). */
int broker_workers_touch (broker_workers_t *self, const broker_id_t *id, int64_t now_ms);
/* Forgets id. Returns 0 removed, -1 unknown. */
int broker_workers_remove (broker_workers_t *self, const broker_id_t *id);
int broker_workers_contains (broker_workers_t *self, const broker_id_t *id);
size_t broker_workers_size (broker_workers_t *self);
/* The index-th handler in identity order (borrowed), NULL past the end. */
const broker_id_t *broker_workers_at (broker_workers_t *self, size_t index);

/* The first handler (identity order) whose last sign of life is older than
 * now_ms - timeout_ms, copied into *id. Returns 1 found, 0 none. The caller
 * removes it (and re-dispatches its work) and asks again. */
int broker_workers_find_silent (broker_workers_t *self, int64_t now_ms, int64_t timeout_ms, broker_id_t *id);

/* Chooses the handler for partition key (NUL-terminated). Returns 0 with *id set,
 * -1 when no handler is registered. Deterministic for a given set of handlers;
 * adding or removing one handler moves only the keys it wins or held. */
int broker_workers_choose (broker_workers_t *self, const char *key, broker_id_t *id);

/* The 64-bit score of key on handler id (exposed for tests). */
uint64_t broker_workers_score (const char *key, const broker_id_t *id);

#endif
