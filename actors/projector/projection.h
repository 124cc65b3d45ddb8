/* projection — applies batches of events to the read models (schemas/readmodels.sql,
 * schemas/readmodels.md). It computes every row and its ready-to-send JSON, the same
 * bytes whatever the backend; a readmodel_store backend keeps them: SQLite in one
 * transaction with the checkpoint, MongoDB with guarded idempotent upserts and the
 * checkpoint last. Either way a replay of the log gives byte-identical rows. */
#ifndef DOSSIER_PROJECTION_H
#define DOSSIER_PROJECTION_H

#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "readmodel_store.h"

typedef struct _projection_t projection_t;

/* Opens (creating if needed) the SQLite read-model database at path in WAL mode and
 * applies the DDL. Returns NULL on failure (logged). Caller owns. */
projection_t *projection_new (const char *path);

/* Opens the read models at location with backend ops (config may be NULL: defaults).
 * A transactional backend must load at once (else NULL). A non-transactional one
 * (MongoDB) may come up before its database does: then the projection is returned
 * not loaded, and projection_load retries. NULL on failure (logged). Caller owns. */
projection_t *projection_new_with (const readmodel_store_ops_t *ops, const char *location, config_t *config);
/* Opens location as the target of a rebuild (projection_begin, projection_clear,
 * pages, projection_commit, then projection_destroy): the backend may build it
 * faster than live read models, since nobody reads it before it is complete, and
 * puts it in place once committed and destroyed. NULL on failure (logged). */
projection_t *projection_new_rebuild (const readmodel_store_ops_t *ops, const char *location, config_t *config);
void projection_destroy (projection_t **self_p);

/* Loads the schema/indexes and the checkpoint if not done yet. 0 loaded, -1 not yet
 * (database unreachable; logged once per outage). Everything below needs it loaded. */
int projection_load (projection_t *self);
int projection_loaded (projection_t *self);

/* The backend's name ("sqlite", "mongodb"). */
const char *projection_backend (projection_t *self);

/* 1 if begin..commit is all or nothing (SQLite), so several batches may share one
 * transaction; 0 if every batch is durable by itself (MongoDB). */
int projection_transactional (projection_t *self);

/* 1 while a transaction is open (projection_begin without commit or rollback yet). */
int projection_in_tx (projection_t *self);

/* The last durable checkpoint: every event up to it is applied (those of its
 * partition; the others are not its to apply). */
int64_t projection_checkpoint (projection_t *self);

/* Its partition (partition.h), from config projector_partition / projector_partitions:
 * it applies only the events of cases in partition index of count, and its checkpoint
 * row is partition_checkpoint_name (index, count). 0 of 1 without a config. */
void projection_partition (projection_t *self, int *index, int *count);

/* projector_partition = auto: the projection starts with no partition (index
 * PARTITION_AUTO: applying fails) until the projector claims one by lease and
 * sets it here, which reads that partition's checkpoint (projection_checkpoint)
 * as load does. Loaded and outside a transaction; 0 ok, -1 failed. */
int projection_set_partition (projection_t *self, int index);

/* The backend's leases of this projection's partition count (readmodel_store.h:
 * lease_claim, lease_renew, lease_release; same returns). */
int projection_lease_claim (projection_t *self, const char *owner, int64_t now_ms, int64_t ttl_ms, int *index);
int projection_lease_renew (projection_t *self, int index, const char *owner, int64_t now_ms, int64_t ttl_ms);
int projection_lease_release (projection_t *self, int index, const char *owner);

/* all 1: apply every event and write every partition's checkpoint (a rebuild in
 * place); 0: back to its own partition. A rebuild target is always all. */
void projection_set_all_partitions (projection_t *self, int all);

/* Every checkpoint row of the read models, through fn (status). 0 ok, -1 failed or
 * not loaded. */
int projection_checkpoints (projection_t *self, rm_checkpoint_fn *fn, void *arg);

/* Applies events with the checkpoint. Events at or before the checkpoint are skipped,
 * and so are those of other partitions (the checkpoint passes them); a poison event
 * (unparseable or inconsistent payload) is logged, recorded in projector_errors and
 * skipped. Returns 0 ok, -1 database failure (the checkpoint stays where it was; the
 * caller retries the batch later: on SQLite nothing was applied, on MongoDB what was
 * written is found and left alone by the replay), -2 as projection_begin. */
int projection_apply (projection_t *self, const event_t *events, size_t count);

/* Rebuilds: begin, clear, apply pages, commit. On SQLite one long transaction
 * (readers keep the old rows until commit); on MongoDB clear drops the collections at
 * once and each page is durable with its checkpoint, so a failed rebuild leaves a
 * consistent prefix that the live feed completes. projection_clear empties every
 * read model and recreates the schema. Each returns 0 ok, -1 failed; after a failure
 * call projection_rollback. */
/* projection_begin returns -2 (rolled back) when, on a transactional backend, its
 * checkpoint row was moved back by another writer (a rebuild in place by another
 * partition's projector): projection_checkpoint () then says where to read again. */
int projection_begin (projection_t *self);
int projection_clear (projection_t *self);
int projection_apply_in_tx (projection_t *self, const event_t *events, size_t count);
int projection_commit (projection_t *self);
void projection_rollback (projection_t *self);

/* 1 if path does not exist or holds nothing but read-model tables (so a rebuild
 * may drop them), 0 otherwise: never clear a database that is not ours. */
int projection_is_readmodel_file (const char *path);

/* busy 1 while a long catch-up or a rebuild runs: the backend may keep more in
 * memory; 0 once caught up: it gives it back (and so does this process's heap). */
void projection_set_busy (projection_t *self, int busy);

/* Counters since open: events applied, events skipped as already applied, poison events. */
typedef struct {
    uint64_t applied;
    uint64_t skipped;
    uint64_t poison;
    uint64_t others;            /* events of other partitions, not applied */
} projection_stats_t;
void projection_stats (projection_t *self, projection_stats_t *stats);

#endif
