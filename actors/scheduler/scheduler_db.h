/* scheduler_db — the scheduler's durable state in <data_dir>/scheduler.db: the deferred
 * notification decisions still pending, as the log tells them (NotificationDecisionDeferred
 * adds one, NotificationDecisionResolved removes it), and the log position they are
 * known up to. Both change in one transaction, so after a crash (kill -9 included) the
 * scheduler re-reads what it had not recorded; the position may be stored late past
 * events of other types only, which change nothing when they are read again. */
#ifndef DOSSIER_SCHEDULER_DB_H
#define DOSSIER_SCHEDULER_DB_H

#include "event.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char deferral_id [EVENT_ID_MAX];
    char case_id [EVENT_ID_MAX];
    int64_t position;               /* of its NotificationDecisionDeferred */
    char traceparent [56];          /* that event's W3C traceparent, "" none */
} scheduler_item_t;

typedef struct _scheduler_db_t scheduler_db_t;

/* Opens (creates) the database at path. NULL on failure (logged). Caller owns. */
scheduler_db_t *scheduler_db_open (const char *path);
void scheduler_db_close (scheduler_db_t **self_p);

/* Every event up to this position has been applied (0: none yet); it may be ahead of
 * the stored one (scheduler_db_dirty). */
int64_t scheduler_db_checkpoint (scheduler_db_t *self);

/* Applies a batch of consecutive events and moves the checkpoint past the last one.
 * A batch with a deferral event writes its rows and the checkpoint in one transaction;
 * a batch without one moves the checkpoint in memory only (scheduler_db_sync stores
 * it). An event of the two types whose data cannot be read is logged and skipped (it
 * can never be read better). Sets *added to the deferrals added. Returns 0, or -1
 * when nothing was written (retry the same batch later). */
int scheduler_db_apply (scheduler_db_t *self, const event_t *events, size_t count, size_t *added);

/* Stores a checkpoint that only moved in memory (one small transaction). Returns 0
 * (also when there was nothing to store), -1 (logged; the caller tries again later). */
int scheduler_db_sync (scheduler_db_t *self);
/* 1 when the checkpoint in memory is ahead of the stored one. */
int scheduler_db_dirty (scheduler_db_t *self);

/* Up to max pending deferrals whose position is above after, oldest first, into
 * items. Returns how many. */
size_t scheduler_db_pending (scheduler_db_t *self, int64_t after, scheduler_item_t *items, size_t max);

/* Pending deferrals in all. */
size_t scheduler_db_count (scheduler_db_t *self);

/* Forgets a deferral the handler confirmed resolved (its resolution is in the log,
 * where the feed would find it too). Returns 0, -1. */
int scheduler_db_forget (scheduler_db_t *self, const char *deferral_id);

#endif
