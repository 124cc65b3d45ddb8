/* test_notifier_kafka — the Kafka output without a broker: headers of the main and
 * dead-letter topics, the error classes and the dead-letter rule, configuration
 * refusals, and the producer against a port where nobody listens (nothing settles,
 * timeouts do not count as attempts, backpressure, bounded flush, clean destroy).
 * With DOSSIER_TEST_KAFKA_BROKERS set it also produces to that broker for real. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "log.h"
#include "../../actors/notifier/notifier_kafka_record.h"
#include "../../actors/notifier/notifier_sink_kafka.h"

/* The value of header name in hdrs as a string (static buffer), or NULL. */
static const char *
s_header (rd_kafka_headers_t *hdrs, const char *name)
{
    static char buf [512];
    const void *value;
    size_t size;
    if (rd_kafka_header_get_last (hdrs, name, &value, &size) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    assert_true (size < sizeof buf);
    memcpy (buf, value, size);
    buf [size] = 0;
    return buf;
}

/* The header names in order, joined by ','. */
static void
s_names (rd_kafka_headers_t *hdrs, char *out, size_t size)
{
    const char *name;
    const void *value;
    size_t vsize;
    out [0] = 0;
    for (size_t i = 0; rd_kafka_header_get_all (hdrs, i, &name, &value, &vsize) == RD_KAFKA_RESP_ERR_NO_ERROR; i++)
        snprintf (out + strlen (out), size - strlen (out), "%s%s", i ? "," : "", name);
}

static void
test_time_and_topic_names (void **state)
{
    (void) state;
    char at [32];
    notifier_kafka_time (1767261600123456LL, at);
    assert_string_equal (at, "2026-01-01T10:00:00.123Z");
    notifier_kafka_time (0, at);
    assert_string_equal (at, "1970-01-01T00:00:00.000Z");
    notifier_kafka_time (-1000, at);                    /* before the epoch: still well formed */
    assert_string_equal (at, "1969-12-31T23:59:59.999Z");

    assert_true (notifier_kafka_topic_valid ("notification_events"));
    assert_true (notifier_kafka_topic_valid ("notification_events.DLT"));
    assert_true (notifier_kafka_topic_valid ("a-b_C.9"));
    assert_false (notifier_kafka_topic_valid (""));
    assert_false (notifier_kafka_topic_valid (NULL));
    assert_false (notifier_kafka_topic_valid ("."));
    assert_false (notifier_kafka_topic_valid (".."));
    assert_false (notifier_kafka_topic_valid ("with space"));
    assert_false (notifier_kafka_topic_valid ("caf\xc3\xa9"));
    char longname [300];
    memset (longname, 'a', sizeof longname);
    longname [249] = 0;
    assert_true (notifier_kafka_topic_valid (longname));
    longname [249] = 'a';
    longname [250] = 0;
    assert_false (notifier_kafka_topic_valid (longname));
}

static void
test_main_headers (void **state)
{
    (void) state;
    rd_kafka_headers_t *hdrs = notifier_kafka_headers ("ev-6", "case-1", 1767261600123456LL,
                                                       "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_non_null (hdrs);
    char names [512];
    s_names (hdrs, names, sizeof names);
    assert_string_equal (names, "id,ce_specversion,ce_id,ce_type,ce_source,ce_time,ce_subject,content-type,"
                         "traceparent");
    assert_string_equal (s_header (hdrs, "traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_string_equal (s_header (hdrs, "id"), "ev-6");
    assert_string_equal (s_header (hdrs, "ce_specversion"), "1.0");
    assert_string_equal (s_header (hdrs, "ce_id"), "ev-6");
    assert_string_equal (s_header (hdrs, "ce_type"), "com.dossier.notification.required");
    assert_string_equal (s_header (hdrs, "ce_source"), "/dossier/notifier");
    assert_string_equal (s_header (hdrs, "ce_time"), "2026-01-01T10:00:00.123Z");
    assert_string_equal (s_header (hdrs, "ce_subject"), "case-1");
    assert_string_equal (s_header (hdrs, "content-type"), "application/json");
    assert_null (s_header (hdrs, "dossier-dlt-reason"));
    rd_kafka_headers_destroy (hdrs);

    /* no case id: no subject; no traceparent: no such header; no event id: no headers at all */
    hdrs = notifier_kafka_headers ("ev-7", NULL, 0, NULL);
    s_names (hdrs, names, sizeof names);
    assert_string_equal (names, "id,ce_specversion,ce_id,ce_type,ce_source,ce_time,content-type");
    rd_kafka_headers_destroy (hdrs);
    hdrs = notifier_kafka_headers ("ev-8", "", 0, "");
    assert_null (s_header (hdrs, "ce_subject"));
    assert_null (s_header (hdrs, "traceparent"));
    rd_kafka_headers_destroy (hdrs);
    assert_null (notifier_kafka_headers (NULL, "case-1", 0, NULL));
}

static void
test_dlt_headers (void **state)
{
    (void) state;
    rd_kafka_headers_t *hdrs = notifier_kafka_dlt_headers ("ev-6", "case-1", 1767261600123456LL, NULL,
        "notification_events", "MSG_SIZE_TOO_LARGE", "Broker: Message size too large", 5, 0);
    assert_non_null (hdrs);
    char names [512];
    s_names (hdrs, names, sizeof names);
    assert_string_equal (names, "id,ce_specversion,ce_id,ce_type,ce_source,ce_time,ce_subject,content-type,"
                         "kafka_dlt-original-topic,dossier-dlt-reason,dossier-dlt-attempts,kafka_dlt-exception-fqcn,"
                         "kafka_dlt-exception-message");
    assert_string_equal (s_header (hdrs, "id"), "ev-6");
    assert_string_equal (s_header (hdrs, "kafka_dlt-original-topic"), "notification_events");
    assert_string_equal (s_header (hdrs, "dossier-dlt-reason"), "MSG_SIZE_TOO_LARGE");
    assert_string_equal (s_header (hdrs, "dossier-dlt-attempts"), "5");
    assert_string_equal (s_header (hdrs, "kafka_dlt-exception-fqcn"), "MSG_SIZE_TOO_LARGE");
    assert_string_equal (s_header (hdrs, "kafka_dlt-exception-message"), "Broker: Message size too large");
    assert_null (s_header (hdrs, "dossier-value-omitted"));
    rd_kafka_headers_destroy (hdrs);

    hdrs = notifier_kafka_dlt_headers ("ev-6", NULL, 0, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", NULL, NULL, NULL, 12, 1);
    assert_non_null (hdrs);
    assert_string_equal (s_header (hdrs, "traceparent"), "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");     /* the DLT copy keeps its span */
    assert_string_equal (s_header (hdrs, "dossier-value-omitted"), "true");
    assert_string_equal (s_header (hdrs, "dossier-dlt-attempts"), "12");
    assert_string_equal (s_header (hdrs, "dossier-dlt-reason"), "");
    rd_kafka_headers_destroy (hdrs);
    assert_null (notifier_kafka_dlt_headers (NULL, NULL, 0, NULL, "t", "r", "m", 1, 0));
}

static void
test_error_classes (void **state)
{
    (void) state;
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR_NO_ERROR), NOTIFIER_KAFKA_ERR_NONE);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR__FATAL), NOTIFIER_KAFKA_ERR_FATAL);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR__MSG_TIMED_OUT), NOTIFIER_KAFKA_ERR_TIMEOUT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT), NOTIFIER_KAFKA_ERR_TIMEOUT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR__TRANSPORT), NOTIFIER_KAFKA_ERR_TRANSIENT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN), NOTIFIER_KAFKA_ERR_TRANSIENT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR__PURGE_INFLIGHT), NOTIFIER_KAFKA_ERR_TRANSIENT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS), NOTIFIER_KAFKA_ERR_TRANSIENT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR_LEADER_NOT_AVAILABLE), NOTIFIER_KAFKA_ERR_TRANSIENT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE), NOTIFIER_KAFKA_ERR_PERMANENT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED),
                      NOTIFIER_KAFKA_ERR_PERMANENT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC), NOTIFIER_KAFKA_ERR_PERMANENT);
    assert_int_equal (notifier_kafka_error_class (RD_KAFKA_RESP_ERR_INVALID_RECORD), NOTIFIER_KAFKA_ERR_PERMANENT);
}

static void
test_dead_letter_rule (void **state)
{
    (void) state;
    int attempts = 0;
    /* a permanent error counts every time; the fifth sends it to the DLT */
    for (int i = 1; i < 5; i++) {
        assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, 0, &attempts, 5),
                          NOTIFIER_KAFKA_RETRY);
        assert_int_equal (attempts, i);
    }
    assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED, 0, &attempts, 5),
                      NOTIFIER_KAFKA_DEAD_LETTER);
    assert_int_equal (attempts, 5);

    /* a timeout while nothing gets through (broker down) never counts: it waits */
    attempts = 0;
    for (int i = 0; i < 100; i++)
        assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 0, &attempts, 5),
                          NOTIFIER_KAFKA_RETRY);
    assert_int_equal (attempts, 0);
    /* ... but counts when other messages were delivered meanwhile */
    for (int i = 1; i < 5; i++)
        assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 1, &attempts, 5),
                          NOTIFIER_KAFKA_RETRY);
    assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 1, &attempts, 5),
                      NOTIFIER_KAFKA_DEAD_LETTER);

    /* transient errors never count, reachable or not */
    attempts = 0;
    assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR__TRANSPORT, 1, &attempts, 1), NOTIFIER_KAFKA_RETRY);
    assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR__PURGE_QUEUE, 1, &attempts, 1), NOTIFIER_KAFKA_RETRY);
    assert_int_equal (attempts, 0);

    /* success, fatal; a limit below 1 is 1 */
    assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR_NO_ERROR, 0, &attempts, 5), NOTIFIER_KAFKA_DELIVERED);
    assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR__FATAL, 1, &attempts, 5), NOTIFIER_KAFKA_FATAL);
    assert_int_equal (attempts, 0);
    assert_int_equal (notifier_kafka_decide (RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, 0, &attempts, 0),
                      NOTIFIER_KAFKA_DEAD_LETTER);
}

static void
test_dead_letter_copy_is_never_given_up (void **state)
{
    (void) state;
    int attempts = 0, omit = 0;
    for (int i = 1; i <= 20; i++) {
        assert_int_equal (notifier_kafka_decide_dlt (RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, 0, &attempts, 5, &omit),
                          NOTIFIER_KAFKA_RETRY);
        assert_int_equal (omit, i >= 5);            /* from the fifth failure on, without its value */
    }
    attempts = omit = 0;
    for (int i = 0; i < 20; i++)                    /* timeouts: counted when reachable, the value stays */
        assert_int_equal (notifier_kafka_decide_dlt (RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 1, &attempts, 5, &omit),
                          NOTIFIER_KAFKA_RETRY);
    assert_int_equal (attempts, 20);
    assert_int_equal (omit, 0);
    assert_int_equal (notifier_kafka_decide_dlt (RD_KAFKA_RESP_ERR_NO_ERROR, 0, &attempts, 5, &omit),
                      NOTIFIER_KAFKA_DELIVERED);
    assert_int_equal (notifier_kafka_decide_dlt (RD_KAFKA_RESP_ERR__FATAL, 0, &attempts, 5, &omit),
                      NOTIFIER_KAFKA_FATAL);

    assert_int_equal (notifier_kafka_backoff_ms (0), 0);
    assert_int_equal (notifier_kafka_backoff_ms (1), 100);
    assert_int_equal (notifier_kafka_backoff_ms (2), 200);
    assert_int_equal (notifier_kafka_backoff_ms (4), 800);
    assert_int_equal (notifier_kafka_backoff_ms (7), 5000);
    assert_int_equal (notifier_kafka_backoff_ms (1000000), 5000);
}

/* ---- the producer ------------------------------------------------------------------ */

static int
s_closed_port (void)
{
    /* Bind an ephemeral port and close it: nobody listens there afterwards. */
    zsock_t *s = zsock_new (ZMQ_PULL);
    int port = zsock_bind (s, "tcp://127.0.0.1:*");
    zsock_destroy (&s);
    assert_true (port > 0);
    return port;
}

static void
s_env_clear (void)
{
    unsetenv ("DOSSIER_CONFIG");
    unsetenv ("DOSSIER_KAFKA_BROKERS");
    unsetenv ("DOSSIER_NOTIFY_TOPIC");
    unsetenv ("DOSSIER_NOTIFY_DLT_TOPIC");
    unsetenv ("DOSSIER_NOTIFY_MAX_IN_FLIGHT");
    unsetenv ("DOSSIER_NOTIFY_MAX_ATTEMPTS");
    unsetenv ("DOSSIER_KAFKA_PROPERTY_MESSAGE_TIMEOUT_MS");
    unsetenv ("DOSSIER_KAFKA_PROPERTY_MESSAGE_MAX_BYTES");
    unsetenv ("DOSSIER_KAFKA_PROPERTY_NOT_A_PROPERTY");
}

static notifier_item_t
s_item (const char *json, const char *event_id, int64_t position)
{
    return (notifier_item_t) { .topic = "EMAIL", .json = json, .json_size = strlen (json), .event_id = event_id,
                               .position = position, .case_id = "case-1", .time_us = 1767261600000000LL };
}

/* Waits on the producer's wake-up fd (no sleeping) and serves it, until done() or
 * timeout_ms. Returns 1 if done () came true. */
static int
s_serve_until (notifier_kafka_t *k, int (*done) (notifier_kafka_t *), int timeout_ms)
{
    int64_t deadline = zclock_mono () + timeout_ms;
    while (!done (k)) {
        int64_t left = deadline - zclock_mono ();
        if (left <= 0)
            return 0;
        int wait = notifier_kafka_timeout (k);
        if (wait < 0 || wait > left)
            wait = (int) left;
        zmq_pollitem_t item = { NULL, notifier_kafka_fd (k), ZMQ_POLLIN, 0 };
        zmq_poll (&item, 1, wait);
        assert_int_equal (notifier_kafka_service (k), 0);
    }
    return 1;
}

static int
s_two_timeouts (notifier_kafka_t *k)
{
    notifier_kafka_stats_t st;
    notifier_kafka_stats (k, &st);
    return st.failures >= 4;
}

static void
test_config_refused (void **state)
{
    (void) state;
    s_env_clear ();
    setenv ("DOSSIER_KAFKA_BROKERS", "127.0.0.1:9", 1);
    config_t *config = config_load (NULL);
    setenv ("DOSSIER_KAFKA_PROPERTY_NOT_A_PROPERTY", "1", 1);
    assert_null (notifier_kafka_new (config));
    unsetenv ("DOSSIER_KAFKA_PROPERTY_NOT_A_PROPERTY");
    setenv ("DOSSIER_NOTIFY_TOPIC", "bad topic", 1);
    assert_null (notifier_kafka_new (config));
    setenv ("DOSSIER_NOTIFY_TOPIC", "same", 1);
    setenv ("DOSSIER_NOTIFY_DLT_TOPIC", "same", 1);
    assert_null (notifier_kafka_new (config));
    unsetenv ("DOSSIER_NOTIFY_DLT_TOPIC");
    notifier_kafka_t *k = notifier_kafka_new (config);
    assert_non_null (k);
    assert_string_equal (notifier_kafka_topic (k), "same");
    assert_string_equal (notifier_kafka_dlt_topic (k), "same.DLT");
    notifier_kafka_destroy (&k);
    assert_null (k);
    notifier_kafka_destroy (&k);
    notifier_kafka_destroy (NULL);
    unsetenv ("DOSSIER_NOTIFY_TOPIC");
    k = notifier_kafka_new (config);
    assert_string_equal (notifier_kafka_topic (k), "notification_events");
    assert_string_equal (notifier_kafka_dlt_topic (k), "notification_events.DLT");
    notifier_kafka_destroy (&k);
    /* the generic wrapper */
    notifier_sink_t *sink = notifier_sink_kafka_new (config);
    assert_non_null (sink);
    assert_string_equal (notifier_sink_name (sink), "kafka");
    assert_true (notifier_sink_fd (sink) >= 0);
    assert_true (notifier_sink_settled (sink) == INT64_MAX);
    assert_int_equal (notifier_sink_ready (sink, 100000), 1);
    assert_int_equal (notifier_sink_flush (sink, 0), 0);
    notifier_sink_destroy (&sink);
    config_destroy (&config);
    s_env_clear ();
}

/* Nobody listens: nothing settles, the checkpoint bound stays below the first
 * notification, repeated delivery timeouts do not count as attempts (so nothing
 * goes to the DLT), and the sink pushes back beyond notify_max_in_flight. */
static void
test_broker_down_nothing_settles (void **state)
{
    (void) state;
    s_env_clear ();
    char brokers [64];
    snprintf (brokers, sizeof brokers, "127.0.0.1:%d", s_closed_port ());
    setenv ("DOSSIER_KAFKA_BROKERS", brokers, 1);
    setenv ("DOSSIER_KAFKA_PROPERTY_MESSAGE_TIMEOUT_MS", "150", 1);
    setenv ("DOSSIER_NOTIFY_MAX_IN_FLIGHT", "3", 1);
    setenv ("DOSSIER_NOTIFY_MAX_ATTEMPTS", "1", 1);
    config_t *config = config_load (NULL);
    notifier_kafka_t *k = notifier_kafka_new (config);
    assert_non_null (k);
    assert_true (notifier_kafka_settled (k) == INT64_MAX);
    assert_int_equal (notifier_kafka_timeout (k), -1);

    notifier_item_t batch [2] = { s_item ("{\"id\":\"ev-6\"}", "ev-6", 6), s_item ("{\"id\":\"ev-14\"}", "ev-14", 14) };
    assert_int_equal (notifier_kafka_ready (k, 2), 1);
    assert_int_equal (notifier_kafka_deliver (k, batch, 2), 0);
    assert_int_equal (notifier_kafka_settled (k), 5);
    assert_int_equal (notifier_kafka_ready (k, 1), 1);          /* 2 + 1 <= 3 */
    assert_int_equal (notifier_kafka_ready (k, 2), 0);          /* backpressure */
    assert_int_equal (notifier_kafka_deliver (k, batch, 2), 0); /* already taken: skipped */
    notifier_kafka_stats_t st;
    notifier_kafka_stats (k, &st);
    assert_int_equal (st.outstanding, 2);
    assert_int_equal (st.produced, 2);

    /* each message times out at least twice; every time it is produced again */
    int timed_out = s_serve_until (k, s_two_timeouts, 10000);
    notifier_kafka_stats (k, &st);
    if (!timed_out)
        print_error ("stats: produced %llu failures %llu counted %llu outstanding %zu\n",
                     (unsigned long long) st.produced, (unsigned long long) st.failures,
                     (unsigned long long) st.counted, st.outstanding);
    assert_true (timed_out);
    assert_int_equal (st.counted, 0);
    assert_int_equal (st.dead_lettered, 0);
    assert_int_equal (st.delivered, 0);
    assert_int_equal (st.outstanding, 2);
    assert_true (st.produced >= 4);
    assert_int_equal (notifier_kafka_settled (k), 5);

    /* flush is bounded and says it could not confirm */
    int64_t t0 = zclock_mono ();
    assert_int_equal (notifier_kafka_flush (k, 200), -1);
    assert_true (zclock_mono () - t0 < 2000);
    notifier_kafka_destroy (&k);            /* frees the two records (ASAN checks) */
    config_destroy (&config);
    s_env_clear ();
}

/* ---- against a real broker, when one is given ----------------------------------------- */

static int
s_all_settled (notifier_kafka_t *k)
{
    return notifier_kafka_settled (k) == INT64_MAX;
}

static void
test_real_broker (void **state)
{
    (void) state;
    const char *brokers = getenv ("DOSSIER_TEST_KAFKA_BROKERS");
    if (!brokers || !*brokers) {
        skip ();
        return;
    }
    s_env_clear ();
    char topic [64];
    snprintf (topic, sizeof topic, "unit_notifier_%lld", (long long) zclock_time ());
    setenv ("DOSSIER_KAFKA_BROKERS", brokers, 1);
    setenv ("DOSSIER_NOTIFY_TOPIC", topic, 1);
    setenv ("DOSSIER_NOTIFY_MAX_ATTEMPTS", "2", 1);
    /* the producer's own limit: a 2,000-byte value is refused at once, on both topics */
    setenv ("DOSSIER_KAFKA_PROPERTY_MESSAGE_MAX_BYTES", "1500", 1);
    config_t *config = config_load (NULL);
    notifier_kafka_t *k = notifier_kafka_new (config);
    assert_non_null (k);
    enum { N = 2000 };
    static char ids [N][32];
    notifier_item_t *items = calloc (N, sizeof (notifier_item_t));
    for (int i = 0; i < N; i++) {
        snprintf (ids [i], sizeof ids [i], "ev-%d", i + 1);
        items [i] = s_item ("{\"notification_type\":\"EMAIL\"}", ids [i], 2 * i + 1);
    }
    int64_t t0 = zclock_mono ();
    assert_int_equal (notifier_kafka_deliver (k, items, N), 0);
    assert_true (s_serve_until (k, s_all_settled, 30000));
    notifier_kafka_stats_t st;
    notifier_kafka_stats (k, &st);
    assert_int_equal (st.delivered, N);
    assert_int_equal (st.dead_lettered, 0);
    print_message ("%d notifications settled in %lld ms\n", N, (long long) (zclock_mono () - t0));

    /* too large: two counted attempts, then the DLT, which refuses it too, so it
     * goes there without its value, and only then settles */
    char *big = malloc (2001);
    memset (big, 'x', 2000);
    big [0] = '"';
    big [1999] = '"';
    big [2000] = 0;
    notifier_item_t one = s_item (big, "ev-big", 2 * N + 10);
    assert_int_equal (notifier_kafka_deliver (k, &one, 1), 0);
    assert_int_equal (notifier_kafka_settled (k), 2 * N + 9);
    assert_true (s_serve_until (k, s_all_settled, 30000));
    notifier_kafka_stats (k, &st);
    assert_int_equal (st.dead_lettered, 1);
    assert_true (st.counted >= 4);
    assert_int_equal (notifier_kafka_flush (k, 1000), 0);
    notifier_kafka_destroy (&k);
    free (big);
    free (items);
    config_destroy (&config);
    s_env_clear ();
}

int
main (void)
{
    log_init ("test", getenv ("T_LOG") ? getenv ("T_LOG") : "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_time_and_topic_names),
        cmocka_unit_test (test_main_headers),
        cmocka_unit_test (test_dlt_headers),
        cmocka_unit_test (test_error_classes),
        cmocka_unit_test (test_dead_letter_rule),
        cmocka_unit_test (test_dead_letter_copy_is_never_given_up),
        cmocka_unit_test (test_config_refused),
        cmocka_unit_test (test_broker_down_nothing_settles),
        cmocka_unit_test (test_real_broker),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
