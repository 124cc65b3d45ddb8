/* test_ingest_server — the ingest actor on real sockets: the test plays the broker
 * (a ROUTER on broker_front) and the CLI (a DEALER on the ingest endpoint). Records
 * become commands with many in flight, replies come back as ingest.result, records
 * sharing a command id are serialised, silence becomes 503, junk is survived. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "endpoints.h"
#include "log.h"
#include "envelope.h"
#include "../../actors/ingest/ingest_server.h"

#define WAIT_MS 10000

typedef struct {
    char dir [64];
    config_t *config;
    zactor_t *server;
    zsock_t *broker;            /* ROUTER: we are the broker frontend */
    zsock_t *cli;               /* DEALER: we are the CLI */
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof (s_fixture_t));
    assert_non_null (f);
    snprintf (f->dir, sizeof f->dir, "/tmp/ding-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    char path [128];
    snprintf (path, sizeof path, "%s/test.cfg", f->dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    /* a short timeout so the "no reply" test needs no long wait */
    fprintf (file, "dossier\n    data_dir = \"%s/data\"\n    log_level = \"error\"\n"
                   "    ingest_timeout_ms = \"300\"\n    body_limit = \"4096\"\n", f->dir);
    fclose (file);
    unsetenv ("DOSSIER_CONFIG");
    unsetenv ("DOSSIER_INSTANCE");
    log_init ("ingest", getenv ("TEST_LOG_LEVEL") ? getenv ("TEST_LOG_LEVEL") : "error");
    f->config = config_load (path);
    assert_non_null (f->config);

    char *endpoint = endpoints_get (f->config, "broker_front");
    f->broker = zsock_new (ZMQ_ROUTER);
    assert_int_equal (zsock_bind (f->broker, "%s", endpoint), 0);
    free (endpoint);
    f->server = zactor_new (ingest_server_actor, f->config);
    assert_non_null (f->server);
    endpoint = endpoints_get (f->config, "ingest");
    f->cli = zsock_new (ZMQ_DEALER);
    assert_int_equal (zsock_connect (f->cli, "%s", endpoint), 0);
    free (endpoint);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = (s_fixture_t *) *state;
    zactor_destroy (&f->server);
    zsock_destroy (&f->cli);
    zsock_destroy (&f->broker);
    config_destroy (&f->config);
    char command [128];
    snprintf (command, sizeof command, "rm -rf '%s'", f->dir);
    if (system (command) != 0)
        fprintf (stderr, "could not remove %s\n", f->dir);
    free (f);
    return 0;
}

static void
s_send_record (s_fixture_t *f, long line, const char *raw, size_t size)
{
    char id [32];
    snprintf (id, sizeof id, "line:%ld", line);
    envelope_t env;
    envelope_init (&env, "ingest.record", id);
    env.body = raw;
    env.body_size = size;
    assert_int_equal (envelope_send (f->cli, NULL, &env), 0);
}

static int
s_wait (zsock_t *sock, int timeout_ms)
{
    if (zsock_events (sock) & ZMQ_POLLIN)
        return 1;
    zmq_pollitem_t item = { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
    return zmq_poll (&item, 1, timeout_ms) == 1;
}

/* The next command at the broker: fills env, returns the client's routing frame
 * (caller destroys) and the message (caller destroys; env borrows from it). */
static zframe_t *
s_broker_recv (s_fixture_t *f, zmsg_t **msg_p, envelope_t *env)
{
    if (!s_wait (f->broker, WAIT_MS))
        fail_msg ("no command reached the broker");
    zframe_t *routes [1];
    assert_int_equal (envelope_recv (f->broker, 1, routes, msg_p, env), 0);
    return zframe_dup (routes [0]);
}

static void
s_broker_reply (s_fixture_t *f, zframe_t *route, const char *command_id, const char *type, const char *body)
{
    envelope_t env;
    envelope_init (&env, type, "reply-id");
    envelope_set (env.causation_id, sizeof env.causation_id, command_id);
    envelope_set (env.correlation_id, sizeof env.correlation_id, command_id);
    env.body = body;
    env.body_size = strlen (body);
    assert_int_equal (envelope_send (f->broker, route, &env), 0);
}

/* The next ingest.result at the CLI, as JSON (caller decrefs); *cause gets the cause. */
static json_t *
s_cli_recv (s_fixture_t *f, char *cause)
{
    if (!s_wait (f->cli, WAIT_MS))
        fail_msg ("no ingest.result reached the CLI");
    zmsg_t *msg = NULL;
    envelope_t env;
    assert_int_equal (envelope_recv (f->cli, 0, NULL, &msg, &env), 0);
    assert_string_equal (env.type, "ingest.result");
    if (cause)
        strcpy (cause, env.causation_id);
    json_t *root = json_loadb (env.body, env.body_size, 0, NULL);
    assert_non_null (root);
    zmsg_destroy (&msg);
    return root;
}

static const char *s_kyc = "{\"client_id\":\"C-%d\",\"case_type\":\"KYC\",\"case_version\":1}";

static void
test_record_reply_and_rejections (void **state)
{
    s_fixture_t *f = (s_fixture_t *) *state;
    char raw [128];
    snprintf (raw, sizeof raw, s_kyc, 1);
    s_send_record (f, 1, "{oops", 5);
    s_send_record (f, 2, "[1]", 3);
    s_send_record (f, 3, raw, strlen (raw));

    /* rejections come back at once, before any command reaches the broker */
    char cause [ENVELOPE_ID_MAX];
    json_t *r = s_cli_recv (f, cause);
    assert_string_equal (cause, "line:1");
    assert_int_equal (json_integer_value (json_object_get (r, "line")), 1);
    assert_true (json_is_false (json_object_get (r, "ok")));
    assert_int_equal (json_integer_value (json_object_get (r, "status")), 400);
    assert_string_equal (json_string_value (json_object_get (r, "error")), "malformed_json");
    assert_true (strlen (json_string_value (json_object_get (r, "detail"))) > 0);
    json_decref (r);
    r = s_cli_recv (f, cause);
    assert_string_equal (cause, "line:2");
    assert_int_equal (json_integer_value (json_object_get (r, "status")), 422);
    json_decref (r);

    zmsg_t *msg = NULL;
    envelope_t cmd;
    zframe_t *route = s_broker_recv (f, &msg, &cmd);
    assert_string_equal (cmd.type, "cmd.create_case");
    assert_true (strncmp (cmd.id, "rec:", 4) == 0);
    assert_string_equal (cmd.correlation_id, cmd.id);
    assert_int_equal (strlen (cmd.key), 36);
    assert_int_equal (cmd.body_size, strlen (raw));
    assert_memory_equal (cmd.body, raw, cmd.body_size);
    char command_id [ENVELOPE_ID_MAX];
    strcpy (command_id, cmd.id);
    zmsg_destroy (&msg);

    s_broker_reply (f, route, command_id, "reply.ok",
                    "{\"case_id\":\"11111111-2222-5333-8444-555555555555\",\"status\":\"AWAITING_DOCUMENTS\","
                    "\"events\":3,\"position\":3,\"duplicate\":false}");
    r = s_cli_recv (f, cause);
    assert_string_equal (cause, "line:3");
    assert_true (json_is_true (json_object_get (r, "ok")));
    assert_int_equal (json_integer_value (json_object_get (r, "line")), 3);
    assert_string_equal (json_string_value (json_object_get (r, "case_id")), "11111111-2222-5333-8444-555555555555");
    assert_true (json_is_false (json_object_get (r, "duplicate")));
    json_decref (r);

    /* a second reply for the same command has no one waiting: ignored */
    s_broker_reply (f, route, command_id, "reply.ok", "{}");
    zframe_destroy (&route);
}

static void
test_many_in_flight_and_errors (void **state)
{
    s_fixture_t *f = (s_fixture_t *) *state;
    enum { N = 300 };
    char raw [128];
    for (int i = 1; i <= N; i++) {
        snprintf (raw, sizeof raw, s_kyc, 1000 + i);
        s_send_record (f, i, raw, strlen (raw));
    }
    /* all N reach the broker before a single reply: no round trip per record */
    zframe_t *routes [N];
    char ids [N][ENVELOPE_ID_MAX];
    for (int i = 0; i < N; i++) {
        zmsg_t *msg = NULL;
        envelope_t cmd;
        routes [i] = s_broker_recv (f, &msg, &cmd);
        strcpy (ids [i], cmd.id);
        zmsg_destroy (&msg);
    }
    for (int i = 0; i < N; i++) {
        if (i % 3 == 0)
            s_broker_reply (f, routes [i], ids [i], "reply.ok", "{\"duplicate\":true}");
        else
        if (i % 3 == 1)
            s_broker_reply (f, routes [i], ids [i], "reply.error",
                            "{\"status\":422,\"error\":\"validation.persons\",\"detail\":\"required\"}");
        else
            s_broker_reply (f, routes [i], ids [i], "reply.error",
                            "{\"status\":503,\"error\":\"unavailable\",\"detail\":\"store down\"}");
        zframe_destroy (&routes [i]);
    }
    int seen [N + 1] = { 0 };
    for (int i = 0; i < N; i++) {
        char cause [ENVELOPE_ID_MAX];
        json_t *r = s_cli_recv (f, cause);
        long line = (long) json_integer_value (json_object_get (r, "line"));
        assert_true (line >= 1 && line <= N);
        char expected [32];
        snprintf (expected, sizeof expected, "line:%ld", line);
        assert_string_equal (cause, expected);
        seen [line]++;
        int kind = (int) ((line - 1) % 3);
        if (kind == 0) {
            assert_true (json_is_true (json_object_get (r, "duplicate")));
            /* no case id in the reply: the one derived from the command id */
            assert_int_equal (strlen (json_string_value (json_object_get (r, "case_id"))), 36);
        }
        else
            assert_int_equal (json_integer_value (json_object_get (r, "status")), kind == 1 ? 422 : 503);
        json_decref (r);
    }
    for (int i = 1; i <= N; i++)
        assert_int_equal (seen [i], 1);
}

static void
test_same_command_id_is_serialised (void **state)
{
    s_fixture_t *f = (s_fixture_t *) *state;
    char raw [128];
    snprintf (raw, sizeof raw, s_kyc, 7);
    char changed [160];
    snprintf (changed, sizeof changed, "{\"client_id\":\"C-7\",\"case_type\":\"KYC\",\"case_version\":1,\"extra\":1}");
    s_send_record (f, 10, raw, strlen (raw));
    s_send_record (f, 11, raw, strlen (raw));
    s_send_record (f, 12, changed, strlen (changed));

    zmsg_t *msg = NULL;
    envelope_t cmd;
    zframe_t *route = s_broker_recv (f, &msg, &cmd);
    char command_id [ENVELOPE_ID_MAX];
    strcpy (command_id, cmd.id);
    zmsg_destroy (&msg);
    /* only one command with that id is at the broker at a time */
    assert_false (s_wait (f->broker, 100));
    s_broker_reply (f, route, command_id, "reply.ok", "{\"case_id\":\"c\",\"duplicate\":false}");
    zframe_destroy (&route);
    char cause [ENVELOPE_ID_MAX];
    json_t *r = s_cli_recv (f, cause);
    assert_string_equal (cause, "line:10");
    json_decref (r);

    /* then the next one goes, with its own bytes */
    route = s_broker_recv (f, &msg, &cmd);
    assert_string_equal (cmd.id, command_id);
    assert_memory_equal (cmd.body, raw, strlen (raw));
    zmsg_destroy (&msg);
    s_broker_reply (f, route, command_id, "reply.ok", "{\"case_id\":\"c\",\"duplicate\":true}");
    zframe_destroy (&route);
    r = s_cli_recv (f, cause);
    assert_string_equal (cause, "line:11");
    assert_true (json_is_true (json_object_get (r, "duplicate")));
    json_decref (r);

    route = s_broker_recv (f, &msg, &cmd);
    assert_string_equal (cmd.id, command_id);
    assert_int_equal (cmd.body_size, strlen (changed));
    zmsg_destroy (&msg);
    s_broker_reply (f, route, command_id, "reply.error",
                    "{\"status\":422,\"error\":\"idempotency.mismatch\",\"detail\":\"same key, other record\"}");
    zframe_destroy (&route);
    r = s_cli_recv (f, cause);
    assert_string_equal (cause, "line:12");
    assert_string_equal (json_string_value (json_object_get (r, "error")), "idempotency.mismatch");
    json_decref (r);
}

static void
test_silence_becomes_503 (void **state)
{
    s_fixture_t *f = (s_fixture_t *) *state;
    char raw [128];
    snprintf (raw, sizeof raw, s_kyc, 9);
    s_send_record (f, 5, raw, strlen (raw));
    s_send_record (f, 6, raw, strlen (raw));
    zmsg_t *msg = NULL;
    envelope_t cmd;
    zframe_t *route = s_broker_recv (f, &msg, &cmd);
    char command_id [ENVELOPE_ID_MAX];
    strcpy (command_id, cmd.id);
    zmsg_destroy (&msg);
    /* the broker never answers: after ingest_timeout_ms (300) the line gets 503 */
    int64_t started = zclock_mono ();
    char cause [ENVELOPE_ID_MAX];
    json_t *r = s_cli_recv (f, cause);
    assert_true (zclock_mono () - started >= 200);
    assert_string_equal (cause, "line:5");
    assert_int_equal (json_integer_value (json_object_get (r, "status")), 503);
    assert_string_equal (json_string_value (json_object_get (r, "error")), "unavailable");
    json_decref (r);
    /* the record queued behind it is sent then, and times out on its own clock */
    zframe_destroy (&route);
    route = s_broker_recv (f, &msg, &cmd);
    assert_string_equal (cmd.id, command_id);
    zmsg_destroy (&msg);
    r = s_cli_recv (f, cause);
    assert_string_equal (cause, "line:6");
    assert_int_equal (json_integer_value (json_object_get (r, "status")), 503);
    json_decref (r);
    /* a reply after the timeout finds nobody waiting */
    s_broker_reply (f, route, command_id, "reply.ok", "{}");
    zframe_destroy (&route);
    assert_false (s_wait (f->cli, 100));
}

static void
test_junk_is_survived (void **state)
{
    s_fixture_t *f = (s_fixture_t *) *state;
    zstr_send (f->cli, "not an envelope");
    zstr_sendx (f->cli, "two", "frames", NULL);
    envelope_t env;
    envelope_init (&env, "ctl.dance", "x");
    assert_int_equal (envelope_send (f->cli, NULL, &env), 0);
    /* no line number in the id: answered as line 0 */
    envelope_init (&env, "ingest.record", "weird-id");
    env.body = "[]";
    env.body_size = 2;
    assert_int_equal (envelope_send (f->cli, NULL, &env), 0);
    char cause [ENVELOPE_ID_MAX];
    json_t *r = s_cli_recv (f, cause);
    assert_string_equal (cause, "weird-id");
    assert_int_equal (json_integer_value (json_object_get (r, "line")), 0);
    assert_int_equal (json_integer_value (json_object_get (r, "status")), 422);
    json_decref (r);
    /* a record over body_limit (4096) is 413, and nothing reaches the broker */
    char *big = malloc (5000);
    memset (big, ' ', 5000);
    big [0] = '{';
    big [4999] = '}';
    s_send_record (f, 77, big, 5000);
    free (big);
    r = s_cli_recv (f, cause);
    assert_int_equal (json_integer_value (json_object_get (r, "status")), 413);
    json_decref (r);
    /* and the server still works */
    char raw [128];
    snprintf (raw, sizeof raw, s_kyc, 99);
    s_send_record (f, 8, raw, strlen (raw));
    zmsg_t *msg = NULL;
    envelope_t cmd;
    zframe_t *route = s_broker_recv (f, &msg, &cmd);
    char command_id [ENVELOPE_ID_MAX];
    strcpy (command_id, cmd.id);
    zmsg_destroy (&msg);
    /* junk from the broker side: not an envelope, a truncated map, a stray reply */
    zmsg_t *junk = zmsg_new ();
    zmsg_append (junk, &(zframe_t *) {zframe_dup (route)});
    zmsg_addmem (junk, "\x81\xa1t", 3);
    assert_int_equal (zmsg_send (&junk, f->broker), 0);
    junk = zmsg_new ();
    zmsg_append (junk, &(zframe_t *) {zframe_dup (route)});
    zmsg_addstr (junk, "x");
    zmsg_addstr (junk, "y");
    assert_int_equal (zmsg_send (&junk, f->broker), 0);
    s_broker_reply (f, route, "rec:unknown", "reply.ok", "{}");
    s_broker_reply (f, route, command_id, "ctl.pong", "{}");
    s_broker_reply (f, route, command_id, "reply.ok", "{\"case_id\":\"z\"}");
    zframe_destroy (&route);
    r = s_cli_recv (f, cause);
    assert_string_equal (cause, "line:8");
    json_decref (r);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_record_reply_and_rejections, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_many_in_flight_and_errors, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_same_command_id_is_serialised, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_silence_becomes_503, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_junk_is_survived, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
