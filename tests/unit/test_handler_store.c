/* test_handler_store — the handler's store client against a fake store (a ROUTER in
 * the test): replies matched by cause, late replies dropped, resends with the same id
 * when no answer comes, expiry at the deadline, and a store that binds only after the
 * request was made. Timers are driven by passing future times to the tick, not by
 * sleeping. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../actors/handler/handler_store.h"
#include "log.h"

typedef struct {
    char dir [64];
    char endpoint [128];
    zsock_t *router;            /* the fake store */
    handler_store_t *client;
} s_fixture_t;

static int
s_setup (void **state)
{
    log_init ("test", "error");
    s_fixture_t *f = calloc (1, sizeof (s_fixture_t));
    snprintf (f->dir, sizeof f->dir, "/tmp/dossier-test-hstore-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    snprintf (f->endpoint, sizeof f->endpoint, "ipc://%s/store.ipc", f->dir);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    handler_store_destroy (&f->client);
    zsock_destroy (&f->router);
    char path [160];
    snprintf (path, sizeof path, "%s/store.ipc", f->dir);
    unlink (path);
    assert_int_equal (rmdir (f->dir), 0);
    free (f);
    return 0;
}

static void
s_bind (s_fixture_t *f)
{
    f->router = zsock_new (ZMQ_ROUTER);
    assert_non_null (f->router);
    assert_int_equal (zsock_bind (f->router, "%s", f->endpoint), 0);
}

/* Receives one request at the fake store (waits up to 5 s); returns its identity frame
 * (caller destroys) and fills env (body borrowed from *msg_p). */
static zframe_t *
s_store_recv (s_fixture_t *f, zmsg_t **msg_p, envelope_t *env)
{
    zpoller_t *poller = zpoller_new (f->router, NULL);
    void *which = zpoller_wait (poller, 5000);
    zpoller_destroy (&poller);
    assert_ptr_equal (which, f->router);
    zframe_t *route = NULL;
    assert_int_equal (envelope_recv (zsock_resolve (f->router), 1, &route, msg_p, env), 0);
    return zframe_dup (route);
}

static void
s_store_reply (s_fixture_t *f, zframe_t *route, const char *type, const char *cause)
{
    envelope_t env;
    envelope_init (&env, type, "reply");
    envelope_set (env.causation_id, sizeof env.causation_id, cause);
    env.body = "\x80";      /* an empty msgpack map */
    env.body_size = 1;
    assert_int_equal (envelope_send (zsock_resolve (f->router), route, &env), 0);
}

/* Waits (up to 5 s) for input on the client's socket. */
static void
s_client_wait (s_fixture_t *f)
{
    zpoller_t *poller = zpoller_new (handler_store_sock (f->client), NULL);
    void *which = zpoller_wait (poller, 5000);
    zpoller_destroy (&poller);
    assert_ptr_equal (which, handler_store_sock (f->client));
}

static int s_expired_count;
static void *s_expired_owner;

static void
s_expired (void *owner, void *arg)
{
    (void) arg;
    s_expired_count++;
    s_expired_owner = owner;
}

static void
test_reply_matching (void **state)
{
    s_fixture_t *f = *state;
    s_bind (f);
    f->client = handler_store_new (f->endpoint);
    assert_non_null (f->client);
    int owner_a, owner_b;
    char id_a [HANDLER_STORE_REQUEST_ID_MAX], id_b [HANDLER_STORE_REQUEST_ID_MAX];
    int64_t deadline = zclock_mono () + 60000;
    assert_int_equal (handler_store_request (f->client, "store.read_stream", "case-a", "corr",
                                             "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", "A", 1,
                                             deadline, &owner_a, id_a), 0);
    assert_int_equal (handler_store_request (f->client, "store.read_stream", "case-b", "corr", NULL, "B", 1,
                                             deadline, &owner_b, id_b), 0);
    assert_string_not_equal (id_a, id_b);
    assert_int_equal (handler_store_size (f->client), 2);

    zmsg_t *msg_a, *msg_b;
    envelope_t env_a, env_b;
    zframe_t *route_a = s_store_recv (f, &msg_a, &env_a);
    zframe_t *route_b = s_store_recv (f, &msg_b, &env_b);
    assert_string_equal (env_a.id, id_a);
    assert_string_equal (env_a.key, "case-a");
    assert_string_equal (env_a.correlation_id, "corr");
    assert_string_equal (env_a.traceparent, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    assert_int_equal (env_a.body_size, 1);
    assert_string_equal (env_b.id, id_b);
    assert_string_equal (env_b.traceparent, "");

    /* answer b first: matched to its owner whatever the order */
    s_store_reply (f, route_b, "store.events", id_b);
    s_client_wait (f);
    void *owner = NULL;
    zmsg_t *reply = NULL;
    envelope_t env;
    assert_int_equal (handler_store_recv (f->client, &owner, &reply, &env), 0);
    assert_ptr_equal (owner, &owner_b);
    assert_string_equal (env.type, "store.events");
    zmsg_destroy (&reply);
    /* a second answer to b (a duplicate from a resend) is dropped */
    s_store_reply (f, route_b, "store.events", id_b);
    s_client_wait (f);
    assert_int_equal (handler_store_recv (f->client, &owner, &reply, &env), -1);
    assert_null (reply);
    /* a cancelled request's late answer is dropped too */
    handler_store_cancel (f->client, id_a);
    handler_store_cancel (f->client, "r-unknown");
    handler_store_cancel (f->client, NULL);
    assert_int_equal (handler_store_size (f->client), 0);
    s_store_reply (f, route_a, "store.events", id_a);
    s_client_wait (f);
    assert_int_equal (handler_store_recv (f->client, &owner, &reply, &env), -1);
    /* garbage from the store is dropped without harm */
    zframe_send (&(zframe_t *) {zframe_dup (route_a)}, f->router, ZFRAME_MORE);
    zstr_send (f->router, "not an envelope");
    s_client_wait (f);
    assert_int_equal (handler_store_recv (f->client, &owner, &reply, &env), -1);
    assert_int_equal (handler_store_timeout (f->client, zclock_mono ()) >= -1, 1);

    zframe_destroy (&route_a);
    zframe_destroy (&route_b);
    zmsg_destroy (&msg_a);
    zmsg_destroy (&msg_b);
}

static void
test_resend_and_expiry (void **state)
{
    s_fixture_t *f = *state;
    s_bind (f);
    f->client = handler_store_new (f->endpoint);
    int owner;
    char id [HANDLER_STORE_REQUEST_ID_MAX];
    int64_t deadline = zclock_mono () + 8000;
    assert_int_equal (handler_store_request (f->client, "store.append", "case", "corr", NULL, "body", 4,
                                             deadline, &owner, id), 0);
    /* taken after the request: its first resend is due at most half of the 8 s from here */
    int64_t start = zclock_mono ();
    zmsg_t *msg;
    envelope_t env;
    zframe_t *route = s_store_recv (f, &msg, &env);
    assert_string_equal (env.id, id);
    zmsg_destroy (&msg);
    zframe_destroy (&route);
    /* the first resend is due after half the time to the deadline: a store that is
     * merely slow is not sent the same append again and again */
    int64_t timeout = handler_store_timeout (f->client, start);
    assert_true (timeout > 3000 && timeout <= 4000);
    s_expired_count = 0;
    handler_store_tick (f->client, start, s_expired, NULL);          /* nothing due yet */
    handler_store_tick (f->client, start + 2000, s_expired, NULL);   /* nor at 2 s */
    zpoller_t *early = zpoller_new (f->router, NULL);
    assert_null (zpoller_wait (early, 50));
    zpoller_destroy (&early);
    handler_store_tick (f->client, start + 4000 + 10, s_expired, NULL);
    route = s_store_recv (f, &msg, &env);
    assert_string_equal (env.id, id);          /* the same request, the same id */
    assert_memory_equal (env.body, "body", 4);
    zmsg_destroy (&msg);
    zframe_destroy (&route);
    /* not resent again right after */
    handler_store_tick (f->client, start + 4000 + 20, s_expired, NULL);
    zpoller_t *poller = zpoller_new (f->router, NULL);
    assert_null (zpoller_wait (poller, 50));
    zpoller_destroy (&poller);
    assert_int_equal (s_expired_count, 0);
    /* past the deadline: expired once, then forgotten */
    handler_store_tick (f->client, deadline + 1, s_expired, NULL);
    assert_int_equal (s_expired_count, 1);
    assert_ptr_equal (s_expired_owner, &owner);
    assert_int_equal (handler_store_size (f->client), 0);
    handler_store_tick (f->client, deadline + 20000, s_expired, NULL);
    assert_int_equal (s_expired_count, 1);
    assert_int_equal (handler_store_timeout (f->client, deadline + 20000), -1);
}

/* The store is down when the request is made and comes up later. */
static void
test_store_comes_up_later (void **state)
{
    s_fixture_t *f = *state;
    f->client = handler_store_new (f->endpoint);
    assert_non_null (f->client);
    int owner;
    char id [HANDLER_STORE_REQUEST_ID_MAX];
    int64_t deadline = zclock_mono () + 60000;
    assert_int_equal (handler_store_request (f->client, "store.read_stream", "case", "corr", NULL, "x", 1,
                                             deadline, &owner, id), 0);
    s_bind (f);
    /* drive resends with future times until the connection is up and one arrives */
    zpoller_t *poller = zpoller_new (f->router, NULL);
    void *which = NULL;
    for (int i = 1; i <= 100 && !which; i++) {
        handler_store_tick (f->client, zclock_mono () + 5000 * i, s_expired, NULL);
        which = zpoller_wait (poller, 50);
    }
    zpoller_destroy (&poller);
    assert_ptr_equal (which, f->router);
    zmsg_t *msg;
    envelope_t env;
    zframe_t *route = NULL;
    assert_int_equal (envelope_recv (zsock_resolve (f->router), 1, &route, &msg, &env), 0);
    assert_string_equal (env.id, id);
    zmsg_destroy (&msg);
}

static void
test_bad_endpoint (void **state)
{
    (void) state;
    handler_store_t *client = handler_store_new ("nonsense://");
    assert_null (client);
    client = handler_store_new (NULL);
    assert_null (client);
    handler_store_destroy (&client);
    handler_store_destroy (NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_reply_matching, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_resend_and_expiry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_store_comes_up_later, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_endpoint, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
