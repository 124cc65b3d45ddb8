/* projector_lease — see projector_lease.h. The state machine only: claims, renewals
 * and releases are single atomic operations of the read-model backend, and every
 * time is the caller's wall clock, so the tests choose it. */
#include "projector_lease.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ids.h"
#include "log.h"

#define S_RETRY_MS 1000         /* a renewal that failed is tried again this soon */

typedef enum { S_STANDBY, S_HELD, S_LOST } s_state_t;

struct _projector_lease_t {
    char owner [128];
    int64_t ttl;
    s_state_t state;
    int index;
    int64_t due;                /* next claim or renewal */
    int64_t expires;            /* as we last wrote it */
    int standby_logged;         /* "standby" said for this period of waiting */
    int failing;                /* a failure said for this outage */
    char reason [160];
};

projector_lease_t *
projector_lease_new (int64_t ttl_ms)
{
    projector_lease_t *self = calloc (1, sizeof (projector_lease_t));
    if (!self)
        return NULL;
    char host [64] = "host";
    if (gethostname (host, sizeof host) != 0)
        strcpy (host, "host");
    host [sizeof host - 1] = 0;
    char uuid [IDS_UUID_LEN];
    ids_uuid4 (uuid);
    snprintf (self->owner, sizeof self->owner, "%s-%ld-%.8s", host, (long) getpid (), uuid);
    self->ttl = ttl_ms < 3 ? 3 : ttl_ms;
    self->index = -1;
    return self;
}

void
projector_lease_destroy (projector_lease_t **self_p)
{
    if (self_p && *self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

static projector_lease_event_t
s_lose (projector_lease_t *self, const char *reason)
{
    snprintf (self->reason, sizeof self->reason, "%s", reason);
    log_error (NULL, NULL, "projector: lease of partition %d lost: %s; stopping (a restart claims again)",
               self->index, reason);
    self->state = S_LOST;
    self->index = -1;
    return PROJECTOR_LEASE_LOST;
}

static projector_lease_event_t
s_claim (projector_lease_t *self, projection_t *projection, int64_t now)
{
    int index = -1, count = 0, ignored;
    projection_partition (projection, &ignored, &count);
    self->due = now + self->ttl / 3;
    int rc = projection_lease_claim (projection, self->owner, now, self->ttl, &index);
    if (rc == 0 && projection_set_partition (projection, index) != 0) {
        /* its checkpoint cannot be read: someone else may have more luck */
        projection_lease_release (projection, index, self->owner);
        rc = -1;
    }
    if (rc < 0) {
        if (!self->failing)
            log_warn (NULL, NULL, "projector: cannot claim a partition lease (database unreachable or busy); "
                      "trying again every %lld ms", (long long) (self->ttl / 3));
        self->failing = 1;
        return PROJECTOR_LEASE_NOTHING;
    }
    self->failing = 0;
    if (rc == 1) {
        if (!self->standby_logged)
            log_info (NULL, NULL, "projector: standby: every one of the %d partitions is leased by a live "
                      "projector; trying again every %lld ms (owner %s)", count, (long long) (self->ttl / 3),
                      self->owner);
        self->standby_logged = 1;
        return PROJECTOR_LEASE_NOTHING;
    }
    self->state = S_HELD;
    self->index = index;
    self->expires = now + self->ttl;
    self->standby_logged = 0;
    log_info (NULL, NULL, "projector: claimed partition %d of %d by lease (owner %s, ttl %lld ms)",
              index, count, self->owner, (long long) self->ttl);
    return PROJECTOR_LEASE_CLAIMED;
}

static projector_lease_event_t
s_renew (projector_lease_t *self, projection_t *projection, int64_t now)
{
    int rc = projection_lease_renew (projection, self->index, self->owner, now, self->ttl);
    if (rc == 1)
        return s_lose (self, "another projector holds it now");
    if (rc == -2) {
        /* a long writer (a rebuild in place) holds the file: nobody can take the lease
         * meanwhile, so it is not lost for expiring; the renewal after it tells */
        if (!self->failing)
            log_warn (NULL, NULL, "projector: lease of partition %d not renewed: the read models are locked "
                      "by another writer (a rebuild in place?); retrying", self->index);
        self->failing = 1;
        self->due = now + (S_RETRY_MS < self->ttl / 3 ? S_RETRY_MS : self->ttl / 3);
        return PROJECTOR_LEASE_NOTHING;
    }
    if (rc < 0) {
        if (now >= self->expires)
            return s_lose (self, "the database could not be reached to renew it before it expired");
        if (!self->failing)
            log_warn (NULL, NULL, "projector: lease of partition %d not renewed (database unreachable or busy); "
                      "retrying until it expires in %lld ms", self->index, (long long) (self->expires - now));
        self->failing = 1;
        self->due = now + (S_RETRY_MS < self->ttl / 3 ? S_RETRY_MS : self->ttl / 3);
        return PROJECTOR_LEASE_NOTHING;
    }
    if (self->failing)
        log_info (NULL, NULL, "projector: lease of partition %d renewed again", self->index);
    self->failing = 0;
    self->expires = now + self->ttl;
    self->due = now + self->ttl / 3;
    return PROJECTOR_LEASE_NOTHING;
}

projector_lease_event_t
projector_lease_tick (projector_lease_t *self, projection_t *projection, int64_t now_ms)
{
    if (self->state == S_LOST || now_ms < self->due)
        return PROJECTOR_LEASE_NOTHING;
    if (!projection_loaded (projection)) {
        self->due = now_ms + S_RETRY_MS;        /* its database is not there yet */
        return PROJECTOR_LEASE_NOTHING;
    }
    return self->state == S_STANDBY ? s_claim (self, projection, now_ms) : s_renew (self, projection, now_ms);
}

int64_t
projector_lease_due (projector_lease_t *self)
{
    return self->due;
}

int
projector_lease_index (projector_lease_t *self)
{
    return self->index;
}

const char *
projector_lease_state (projector_lease_t *self)
{
    return self->state == S_HELD ? "held" : self->state == S_LOST ? "lost" : "standby";
}

const char *
projector_lease_lost_reason (projector_lease_t *self)
{
    return self->state == S_LOST ? self->reason : NULL;
}

const char *
projector_lease_owner (projector_lease_t *self)
{
    return self->owner;
}

int64_t
projector_lease_expires (projector_lease_t *self)
{
    return self->state == S_HELD ? self->expires : 0;
}

int64_t
projector_lease_ttl (projector_lease_t *self)
{
    return self->ttl;
}

void
projector_lease_release (projector_lease_t *self, projection_t *projection)
{
    if (self->state != S_HELD)
        return;
    if (projection_lease_release (projection, self->index, self->owner) != 0)
        log_warn (NULL, NULL, "projector: lease of partition %d not released; it expires in %lld ms",
                  self->index, (long long) self->ttl);
    else
        log_info (NULL, NULL, "projector: lease of partition %d released", self->index);
    self->state = S_STANDBY;
    self->index = -1;
}
