/* subscription — catch-up then live, with one rule for both: deliver only the
 * events that start exactly at `next`. Reads fill gaps; the PUB feed only saves
 * a round trip, so any lost, duplicated or early PUB message is harmless. */
#include "subscription.h"

#include <errno.h>
#include <string.h>

#include "envelope.h"
#include "ids.h"
#include "log.h"
#include "store_proto.h"

#define S_DEFAULT_PAGE       1000
#define S_DEFAULT_REQUEST_MS 3000
#define S_DEFAULT_IDLE_MS    1000
#define S_DEFAULT_RETRY_MS   200
/* A store that is down for a while must not make us queue requests without end. */
#define S_DEALER_SNDHWM      16

struct _subscription_t {
    zsock_t *dealer;            /* requests to the store's ROUTER */
    zsock_t *sub;               /* the store's PUB feed */
    int64_t next;               /* next position to deliver */
    int64_t head;               /* highest head the store told us about */
    int page;
    int request_ms, idle_ms, retry_ms;

    char tag [16];              /* per-subscription prefix of request ids */
    uint64_t req_seq;
    char req_id [ENVELOPE_ID_MAX];
    int outstanding;            /* a read is in flight, answer expected as req_id */
    int64_t sent_at;            /* monotonic ms */
    int live_during_read;       /* live batches arrived (and were dropped) during the read */
    int64_t retry_at;           /* 0, or when to read again after a refusal or an error */
    int64_t last_activity;      /* last message in or out, for the idle read */
    int linger_ms;              /* 0, or the live feed's rest after it was emptied */
    int64_t live_at;            /* 0, or when the live feed is to be read again */
    unsigned timeouts_in_row;   /* to keep a long store outage from flooding the log */
    subscription_stats_t stats;
};

/* Outcome of offering a batch to the consumer. */
enum { S_NOTHING = 0, S_DELIVERED = 1, S_GAP = 2, S_REFUSED = -1 };

static int64_t
s_now (void)
{
    return zclock_mono ();
}

/* Sends read_all(from, page). A failed send (queue full while the store is away)
 * still counts as outstanding: the request timeout retries it. */
static void
s_send_read_from (subscription_t *self, int64_t from)
{
    self->req_seq++;
    snprintf (self->req_id, sizeof self->req_id, "sub-%s-%llu", self->tag,
              (unsigned long long) self->req_seq);
    size_t size = 0;
    char *body = store_read_all_encode (from, self->page, &size);
    if (body) {
        envelope_t env;
        envelope_init (&env, "store.read_all", self->req_id);
        env.body = body;
        env.body_size = size;
        if (envelope_send (zsock_resolve (self->dealer), NULL, &env) != 0)
            log_debug (NULL, NULL, "subscription: read_all from %lld not sent (%s); will retry",
                       (long long) from, zmq_strerror (zmq_errno ()));
        free (body);
    }
    self->stats.reads_sent++;
    self->outstanding = 1;
    self->live_during_read = 0;
    self->retry_at = 0;
    self->sent_at = self->last_activity = s_now ();
}

static void
s_send_read (subscription_t *self)
{
    s_send_read_from (self, self->next);
}

subscription_t *
subscription_new (const char *store_endpoint, const char *pub_endpoint, int64_t next_position)
{
    if (!store_endpoint || !pub_endpoint || next_position < 1)
        return NULL;
    subscription_t *self = calloc (1, sizeof (subscription_t));
    if (!self)
        return NULL;
    self->next = next_position;
    self->page = S_DEFAULT_PAGE;
    self->request_ms = S_DEFAULT_REQUEST_MS;
    self->idle_ms = S_DEFAULT_IDLE_MS;
    self->retry_ms = S_DEFAULT_RETRY_MS;
    char uuid [IDS_UUID_LEN];
    ids_uuid4 (uuid);
    memcpy (self->tag, uuid, 8);
    self->tag [8] = 0;

    self->dealer = zsock_new (ZMQ_DEALER);
    self->sub = zsock_new (ZMQ_SUB);
    if (!self->dealer || !self->sub)
        goto fail;
    zsock_set_linger (self->dealer, 0);
    zsock_set_sndhwm (self->dealer, S_DEALER_SNDHWM);
    zsock_set_sndtimeo (self->dealer, 0);
    zsock_set_linger (self->sub, 0);
    zsock_set_subscribe (self->sub, "");
    if (zsock_connect (self->dealer, "%s", store_endpoint) != 0
    ||  zsock_connect (self->sub, "%s", pub_endpoint) != 0) {
        log_error (NULL, NULL, "subscription: cannot connect to %s / %s", store_endpoint, pub_endpoint);
        goto fail;
    }
    /* Queued until the connection is up: the first page comes as soon as the store is there. */
    s_send_read (self);
    return self;
fail:
    subscription_destroy (&self);
    return NULL;
}

void
subscription_destroy (subscription_t **self_p)
{
    if (self_p && *self_p) {
        subscription_t *self = *self_p;
        zsock_destroy (&self->dealer);
        zsock_destroy (&self->sub);
        free (self);
        *self_p = NULL;
    }
}

zsock_t *
subscription_store_sock (subscription_t *self)
{
    return self->dealer;
}

zsock_t *
subscription_pub_sock (subscription_t *self)
{
    return self->sub;
}

/* Offers the part of batch that starts at next to fn. Events past a break in the
 * sequence are held back (S_GAP): the read that follows fetches them in order. */
static int
s_deliver (subscription_t *self, const event_batch_t *batch, subscription_fn *fn, void *arg)
{
    size_t first = 0;
    while (first < batch->count && batch->events [first].position < self->next)
        first++;
    if (first == batch->count)
        return S_NOTHING;
    if (batch->events [first].position != self->next)
        return S_GAP;
    size_t end = first + 1;
    while (end < batch->count && batch->events [end].position == self->next + (int64_t) (end - first))
        end++;
    if (fn (batch->events + first, end - first, arg) != 0) {
        self->stats.refused++;
        return S_REFUSED;
    }
    self->next = batch->events [end - 1].position + 1;
    if (self->next - 1 > self->head)
        self->head = self->next - 1;
    return end == batch->count ? S_DELIVERED : S_GAP;
}

static void
s_retry_later (subscription_t *self)
{
    self->retry_at = s_now () + self->retry_ms;
}

/* Decodes a store.events body; -2 if malformed (logged). */
static int
s_decode (subscription_t *self, const envelope_t *env, event_batch_t *batch, const char *what)
{
    if (event_batch_decode (env->body, env->body_size, batch) != 0) {
        log_warn (NULL, NULL, "subscription: malformed store.events %s (%zu bytes) dropped", what, env->body_size);
        return -2;
    }
    if (batch->head > self->head)
        self->head = batch->head;
    return 0;
}

static int
s_handle_reply (subscription_t *self, subscription_fn *fn, void *arg)
{
    zmsg_t *msg = NULL;
    envelope_t env;
    int rc = envelope_recv (zsock_resolve (self->dealer), 0, NULL, &msg, &env);
    if (rc == -1)
        return -1;
    self->last_activity = s_now ();
    if (rc == -2) {
        log_warn (NULL, NULL, "subscription: malformed reply from the store dropped");
        return 0;
    }
    /* Only the answer to the read in flight counts; anything older was re-sent
     * after a timeout and its answer arrives later or twice. A store that leaves
     * `cause` empty is still safe: delivery only ever starts at next. */
    if (!self->outstanding || (env.causation_id [0] && strcmp (env.causation_id, self->req_id) != 0)) {
        zmsg_destroy (&msg);
        return 0;
    }
    self->outstanding = 0;
    self->timeouts_in_row = 0;
    self->stats.replies++;
    if (strcmp (env.type, "store.events") != 0) {
        store_reply_t reply;
        if (strcmp (env.type, "store.error") == 0
        &&  store_reply_decode (env.type, env.body, env.body_size, &reply) == 0)
            log_warn (NULL, NULL, "subscription: store refused read_all from %lld: %s (%s)",
                      (long long) self->next, reply.error, reply.detail);
        else
            log_warn (NULL, NULL, "subscription: unexpected reply '%s' to read_all", env.type);
        s_retry_later (self);
        zmsg_destroy (&msg);
        return 0;
    }
    event_batch_t batch;
    if (s_decode (self, &env, &batch, "reply")) {
        s_retry_later (self);
        zmsg_destroy (&msg);
        return 0;
    }
    /* A full page that continues at next: the store reads the page after it while
     * the consumer applies this one (if the consumer refuses it, that read's answer
     * is dropped as stale and the same positions are read again later). */
    int64_t after = batch.count ? batch.events [batch.count - 1].position + 1 : 0;
    int ahead = (int64_t) batch.count >= self->page && batch.events [0].position == self->next
             && after == self->next + (int64_t) batch.count;
    if (ahead)
        s_send_read_from (self, after);
    int outcome = s_deliver (self, &batch, fn, arg);
    if (ahead) {
        if (outcome == S_DELIVERED && self->next == after)
            self->sent_at = self->last_activity = s_now ();     /* its timeout starts now */
        else {
            self->outstanding = 0;      /* its answer is stale */
            outcome = outcome == S_DELIVERED ? S_GAP : outcome;
        }
    }
    if (outcome == S_REFUSED || outcome == S_GAP) {
        /* A reply that does not start at next means the store skipped positions;
         * back off rather than hammer it. */
        if (outcome == S_GAP)
            self->stats.gaps++;
        s_retry_later (self);
    }
    else
    if (!ahead && ((outcome == S_DELIVERED && ((int64_t) batch.count >= self->page || self->head >= self->next))
    ||  self->live_during_read))
        s_send_read (self);       /* more to read: full page, or the feed moved on meanwhile */
    event_batch_destroy (&batch);
    zmsg_destroy (&msg);
    return 0;
}

/* Live messages delivered in one call at most (each is one append batch). */
#define S_LIVE_COALESCE 64

/* Receives one live message: 0 with *msg_p and a decoded batch, -2 dropped (bad
 * input, logged; a read is asked for), -1 nothing to receive. */
static int
s_live_recv (subscription_t *self, zmsg_t **msg_p, event_batch_t *batch)
{
    envelope_t env;
    int rc = envelope_recv (zsock_resolve (self->sub), 0, NULL, msg_p, &env);
    if (rc == -1)
        return -1;
    self->last_activity = s_now ();
    if (rc == -2 || strcmp (env.type, "store.events") != 0) {
        if (rc == 0)
            log_warn (NULL, NULL, "subscription: unexpected '%s' on the live feed dropped", env.type);
        else
            log_warn (NULL, NULL, "subscription: malformed live message dropped");
        zmsg_destroy (msg_p);
        return -2;
    }
    self->stats.live_batches++;
    if (s_decode (self, &env, batch, "live batch")) {
        zmsg_destroy (msg_p);
        if (!self->outstanding && !self->retry_at)
            s_send_read (self);   /* we may have lost events: read them */
        return -2;
    }
    return 0;
}

static int
s_handle_live (subscription_t *self, subscription_fn *fn, void *arg)
{
    if (self->outstanding || self->retry_at) {
        /* The read in flight (or the pending retry) decides what comes next;
         * delivering now could race its reply, and decoding would be wasted.
         * Remember to read again. */
        zmsg_t *msg = zmsg_recv (self->sub);
        if (!msg)
            return -1;
        self->last_activity = s_now ();
        self->stats.live_batches++;
        self->live_during_read = 1;
        zmsg_destroy (&msg);
        return 0;
    }
    /* The live messages already queued are applied together: one call, one
     * transaction for the consumer, however finely the store cut its appends. */
    zmsg_t *msgs [S_LIVE_COALESCE];
    event_batch_t batches [S_LIVE_COALESCE];
    size_t n = 0, events = 0;
    int rc = s_live_recv (self, &msgs [0], &batches [0]);
    if (rc == -1)
        return -1;
    if (rc == 0) {
        events = batches [0].count;
        n = 1;
        while (n < S_LIVE_COALESCE && events < (size_t) self->page
           &&  (zsock_events (self->sub) & ZMQ_POLLIN)) {
            rc = s_live_recv (self, &msgs [n], &batches [n]);
            if (rc == -1)
                break;
            if (rc == 0)
                events += batches [n++].count;
        }
    }
    /* the events that continue at next, in order, as one batch */
    event_batch_t merged = { 0 };
    int gap = 0;
    if (n == 1)
        merged = batches [0];
    else
    if (n > 1 && (merged.events = malloc (events * sizeof (event_t)))) {
        int64_t expect = self->next;
        for (size_t i = 0; i < n && !gap; i++)
            for (size_t j = 0; j < batches [i].count && !gap; j++) {
                const event_t *ev = &batches [i].events [j];
                if (ev->position < expect)
                    continue;                       /* seen already */
                if (ev->position > expect)
                    gap = 1;                        /* delivered up to here; the read fills it */
                else {
                    merged.events [merged.count++] = *ev;
                    expect++;
                }
            }
    }
    else
    if (n > 1)
        gap = 1;                                    /* out of memory: let a read do it */
    if (n) {
        int outcome = merged.count || n == 1 ? s_deliver (self, &merged, fn, arg) : S_NOTHING;
        if (outcome == S_NOTHING && !gap)
            self->stats.live_duplicates++;
        else
        if (outcome == S_GAP || (gap && outcome != S_REFUSED)) {
            self->stats.gaps++;
            s_send_read (self);
        }
        else
        if (outcome == S_REFUSED)
            s_retry_later (self);
    }
    if (n > 1)
        free (merged.events);
    for (size_t i = 0; i < n; i++) {
        event_batch_destroy (&batches [i]);
        zmsg_destroy (&msgs [i]);
    }
    return 0;
}

int
subscription_handle (subscription_t *self, void *which, subscription_fn *fn, void *arg)
{
    if (!self || !which || !fn)
        return -1;
    if (which == self->dealer || which == zsock_resolve (self->dealer))
        return s_handle_reply (self, fn, arg);
    if (which == self->sub || which == zsock_resolve (self->sub)) {
        int rc = s_handle_live (self, fn, arg);
        /* Rest only once the feed is empty: a backlog is taken at full speed. */
        if (rc == 0 && self->linger_ms > 0)
            self->live_at = zsock_events (self->sub) & ZMQ_POLLIN ? 0 : s_now () + self->linger_ms;
        return rc;
    }
    return -1;
}

int
subscription_live_due (subscription_t *self)
{
    if (self->live_at && s_now () >= self->live_at)
        self->live_at = 0;
    return self->live_at == 0;
}

void
subscription_set_linger (subscription_t *self, int linger_ms)
{
    self->linger_ms = linger_ms > 0 ? linger_ms : 0;
    if (!self->linger_ms)
        self->live_at = 0;
}

void
subscription_tick (subscription_t *self)
{
    int64_t now = s_now ();
    if (self->outstanding) {
        if (now - self->sent_at >= self->request_ms) {
            self->stats.timeouts++;
            if (self->timeouts_in_row++ % 20 == 0)
                log_warn (NULL, NULL, "subscription: read_all from %lld unanswered after %d ms (%u in a row); "
                          "re-sending", (long long) self->next, self->request_ms, self->timeouts_in_row);
            s_send_read (self);
        }
    }
    else
    if (self->retry_at) {
        if (now >= self->retry_at)
            s_send_read (self);
    }
    else
    if (now - self->last_activity >= self->idle_ms)
        s_send_read (self);
}

int
subscription_timeout (subscription_t *self)
{
    int64_t now = s_now (), due;
    if (self->outstanding)
        due = self->sent_at + self->request_ms;
    else
    if (self->retry_at)
        due = self->retry_at;
    else
        due = self->last_activity + self->idle_ms;
    if (self->live_at && self->live_at < due)
        due = self->live_at;
    int64_t wait = due - now;
    if (wait < 0)
        wait = 0;
    if (wait > self->idle_ms)
        wait = self->idle_ms;
    return (int) wait;
}

void
subscription_reset (subscription_t *self, int64_t next_position)
{
    if (next_position < 1)
        next_position = 1;
    self->next = next_position;
    /* A new request id makes the answer to any older read stale. */
    s_send_read (self);
}

int64_t
subscription_next (subscription_t *self)
{
    return self->next;
}

int64_t
subscription_head (subscription_t *self)
{
    return self->head;
}

int
subscription_caught_up (subscription_t *self)
{
    return !self->outstanding && !self->retry_at && self->next > self->head;
}

void
subscription_set_page (subscription_t *self, int page)
{
    if (page > 0)
        self->page = page > STORE_READ_MAX ? STORE_READ_MAX : page;
}

void
subscription_set_timers (subscription_t *self, int request_ms, int idle_ms, int retry_ms)
{
    if (request_ms > 0)
        self->request_ms = request_ms;
    if (idle_ms > 0)
        self->idle_ms = idle_ms;
    if (retry_ms > 0)
        self->retry_ms = retry_ms;
}

void
subscription_stats (subscription_t *self, subscription_stats_t *stats)
{
    *stats = self->stats;
}
