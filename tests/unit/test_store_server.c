/* test_store_server — the store actor over real sockets (inproc, temp dir): the
 * request/reply protocol, answers in arrival order, one feed message per commit,
 * malformed input answered without harm, and a failed commit acknowledging nothing. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../actors/store/store_server.h"
#include "envelope.h"
#include "metrics_export.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define S_TIMEOUT_MS 5000

typedef struct {
    char dir [64];
    char path [128];
    char router_ep [96];
    char pub_ep [96];
    store_server_args_t args;
    zactor_t *store;
    zsock_t *client;
    zsock_t *feed;
} fixture_t;

/* A backend that is SQLite, except that the next `s_fail_batches` batches fail
 * as a failed COMMIT would: every append refused, nothing written. */
static int s_fail_batches = 0;

static int
s_failing_append (void *impl, const store_batch_item_t *items, size_t count, int64_t now_us,
                  store_outcome_t *outcomes)
{
    if (s_fail_batches > 0) {
        s_fail_batches--;
        for (size_t i = 0; i < count; i++) {
            outcomes [i].kind = STORE_OUTCOME_ERROR;
            snprintf (outcomes [i].error, sizeof outcomes [i].error, "unavailable");
            snprintf (outcomes [i].detail, sizeof outcomes [i].detail, "commit failed");
        }
        return -1;
    }
    return store_sqlite_ops.append_batch (impl, items, count, now_us, outcomes);
}

static store_backend_ops_t s_failing_ops;
static int64_t s_expiry_ms = 0;         /* of the next fixture's store */

static int
s_setup_with (void **state, const store_backend_ops_t *ops)
{
    static int counter = 0;
    fixture_t *f = calloc (1, sizeof (fixture_t));
    assert_non_null (f);
    snprintf (f->dir, sizeof f->dir, "/tmp/dossier-storesrv-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    snprintf (f->path, sizeof f->path, "%s/events.db", f->dir);
    snprintf (f->router_ep, sizeof f->router_ep, "inproc://store-%d-%d", (int) getpid (), counter);
    snprintf (f->pub_ep, sizeof f->pub_ep, "inproc://store-pub-%d-%d", (int) getpid (), counter++);
    f->args.backend = store_backend_new (ops, f->path, NULL);
    assert_non_null (f->args.backend);
    f->args.router_endpoint = f->router_ep;
    f->args.pub_endpoint = f->pub_ep;
    f->args.expiry_ms = s_expiry_ms;
    /* zactor_new returns once the actor has bound (or failed): no sleeping. */
    f->store = zactor_new (store_server_actor, &f->args);
    assert_non_null (f->store);
    assert_null (f->args.backend);
    f->client = zsock_new_dealer (f->router_ep);
    assert_non_null (f->client);
    /* inproc connects synchronously to a bound endpoint, so this subscription is
     * queued to the PUB before any request we send next. */
    f->feed = zsock_new_sub (f->pub_ep, "");
    assert_non_null (f->feed);
    *state = f;
    return 0;
}

static int
s_setup (void **state)
{
    return s_setup_with (state, &store_sqlite_ops);
}

static int
s_setup_expiring (void **state)
{
    s_expiry_ms = 2000;
    int rc = s_setup_with (state, &store_sqlite_ops);
    s_expiry_ms = 0;
    return rc;
}

static int
s_setup_failing (void **state)
{
    s_failing_ops = store_sqlite_ops;
    s_failing_ops.append_batch = s_failing_append;
    return s_setup_with (state, &s_failing_ops);
}

static int
s_teardown (void **state)
{
    fixture_t *f = *state;
    zsock_destroy (&f->client);
    zsock_destroy (&f->feed);
    zactor_destroy (&f->store);
    const char *suffixes [] = { "", "-wal", "-shm", "-journal" };
    for (size_t i = 0; i < 4; i++) {
        char path [160];
        snprintf (path, sizeof path, "%s%s", f->path, suffixes [i]);
        unlink (path);
    }
    assert_int_equal (rmdir (f->dir), 0);
    free (f);
    return 0;
}

/* How old the next requests claim to be (their envelope timestamp in the past). */
static int64_t s_send_age_us = 0;
/* The traceparent the next requests carry ("" none). */
static const char *s_send_tp = "";

static void
s_send (zsock_t *sock, const char *type, const char *id, const char *body, size_t size)
{
    envelope_t env;
    envelope_init (&env, type, id);
    env.timestamp_us -= s_send_age_us;
    envelope_set (env.correlation_id, sizeof env.correlation_id, "corr-test");
    envelope_set (env.key, sizeof env.key, "stream-key");
    envelope_set (env.traceparent, sizeof env.traceparent, s_send_tp);
    env.body = body;
    env.body_size = size;
    assert_int_equal (envelope_send (zsock_resolve (sock), NULL, &env), 0);
}

/* Receives one envelope within the timeout; fails the test otherwise.
 * *msg_p owns what env borrows. */
static void
s_recv (zsock_t *sock, zmsg_t **msg_p, envelope_t *env)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    void *which = zpoller_wait (poller, S_TIMEOUT_MS);
    zpoller_destroy (&poller);
    assert_ptr_equal (which, sock);
    assert_int_equal (envelope_recv (zsock_resolve (sock), 0, NULL, msg_p, env), 0);
}

/* Sends an append of n events to stream with the given command id. */
static void
s_append (zsock_t *sock, const char *stream, int64_t expected, const char *command, size_t n)
{
    store_append_t req;
    memset (&req, 0, sizeof req);
    store_new_event_t events [8];
    memset (events, 0, sizeof events);
    snprintf (req.stream, sizeof req.stream, "%s", stream);
    snprintf (req.command_id, sizeof req.command_id, "%s", command);
    snprintf (req.fingerprint, sizeof req.fingerprint, "fp-%s", command);
    req.expected_version = expected;
    req.result = "{\"remembered\":1}";
    req.result_size = strlen (req.result);
    for (size_t i = 0; i < n; i++) {
        snprintf (events [i].id, sizeof events [i].id, "%s/%zu", command, i);
        snprintf (events [i].type, sizeof events [i].type, "Happened");
        events [i].data = "{\"x\":1}";
        events [i].data_size = 7;
    }
    req.events = events;
    req.count = n;
    char *body = NULL;
    size_t size = 0;
    assert_int_equal (store_append_encode (&req, &body, &size), 0);
    s_send (sock, "store.append", command, body, size);
    free (body);
}

/* Expects a reply of the given type answering request id; decodes store replies. */
static void
s_expect_reply (fixture_t *f, const char *type, const char *cause, store_reply_t *reply)
{
    zmsg_t *msg = NULL;
    envelope_t env;
    s_recv (f->client, &msg, &env);
    assert_string_equal (env.type, type);
    assert_string_equal (env.causation_id, cause);
    assert_string_equal (env.correlation_id, "corr-test");
    if (reply) {
        assert_int_equal (store_reply_decode (type, env.body, env.body_size, reply), 0);
        reply->result = NULL;   /* borrowed from msg, about to go */
    }
    zmsg_destroy (&msg);
}

/* Expects a store.events answer or feed message; returns count, fills first/last/head. */
static size_t
s_expect_events (zsock_t *sock, int64_t *first, int64_t *last, int64_t *head, char *first_cmd)
{
    zmsg_t *msg = NULL;
    envelope_t env;
    s_recv (sock, &msg, &env);
    assert_string_equal (env.type, "store.events");
    event_batch_t batch;
    assert_int_equal (event_batch_decode (env.body, env.body_size, &batch), 0);
    size_t count = batch.count;
    *head = batch.head;
    *first = count ? batch.events [0].position : 0;
    *last = count ? batch.events [count - 1].position : 0;
    if (first_cmd)
        snprintf (first_cmd, EVENT_ID_MAX, "%s", count ? batch.events [0].command_id : "");
    for (size_t i = 1; i < count; i++)
        assert_int_equal (batch.events [i].position, batch.events [i - 1].position + 1);
    if (count)
        assert_string_equal (batch.events [0].correlation_id, "corr-test");
    event_batch_destroy (&batch);
    zmsg_destroy (&msg);
    return count;
}

static void
test_append_reply_and_feed (void **state)
{
    fixture_t *f = *state;
    store_reply_t reply;
    s_append (f->client, "case-1", 0, "cmd-1", 2);
    s_expect_reply (f, "store.appended", "cmd-1", &reply);
    assert_int_equal (reply.first_position, 1);
    assert_int_equal (reply.last_position, 2);
    assert_int_equal (reply.version, 2);

    int64_t first, last, head;
    char cmd [EVENT_ID_MAX];
    /* The feed message is packed straight from the requests: byte for byte what
     * event_batch_encode makes of the same events as the log has them. */
    zmsg_t *feed_msg = NULL;
    envelope_t feed_env;
    s_recv (f->feed, &feed_msg, &feed_env);
    event_batch_t fed;
    assert_int_equal (event_batch_decode (feed_env.body, feed_env.body_size, &fed), 0);
    assert_int_equal (fed.count, 2);
    char *expected = NULL;
    size_t expected_size = 0;
    assert_int_equal (event_batch_encode (fed.events, fed.count, 2, &expected, &expected_size), 0);
    assert_int_equal (feed_env.body_size, expected_size);
    assert_memory_equal (feed_env.body, expected, expected_size);
    assert_int_equal (fed.events [0].position, 1);
    assert_int_equal (fed.events [1].version, 2);
    assert_string_equal (fed.events [1].id, "cmd-1/1");
    assert_string_equal (fed.events [1].command_id, "cmd-1");
    assert_string_equal (fed.events [1].stream, "case-1");
    assert_int_equal (fed.events [1].data_size, 7);
    assert_memory_equal (fed.events [1].data, "{\"x\":1}", 7);
    free (expected);
    event_batch_destroy (&fed);
    zmsg_destroy (&feed_msg);
    size_t read_size = 0;
    char *read_body = store_read_all_encode (1, 100, &read_size);
    s_send (f->client, "store.read_all", "read-0", read_body, read_size);
    free (read_body);
    zmsg_t *read_msg = NULL;
    envelope_t read_env;
    s_recv (f->client, &read_msg, &read_env);
    event_batch_t stored;
    assert_int_equal (event_batch_decode (read_env.body, read_env.body_size, &stored), 0);
    assert_int_equal (stored.count, 2);
    assert_int_equal (event_batch_encode (stored.events, stored.count, 2, &expected, &expected_size), 0);
    assert_int_equal (feed_env.body_size, expected_size);
    free (expected);
    event_batch_destroy (&stored);
    zmsg_destroy (&read_msg);
    first = 1, last = 2, head = 2;
    snprintf (cmd, sizeof cmd, "cmd-1");
    assert_string_equal (cmd, "cmd-1");

    /* Pipelined: answers come in arrival order and the read sees every append
     * that arrived before it, whichever batch each landed in. */
    s_append (f->client, "case-1", 2, "cmd-2", 1);
    s_append (f->client, "case-2", 0, "cmd-3", 3);
    s_append (f->client, "case-1", 0, "cmd-4", 1);          /* conflict */
    size_t size = 0;
    char *body = store_read_all_encode (1, 100, &size);
    s_send (f->client, "store.read_all", "read-1", body, size);
    free (body);
    s_append (f->client, "case-1", 2, "cmd-2", 1);          /* duplicate */
    body = store_read_stream_encode ("case-1", 2, &size);
    s_send (f->client, "store.read_stream", "read-2", body, size);
    free (body);
    s_send (f->client, "ctl.ping", "ping-1", NULL, 0);

    s_expect_reply (f, "store.appended", "cmd-2", &reply);
    assert_int_equal (reply.first_position, 3);
    assert_int_equal (reply.version, 3);
    s_expect_reply (f, "store.appended", "cmd-3", &reply);
    assert_int_equal (reply.first_position, 4);
    assert_int_equal (reply.last_position, 6);
    s_expect_reply (f, "store.conflict", "cmd-4", &reply);
    assert_int_equal (reply.current_version, 3);
    assert_int_equal (s_expect_events (f->client, &first, &last, &head, NULL), 6);
    assert_int_equal (first, 1);
    assert_int_equal (last, 6);
    assert_int_equal (head, 6);
    s_expect_reply (f, "store.duplicate", "cmd-2", &reply);
    assert_string_equal (reply.fingerprint, "fp-cmd-2");
    assert_int_equal (s_expect_events (f->client, &first, &last, &head, NULL), 2);
    assert_int_equal (first, 2);
    assert_int_equal (last, 3);
    s_expect_reply (f, "ctl.pong", "ping-1", NULL);

    /* The feed carried positions 3..6 exactly once each, in order, without gaps. */
    int64_t next = 3;
    while (next <= 6) {
        s_expect_events (f->feed, &first, &last, &head, NULL);
        assert_int_equal (first, next);
        next = last + 1;
    }
}

/* Trace context: each event of an append carries the append's traceparent on the
 * feed (packed as event_pack packs it, byte for byte) and on reads; one that does
 * not parse is dropped. */
static void
test_traceparent_on_feed_and_reads (void **state)
{
    fixture_t *f = *state;
    const char *tp = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    s_send_tp = tp;
    s_append (f->client, "case-t", 0, "cmd-t", 2);
    s_send_tp = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01";     /* upper case: invalid */
    s_append (f->client, "case-u", 0, "cmd-u", 1);
    s_send_tp = "";
    s_append (f->client, "case-v", 0, "cmd-v", 1);
    s_expect_reply (f, "store.appended", "cmd-t", NULL);
    s_expect_reply (f, "store.appended", "cmd-u", NULL);
    s_expect_reply (f, "store.appended", "cmd-v", NULL);
    event_t seen [4];
    size_t n = 0;
    while (n < 4) {
        zmsg_t *msg = NULL;
        envelope_t env;
        s_recv (f->feed, &msg, &env);
        event_batch_t fed;
        assert_int_equal (event_batch_decode (env.body, env.body_size, &fed), 0);
        char *expected = NULL;
        size_t expected_size = 0;
        assert_int_equal (event_batch_encode (fed.events, fed.count, fed.head, &expected, &expected_size), 0);
        assert_int_equal (env.body_size, expected_size);
        assert_memory_equal (env.body, expected, expected_size);
        free (expected);
        for (size_t i = 0; i < fed.count && n < 4; i++)
            seen [n++] = fed.events [i];        /* only the strings are looked at below */
        event_batch_destroy (&fed);
        zmsg_destroy (&msg);
    }
    assert_string_equal (seen [0].traceparent, tp);
    assert_string_equal (seen [1].traceparent, tp);
    assert_string_equal (seen [2].traceparent, "");
    assert_string_equal (seen [3].traceparent, "");
    size_t size = 0;
    char *body = store_read_all_encode (1, 100, &size);
    s_send (f->client, "store.read_all", "read-t", body, size);
    free (body);
    zmsg_t *msg = NULL;
    envelope_t env;
    s_recv (f->client, &msg, &env);
    event_batch_t stored;
    assert_int_equal (event_batch_decode (env.body, env.body_size, &stored), 0);
    assert_int_equal (stored.count, 4);
    assert_string_equal (stored.events [0].traceparent, tp);
    assert_string_equal (stored.events [1].traceparent, tp);
    assert_string_equal (stored.events [2].traceparent, "");
    assert_string_equal (stored.events [3].traceparent, "");
    event_batch_destroy (&stored);
    zmsg_destroy (&msg);
}

static void
test_malformed_input (void **state)
{
    fixture_t *f = *state;
    /* not an envelope at all */
    zsock_send (f->client, "s", "garbage that is not msgpack");
    store_reply_t reply;
    zmsg_t *msg = NULL;
    envelope_t env;
    s_recv (f->client, &msg, &env);
    assert_string_equal (env.type, "store.error");
    assert_int_equal (store_reply_decode (env.type, env.body, env.body_size, &reply), 0);
    assert_string_equal (reply.error, "malformed");
    zmsg_destroy (&msg);

    /* an envelope with a body that is not an append */
    s_send (f->client, "store.append", "bad-1", "\x93\x01\x02\x03", 4);
    s_expect_reply (f, "store.error", "bad-1", &reply);
    assert_string_equal (reply.error, "malformed");
    s_send (f->client, "store.read_all", "bad-2", "\xc1", 1);
    s_expect_reply (f, "store.error", "bad-2", &reply);
    s_send (f->client, "store.read_stream", "bad-3", "\x80", 1);     /* map without stream */
    s_expect_reply (f, "store.error", "bad-3", &reply);
    s_send (f->client, "store.unknown", "bad-4", NULL, 0);
    s_expect_reply (f, "store.error", "bad-4", &reply);
    assert_string_equal (reply.error, "unknown_type");
    /* too many frames */
    zsock_send (f->client, "ssss", "a", "b", "c", "d");
    s_recv (f->client, &msg, &env);
    assert_string_equal (env.type, "store.error");
    zmsg_destroy (&msg);

    /* and the store still works */
    s_append (f->client, "case-1", 0, "cmd-1", 1);
    s_expect_reply (f, "store.appended", "cmd-1", &reply);
    assert_int_equal (reply.first_position, 1);
}

static void
test_failed_commit_acknowledges_nothing (void **state)
{
    fixture_t *f = *state;
    s_fail_batches = 1;
    store_reply_t reply;
    s_append (f->client, "case-1", 0, "cmd-lost", 2);
    s_expect_reply (f, "store.error", "cmd-lost", &reply);
    assert_string_equal (reply.error, "unavailable");
    s_append (f->client, "case-1", 0, "cmd-ok", 1);
    s_expect_reply (f, "store.appended", "cmd-ok", &reply);
    assert_int_equal (reply.first_position, 1);
    /* the first feed message is the second batch: the failed one published nothing */
    int64_t first, last, head;
    char cmd [EVENT_ID_MAX];
    assert_int_equal (s_expect_events (f->feed, &first, &last, &head, cmd), 1);
    assert_int_equal (first, 1);
    assert_string_equal (cmd, "cmd-ok");
}

/* A request older than its sender's timeout is answered "expired" and not done
 * (its sender gave up and will retry); a fresh one, and a read_all whatever its
 * age (subscribers re-ask on their own), are served. */
static void
test_expired_requests_are_not_done (void **state)
{
    fixture_t *f = *state;
    store_reply_t reply;
    s_send_age_us = 5 * 1000000;
    s_append (f->client, "case-1", 0, "cmd-old", 2);
    size_t size = 0;
    char *body = store_read_stream_encode ("case-1", 1, &size);
    s_send (f->client, "store.read_stream", "read-old", body, size);
    free (body);
    body = store_read_all_encode (1, 100, &size);
    s_send (f->client, "store.read_all", "read-all-old", body, size);
    free (body);
    s_send_age_us = 0;
    s_expect_reply (f, "store.error", "cmd-old", &reply);
    assert_string_equal (reply.error, "expired");
    s_expect_reply (f, "store.error", "read-old", &reply);
    assert_string_equal (reply.error, "expired");
    int64_t first, last, head;
    assert_int_equal (s_expect_events (f->client, &first, &last, &head, NULL), 0);
    assert_int_equal (head, 0);                 /* nothing was appended */

    s_append (f->client, "case-1", 0, "cmd-old", 2);
    s_expect_reply (f, "store.appended", "cmd-old", &reply);
    assert_int_equal (reply.first_position, 1);
    assert_int_equal (reply.last_position, 2);
}

static int
s_setup_failing_expiring (void **state)
{
    s_expiry_ms = 2000;
    int rc = s_setup_failing (state);
    s_expiry_ms = 0;
    return rc;
}

/* A series' value now; the registry is the whole file's (group setup): deltas. */
static double
s_value (const char *name, const char *labels)
{
    metrics_t *m = metrics_process ();
    metric_t *metric = metrics_counter (m, name, NULL, labels);
    if (!metric)
        metric = metrics_gauge (m, name, NULL, labels);
    if (!metric)
        metric = metrics_histogram (m, name, NULL, labels, metrics_latency_buckets, metrics_latency_buckets_count);
    assert_non_null (metric);
    return metric_value (metric);
}

#define S_APPENDS "dossier_store_appends_total"

/* Every append is counted once under its outcome, with its latency; events and
 * the head follow what was written; a failed commit is a backend error. */
static void
test_metrics_count_every_outcome (void **state)
{
    fixture_t *f = *state;
    const char *outcomes [] = { "outcome=\"ok\"", "outcome=\"duplicate\"", "outcome=\"conflict\"",
                                "outcome=\"expired\"", "outcome=\"error\"" };
    double before [5];
    for (int i = 0; i < 5; i++)
        before [i] = s_value (S_APPENDS, outcomes [i]);
    double events = s_value ("dossier_store_events_appended_total", NULL);
    double latencies = s_value ("dossier_store_append_duration_seconds", NULL);
    double errors = s_value ("dossier_store_backend_errors_total", "operation=\"append\"");

    store_reply_t reply;
    s_fail_batches = 1;
    s_append (f->client, "case-1", 0, "cmd-lost", 1);
    s_expect_reply (f, "store.error", "cmd-lost", &reply);          /* error (the commit failed) */
    s_append (f->client, "case-1", 0, "cmd-1", 2);
    s_expect_reply (f, "store.appended", "cmd-1", &reply);          /* ok, 2 events */
    s_append (f->client, "case-1", 0, "cmd-2", 1);
    s_expect_reply (f, "store.conflict", "cmd-2", &reply);          /* conflict */
    s_append (f->client, "case-1", 0, "cmd-1", 2);
    s_expect_reply (f, "store.duplicate", "cmd-1", &reply);         /* duplicate */
    s_send_age_us = 5 * 1000000;
    s_append (f->client, "case-1", 2, "cmd-old", 1);
    s_send_age_us = 0;
    s_expect_reply (f, "store.error", "cmd-old", &reply);           /* expired */
    assert_string_equal (reply.error, "expired");

    /* the reply of a batch leaves before its metrics are counted: wait for the last */
    int64_t deadline = zclock_mono () + S_TIMEOUT_MS;
    while (s_value (S_APPENDS, outcomes [3]) - before [3] < 1 && zclock_mono () < deadline)
        zclock_sleep (5);
    const double expected [5] = { 1, 1, 1, 1, 1 };
    for (int i = 0; i < 5; i++)
        assert_true (s_value (S_APPENDS, outcomes [i]) - before [i] == expected [i]);
    assert_true (s_value ("dossier_store_events_appended_total", NULL) - events == 2);
    assert_true (s_value ("dossier_store_append_duration_seconds", NULL) - latencies == 5);
    assert_true (s_value ("dossier_store_backend_errors_total", "operation=\"append\"") - errors == 1);
    assert_true (s_value ("dossier_store_log_head_position", NULL) == 2);
}

static void
test_bind_failure (void **state)
{
    (void) state;
    char dir [] = "/tmp/dossier-storebind-XXXXXX";
    assert_non_null (mkdtemp (dir));
    char path [96];
    snprintf (path, sizeof path, "%s/events.db", dir);
    store_backend_t *backend = store_backend_new (&store_sqlite_ops, path, NULL);
    assert_non_null (backend);
    store_server_t *server = store_server_new (&backend, "bogus://nowhere", "inproc://unused-pub");
    assert_null (server);
    assert_null (backend);      /* taken and freed */
    unlink (path);
    char wal [128];
    snprintf (wal, sizeof wal, "%s-wal", path);
    unlink (wal);
    snprintf (wal, sizeof wal, "%s-shm", path);
    unlink (wal);
    assert_int_equal (rmdir (dir), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_append_reply_and_feed, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_traceparent_on_feed_and_reads, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_malformed_input, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_failed_commit_acknowledges_nothing, s_setup_failing, s_teardown),
        cmocka_unit_test_setup_teardown (test_expired_requests_are_not_done, s_setup_expiring, s_teardown),
        cmocka_unit_test_setup_teardown (test_metrics_count_every_outcome, s_setup_failing_expiring, s_teardown),
        cmocka_unit_test (test_bind_failure),
    };
    /* The process registry, as dossier-store has it (its file in a temp dir). */
    char dir [] = "/tmp/dossier-storemetrics-XXXXXX";
    assert_non_null (mkdtemp (dir));
    setenv ("DOSSIER_DATA_DIR", dir, 1);
    unsetenv ("DOSSIER_CONFIG");
    config_t *config = config_load (NULL);
    if (!config || metrics_export_start (config, "store") != 0)
        return 1;
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    metrics_export_stop ();
    config_destroy (&config);
    char path [96];
    snprintf (path, sizeof path, "%s/run/metrics", dir);
    rmdir (path);
    snprintf (path, sizeof path, "%s/run", dir);
    rmdir (path);
    rmdir (dir);
    zsys_shutdown ();
    return rc;
}
