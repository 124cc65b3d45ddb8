/* ingest_pending — commands ingest has sent to the broker and is waiting on, keyed
 * by command id, with who asked (the source: CLI identity + line now, a Kafka offset
 * later). Records sharing a command id are serialised: one at the broker, the rest
 * queued behind it, so each gets its own honest answer (new, duplicate or mismatch).
 * Pure bookkeeping: time is passed in, nothing is sent from here. */
#ifndef DOSSIER_INGEST_PENDING_H
#define DOSSIER_INGEST_PENDING_H

#include "command_id.h"
#include "envelope.h"

#include <czmq.h>
#include <stdint.h>

enum { INGEST_SOURCE_CLI = 1 };

typedef struct _ingest_waiter_t ingest_waiter_t;
struct _ingest_waiter_t {
    char command_id [COMMAND_ID_MAX];
    char case_id [37];
    int source;                         /* INGEST_SOURCE_* */
    zframe_t *route;                    /* CLI identity frame, owned; NULL for other sources */
    char request_id [ENVELOPE_ID_MAX];  /* the ingest.record id, answered as cause */
    long line;
    char traceparent [56];              /* the command's W3C traceparent (ingest's span), "" none */
    char *raw;                          /* the record, owned, kept only while queued */
    size_t raw_size;
    int64_t sent_ms;                    /* when its command went to the broker; 0 while queued */
    /* Private links of ingest_pending. */
    ingest_waiter_t *next_same;
    ingest_waiter_t *prev_sent, *next_sent;
};

typedef struct _ingest_pending_t ingest_pending_t;

/* A waiter for command_id; route is copied (may be NULL). NULL on allocation failure.
 * Caller owns until it hands it to ingest_pending_add. */
ingest_waiter_t *ingest_waiter_new (const char *command_id, const char *case_id, int source,
                                    zframe_t *route, const char *request_id, long line);
void ingest_waiter_destroy (ingest_waiter_t **self_p);

/* limit caps the waiters held (sent and queued); NULL on allocation failure. */
ingest_pending_t *ingest_pending_new (size_t limit);
void ingest_pending_destroy (ingest_pending_t **self_p);

/* Takes *waiter_p (nulls it) unless the table is full. Returns 1 when the caller must
 * send the command now (nothing else in flight for that id; sent_ms = now_ms); 0 when
 * it is queued behind another with the same command id (raw is copied for later);
 * -1 when the table is full or out of memory (the caller still owns the waiter). */
int ingest_pending_add (ingest_pending_t *self, ingest_waiter_t **waiter_p,
                        const char *raw, size_t raw_size, int64_t now_ms);

/* Removes and returns the waiter whose command_id is at the broker (a reply came).
 * Caller owns it. NULL when none is (a late or stray reply). */
ingest_waiter_t *ingest_pending_take (ingest_pending_t *self, const char *command_id);

/* After take or expire: makes the next waiter queued on command_id the one at the
 * broker (sent_ms = now_ms) and returns it, borrowed, with its raw record for the
 * caller to send. NULL when nothing is queued. */
ingest_waiter_t *ingest_pending_promote (ingest_pending_t *self, const char *command_id, int64_t now_ms);

/* Removes and returns the longest-waiting sent waiter if it was sent at or before
 * now_ms - timeout_ms (caller owns); NULL otherwise. Call until NULL. */
ingest_waiter_t *ingest_pending_expire (ingest_pending_t *self, int64_t now_ms, int64_t timeout_ms);

/* Milliseconds until ingest_pending_expire has something (0: now), -1 when nothing is sent. */
int64_t ingest_pending_next_expiry (ingest_pending_t *self, int64_t now_ms, int64_t timeout_ms);

/* Waiters held (sent and queued). */
size_t ingest_pending_size (ingest_pending_t *self);

#endif
