/* test_subscription_catchup — the catch-up subscription against a fake store made
 * of real ZeroMQ sockets (ipc in a temporary directory): catch-up then live, gap
 * fill, duplicate live batches, a refused batch, and a store restart. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "envelope.h"
#include "event.h"
#include "store_proto.h"
#include "subscription.h"

#define MAX_EVENTS 20000

/* The fake store: a log of `count` events, a ROUTER answering read_all, a PUB. */
typedef struct {
    char dir [64];
    char store_ep [128], pub_ep [128];
    zsock_t *router, *pub;
    int64_t count;
    int answer;                 /* answer read_all automatically */
    int requests;               /* read_all requests seen */
} fake_t;

/* What the consumer saw. */
typedef struct {
    int64_t last;               /* last position applied */
    size_t batches;
    size_t batch_sizes [64];
    int64_t refuse_at;          /* refuse (once) a batch starting at this position */
    int refusals;
} consumer_t;

static zsock_t *
s_bind (int type, const char *ep)
{
    zsock_t *s = zsock_new (type);
    assert_non_null (s);
    zsock_set_linger (s, 0);
    assert_int_equal (zsock_bind (s, "%s", ep), 0);
    return s;
}

static void
s_fake_start (fake_t *f)
{
    memset (f, 0, sizeof *f);
    strcpy (f->dir, "/tmp/dos-subXXXXXX");
    assert_non_null (mkdtemp (f->dir));
    snprintf (f->store_ep, sizeof f->store_ep, "ipc://%s/store.ipc", f->dir);
    snprintf (f->pub_ep, sizeof f->pub_ep, "ipc://%s/pub.ipc", f->dir);
    f->router = s_bind (ZMQ_ROUTER, f->store_ep);
    f->pub = s_bind (ZMQ_PUB, f->pub_ep);
    f->answer = 1;
}

static void
s_fake_stop (fake_t *f)
{
    zsock_destroy (&f->router);
    zsock_destroy (&f->pub);
    char path [160];
    snprintf (path, sizeof path, "%s/store.ipc", f->dir);
    unlink (path);
    snprintf (path, sizeof path, "%s/pub.ipc", f->dir);
    unlink (path);
    assert_int_equal (rmdir (f->dir), 0);
}

/* Encodes events [from, to] (clamped to the log) as a store.events body. */
static char *
s_batch (fake_t *f, int64_t from, int64_t to, size_t *size)
{
    static event_t events [MAX_EVENTS];
    if (to > f->count)
        to = f->count;
    size_t n = 0;
    for (int64_t p = from; p <= to && n < MAX_EVENTS; p++, n++) {
        event_t *ev = &events [n];
        memset (ev, 0, sizeof *ev);
        ev->position = p;
        ev->version = p;
        snprintf (ev->stream, sizeof ev->stream, "case-1");
        snprintf (ev->id, sizeof ev->id, "ev-%lld", (long long) p);
        snprintf (ev->type, sizeof ev->type, "Test");
        ev->data = "{}";
        ev->data_size = 2;
    }
    char *out = NULL;
    assert_int_equal (event_batch_encode (events, n, f->count, &out, size), 0);
    return out;
}

static void
s_send_events (zsock_t *sock, zframe_t *route, fake_t *f, const char *cause, int64_t from, int64_t to)
{
    size_t size;
    char *body = s_batch (f, from, to, &size);
    envelope_t env;
    envelope_init (&env, "store.events", "fake");
    envelope_set (env.causation_id, sizeof env.causation_id, cause);
    env.body = body;
    env.body_size = size;
    assert_int_equal (envelope_send (zsock_resolve (sock), route, &env), 0);
    free (body);
}

static void
s_publish (fake_t *f, int64_t from, int64_t to)
{
    s_send_events (f->pub, NULL, f, "", from, to);
}

/* Receives one read_all; answers it unless answer is off. Returns the message
 * (caller destroys) so a test can answer it later. */
static zmsg_t *
s_fake_request (fake_t *f, zframe_t **route, char *req_id, int64_t *from, int64_t *max)
{
    zmsg_t *msg;
    envelope_t env;
    assert_int_equal (envelope_recv (zsock_resolve (f->router), 1, route, &msg, &env), 0);
    assert_string_equal (env.type, "store.read_all");
    assert_int_equal (store_read_all_decode (env.body, env.body_size, from, max), 0);
    assert_true (*max >= 1 && *max <= STORE_READ_MAX);
    snprintf (req_id, ENVELOPE_ID_MAX, "%s", env.id);
    f->requests++;
    if (f->answer)
        s_send_events (f->router, *route, f, req_id, *from, *from + *max - 1);
    return msg;
}

static int
s_consume (const event_t *events, size_t count, void *arg)
{
    consumer_t *c = (consumer_t *) arg;
    assert_true (count > 0);
    if (c->refuse_at && events [0].position == c->refuse_at) {
        c->refuse_at = 0;
        c->refusals++;
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        /* exactly in order, without gaps, never twice */
        assert_int_equal (events [i].position, c->last + 1);
        char id [32];
        snprintf (id, sizeof id, "ev-%lld", (long long) events [i].position);
        assert_string_equal (events [i].id, id);
        c->last = events [i].position;
    }
    if (c->batches < 64)
        c->batch_sizes [c->batches] = count;
    c->batches++;
    return 0;
}

/* Runs the subscription and the fake store until the consumer reached `until`
 * (or the stats say stop), failing after timeout_ms. */
static void
s_run (subscription_t *sub, fake_t *f, consumer_t *c, int64_t until, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (subscription_store_sock (sub), subscription_pub_sock (sub), NULL);
    if (f->router)
        zpoller_add (poller, f->router);
    int64_t deadline = zclock_mono () + timeout_ms;
    while (c->last < until) {
        assert_true (zclock_mono () < deadline);
        int wait = subscription_timeout (sub);
        void *which = zpoller_wait (poller, wait > 50 ? 50 : wait);
        if (which && which == f->router) {
            zframe_t *route; char id [ENVELOPE_ID_MAX]; int64_t from, max;
            zmsg_t *msg = s_fake_request (f, &route, id, &from, &max);
            zmsg_destroy (&msg);
        }
        else
        if (which)
            assert_int_equal (subscription_handle (sub, which, s_consume, c), 0);
        subscription_tick (sub);
    }
    zpoller_destroy (&poller);
}

/* Publishes an already-seen event until the SUB socket gets one: the handshake that
 * proves the live feed is connected, instead of sleeping past the slow joiner. */
static void
s_wait_live (subscription_t *sub, fake_t *f, consumer_t *c)
{
    subscription_stats_t st;
    subscription_stats (sub, &st);
    uint64_t before = st.live_batches;
    int64_t deadline = zclock_mono () + 5000;
    while (1) {
        assert_true (zclock_mono () < deadline);
        s_publish (f, 1, 1);
        zpoller_t *poller = zpoller_new (subscription_pub_sock (sub), NULL);
        void *which = zpoller_wait (poller, 20);
        zpoller_destroy (&poller);
        if (which)
            assert_int_equal (subscription_handle (sub, which, s_consume, c), 0);
        subscription_stats (sub, &st);
        if (st.live_batches > before)
            break;
    }
}

static void
test_catchup_then_live (void **state)
{
    (void) state;
    fake_t f;
    s_fake_start (&f);
    f.count = 2500;
    consumer_t c = { 0 };
    subscription_t *sub = subscription_new (f.store_ep, f.pub_ep, 1);
    assert_non_null (sub);
    subscription_set_timers (sub, 5000, 60000, 20);
    s_run (sub, &f, &c, 2500, 5000);
    assert_int_equal (c.last, 2500);
    assert_int_equal (c.batches, 3);                 /* pages of 1,000 */
    assert_int_equal (c.batch_sizes [0], 1000);
    assert_int_equal (c.batch_sizes [2], 500);
    assert_int_equal (subscription_head (sub), 2500);
    assert_true (subscription_caught_up (sub));

    /* live: new commits arrive on the PUB and need no read */
    s_wait_live (sub, &f, &c);
    subscription_stats_t st;
    subscription_stats (sub, &st);
    uint64_t reads = st.reads_sent;
    f.count = 2503;
    s_publish (&f, 2501, 2502);
    s_publish (&f, 2503, 2503);
    s_run (sub, &f, &c, 2503, 5000);
    subscription_stats (sub, &st);
    assert_int_equal (st.reads_sent, reads);
    assert_int_equal (subscription_next (sub), 2504);
    subscription_destroy (&sub);
    assert_null (sub);
    s_fake_stop (&f);
}

/* A second subscriber on the fake's feed, connected (it has seen a message)
 * before deadline, to tell when published batches have arrived. */
static zsock_t *
s_observer_new (fake_t *f, int64_t deadline)
{
    zsock_t *observer = zsock_new_sub (f->pub_ep, "");
    assert_non_null (observer);
    while (1) {
        assert_true (zclock_mono () < deadline);
        s_publish (f, 1, 1);
        zpoller_t *poller = zpoller_new (observer, NULL);
        void *which = zpoller_wait (poller, 20);
        zpoller_destroy (&poller);
        if (which)
            return observer;
    }
}

/* Waits until observer has received n batches that start after position. */
static void
s_observer_wait (zsock_t *observer, int64_t position, int n, int64_t deadline)
{
    int seen = 0;
    while (seen < n) {
        assert_true (zclock_mono () < deadline);
        zmsg_t *msg = NULL;
        envelope_t env;
        assert_int_equal (envelope_recv (zsock_resolve (observer), 0, NULL, &msg, &env), 0);
        event_batch_t batch;
        assert_int_equal (event_batch_decode (env.body, env.body_size, &batch), 0);
        if (batch.count && batch.events [0].position > position)
            seen++;
        event_batch_destroy (&batch);
        zmsg_destroy (&msg);
    }
}

/* Live messages already queued are delivered together, in order, once: here the
 * consumer is busy while five appends are published, then gets them in at most
 * five calls, without a read. */
static void
test_queued_live_batches_are_applied_together (void **state)
{
    (void) state;
    fake_t f;
    s_fake_start (&f);
    f.count = 10;
    consumer_t c = { 0 };
    subscription_t *sub = subscription_new (f.store_ep, f.pub_ep, 1);
    subscription_set_timers (sub, 5000, 60000, 20);
    s_run (sub, &f, &c, 10, 5000);
    s_wait_live (sub, &f, &c);
    /* an observer on the same feed tells when the five appends have arrived */
    int64_t deadline = zclock_mono () + 5000;
    zsock_t *observer = s_observer_new (&f, deadline);
    subscription_stats_t st;
    subscription_stats (sub, &st);
    uint64_t reads = st.reads_sent;
    size_t calls = c.batches;
    f.count = 20;
    for (int64_t p = 11; p <= 20; p += 2)
        s_publish (&f, p, p + 1);
    s_observer_wait (observer, 10, 5, deadline);
    s_run (sub, &f, &c, 20, 5000);
    assert_int_equal (c.last, 20);
    assert_true (c.batches - calls <= 5);
    subscription_stats (sub, &st);
    assert_int_equal (st.reads_sent, reads);
    zsock_destroy (&observer);
    subscription_destroy (&sub);
    s_fake_stop (&f);
}

/* With a linger, the live feed rests once emptied: what is published meanwhile is
 * delivered in one call when it is due again. */
static void
test_linger_gathers_live_batches (void **state)
{
    (void) state;
    fake_t f;
    s_fake_start (&f);
    f.count = 10;
    consumer_t c = { 0 };
    subscription_t *sub = subscription_new (f.store_ep, f.pub_ep, 1);
    subscription_set_timers (sub, 5000, 60000, 20);
    s_run (sub, &f, &c, 10, 5000);
    s_wait_live (sub, &f, &c);
    assert_true (subscription_live_due (sub));          /* no linger: always due */
    subscription_set_linger (sub, 1000);
    int64_t deadline = zclock_mono () + 5000;
    zsock_t *observer = s_observer_new (&f, deadline);
    /* one append, handled: the feed is empty, so it rests */
    f.count = 11;
    s_publish (&f, 11, 11);
    s_run (sub, &f, &c, 11, 5000);
    int64_t rested_at = zclock_mono ();
    assert_false (subscription_live_due (sub));
    assert_true (subscription_timeout (sub) <= 1000);
    /* three appends while it rests */
    size_t calls = c.batches;
    f.count = 15;
    s_publish (&f, 12, 12);
    s_publish (&f, 13, 14);
    s_publish (&f, 15, 15);
    s_observer_wait (observer, 11, 3, deadline);
    while (!subscription_live_due (sub)) {
        assert_true (zclock_mono () < deadline);
        zclock_sleep (subscription_timeout (sub) + 1);
    }
    assert_true (zclock_mono () - rested_at >= 1000);
    zpoller_t *poller = zpoller_new (subscription_pub_sock (sub), NULL);
    void *which = zpoller_wait (poller, 2000);
    zpoller_destroy (&poller);
    assert_non_null (which);
    assert_int_equal (subscription_handle (sub, which, s_consume, &c), 0);
    assert_int_equal (c.last, 15);
    assert_int_equal (c.batches, calls + 1);            /* one call for the three */
    subscription_set_linger (sub, 0);
    assert_true (subscription_live_due (sub));
    zsock_destroy (&observer);
    subscription_destroy (&sub);
    s_fake_stop (&f);
}

static void
test_gap_and_duplicates (void **state)
{
    (void) state;
    fake_t f;
    s_fake_start (&f);
    f.count = 10;
    consumer_t c = { 0 };
    subscription_t *sub = subscription_new (f.store_ep, f.pub_ep, 1);
    subscription_set_timers (sub, 5000, 60000, 20);
    s_run (sub, &f, &c, 10, 5000);
    s_wait_live (sub, &f, &c);

    /* 11..13 lost on the way: 14..15 arrive first and trigger a read */
    f.count = 15;
    s_publish (&f, 14, 15);
    s_run (sub, &f, &c, 15, 5000);
    subscription_stats_t st;
    subscription_stats (sub, &st);
    assert_true (st.gaps >= 1);

    /* duplicates and overlaps: only the new tail is delivered */
    s_publish (&f, 1, 10);
    f.count = 17;
    s_publish (&f, 12, 17);
    s_run (sub, &f, &c, 17, 5000);
    s_publish (&f, 16, 17);
    s_wait_live (sub, &f, &c);           /* both duplicates went through the SUB */
    assert_int_equal (c.last, 17);
    subscription_stats (sub, &st);
    assert_true (st.live_duplicates >= 2);
    subscription_destroy (&sub);
    s_fake_stop (&f);
}

static void
test_live_during_read_reads_again (void **state)
{
    (void) state;
    fake_t f;
    s_fake_start (&f);
    f.count = 5;
    consumer_t c = { 0 };
    subscription_t *sub = subscription_new (f.store_ep, f.pub_ep, 1);
    subscription_set_timers (sub, 5000, 60000, 20);
    s_run (sub, &f, &c, 5, 5000);
    s_wait_live (sub, &f, &c);

    /* the store takes a read, then commits 6..8 and publishes before answering */
    f.count = 6;
    s_publish (&f, 6, 6);
    zpoller_t *poller = zpoller_new (subscription_pub_sock (sub), NULL);
    assert_non_null (zpoller_wait (poller, 5000));
    zpoller_destroy (&poller);
    assert_int_equal (subscription_handle (sub, subscription_pub_sock (sub), s_consume, &c), 0);
    assert_int_equal (c.last, 6);
    subscription_reset (sub, 7);         /* a read is now in flight */
    zframe_t *route; char id [ENVELOPE_ID_MAX]; int64_t from, max;
    f.answer = 0;
    zmsg_t *req = s_fake_request (&f, &route, id, &from, &max);
    assert_int_equal (from, 7);
    f.count = 8;
    s_publish (&f, 7, 8);
    poller = zpoller_new (subscription_pub_sock (sub), NULL);
    assert_non_null (zpoller_wait (poller, 5000));
    zpoller_destroy (&poller);
    assert_int_equal (subscription_handle (sub, subscription_pub_sock (sub), s_consume, &c), 0);
    assert_int_equal (c.last, 6);        /* not delivered while the read is out */
    f.count = 6;                         /* answer as of the time the read was taken */
    s_send_events (f.router, route, &f, id, from, from + max - 1);
    zmsg_destroy (&req);
    f.count = 8;
    f.answer = 1;
    s_run (sub, &f, &c, 8, 5000);
    assert_int_equal (c.last, 8);
    subscription_destroy (&sub);
    s_fake_stop (&f);
}

static void
test_refused_batch_is_redelivered (void **state)
{
    (void) state;
    fake_t f;
    s_fake_start (&f);
    f.count = 30;
    consumer_t c = { 0 };
    c.refuse_at = 1;
    subscription_t *sub = subscription_new (f.store_ep, f.pub_ep, 1);
    subscription_set_page (sub, 10);
    subscription_set_timers (sub, 5000, 60000, 10);
    s_run (sub, &f, &c, 10, 5000);
    c.refuse_at = 11;
    s_run (sub, &f, &c, 30, 5000);
    assert_int_equal (c.refusals, 2);
    assert_int_equal (c.last, 30);
    subscription_stats_t st;
    subscription_stats (sub, &st);
    assert_int_equal (st.refused, 2);
    subscription_destroy (&sub);
    s_fake_stop (&f);
}

static void
test_store_restart_and_timeout (void **state)
{
    (void) state;
    fake_t f;
    s_fake_start (&f);
    f.count = 40;
    consumer_t c = { 0 };
    subscription_t *sub = subscription_new (f.store_ep, f.pub_ep, 1);
    subscription_set_timers (sub, 100, 60000, 10);

    /* the store takes the first read and dies without answering */
    f.answer = 0;
    zframe_t *route; char id [ENVELOPE_ID_MAX]; int64_t from, max;
    zmsg_t *lost = s_fake_request (&f, &route, id, &from, &max);
    char lost_id [ENVELOPE_ID_MAX];
    snprintf (lost_id, sizeof lost_id, "%s", id);
    zmsg_destroy (&lost);
    zsock_destroy (&f.router);
    f.router = s_bind (ZMQ_ROUTER, f.store_ep);   /* restarted */

    /* the subscription times out and asks again; the restarted store gets it */
    zpoller_t *poller = zpoller_new (f.router, NULL);
    int64_t deadline = zclock_mono () + 5000;
    void *which = NULL;
    while (!which) {
        assert_true (zclock_mono () < deadline);
        subscription_tick (sub);
        which = zpoller_wait (poller, subscription_timeout (sub) + 1);
    }
    zpoller_destroy (&poller);
    zmsg_t *req = s_fake_request (&f, &route, id, &from, &max);
    assert_int_equal (from, 1);
    assert_string_not_equal (id, lost_id);
    /* a late answer to the lost request is ignored, the current one applied */
    s_send_events (f.router, route, &f, lost_id, 1, 40);
    s_send_events (f.router, route, &f, id, 1, 40);
    zmsg_destroy (&req);
    f.answer = 1;
    s_run (sub, &f, &c, 40, 5000);
    assert_int_equal (c.last, 40);
    assert_int_equal (c.batches, 1);
    subscription_stats_t st;
    subscription_stats (sub, &st);
    assert_true (st.timeouts >= 1);
    subscription_destroy (&sub);
    s_fake_stop (&f);
}

static void
test_idle_read_is_the_safety_net (void **state)
{
    (void) state;
    fake_t f;
    s_fake_start (&f);
    f.count = 3;
    consumer_t c = { 0 };
    subscription_t *sub = subscription_new (f.store_ep, f.pub_ep, 1);
    subscription_set_timers (sub, 5000, 50, 10);
    s_run (sub, &f, &c, 3, 5000);
    /* commits whose PUB message was lost are found by the periodic read */
    f.count = 9;
    s_run (sub, &f, &c, 9, 5000);
    assert_int_equal (c.last, 9);
    subscription_destroy (&sub);
    s_fake_stop (&f);
}

static void
test_bad_arguments (void **state)
{
    (void) state;
    assert_null (subscription_new (NULL, "inproc://x", 1));
    assert_null (subscription_new ("inproc://a", "inproc://b", 0));
    assert_null (subscription_new ("nonsense", "inproc://b", 1));
    subscription_t *sub = subscription_new ("inproc://sub-a", "inproc://sub-b", 1);
    assert_non_null (sub);
    consumer_t c = { 0 };
    zsock_t *other = zsock_new (ZMQ_PAIR);
    assert_int_equal (subscription_handle (sub, other, s_consume, &c), -1);
    zsock_destroy (&other);
    subscription_destroy (&sub);
    subscription_destroy (&sub);         /* NULL-safe */
    subscription_destroy (NULL);
}

static void
test_malformed_live_input (void **state)
{
    (void) state;
    fake_t f;
    s_fake_start (&f);
    f.count = 2;
    consumer_t c = { 0 };
    subscription_t *sub = subscription_new (f.store_ep, f.pub_ep, 1);
    subscription_set_timers (sub, 5000, 60000, 10);
    s_run (sub, &f, &c, 2, 5000);
    s_wait_live (sub, &f, &c);
    /* garbage frames, a wrong type, a bad body: dropped, nothing delivered */
    zstr_send (f.pub, "garbage");
    envelope_t env;
    envelope_init (&env, "store.events", "x");
    env.body = "\xc1\xc1";
    env.body_size = 2;
    envelope_send (zsock_resolve (f.pub), NULL, &env);
    envelope_init (&env, "evt.other", "y");
    envelope_send (zsock_resolve (f.pub), NULL, &env);
    f.count = 3;
    s_run (sub, &f, &c, 3, 5000);
    assert_int_equal (c.last, 3);
    subscription_destroy (&sub);
    s_fake_stop (&f);
}

int
main (void)
{
    zsys_init ();
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_catchup_then_live),
        cmocka_unit_test (test_queued_live_batches_are_applied_together),
        cmocka_unit_test (test_linger_gathers_live_batches),
        cmocka_unit_test (test_gap_and_duplicates),
        cmocka_unit_test (test_live_during_read_reads_again),
        cmocka_unit_test (test_refused_batch_is_redelivered),
        cmocka_unit_test (test_store_restart_and_timeout),
        cmocka_unit_test (test_idle_read_is_the_safety_net),
        cmocka_unit_test (test_bad_arguments),
        cmocka_unit_test (test_malformed_live_input),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
