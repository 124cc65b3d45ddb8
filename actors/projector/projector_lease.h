/* projector_lease — projector_partition = auto: the projector claims a partition by a
 * lease in the read-model database (readmodel_store.h lease_*), renews it every TTL/3,
 * waits as a standby while every partition is held, and reports a lease it lost. The
 * lease is for efficiency and failover, not correctness: writes are position-guarded,
 * so two projectors on one partition (clock skew, a takeover) only waste work. */
#ifndef DOSSIER_PROJECTOR_LEASE_H
#define DOSSIER_PROJECTOR_LEASE_H

#include <stdint.h>

#include "projection.h"

#define PROJECTOR_LEASE_TTL_MS "15000"      /* default of config projector_lease_ms */

typedef struct _projector_lease_t projector_lease_t;

/* What projector_lease_tick did. */
typedef enum {
    PROJECTOR_LEASE_NOTHING = 0,    /* no change (standby still, or still held) */
    PROJECTOR_LEASE_CLAIMED,        /* a partition is now ours and set on the projection */
    PROJECTOR_LEASE_LOST            /* ours no longer: taken, or unrenewable until it expired */
} projector_lease_event_t;

/* A lease holder with a fresh owner id "<hostname>-<pid>-<8 hex>" and ttl_ms (at least
 * 3). NULL on OOM. Caller owns; projector_lease_destroy. */
projector_lease_t *projector_lease_new (int64_t ttl_ms);
void projector_lease_destroy (projector_lease_t **self_p);

/* Does what is due at now_ms (wall clock): standby, tries to claim (every TTL/3) and
 * on success projection_set_partition (a partition it cannot read is released
 * again); holding, renews every TTL/3 (after a failed renewal, every second until it
 * succeeds or the lease expires; while another writer keeps the SQLite file locked,
 * a rebuild in place, every second without expiring: nobody can take it). projection must be loaded and outside a
 * transaction, except that a renewal may run inside one on SQLite (readmodel_store.h). */
projector_lease_event_t projector_lease_tick (projector_lease_t *self, projection_t *projection, int64_t now_ms);

/* When projector_lease_tick next has something to do (wall-clock ms). */
int64_t projector_lease_due (projector_lease_t *self);

/* The partition held, or -1 (standby, or lost). */
int projector_lease_index (projector_lease_t *self);

/* "standby", "held" or "lost". */
const char *projector_lease_state (projector_lease_t *self);

/* Why the lease was lost (a sentence), NULL while it was not. Borrowed. */
const char *projector_lease_lost_reason (projector_lease_t *self);

/* The owner id (borrowed) and the expiry of the lease held as this holder last wrote it. */
const char *projector_lease_owner (projector_lease_t *self);
int64_t projector_lease_expires (projector_lease_t *self);
int64_t projector_lease_ttl (projector_lease_t *self);

/* A clean stop: lets a held lease expire at once so that a standby takes over without
 * waiting for the TTL (best effort: logged when it fails). */
void projector_lease_release (projector_lease_t *self, projection_t *projection);

#endif
