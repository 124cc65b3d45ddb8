/* test_endpoints — endpoint names (common/endpoints.c): the ipc default, explicit
 * overrides, and the bind address a process derives from a configured endpoint
 * (containers connect to tcp://broker:5555 but must bind tcp://<any>:5555). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "endpoints.h"

static void
s_expect_bind (const char *endpoint, const char *expected)
{
    char *address = endpoints_bind_address (endpoint);
    const char *name = endpoint ? endpoint : "(null)";
    if (!expected) {
        if (address)
            fail_msg ("%s: expected NULL, got %s", name, address);
        return;
    }
    if (!address)
        fail_msg ("%s: expected %s, got NULL", name, expected);
    if (strcmp (address, expected) != 0) {
        char shown [512];
        snprintf (shown, sizeof shown, "%.200s: expected %s, got %.200s", name, expected, address);
        free (address);
        fail_msg ("%s", shown);
    }
    free (address);
}

static void
test_bind_address_names_become_any (void **state)
{
    (void) state;
    s_expect_bind ("tcp://broker:5555", "tcp://*:5555");
    s_expect_bind ("tcp://dossier-store.dossier.svc.cluster.local:5557", "tcp://*:5557");
    s_expect_bind ("tcp://store:*", "tcp://*:*");
    s_expect_bind ("tcp://10.0.0.1;broker:5555", "tcp://*:5555");   /* source part dropped */
}

static void
test_bind_address_keeps_what_zeromq_binds (void **state)
{
    (void) state;
    s_expect_bind ("tcp://*:5555", "tcp://*:5555");
    s_expect_bind ("tcp://127.0.0.1:5555", "tcp://127.0.0.1:5555");
    s_expect_bind ("tcp://0.0.0.0:6000", "tcp://0.0.0.0:6000");
    s_expect_bind ("tcp://[::1]:5555", "tcp://[::1]:5555");
    s_expect_bind ("tcp://fe80::1:5555", "tcp://fe80::1:5555");
    s_expect_bind ("tcp://lo:5555", "tcp://lo:5555");               /* an interface name */
    s_expect_bind ("tcp://localhost:5555", "tcp://127.0.0.1:5555"); /* loopback stays private */
    s_expect_bind ("ipc:///tmp/dossier/run/store.ipc", "ipc:///tmp/dossier/run/store.ipc");
    s_expect_bind ("inproc://store", "inproc://store");
}

static void
test_bind_address_refuses_malformed (void **state)
{
    (void) state;
    s_expect_bind (NULL, NULL);
    s_expect_bind ("tcp://broker", NULL);
    s_expect_bind ("tcp://broker:", NULL);
    s_expect_bind ("tcp://:5555", NULL);
    s_expect_bind ("tcp://", NULL);
    s_expect_bind ("tcp://[::1]", NULL);
    s_expect_bind ("tcp://[::1:5555", NULL);
    s_expect_bind ("tcp://a;", NULL);
    char long_host [600];
    memset (long_host, 'h', sizeof long_host);
    memcpy (long_host, "tcp://", 6);
    memcpy (long_host + sizeof long_host - 7, ":5555", 6);
    s_expect_bind (long_host, "tcp://*:5555");
}

/* What the address is for: a name ZeroMQ cannot bind becomes a bind that works and
 * that a connector reaches on the same port. */
static void
test_bind_address_binds_and_connects (void **state)
{
    (void) state;
    zsock_t *direct = zsock_new (ZMQ_ROUTER);
    assert_non_null (direct);
    assert_int_equal (zsock_bind (direct, "tcp://dossier-no-such-host-name:*"), -1);
    zsock_destroy (&direct);

    char *address = endpoints_bind_address ("tcp://dossier-no-such-host-name:*");
    assert_non_null (address);
    zsock_t *server = zsock_new (ZMQ_PULL);
    int port = zsock_bind (server, "%s", address);
    free (address);
    assert_true (port > 0);
    zsock_t *client = zsock_new (ZMQ_PUSH);
    assert_int_equal (zsock_connect (client, "tcp://127.0.0.1:%d", port), 0);
    assert_int_equal (zstr_send (client, "hello"), 0);
    zsock_set_rcvtimeo (server, 5000);
    char *text = zstr_recv (server);
    assert_non_null (text);
    assert_string_equal (text, "hello");
    zstr_free (&text);
    zsock_destroy (&client);
    zsock_destroy (&server);
}

static void
test_get_bind_from_config (void **state)
{
    (void) state;
    char dir [] = "/tmp/test_endpoints_XXXXXX";
    assert_non_null (mkdtemp (dir));
    unsetenv ("DOSSIER_CONFIG");
    setenv ("DOSSIER_DATA_DIR", dir, 1);
    setenv ("DOSSIER_ENDPOINT_BROKER_FRONT", "tcp://broker:5555", 1);
    config_t *config = config_load (NULL);
    assert_non_null (config);

    char *connect = endpoints_get (config, "broker_front");
    char *bind = endpoints_get_bind (config, "broker_front");
    assert_string_equal (connect, "tcp://broker:5555");
    assert_string_equal (bind, "tcp://*:5555");
    free (connect);
    free (bind);

    /* Unconfigured: the ipc default, bound and connected alike. */
    char expected [256];
    snprintf (expected, sizeof expected, "ipc://%s/run/store.ipc", dir);
    connect = endpoints_get (config, "store");
    bind = endpoints_get_bind (config, "store");
    assert_string_equal (connect, expected);
    assert_string_equal (bind, expected);
    free (connect);
    free (bind);

    config_destroy (&config);
    unsetenv ("DOSSIER_ENDPOINT_BROKER_FRONT");
    unsetenv ("DOSSIER_DATA_DIR");
    char run [300];
    snprintf (run, sizeof run, "%s/run", dir);
    assert_int_equal (rmdir (run), 0);
    assert_int_equal (rmdir (dir), 0);
}

static void
test_get_refuses_long_ipc_path (void **state)
{
    (void) state;
    char dir [] = "/tmp/test_endpoints_XXXXXX";
    assert_non_null (mkdtemp (dir));
    char deep [400];
    snprintf (deep, sizeof deep, "%s/%0120d", dir, 0);
    setenv ("DOSSIER_DATA_DIR", deep, 1);
    config_t *config = config_load (NULL);
    assert_non_null (config);
    assert_null (endpoints_get (config, "store"));
    assert_null (endpoints_get_bind (config, "store"));
    config_destroy (&config);
    unsetenv ("DOSSIER_DATA_DIR");
    char run [500];
    snprintf (run, sizeof run, "%s/run", deep);
    rmdir (run);
    rmdir (deep);
    assert_int_equal (rmdir (dir), 0);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_bind_address_names_become_any),
        cmocka_unit_test (test_bind_address_keeps_what_zeromq_binds),
        cmocka_unit_test (test_bind_address_refuses_malformed),
        cmocka_unit_test (test_bind_address_binds_and_connects),
        cmocka_unit_test (test_get_bind_from_config),
        cmocka_unit_test (test_get_refuses_long_ipc_path),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
