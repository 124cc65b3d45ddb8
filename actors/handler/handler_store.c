/* handler_store — store client. The encoded request is kept so a resend is the same
 * bytes with the same id: the store treats a repeated append as a duplicate (same
 * command id) and a repeated read as a read, so resending is always safe. */
#include "handler_store.h"
#include "log.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_RESEND_MAX_MS 4000

typedef struct {
    char id [HANDLER_STORE_REQUEST_ID_MAX];
    zframe_t *frame;            /* the encoded envelope, resent as is */
    void *owner;
    int64_t deadline_ms;
    int64_t resend_ms;          /* next resend */
    int64_t backoff_ms;
    int sent;                   /* times it actually left */
} s_request_t;

struct _handler_store_t {
    zsock_t *sock;
    zhashx_t *requests;         /* id → s_request_t, owned */
    uint64_t sequence;
    int64_t next_due_ms;        /* earliest resend/deadline (may be early, never late) */
};

static void
s_request_destroy (void **item_p)
{
    if (item_p && *item_p) {
        s_request_t *request = (s_request_t *) *item_p;
        zframe_destroy (&request->frame);
        free (request);
        *item_p = NULL;
    }
}

handler_store_t *
handler_store_new (const char *endpoint)
{
    handler_store_t *self = calloc (1, sizeof (handler_store_t));
    if (!self)
        return NULL;
    self->sock = zsock_new (ZMQ_DEALER);
    self->requests = zhashx_new ();
    if (!self->sock || !self->requests)
        goto fail;
    zhashx_set_destructor (self->requests, s_request_destroy);
    /* Never block the actor: a send that cannot go now (high-water mark) is retried
     * on the resend timer. Requests made before the store is up wait in the pipe and
     * leave on connection; whatever a dying store swallowed is covered by resends. */
    zsock_set_sndtimeo (self->sock, 0);
    zsock_set_linger (self->sock, 0);
    zsock_set_rcvhwm (self->sock, 0);
    zsock_set_sndhwm (self->sock, 100000);
    if (!endpoint || zsock_connect (self->sock, "%s", endpoint) != 0)
        goto fail;
    self->next_due_ms = -1;
    return self;
fail:
    handler_store_destroy (&self);
    return NULL;
}

void
handler_store_destroy (handler_store_t **self_p)
{
    if (self_p && *self_p) {
        handler_store_t *self = *self_p;
        zhashx_destroy (&self->requests);
        zsock_destroy (&self->sock);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
handler_store_sock (handler_store_t *self)
{
    return self->sock;
}

size_t
handler_store_size (handler_store_t *self)
{
    return zhashx_size (self->requests);
}

/* Sends the request's frame once; 0 if it left, -1 if not (retried later). */
static int
s_send (handler_store_t *self, s_request_t *request)
{
    zframe_t *copy = zframe_dup (request->frame);
    if (!copy)
        return -1;
    if (zframe_send (&copy, self->sock, ZFRAME_DONTWAIT) != 0) {
        zframe_destroy (&copy);
        return -1;
    }
    request->sent++;
    return 0;
}

static void
s_due (handler_store_t *self, int64_t when)
{
    if (self->next_due_ms < 0 || when < self->next_due_ms)
        self->next_due_ms = when;
}

int
handler_store_request (handler_store_t *self, const char *type, const char *key, const char *corr,
                       const char *traceparent, const char *body, size_t size, int64_t deadline_ms, void *owner,
                       char id [HANDLER_STORE_REQUEST_ID_MAX])
{
    s_request_t *request = calloc (1, sizeof (s_request_t));
    if (!request)
        return -1;
    snprintf (request->id, sizeof request->id, "r%" PRIu64, ++self->sequence);
    envelope_t env;
    envelope_init (&env, type, request->id);
    envelope_set (env.key, sizeof env.key, key);
    envelope_set (env.correlation_id, sizeof env.correlation_id, corr);
    envelope_set (env.traceparent, sizeof env.traceparent, traceparent);
    env.body = body;
    env.body_size = size;
    request->frame = envelope_encode (&env);
    if (!request->frame) {
        free (request);
        return -1;
    }
    request->owner = owner;
    request->deadline_ms = deadline_ms;
    int64_t now = zclock_mono ();
    request->backoff_ms = (deadline_ms - now) / 2;
    if (request->backoff_ms < HANDLER_STORE_FIRST_RESEND_MS)
        request->backoff_ms = HANDLER_STORE_FIRST_RESEND_MS;
    if (s_send (self, request) != 0)
        /* not connected (yet): try again soon rather than after a full backoff */
        request->backoff_ms = 100;
    request->resend_ms = now + request->backoff_ms;
    if (zhashx_insert (self->requests, request->id, request) != 0) {
        void *item = request;
        s_request_destroy (&item);
        return -1;
    }
    s_due (self, request->resend_ms < deadline_ms ? request->resend_ms : deadline_ms);
    memcpy (id, request->id, sizeof request->id);
    return 0;
}

void
handler_store_cancel (handler_store_t *self, const char *id)
{
    if (id && *id)
        zhashx_delete (self->requests, id);
}

int
handler_store_recv (handler_store_t *self, void **owner_p, zmsg_t **msg_p, envelope_t *env)
{
    *owner_p = NULL;
    *msg_p = NULL;
    zframe_t *route = NULL;
    zmsg_t *msg = NULL;
    int rc = envelope_recv (zsock_resolve (self->sock), 0, &route, &msg, env);
    if (rc == -2) {
        log_warn (NULL, NULL, "malformed message from the store: dropped");
        return -1;
    }
    if (rc != 0)
        return -1;
    s_request_t *request = (s_request_t *) zhashx_lookup (self->requests, env->causation_id);
    if (!request) {
        log_debug (NULL, NULL, "late or unknown store reply %s for %s: dropped", env->type, env->causation_id);
        zmsg_destroy (&msg);
        return -1;
    }
    *owner_p = request->owner;
    zhashx_delete (self->requests, env->causation_id);
    *msg_p = msg;
    return 0;
}

void
handler_store_tick (handler_store_t *self, int64_t now_ms, handler_store_expired_fn *expired, void *arg)
{
    if (self->next_due_ms < 0 || now_ms < self->next_due_ms)
        return;
    self->next_due_ms = -1;
    /* Collect ids first: a callback may start or cancel requests, which must not
     * happen while the table is being walked. */
    zlistx_t *late = zlistx_new ();
    if (late)
        zlistx_set_destructor (late, (zlistx_destructor_fn *) zstr_free);
    s_request_t *request = (s_request_t *) zhashx_first (self->requests);
    while (request) {
        if (now_ms >= request->deadline_ms) {
            char *id = late ? strdup (request->id) : NULL;
            if (id)
                zlistx_add_end (late, id);
        }
        else {
            if (now_ms >= request->resend_ms) {
                if (s_send (self, request) == 0)
                    log_debug (NULL, NULL, "store request %s re-sent (%d)", request->id, request->sent);
                request->backoff_ms *= 2;
                if (request->backoff_ms > S_RESEND_MAX_MS)
                    request->backoff_ms = S_RESEND_MAX_MS;
                request->resend_ms = now_ms + request->backoff_ms;
            }
            s_due (self, request->resend_ms < request->deadline_ms ? request->resend_ms : request->deadline_ms);
        }
        request = (s_request_t *) zhashx_next (self->requests);
    }
    if (!late) {
        s_due (self, now_ms + 10);      /* out of memory: look again shortly */
        return;
    }
    for (const char *id = (const char *) zlistx_first (late); id; id = (const char *) zlistx_next (late)) {
        request = (s_request_t *) zhashx_lookup (self->requests, id);
        if (!request)
            continue;       /* cancelled by an earlier callback */
        void *owner = request->owner;
        zhashx_delete (self->requests, id);
        if (expired)
            expired (owner, arg);
    }
    zlistx_destroy (&late);
}

int64_t
handler_store_timeout (handler_store_t *self, int64_t now_ms)
{
    if (self->next_due_ms < 0)
        return -1;
    return self->next_due_ms > now_ms ? self->next_due_ms - now_ms : 0;
}
