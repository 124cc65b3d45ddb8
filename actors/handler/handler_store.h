/* handler_store — the handler's client of the store: requests over one DEALER, many
 * in flight, each re-sent with backoff until answered or until its deadline. Replies
 * are matched by the request's envelope id (their `cause`); a reply to a request that
 * was answered, cancelled or timed out is dropped. */
#ifndef DOSSIER_HANDLER_STORE_H
#define DOSSIER_HANDLER_STORE_H

#include "envelope.h"

#include <czmq.h>
#include <stdint.h>

#define HANDLER_STORE_REQUEST_ID_MAX 32
/* A request that left is first re-sent after half the time to its deadline (at least
 * this), then with doubling backoff (at most 4 s). Why not sooner: a running store
 * loses nothing (ipc, no high-water-mark drops), it is only slow, and every early
 * resend is one more append it must look up as a duplicate; a resend is for a store
 * that died holding the request, and half the deadline still leaves it time. */
#define HANDLER_STORE_FIRST_RESEND_MS 500

typedef struct _handler_store_t handler_store_t;

/* Called for a request whose deadline passed without an answer (it is forgotten). */
typedef void (handler_store_expired_fn) (void *owner, void *arg);

/* Connects a DEALER to endpoint. NULL on failure. Caller owns. */
handler_store_t *handler_store_new (const char *endpoint);
void handler_store_destroy (handler_store_t **self_p);

/* The socket to poll for input (borrowed). */
zsock_t *handler_store_sock (handler_store_t *self);

/* Sends a request (type, key, corr, traceparent — NULL or "" for none — and body,
 * copied) for owner, tracked until answered, cancelled or past deadline_ms (monotonic clock, zclock_mono). Writes the request id
 * into id (for handler_store_cancel). A send that cannot leave now is retried at the
 * next resend. Returns 0, -1 out of memory. */
int handler_store_request (handler_store_t *self, const char *type, const char *key, const char *corr,
                           const char *traceparent, const char *body, size_t size, int64_t deadline_ms, void *owner,
                           char id [HANDLER_STORE_REQUEST_ID_MAX]);

/* Forgets a request (no-op when unknown): a late reply to it will be dropped. */
void handler_store_cancel (handler_store_t *self, const char *id);

/* Receives one message. When it answers a tracked request, returns 0 with *owner_p,
 * *msg_p (caller destroys) and env (borrows from *msg_p); the request is forgotten.
 * Returns -1 when nothing usable was read (a late, unknown or malformed reply: dropped). */
int handler_store_recv (handler_store_t *self, void **owner_p, zmsg_t **msg_p, envelope_t *env);

/* Re-sends what is due and expires what is past its deadline (calling expired for
 * each). now_ms is zclock_mono (). */
void handler_store_tick (handler_store_t *self, int64_t now_ms, handler_store_expired_fn *expired, void *arg);

/* Milliseconds until the next resend or deadline (0 if overdue), or -1 when idle. */
int64_t handler_store_timeout (handler_store_t *self, int64_t now_ms);

/* Requests being tracked. */
size_t handler_store_size (handler_store_t *self);

#endif
