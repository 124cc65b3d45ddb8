/* store_server — the store actor. One poll loop: when requests are waiting, take
 * all of them (up to a cap), run every append in one transaction, then answer in
 * arrival order (reads see the batch), then publish the batch's events once. */
#include "store_server.h"
#include "health.h"
#include "store_metrics.h"
#include "envelope.h"
#include "ids.h"
#include "log.h"
#include "metrics_export.h"
#include "traceparent.h"

#include <ctype.h>
#include <inttypes.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>

#define S_IDLE_MS 200             /* quiet this long after a burst: give memory back */

/* How a request of the batch is answered. */
typedef enum {
    S_KIND_ERROR,           /* answer store.error (error/detail) */
    S_KIND_APPEND,
    S_KIND_READ_ALL,
    S_KIND_READ_STREAM,
    S_KIND_PING,
    S_KIND_DROP             /* nothing to answer to */
} s_kind_t;

typedef struct {
    zmsg_t *msg;            /* owned: the routing frames and envelope bytes live here */
    size_t n_routes;        /* frames before the envelope: the reply goes back along them */
    envelope_t env;         /* env.body borrows from msg */
    s_kind_t kind;
    store_append_t append;  /* S_KIND_APPEND: decoded, owns its events array */
    size_t item;            /* S_KIND_APPEND: index into the batch items */
    int64_t from, max;      /* reads */
    char stream [EVENT_ID_MAX];
    const char *error;      /* S_KIND_ERROR: static strings */
    const char *detail;
} s_request_t;

struct _store_server_t {
    store_backend_t *backend;
    zsock_t *router;
    zsock_t *pub;
    s_request_t *requests;          /* STORE_SERVER_DRAIN_MAX */
    size_t n_requests;
    store_batch_item_t *items;      /* STORE_SERVER_DRAIN_MAX */
    store_outcome_t *outcomes;      /* STORE_SERVER_DRAIN_MAX */
    size_t n_items;
    store_events_t read;            /* scratch for read answers */
    int64_t expiry_us;              /* 0: requests never expire */
    int64_t expired;                /* count since the last warning */
    int64_t expired_warned_ms;
    store_metrics_t metrics;        /* series looked up once (no-ops without a registry) */
};

store_server_t *
store_server_new (store_backend_t **backend_p, const char *router_endpoint, const char *pub_endpoint)
{
    store_server_t *self = calloc (1, sizeof (store_server_t));
    if (!self) {
        store_backend_destroy (backend_p);
        return NULL;
    }
    self->backend = *backend_p;
    *backend_p = NULL;
    store_events_init (&self->read);
    self->requests = calloc (STORE_SERVER_DRAIN_MAX, sizeof (s_request_t));
    self->items = calloc (STORE_SERVER_DRAIN_MAX, sizeof (store_batch_item_t));
    self->outcomes = calloc (STORE_SERVER_DRAIN_MAX, sizeof (store_outcome_t));
    self->router = zsock_new (ZMQ_ROUTER);
    self->pub = zsock_new (ZMQ_PUB);
    if (!self->backend || !self->requests || !self->items || !self->outcomes || !self->router || !self->pub)
        goto fail;
    /* Many handlers keep many appends in flight; replies must not be dropped at
     * the default high-water mark of 1,000. */
    zsock_set_sndhwm (self->router, 100000);
    zsock_set_rcvhwm (self->router, 100000);
    /* Let the last replies leave on shutdown. */
    zsock_set_linger (self->router, 1000);
    /* A slow subscriber loses feed messages at the HWM and catches up with read_all. */
    zsock_set_sndhwm (self->pub, 10000);
    if (!router_endpoint || zsock_bind (self->router, "%s", router_endpoint) == -1) {
        log_error (NULL, NULL, "cannot bind store ROUTER at %s: %s", router_endpoint ? router_endpoint : "(none)",
                   router_endpoint ? zmq_strerror (zmq_errno ()) : "no endpoint");
        goto fail;
    }
    if (!pub_endpoint || zsock_bind (self->pub, "%s", pub_endpoint) == -1) {
        log_error (NULL, NULL, "cannot bind store PUB at %s: %s", pub_endpoint ? pub_endpoint : "(none)",
                   pub_endpoint ? zmq_strerror (zmq_errno ()) : "no endpoint");
        goto fail;
    }
    return self;
fail:
    store_server_destroy (&self);
    return NULL;
}

void
store_server_set_expiry (store_server_t *self, int64_t expiry_ms)
{
    self->expiry_us = expiry_ms > 0 ? expiry_ms * 1000 : 0;
}

void
store_server_destroy (store_server_t **self_p)
{
    if (self_p && *self_p) {
        store_server_t *self = *self_p;
        zsock_destroy (&self->router);
        zsock_destroy (&self->pub);
        store_events_reset (&self->read);
        free (self->requests);
        free (self->items);
        free (self->outcomes);
        store_backend_destroy (&self->backend);
        free (self);
        *self_p = NULL;
    }
}

/* Logs a malformed message with a printable sample of its last frame: enough to
 * find the sender, never the whole (possibly personal) payload. */
static void
s_log_malformed (zmsg_t *msg, const char *why)
{
    zframe_t *frame = zmsg_last (msg);
    char sample [49];
    size_t size = frame ? zframe_size (frame) : 0;
    size_t n = size < sizeof sample - 1 ? size : sizeof sample - 1;
    const byte *data = frame ? zframe_data (frame) : NULL;
    for (size_t i = 0; i < n; i++)
        sample [i] = isprint (data [i]) ? (char) data [i] : '.';
    sample [n] = 0;
    log_warn (NULL, NULL, "malformed request (%s): %zu frames, %zu bytes, starts '%s'",
              why, zmsg_size (msg), size, sample);
}

/* Sorts one received message into a request of the batch. Never fails: what
 * cannot be understood becomes an error answer (or a drop with no route). */
static void
s_classify (store_server_t *self, s_request_t *req)
{
    size_t frames = zmsg_size (req->msg);
    /* ROUTER gives [identity]...[envelope]; a REQ peer adds an empty delimiter. */
    if (frames < 2 || frames > 4) {
        s_log_malformed (req->msg, "frame count");
        req->n_routes = frames >= 2 ? 1 : 0;
        req->kind = frames >= 2 ? S_KIND_ERROR : S_KIND_DROP;
        req->error = "malformed";
        req->detail = "expected [envelope] after the routing frames";
        return;
    }
    req->n_routes = frames - 1;
    zframe_t *frame = zmsg_last (req->msg);
    if (envelope_decode (zframe_data (frame), zframe_size (frame), &req->env)) {
        s_log_malformed (req->msg, "envelope");
        req->kind = S_KIND_ERROR;
        req->error = "malformed";
        req->detail = "envelope could not be decoded";
        return;
    }
    const envelope_t *env = &req->env;
    /* A request older than its sender's timeout has been answered "unavailable"
     * already and will come again: doing it now only delays the requests that are
     * still awaited. Without this, a store that falls behind (a restart, a slow
     * database) works through ever more copies of the same retried commands and
     * never catches up. */
    if (self->expiry_us > 0 && env->timestamp_us > 0
    &&  (streq (env->type, "store.append") || streq (env->type, "store.read_stream"))
    &&  envelope_now_us () - env->timestamp_us > self->expiry_us) {
        self->expired++;
        req->kind = S_KIND_ERROR;
        req->error = "expired";
        req->detail = "request older than the sender's timeout: not done";
        return;
    }
    if (streq (env->type, "store.append")) {
        if (store_append_decode (env->body, env->body_size, &req->append)) {
            s_log_malformed (req->msg, "store.append body");
            req->kind = S_KIND_ERROR;
            req->error = "malformed";
            req->detail = "store.append body could not be decoded";
            return;
        }
        /* A traceparent that does not parse is dropped here: the events will carry
         * none, and neither will the feed or the log lines about this append. */
        traceparent_t trace;
        if (req->env.traceparent [0]
        &&  traceparent_parse (req->env.traceparent, strlen (req->env.traceparent), &trace) != 0)
            req->env.traceparent [0] = 0;
        req->kind = S_KIND_APPEND;
        req->item = self->n_items++;
        self->items [req->item].req = &req->append;
        self->items [req->item].correlation_id = env->correlation_id;
        self->items [req->item].traceparent = env->traceparent;
    }
    else
    if (streq (env->type, "store.read_all")) {
        if (store_read_all_decode (env->body, env->body_size, &req->from, &req->max)) {
            s_log_malformed (req->msg, "store.read_all body");
            req->kind = S_KIND_ERROR;
            req->error = "malformed";
            req->detail = "store.read_all body could not be decoded";
            return;
        }
        req->kind = S_KIND_READ_ALL;
    }
    else
    if (streq (env->type, "store.read_stream")) {
        if (store_read_stream_decode (env->body, env->body_size, req->stream, &req->from)) {
            s_log_malformed (req->msg, "store.read_stream body");
            req->kind = S_KIND_ERROR;
            req->error = "malformed";
            req->detail = "store.read_stream body could not be decoded";
            return;
        }
        req->kind = S_KIND_READ_STREAM;
    }
    else
    if (streq (env->type, "ctl.ping"))
        req->kind = S_KIND_PING;
    else {
        log_warn (env->correlation_id, NULL, "unknown request type '%s'", env->type);
        req->kind = S_KIND_ERROR;
        req->error = "unknown_type";
        req->detail = "the store answers store.append, store.read_all, store.read_stream";
    }
}

/* Sends [routes][envelope type, body] back to the request's sender; body is
 * borrowed. The envelope answers the request: cause = its id, same corr and key. */
static void
s_answer (store_server_t *self, s_request_t *req, const char *type, const char *body, size_t body_size)
{
    if (req->kind == S_KIND_DROP || req->n_routes == 0)
        return;
    char id [IDS_UUID_LEN];
    ids_uuid4 (id);
    envelope_t env;
    envelope_init (&env, type, id);
    envelope_set (env.causation_id, sizeof env.causation_id, req->env.id);
    envelope_set (env.correlation_id, sizeof env.correlation_id, req->env.correlation_id);
    envelope_set (env.key, sizeof env.key, req->env.key);
    env.body = body;
    env.body_size = body_size;
    zframe_t *frame = envelope_encode (&env);
    if (!frame) {
        log_error (req->env.correlation_id, NULL, "cannot encode %s answer (%zu bytes)", type, body_size);
        return;
    }
    zmsg_t *reply = zmsg_new ();
    zframe_t *route = zmsg_first (req->msg);
    for (size_t i = 0; i < req->n_routes && route; i++, route = zmsg_next (req->msg))
        zmsg_append (reply, &(zframe_t *) {zframe_dup (route)});
    zmsg_append (reply, &frame);
    /* A ROUTER drops what it cannot route (the client left); nothing to do then. */
    if (zmsg_send (&reply, self->router))
        zmsg_destroy (&reply);
}

static void
s_answer_error (store_server_t *self, s_request_t *req, const char *error, const char *detail)
{
    size_t size = 0;
    char *body = store_error_encode (error, detail, &size);
    if (body)
        s_answer (self, req, "store.error", body, size);
    free (body);
}

static void
s_answer_events (store_server_t *self, s_request_t *req, const store_events_t *events)
{
    char *body = NULL;
    size_t size = 0;
    if (event_batch_encode (events->events, events->count, events->head, &body, &size) == 0)
        s_answer (self, req, "store.events", body, size);
    else
        s_answer_error (self, req, "unavailable", "store out of memory");
    free (body);
}

static void
s_answer_append (store_server_t *self, s_request_t *req)
{
    const store_outcome_t *outcome = &self->outcomes [req->item];
    char *body = NULL;
    size_t size = 0;
    const char *type = NULL;
    switch (outcome->kind) {
        case STORE_OUTCOME_APPENDED:
            type = "store.appended";
            body = store_appended_encode (outcome->first_position, outcome->last_position,
                                          outcome->version, &size);
            break;
        case STORE_OUTCOME_DUPLICATE:
            type = "store.duplicate";
            body = store_duplicate_encode (outcome->result, outcome->result_size, outcome->fingerprint, &size);
            break;
        case STORE_OUTCOME_CONFLICT:
            type = "store.conflict";
            body = store_conflict_encode (outcome->current_version, &size);
            break;
        case STORE_OUTCOME_ERROR:
            type = "store.error";
            body = store_error_encode (outcome->error, outcome->detail, &size);
            break;
    }
    if (body)
        s_answer (self, req, type, body, size);
    free (body);
    /* Lines about this append carry its trace (the sender's traceparent). */
    char trace_id [33];
    log_set_trace (traceparent_trace_id (req->env.traceparent, trace_id));
    if (outcome->kind == STORE_OUTCOME_ERROR)
        log_warn (req->env.correlation_id, req->append.stream, "append %s refused: %s",
                  req->append.command_id, outcome->detail);
    else
    if (outcome->kind == STORE_OUTCOME_APPENDED)
        log_debug (req->env.correlation_id, req->append.stream, "append %s: %zu events at %" PRId64 "..%" PRId64,
                   req->append.command_id, req->append.count, outcome->first_position, outcome->last_position);
    else
        log_debug (req->env.correlation_id, req->append.stream, "append %s: %s", req->append.command_id,
                   outcome->kind == STORE_OUTCOME_DUPLICATE ? "duplicate, nothing written"
                                                            : "version conflict, nothing written");
    log_set_trace (NULL);
}

/* Where the feed is in a batch: event `event` of item `item`. */
typedef struct {
    size_t item, event;
} s_cursor_t;

/* Moves c to the next appended event at or after it; 0 when there is none. */
static int
s_feed_seek (store_server_t *self, s_cursor_t *c)
{
    for (; c->item < self->n_items; c->item++, c->event = 0)
        if (self->outcomes [c->item].kind == STORE_OUTCOME_APPENDED && self->items [c->item].req
        &&  c->event < self->items [c->item].req->count)
            return 1;
    return 0;
}

/* Publishes the events the batch appended, in position order (items were applied
 * in order), as store.events messages split only when one would outgrow the body
 * budget; each part carries the new head. The bodies are packed straight from
 * the requests, the same bytes event_batch_encode writes for those events, with
 * no copy of each event on the way. */
static void
s_publish (store_server_t *self, int64_t now_us)
{
    int64_t head = 0;
    for (size_t i = 0; i < self->n_items; i++)
        if (self->outcomes [i].kind == STORE_OUTCOME_APPENDED && self->outcomes [i].last_position > head)
            head = self->outcomes [i].last_position;
    s_cursor_t at = { 0, 0 };
    while (s_feed_seek (self, &at)) {
        /* The part: as many events as fit the budget, at least one. */
        s_cursor_t end = at;
        size_t count = 0, bytes = 0;
        while (s_feed_seek (self, &end)) {
            const store_new_event_t *ev = &self->items [end.item].req->events [end.event];
            size_t cost = ev->data_size + STORE_BACKEND_EVENT_OVERHEAD;
            if (count > 0 && bytes + cost > STORE_BACKEND_BODY_BUDGET)
                break;
            bytes += cost;
            count++;
            end.event++;
        }
        msgpack_sbuffer buf;
        msgpack_sbuffer_init (&buf);
        buf.data = malloc (bytes + 64);     /* the bound covers keys and ids: one allocation */
        buf.alloc = buf.data ? bytes + 64 : 0;
        msgpack_packer pk;
        msgpack_packer_init (&pk, &buf, msgpack_sbuffer_write);
        msgpack_pack_map (&pk, 2);
        msgpack_pack_cstr (&pk, "events");
        msgpack_pack_array (&pk, count);
        int64_t first = 0, last = 0;
        for (size_t n = 0; n < count; n++, at.event++) {
            s_feed_seek (self, &at);
            const store_batch_item_t *item = &self->items [at.item];
            const store_outcome_t *outcome = &self->outcomes [at.item];
            const store_new_event_t *ev = &item->req->events [at.event];
            int64_t position = outcome->first_position + (int64_t) at.event;
            if (n == 0)
                first = position;
            last = position;
            /* event_pack's layout, key for key (s_classify kept only a traceparent
             * that parses, as the backend does) */
            const char *tp = item->traceparent;
            int traced = tp && tp [0];
            msgpack_pack_map (&pk, traced ? 10 : 9);
            msgpack_pack_kv_int (&pk, "pos", position);
            msgpack_pack_kv_str (&pk, "stream", item->req->stream);
            msgpack_pack_kv_int (&pk, "ver", outcome->version - (int64_t) item->req->count + 1 + (int64_t) at.event);
            msgpack_pack_kv_str (&pk, "id", ev->id);
            msgpack_pack_kv_str (&pk, "type", ev->type);
            msgpack_pack_kv_int (&pk, "ts", now_us);
            msgpack_pack_kv_str (&pk, "cmd", item->req->command_id);
            msgpack_pack_kv_str (&pk, "corr", item->correlation_id ? item->correlation_id : "");
            if (traced)
                msgpack_pack_kv_str (&pk, "tp", tp);
            msgpack_pack_kv_bin (&pk, "data", ev->data ? ev->data : "", ev->data_size);
        }
        msgpack_pack_kv_int (&pk, "head", head);
        if (buf.data) {
            char id [IDS_UUID_LEN];
            ids_uuid4 (id);
            envelope_t env;
            envelope_init (&env, "store.events", id);
            env.body = buf.data;
            env.body_size = buf.size;
            if (envelope_send (zsock_resolve (self->pub), NULL, &env))
                log_warn (NULL, NULL, "feed message %" PRId64 "..%" PRId64 " not published", first, last);
        }
        else
            log_error (NULL, NULL, "out of memory building the feed: subscribers will catch up by read_all");
        msgpack_sbuffer_destroy (&buf);
    }
}

/* Takes every waiting message (up to the cap) off the ROUTER without blocking
 * beyond the first. Returns how many were taken. */
static size_t
s_drain (store_server_t *self)
{
    self->n_requests = 0;
    self->n_items = 0;
    while (self->n_requests < STORE_SERVER_DRAIN_MAX) {
        if (self->n_requests > 0 && !(zsock_events (self->router) & ZMQ_POLLIN))
            break;
        zmsg_t *msg = zmsg_recv (self->router);
        if (!msg)
            break;              /* interrupted: finish what we have */
        s_request_t *req = &self->requests [self->n_requests++];
        memset (req, 0, sizeof (*req));
        req->msg = msg;
        s_classify (self, req);
    }
    return self->n_requests;
}

/* Counts the batch's appends by outcome and the events written; moves the head. */
static void
s_count_batch (store_server_t *self, int64_t started_us)
{
    uint64_t appends [STORE_METRICS_OUTCOMES] = { 0 };
    uint64_t events = 0;
    int64_t head = 0;
    for (size_t i = 0; i < self->n_requests; i++) {
        const s_request_t *req = &self->requests [i];
        if (req->kind == S_KIND_APPEND) {
            const store_outcome_t *outcome = &self->outcomes [req->item];
            switch (outcome->kind) {
                case STORE_OUTCOME_APPENDED:
                    appends [STORE_METRICS_OK]++;
                    events += req->append.count;
                    if (outcome->last_position > head)
                        head = outcome->last_position;
                    break;
                case STORE_OUTCOME_DUPLICATE:
                    appends [STORE_METRICS_DUPLICATE]++;
                    break;
                case STORE_OUTCOME_CONFLICT:
                    appends [STORE_METRICS_CONFLICT]++;
                    break;
                case STORE_OUTCOME_ERROR:
                    appends [STORE_METRICS_ERROR]++;
                    break;
            }
        }
        else
        if (req->kind == S_KIND_ERROR && streq (req->env.type, "store.append"))
            appends [req->error && streq (req->error, "expired") ? STORE_METRICS_EXPIRED : STORE_METRICS_ERROR]++;
    }
    store_metrics_batch (&self->metrics, appends, events, (double) (zclock_usecs () - started_us) / 1e6);
    if (head > 0)
        metric_set (self->metrics.head, (double) head);
}

/* One batch: drain, commit, answer in arrival order, publish, clean up. */
static void
s_handle_router (store_server_t *self)
{
    int64_t started_us = zclock_usecs ();
    if (s_drain (self) == 0)
        return;
    int64_t now_us = envelope_now_us ();
    int committed = 0;
    if (self->n_items > 0)
        committed = store_backend_append_batch (self->backend, self->items, self->n_items,
                                                now_us, self->outcomes) == 0;
    if (self->n_items > 0 && !committed)
        metric_add (self->metrics.errors_append, 1);
    for (size_t i = 0; i < self->n_requests; i++) {
        s_request_t *req = &self->requests [i];
        switch (req->kind) {
            case S_KIND_APPEND:
                s_answer_append (self, req);
                break;
            case S_KIND_READ_ALL:
                if (store_backend_read_all (self->backend, req->from, (size_t) req->max, &self->read) == 0)
                    s_answer_events (self, req, &self->read);
                else {
                    metric_add (self->metrics.errors_read, 1);
                    s_answer_error (self, req, "unavailable", "event log read failed");
                }
                store_events_reset (&self->read);
                break;
            case S_KIND_READ_STREAM:
                if (store_backend_read_stream (self->backend, req->stream, req->from, STORE_READ_MAX,
                                               &self->read) == 0)
                    s_answer_events (self, req, &self->read);
                else {
                    metric_add (self->metrics.errors_read, 1);
                    s_answer_error (self, req, "unavailable", "event log read failed");
                }
                store_events_reset (&self->read);
                break;
            case S_KIND_PING:
                s_answer (self, req, "ctl.pong", NULL, 0);
                break;
            case S_KIND_ERROR:
                s_answer_error (self, req, req->error, req->detail);
                break;
            case S_KIND_DROP:
                break;
        }
    }
    s_count_batch (self, started_us);
    if (committed)
        s_publish (self, now_us);
    if (self->expired > 0 && zclock_mono () - self->expired_warned_ms >= 10000) {
        log_warn (NULL, NULL, "%" PRId64 " requests expired before the store reached them (older than %" PRId64
                  " ms): the store is behind its senders", self->expired, self->expiry_us / 1000);
        self->expired = 0;
        self->expired_warned_ms = zclock_mono ();
    }
    store_outcomes_free (self->outcomes, self->n_items);
    for (size_t i = 0; i < self->n_requests; i++) {
        store_append_free (&self->requests [i].append);
        zmsg_destroy (&self->requests [i].msg);
    }
    self->n_requests = 0;
    self->n_items = 0;
}

int
store_server_run (store_server_t *self, zsock_t *pipe)
{
    zpoller_t *poller = zpoller_new (self->router, pipe, NULL);
    if (!poller)
        return -1;
    int64_t head = 0;
    store_backend_head (self->backend, &head);
    store_metrics_init (&self->metrics, metrics_process ());
    metric_set (self->metrics.head, (double) head);
    log_info (NULL, NULL, "store serving (%s backend, head %" PRId64 ")", store_backend_name (self->backend), head);
    /* After a burst, memory goes back to the system once the store has been quiet
     * for a moment: the burst's buffers (requests, feed, page cache) would
     * otherwise stay in the process for good. */
    int busy = 0;
    while (true) {
        health_beat ();
        void *which = zpoller_wait (poller, busy ? S_IDLE_MS : 1000);
        if (which == self->router) {
            s_handle_router (self);
            busy = 1;
        }
        else
        if (!which && busy && !zpoller_terminated (poller) && !zsys_interrupted) {
            store_backend_idle (self->backend);
            malloc_trim (0);
            busy = 0;
        }
        else
        if (pipe && which == pipe) {
            char *command = zstr_recv (pipe);
            bool term = !command || streq (command, "$TERM");
            zstr_free (&command);
            if (term)
                break;
        }
        else
        if (zpoller_terminated (poller) || zsys_interrupted)
            break;
    }
    zpoller_destroy (&poller);
    log_info (NULL, NULL, "store stopping");
    return 0;
}

void
store_server_actor (zsock_t *pipe, void *args)
{
    store_server_args_t *a = (store_server_args_t *) args;
    store_server_t *self = store_server_new (&a->backend, a->router_endpoint, a->pub_endpoint);
    zsock_signal (pipe, self ? 0 : 255);
    if (!self)
        return;
    store_server_set_expiry (self, a->expiry_ms);
    store_server_run (self, pipe);
    store_server_destroy (&self);
}
