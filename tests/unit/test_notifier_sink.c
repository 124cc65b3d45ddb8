/* test_notifier_sink — the sink table: the JSON lines sink appends whole lines and
 * repairs a torn last line; the ZeroMQ sink publishes [topic][json]; the generic
 * wrapper refuses incomplete tables. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "../../actors/notifier/notifier_sink.h"
#include "test_projection_helpers.h"

static char *
s_slurp (const char *path)
{
    FILE *f = fopen (path, "rb");
    assert_non_null (f);
    char *text = calloc (1, 65536);
    size_t n = fread (text, 1, 65535, f);
    text [n] = 0;
    fclose (f);
    return text;
}

static notifier_item_t
s_item (const char *topic, const char *json, const char *event_id, int64_t position)
{
    return (notifier_item_t) { .topic = topic, .json = json, .json_size = strlen (json),
                               .event_id = event_id, .position = position };
}

static void
test_jsonl_appends_whole_lines (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "notifications.jsonl");
    notifier_sink_t *sink = notifier_sink_jsonl_new (tmp.path);
    assert_non_null (sink);
    assert_string_equal (notifier_sink_name (sink), "jsonl");
    notifier_item_t batch [2] = {
        s_item ("EMAIL", "{\"id\":\"e1\"}", "e1", 1),
        s_item ("SMS", "{\"id\":\"e2\",\"x\":\"caf\xc3\xa9\"}", "e2", 2),
    };
    assert_int_equal (notifier_sink_deliver (sink, batch, 2), 0);
    assert_int_equal (notifier_sink_deliver (sink, batch, 0), 0);     /* nothing to do */
    notifier_item_t one = s_item ("EMAIL", "{\"id\":\"e3\"}", "e3", 3);
    assert_int_equal (notifier_sink_deliver (sink, &one, 1), 0);
    notifier_sink_destroy (&sink);
    assert_null (sink);
    char *text = s_slurp (tmp.path);
    assert_string_equal (text, "{\"id\":\"e1\"}\n{\"id\":\"e2\",\"x\":\"caf\xc3\xa9\"}\n{\"id\":\"e3\"}\n");
    free (text);

    /* reopened: appends, never truncates */
    sink = notifier_sink_jsonl_new (tmp.path);
    assert_int_equal (notifier_sink_deliver (sink, &one, 1), 0);
    notifier_sink_destroy (&sink);
    text = s_slurp (tmp.path);
    assert_string_equal (text, "{\"id\":\"e1\"}\n{\"id\":\"e2\",\"x\":\"caf\xc3\xa9\"}\n{\"id\":\"e3\"}\n{\"id\":\"e3\"}\n");
    free (text);
    t_tmp_destroy (&tmp);
}

/* Lines are settled only once fsynced: within the sync period (service), or at
 * flush; nothing written means nothing owed. */
static void
test_jsonl_settles_after_fsync (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "notifications.jsonl");
    notifier_sink_t *sink = notifier_sink_jsonl_new (tmp.path);
    assert_non_null (sink);
    assert_true (notifier_sink_settled (sink) == INT64_MAX);
    assert_int_equal (notifier_sink_timeout (sink), -1);
    notifier_item_t batch [2] = {
        s_item ("EMAIL", "{\"id\":\"e7\"}", "e7", 7),
        s_item ("EMAIL", "{\"id\":\"e9\"}", "e9", 9),
    };
    assert_int_equal (notifier_sink_deliver (sink, batch, 2), 0);
    assert_true (notifier_sink_settled (sink) == 6);
    int wait = notifier_sink_timeout (sink);
    assert_true (wait >= 0 && wait <= 50);
    notifier_item_t one = s_item ("EMAIL", "{\"id\":\"e12\"}", "e12", 12);
    assert_int_equal (notifier_sink_deliver (sink, &one, 1), 0);
    assert_true (notifier_sink_settled (sink) == 6);    /* still from the first unsynced line */
    /* service does the fsync once the period is over */
    for (int i = 0; i < 100 && notifier_sink_settled (sink) != INT64_MAX; i++) {
        zclock_sleep (notifier_sink_timeout (sink) + 1);
        assert_int_equal (notifier_sink_service (sink), 0);
    }
    assert_true (notifier_sink_settled (sink) == INT64_MAX);
    assert_int_equal (notifier_sink_timeout (sink), -1);
    /* flush settles at once */
    assert_int_equal (notifier_sink_deliver (sink, batch, 1), 0);
    assert_true (notifier_sink_settled (sink) == 6);
    assert_int_equal (notifier_sink_flush (sink, 0), 0);
    assert_true (notifier_sink_settled (sink) == INT64_MAX);
    notifier_sink_destroy (&sink);
    char *text = s_slurp (tmp.path);
    assert_string_equal (text, "{\"id\":\"e7\"}\n{\"id\":\"e9\"}\n{\"id\":\"e12\"}\n{\"id\":\"e7\"}\n");
    free (text);
    t_tmp_destroy (&tmp);
}

static void
test_jsonl_closes_a_torn_line (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "notifications.jsonl");
    FILE *f = fopen (tmp.path, "wb");
    fputs ("{\"id\":\"e1\"}\n{\"id\":\"e2\",\"cut", f);      /* a crash mid-line */
    fclose (f);
    notifier_sink_t *sink = notifier_sink_jsonl_new (tmp.path);
    assert_non_null (sink);
    notifier_item_t two = s_item ("EMAIL", "{\"id\":\"e2\"}", "e2", 2);
    assert_int_equal (notifier_sink_deliver (sink, &two, 1), 0);
    notifier_sink_destroy (&sink);
    char *text = s_slurp (tmp.path);
    assert_string_equal (text, "{\"id\":\"e1\"}\n{\"id\":\"e2\",\"cut\n{\"id\":\"e2\"}\n");
    free (text);
    t_tmp_destroy (&tmp);
}

static void
test_jsonl_bad_path (void **state)
{
    (void) state;
    assert_null (notifier_sink_jsonl_new ("/nonexistent-dir/x/notifications.jsonl"));
    assert_null (notifier_sink_jsonl_new (NULL));
}

static int s_destroyed;
static int
s_fake_deliver (void *state, const notifier_item_t *items, size_t count)
{
    (void) state, (void) items, (void) count;
    return -1;
}
static void
s_fake_destroy (void **state_p)
{
    s_destroyed++;
    *state_p = NULL;
}

static void
test_generic_sink (void **state)
{
    (void) state;
    notifier_sink_ops_t incomplete = { .name = "x", .destroy = s_fake_destroy };
    s_destroyed = 0;
    assert_null (notifier_sink_new (&incomplete, &s_destroyed));
    assert_int_equal (s_destroyed, 1);          /* the state is taken even on failure */
    assert_null (notifier_sink_new (NULL, NULL));
    notifier_sink_ops_t failing = { .name = "failing", .deliver = s_fake_deliver, .destroy = s_fake_destroy };
    notifier_sink_t *sink = notifier_sink_new (&failing, &s_destroyed);
    notifier_item_t one = s_item ("T", "{}", "e", 1);
    assert_int_equal (notifier_sink_deliver (sink, &one, 1), -1);
    notifier_sink_destroy (&sink);
    assert_int_equal (s_destroyed, 2);
    notifier_sink_destroy (&sink);
    notifier_sink_destroy (NULL);
}

static void
test_zmq_publishes_topic_and_json (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "unused");
    char endpoint [160];
    snprintf (endpoint, sizeof endpoint, "ipc://%s/notify.ipc", tmp.dir);
    notifier_sink_t *sink = notifier_sink_zmq_new (endpoint);
    assert_non_null (sink);
    assert_string_equal (notifier_sink_name (sink), "zmq");
    assert_null (notifier_sink_zmq_new ("nonsense://x"));
    zsock_t *sub = zsock_new_sub (endpoint, "EMAIL");
    assert_non_null (sub);
    /* The subscription reaches the PUB asynchronously: publish until one arrives
     * (a handshake, not a sleep), then check a real batch. */
    notifier_item_t probe = s_item ("EMAIL", "{\"probe\":true}", "p", 0);
    zpoller_t *poller = zpoller_new (sub, NULL);
    int64_t deadline = zclock_mono () + 5000;
    while (!zpoller_wait (poller, 10)) {
        assert_true (zclock_mono () < deadline);
        assert_int_equal (notifier_sink_deliver (sink, &probe, 1), 0);
    }
    zmsg_t *msg;
    while ((msg = zmsg_recv_nowait (sub)))
        zmsg_destroy (&msg);                    /* drain the probes */
    notifier_item_t batch [2] = {
        s_item ("SMS", "{\"id\":\"s1\"}", "s1", 1),          /* filtered out by the topic */
        s_item ("EMAIL", "{\"id\":\"e1\"}", "e1", 2),
    };
    assert_int_equal (notifier_sink_deliver (sink, batch, 2), 0);
    assert_non_null (zpoller_wait (poller, 5000));
    msg = zmsg_recv (sub);
    assert_int_equal (zmsg_size (msg), 2);
    char *topic = zmsg_popstr (msg), *json = zmsg_popstr (msg);
    assert_string_equal (topic, "EMAIL");
    assert_string_equal (json, "{\"id\":\"e1\"}");
    zstr_free (&topic);
    zstr_free (&json);
    zmsg_destroy (&msg);
    zpoller_destroy (&poller);
    zsock_destroy (&sub);
    notifier_sink_destroy (&sink);
    t_tmp_destroy (&tmp);
}

int
main (void)
{
    log_init ("test", "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_jsonl_appends_whole_lines),
        cmocka_unit_test (test_jsonl_settles_after_fsync),
        cmocka_unit_test (test_jsonl_closes_a_torn_line),
        cmocka_unit_test (test_jsonl_bad_path),
        cmocka_unit_test (test_generic_sink),
        cmocka_unit_test (test_zmq_publishes_topic_and_json),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
