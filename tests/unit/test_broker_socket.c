/* test_broker_socket — the broker actor over inproc sockets: ping, routing and
 * reply forwarding, waiting for a handler, 503 when none comes, a case pinned to
 * its busy handler, re-dispatch when a handler falls silent or restarts, and
 * malformed frames dropped without harm. Waits are on sockets, never sleeps. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../broker/broker.h"
#include "../../broker/broker_workers.h"
#include "envelope.h"

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define S_TIMEOUT_MS 5000

typedef struct {
    char front [64];
    char back [64];
    broker_actor_args_t args;
    zactor_t *broker;
    zsock_t *client;
} fixture_t;

static void
s_start (fixture_t *f, int64_t worker_timeout_ms, int64_t queue_timeout_ms)
{
    static int counter = 0;
    memset (f, 0, sizeof (*f));
    snprintf (f->front, sizeof f->front, "inproc://broker-front-%d-%d", (int) getpid (), counter);
    snprintf (f->back, sizeof f->back, "inproc://broker-back-%d-%d", (int) getpid (), counter++);
    f->args.front_endpoint = f->front;
    f->args.back_endpoint = f->back;
    broker_options_default (&f->args.options);
    f->args.options.worker_timeout_ms = worker_timeout_ms;
    f->args.options.queue_timeout_ms = queue_timeout_ms;
    f->broker = zactor_new (broker_actor, &f->args);
    assert_non_null (f->broker);
    f->client = zsock_new_dealer (f->front);
    assert_non_null (f->client);
}

static void
s_stop (fixture_t *f)
{
    zsock_destroy (&f->client);
    zactor_destroy (&f->broker);
}

static void
s_send (zsock_t *sock, zframe_t *route, const char *type, const char *id, const char *key, const char *body)
{
    envelope_t env;
    envelope_init (&env, type, id);
    envelope_set (env.key, sizeof env.key, key);
    envelope_set (env.correlation_id, sizeof env.correlation_id, id);
    envelope_set (env.causation_id, sizeof env.causation_id, id);
    env.body = body;
    env.body_size = body ? strlen (body) : 0;
    assert_int_equal (envelope_send (zsock_resolve (sock), route, &env), 0);
}

/* A handler: a DEALER with a fixed identity that announces itself. */
static zsock_t *
s_handler (fixture_t *f, const char *identity)
{
    zsock_t *handler = zsock_new (ZMQ_DEALER);
    assert_non_null (handler);
    zsock_set_identity (handler, identity);
    assert_int_equal (zsock_connect (handler, "%s", f->back), 0);
    s_send (handler, NULL, "ctl.ready", "ready", "", NULL);
    return handler;
}

/* Waits up to timeout_ms for a message of n_routes routing frames + envelope.
 * Returns 0 (caller destroys *msg_p) or -1 on timeout. */
static int
s_recv (zsock_t *sock, int n_routes, zframe_t **routes, zmsg_t **msg_p, envelope_t *env, int timeout_ms)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    void *which = zpoller_wait (poller, timeout_ms);
    zpoller_destroy (&poller);
    if (which != sock)
        return -1;
    assert_int_equal (envelope_recv (zsock_resolve (sock), n_routes, routes, msg_p, env), 0);
    return 0;
}

/* Receives a command on a handler; returns the client route (caller destroys). */
static zframe_t *
s_handler_recv (zsock_t *handler, char *id_out, int timeout_ms)
{
    zframe_t *route = NULL;
    zmsg_t *msg = NULL;
    envelope_t env;
    if (s_recv (handler, 1, &route, &msg, &env, timeout_ms))
        return NULL;
    assert_memory_equal (env.type, "cmd.", 4);
    snprintf (id_out, ENVELOPE_ID_MAX, "%s", env.id);
    route = zframe_dup (route);
    zmsg_destroy (&msg);
    return route;
}

static void
s_handler_reply (zsock_t *handler, zframe_t *route, const char *command_id)
{
    s_send (handler, route, "reply.ok", command_id, "", "{\"status\":\"OPEN\"}");
}

/* The client receives a reply; returns its cause in cause_out. */
static void
s_client_expect (fixture_t *f, const char *type, char *cause_out)
{
    zmsg_t *msg = NULL;
    envelope_t env;
    assert_int_equal (s_recv (f->client, 0, NULL, &msg, &env, S_TIMEOUT_MS), 0);
    assert_string_equal (env.type, type);
    snprintf (cause_out, ENVELOPE_ID_MAX, "%s", env.causation_id);
    zmsg_destroy (&msg);
}

static void
test_ping_route_reply (void **state)
{
    (void) state;
    fixture_t f;
    s_start (&f, 3000, 10000);
    char cause [ENVELOPE_ID_MAX], id [ENVELOPE_ID_MAX];
    s_send (f.client, NULL, "ctl.ping", "ping-1", "", NULL);
    s_client_expect (&f, "ctl.pong", cause);
    assert_string_equal (cause, "ping-1");

    zsock_t *handler = s_handler (&f, "handler-1");
    s_send (f.client, NULL, "cmd.create_case", "cmd-1", "case-1", "{}");
    zframe_t *route = s_handler_recv (handler, id, S_TIMEOUT_MS);
    assert_non_null (route);
    assert_string_equal (id, "cmd-1");
    s_handler_reply (handler, route, "cmd-1");
    s_client_expect (&f, "reply.ok", cause);
    assert_string_equal (cause, "cmd-1");
    /* a second reply for the same command is forwarded too */
    s_handler_reply (handler, route, "cmd-1");
    s_client_expect (&f, "reply.ok", cause);
    zframe_destroy (&route);
    zsock_destroy (&handler);
    s_stop (&f);
}

static void
test_no_handler_503 (void **state)
{
    (void) state;
    fixture_t f;
    s_start (&f, 3000, 100);
    s_send (f.client, NULL, "cmd.create_case", "cmd-1", "case-1", "{}");
    zmsg_t *msg = NULL;
    envelope_t env;
    assert_int_equal (s_recv (f.client, 0, NULL, &msg, &env, S_TIMEOUT_MS), 0);
    assert_string_equal (env.type, "reply.error");
    assert_string_equal (env.causation_id, "cmd-1");
    assert_string_equal (env.key, "case-1");
    assert_non_null (strstr (env.body, "\"status\":503"));
    assert_non_null (strstr (env.body, "no handler available"));
    zmsg_destroy (&msg);
    s_stop (&f);
}

static void
test_waits_for_a_handler (void **state)
{
    (void) state;
    fixture_t f;
    s_start (&f, 3000, 10000);
    /* the command is queued; the ping answer proves the broker has it */
    s_send (f.client, NULL, "cmd.create_case", "cmd-1", "case-1", "{}");
    s_send (f.client, NULL, "ctl.ping", "ping-1", "", NULL);
    char cause [ENVELOPE_ID_MAX], id [ENVELOPE_ID_MAX];
    s_client_expect (&f, "ctl.pong", cause);
    zsock_t *handler = s_handler (&f, "handler-1");
    zframe_t *route = s_handler_recv (handler, id, S_TIMEOUT_MS);
    assert_non_null (route);
    assert_string_equal (id, "cmd-1");
    s_handler_reply (handler, route, id);
    s_client_expect (&f, "reply.ok", cause);
    assert_string_equal (cause, "cmd-1");
    zframe_destroy (&route);
    zsock_destroy (&handler);
    s_stop (&f);
}

/* A key that the partitioning gives to `want` among {handler-1, handler-2}. */
static void
s_key_for (const char *want, const char *prefix, char *out, size_t size)
{
    broker_workers_t *workers = broker_workers_new ();
    broker_id_t h1, h2, choice, target;
    broker_id_set (&h1, "handler-1", 9);
    broker_id_set (&h2, "handler-2", 9);
    broker_id_set (&target, want, strlen (want));
    broker_workers_touch (workers, &h1, 0);
    broker_workers_touch (workers, &h2, 0);
    for (int i = 0; ; i++) {
        snprintf (out, size, "%s-%d", prefix, i);
        broker_workers_choose (workers, out, &choice);
        if (broker_id_eq (&choice, &target))
            break;
    }
    broker_workers_destroy (&workers);
}

/* Both handlers announced themselves, but the broker may see a client message
 * before h2's ready (different sockets): probe with a key that hashes to h2
 * until one lands there, answering each probe from wherever it went. */
static void
s_wait_registered (fixture_t *f, zsock_t *h1, zsock_t *h2)
{
    char key [64], id [ENVELOPE_ID_MAX], cause [ENVELOPE_ID_MAX];
    s_key_for ("handler-2", "probe", key, sizeof key);
    zpoller_t *poller = zpoller_new (h1, h2, NULL);
    int registered = 0;
    for (int round = 0; !registered && round < 100; round++) {
        char probe_id [32];
        snprintf (probe_id, sizeof probe_id, "probe-%d", round);
        s_send (f->client, NULL, "cmd.test", probe_id, key, "{}");
        zsock_t *which = (zsock_t *) zpoller_wait (poller, S_TIMEOUT_MS);
        assert_non_null (which);
        zframe_t *route = s_handler_recv (which, id, 0);
        assert_non_null (route);
        assert_string_equal (id, probe_id);
        registered = which == h2;
        s_handler_reply (which, route, id);
        s_client_expect (f, "reply.ok", cause);
        assert_string_equal (cause, probe_id);
        zframe_destroy (&route);
    }
    zpoller_destroy (&poller);
    assert_true (registered);
}

static void
test_case_pinned_while_in_flight (void **state)
{
    (void) state;
    fixture_t f;
    s_start (&f, 3000, 10000);
    char key [64], id [ENVELOPE_ID_MAX], cause [ENVELOPE_ID_MAX];
    s_key_for ("handler-2", "case", key, sizeof key);

    zsock_t *h1 = s_handler (&f, "handler-1");
    s_send (f.client, NULL, "cmd.decide_case", "cmd-1", key, "{}");
    zframe_t *route1 = s_handler_recv (h1, id, S_TIMEOUT_MS);      /* only handler: h1 */
    assert_non_null (route1);

    zsock_t *h2 = s_handler (&f, "handler-2");
    s_wait_registered (&f, h1, h2);

    /* key hashes to h2 now, but cmd-1 is in flight on h1: cmd-2 follows it */
    s_send (f.client, NULL, "cmd.decide_case", "cmd-2", key, "{}");
    zframe_t *route2 = s_handler_recv (h1, id, S_TIMEOUT_MS);
    assert_non_null (route2);
    assert_string_equal (id, "cmd-2");
    s_handler_reply (h1, route1, "cmd-1");
    s_client_expect (&f, "reply.ok", cause);
    s_handler_reply (h1, route2, "cmd-2");
    s_client_expect (&f, "reply.ok", cause);

    /* nothing of the case in flight: the next one goes where the hash says */
    s_send (f.client, NULL, "cmd.decide_case", "cmd-3", key, "{}");
    zframe_t *route3 = s_handler_recv (h2, id, S_TIMEOUT_MS);
    assert_non_null (route3);
    assert_string_equal (id, "cmd-3");

    zframe_destroy (&route1);
    zframe_destroy (&route2);
    zframe_destroy (&route3);
    zsock_destroy (&h1);
    zsock_destroy (&h2);
    s_stop (&f);
}

#define N_COMMANDS 40

static void
test_silent_handler_redispatch (void **state)
{
    (void) state;
    fixture_t f;
    s_start (&f, 600, 10000);
    zsock_t *h1 = s_handler (&f, "handler-1");
    zsock_t *h2 = s_handler (&f, "handler-2");
    s_wait_registered (&f, h1, h2);
    char id [ENVELOPE_ID_MAX], cause [ENVELOPE_ID_MAX];
    zpoller_t *poller = zpoller_new (h1, h2, NULL);

    for (int i = 0; i < N_COMMANDS; i++) {
        char command_id [32], key [32];
        snprintf (command_id, sizeof command_id, "cmd-%d", i);
        snprintf (key, sizeof key, "case-%d", i);
        s_send (f.client, NULL, "cmd.test", command_id, key, "{}");
    }
    /* h1 takes its share and then hangs; h2 answers what it gets and keeps
     * beating, and must end up with h1's share too */
    int on_h1 = 0, answered = 0;
    int64_t deadline = zclock_mono () + S_TIMEOUT_MS;
    while (answered < N_COMMANDS && zclock_mono () < deadline) {
        void *which = zpoller_wait (poller, 50);
        if (which == h1) {
            zframe_t *route = s_handler_recv (h1, id, 0);
            assert_non_null (route);
            zframe_destroy (&route);
            on_h1++;
        }
        else
        if (which == h2) {
            zframe_t *route = s_handler_recv (h2, id, 0);
            assert_non_null (route);
            s_handler_reply (h2, route, id);
            zframe_destroy (&route);
            answered++;
        }
        else
            s_send (h2, NULL, "ctl.heartbeat", "hb", "", NULL);
    }
    zpoller_destroy (&poller);
    assert_true (on_h1 > 0);
    assert_int_equal (answered, N_COMMANDS);
    /* every command got its reply */
    int seen [N_COMMANDS] = { 0 };
    for (int i = 0; i < N_COMMANDS; i++) {
        s_client_expect (&f, "reply.ok", cause);
        int n = -1;
        assert_int_equal (sscanf (cause, "cmd-%d", &n), 1);
        assert_in_range (n, 0, N_COMMANDS - 1);
        seen [n]++;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        assert_int_equal (seen [i], 1);
    zsock_destroy (&h1);
    zsock_destroy (&h2);
    s_stop (&f);
}

static void
test_closed_handler_fails_over (void **state)
{
    (void) state;
    fixture_t f;
    s_start (&f, 600, 10000);
    zsock_t *h1 = s_handler (&f, "handler-1");
    zsock_t *h2 = s_handler (&f, "handler-2");
    s_wait_registered (&f, h1, h2);
    char key [64], id [ENVELOPE_ID_MAX], cause [ENVELOPE_ID_MAX];
    s_key_for ("handler-1", "case", key, sizeof key);
    /* h1's socket goes away; its case must reach h2, at once if the broker
     * already sees the connection gone (unroutable), else after h1's silence */
    zsock_destroy (&h1);
    s_send (f.client, NULL, "cmd.test", "cmd-1", key, "{}");
    zframe_t *route = NULL;
    int64_t deadline = zclock_mono () + S_TIMEOUT_MS;
    while (!route && zclock_mono () < deadline)
        if (!(route = s_handler_recv (h2, id, 100)))
            s_send (h2, NULL, "ctl.heartbeat", "hb", "", NULL);
    assert_non_null (route);
    assert_string_equal (id, "cmd-1");
    s_handler_reply (h2, route, id);
    s_client_expect (&f, "reply.ok", cause);
    assert_string_equal (cause, "cmd-1");
    zframe_destroy (&route);
    zsock_destroy (&h2);
    s_stop (&f);
}

static void
test_restarted_handler_gets_its_commands_again (void **state)
{
    (void) state;
    fixture_t f;
    s_start (&f, 3000, 10000);
    char id [ENVELOPE_ID_MAX], cause [ENVELOPE_ID_MAX];
    zsock_t *h1 = s_handler (&f, "handler-1");
    s_send (f.client, NULL, "cmd.test", "cmd-1", "case-1", "{}");
    zframe_t *route = s_handler_recv (h1, id, S_TIMEOUT_MS);
    assert_non_null (route);
    zframe_destroy (&route);
    /* the handler dies with cmd-1 unanswered and comes back under its name */
    zsock_destroy (&h1);
    h1 = s_handler (&f, "handler-1");
    route = s_handler_recv (h1, id, S_TIMEOUT_MS);
    assert_non_null (route);
    assert_string_equal (id, "cmd-1");
    s_handler_reply (h1, route, id);
    s_client_expect (&f, "reply.ok", cause);
    assert_string_equal (cause, "cmd-1");
    zframe_destroy (&route);
    zsock_destroy (&h1);
    s_stop (&f);
}

static void
test_malformed_frames (void **state)
{
    (void) state;
    fixture_t f;
    s_start (&f, 3000, 10000);
    char cause [ENVELOPE_ID_MAX];
    zsock_t *handler = s_handler (&f, "handler-1");
    /* client side: extra frames, garbage, an unknown type, a command without id */
    zsock_send (f.client, "ss", "a", "b");
    zsock_send (f.client, "s", "not msgpack");
    zsock_send (f.client, "b", "\x81\xa1v\x01", (size_t) 4);    /* an envelope without a type */
    s_send (f.client, NULL, "evt.something", "x-1", "", NULL);
    s_send (f.client, NULL, "cmd.create_case", "", "case-1", "{}");
    s_client_expect (&f, "reply.error", cause);
    /* handler side: garbage, too many frames, a non-reply for a client */
    zsock_send (handler, "s", "garbage");
    zsock_send (handler, "ssss", "a", "b", "c", "d");
    zframe_t *route = zframe_new ("nobody", 6);
    s_send (handler, route, "ctl.heartbeat", "hb", "", NULL);
    s_send (handler, NULL, "ctl.unknown", "u", "", NULL);
    zframe_destroy (&route);
    /* still routing and answering */
    s_send (f.client, NULL, "ctl.ping", "ping-1", "", NULL);
    s_client_expect (&f, "ctl.pong", cause);
    assert_string_equal (cause, "ping-1");
    char id [ENVELOPE_ID_MAX];
    s_send (f.client, NULL, "cmd.create_case", "cmd-1", "case-1", "{}");
    route = s_handler_recv (handler, id, S_TIMEOUT_MS);
    assert_non_null (route);
    s_handler_reply (handler, route, id);
    s_client_expect (&f, "reply.ok", cause);
    zframe_destroy (&route);
    zsock_destroy (&handler);
    s_stop (&f);
}

static void
test_bind_failure (void **state)
{
    (void) state;
    assert_null (broker_new ("bogus://x", "inproc://unused-back", NULL));
    broker_t *broker = broker_new ("inproc://bf-front", NULL, NULL);
    assert_null (broker);
    broker_destroy (NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_ping_route_reply),
        cmocka_unit_test (test_no_handler_503),
        cmocka_unit_test (test_waits_for_a_handler),
        cmocka_unit_test (test_case_pinned_while_in_flight),
        cmocka_unit_test (test_silent_handler_redispatch),
        cmocka_unit_test (test_closed_handler_fails_over),
        cmocka_unit_test (test_restarted_handler_gets_its_commands_again),
        cmocka_unit_test (test_malformed_frames),
        cmocka_unit_test (test_bind_failure),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
