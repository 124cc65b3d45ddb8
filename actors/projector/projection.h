/* projection — applies batches of events to the read models (schemas/readmodels.sql)
 * in one SQLite transaction together with the checkpoint, so a crash never leaves a
 * half-applied batch and a replay of the log gives byte-identical rows. */
#ifndef DOSSIER_PROJECTION_H
#define DOSSIER_PROJECTION_H

#include <stddef.h>
#include <stdint.h>

#include "event.h"

typedef struct _projection_t projection_t;

/* Opens (creating if needed) the read-model database at path in WAL mode and
 * applies the DDL. Returns NULL on failure (logged). Caller owns. */
projection_t *projection_new (const char *path);
void projection_destroy (projection_t **self_p);

/* The last committed checkpoint: every event up to it is applied. */
int64_t projection_checkpoint (projection_t *self);

/* Applies events in one transaction with the checkpoint. Events at or before the
 * checkpoint are skipped; a poison event (unparseable or inconsistent payload) is
 * logged, recorded in projector_errors and skipped. Returns 0 ok, -1 database
 * failure (rolled back: nothing applied, the caller retries later). */
int projection_apply (projection_t *self, const event_t *events, size_t count);

/* Rebuilds run as one long transaction: begin, clear, apply pages, commit.
 * projection_clear drops every table and recreates the schema (inside the
 * transaction, so readers keep the old rows until commit). Each returns 0 ok,
 * -1 failed; after a failure call projection_rollback. */
int projection_begin (projection_t *self);
int projection_clear (projection_t *self);
int projection_apply_in_tx (projection_t *self, const event_t *events, size_t count);
int projection_commit (projection_t *self);
void projection_rollback (projection_t *self);

/* 1 if path does not exist or holds nothing but read-model tables (so a rebuild
 * may drop them), 0 otherwise: never clear a database that is not ours. */
int projection_is_readmodel_file (const char *path);

/* Counters since open: events applied, events skipped as already applied, poison events. */
typedef struct {
    uint64_t applied;
    uint64_t skipped;
    uint64_t poison;
} projection_stats_t;
void projection_stats (projection_t *self, projection_stats_t *stats);

#endif
