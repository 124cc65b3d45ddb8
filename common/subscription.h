/* subscription — catch-up subscription to the event log: delivers every event after
 * a consumer's checkpoint exactly once per successful callback, in order and without
 * gaps, first from `store.read_all` pages, then from the store's live PUB feed.
 * The owner polls the two sockets in its own loop (projector, notifier). */
#ifndef DOSSIER_SUBSCRIPTION_H
#define DOSSIER_SUBSCRIPTION_H

#include <czmq.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

typedef struct _subscription_t subscription_t;

/* Receives a batch of consecutive events, events[0].position == the position the
 * subscription was waiting for. Event data borrows from the received message and
 * is valid only during the call. Returns 0 when the batch was applied (the
 * subscription advances past it) or -1 when it was not (nothing advances; the same
 * positions are delivered again later, after a short back-off). */
typedef int (subscription_fn) (const event_t *events, size_t count, void *arg);

/* Connects a DEALER to store_endpoint and a SUB (everything) to pub_endpoint and
 * asks for events from next_position (>= 1) at once. Returns NULL on failure
 * (bad endpoint, out of memory). Caller owns; destroy with subscription_destroy. */
subscription_t *subscription_new (const char *store_endpoint, const char *pub_endpoint, int64_t next_position);
void subscription_destroy (subscription_t **self_p);

/* The two sockets, to put in the owner's poller. Borrowed; stable for the life of
 * the subscription. */
zsock_t *subscription_store_sock (subscription_t *self);
zsock_t *subscription_pub_sock (subscription_t *self);

/* Handles one readable socket (one of the two above): receives one message and
 * delivers what it can through fn. Returns 0 if which was ours (whatever the message
 * held: bad input is logged and dropped), -1 if which is not one of our sockets or
 * the receive was interrupted. */
int subscription_handle (subscription_t *self, void *which, subscription_fn *fn, void *arg);

/* Timers: re-sends a read that timed out (store restarted), reads after a refused
 * batch or an error, and reads when the feed has been idle (safety net for a lost
 * PUB message). Call it on every loop turn; cheap. */
void subscription_tick (subscription_t *self);

/* Milliseconds until subscription_tick has something to do, or the live feed is due
 * again (for the poll timeout); never negative, at most the idle period. */
int subscription_timeout (subscription_t *self);

/* Linger: a consumer to which a few milliseconds do not matter (the scheduler, the
 * notifier) may leave the live feed alone for linger_ms after it emptied it, so
 * that what arrives meanwhile is delivered in one call (one transaction, one
 * wake-up) rather than one call per append batch of the store. 0 (the default)
 * reads it whenever it is readable. A backlog is always read without rest. */
void subscription_set_linger (subscription_t *self, int linger_ms);
/* 1 when the owner should poll the live socket on this turn, 0 while it rests
 * (leave it out of the poll set; subscription_timeout covers the rest). */
int subscription_live_due (subscription_t *self);

/* Forgets any read in flight and restarts from next_position (e.g. after a rebuild
 * replaced the consumer's state). */
void subscription_reset (subscription_t *self, int64_t next_position);

/* The next position the subscription will deliver (checkpoint + 1). */
int64_t subscription_next (subscription_t *self);
/* The highest store head seen in any reply or live batch (0 before the first). */
int64_t subscription_head (subscription_t *self);
/* 1 when no read is in flight and everything up to the last known head was delivered. */
int subscription_caught_up (subscription_t *self);

/* Tuning (tests use short timers): page = read_all max (1..10,000, default 1,000);
 * request_ms = reply timeout before a re-send (default 3,000); idle_ms = period of the
 * safety-net read (default 1,000); retry_ms = back-off after a refused batch or a
 * store error (default 200). Values <= 0 leave a setting unchanged. */
void subscription_set_page (subscription_t *self, int page);
void subscription_set_timers (subscription_t *self, int request_ms, int idle_ms, int retry_ms);

/* Counters, for tests and status: reads sent, live batches received, live batches
 * dropped as already seen, gaps detected. */
typedef struct {
    uint64_t reads_sent;
    uint64_t replies;
    uint64_t live_batches;
    uint64_t live_duplicates;
    uint64_t gaps;
    uint64_t timeouts;
    uint64_t refused;
} subscription_stats_t;
void subscription_stats (subscription_t *self, subscription_stats_t *stats);

#endif
