/* test_notifier_actor — the notifier actor against a fake store made of real sockets
 * in this thread: notifications reach the JSON lines file in log order with their
 * event ids, other events and poison payloads only move the checkpoint, and a
 * restart resumes after the stored checkpoint without re-sending. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>

#include "config.h"
#include "endpoints.h"
#include "envelope.h"
#include "log.h"
#include "store_proto.h"
#include "../../actors/notifier/notifier.h"
#include "test_projection_helpers.h"

typedef struct {
    t_tmp_t tmp;
    config_t *config;
    t_log_t log;
    int64_t visible;
    zsock_t *router, *pub;
    zactor_t *notifier;
    int64_t last_from;          /* from_position of the last read_all */
    char file [160];
} ctx_t;

static zsock_t *
s_bound (int type, config_t *config, const char *name)
{
    char *ep = endpoints_get (config, name);
    assert_non_null (ep);
    zsock_t *s = zsock_new (type);
    zsock_set_linger (s, 0);
    assert_int_equal (zsock_bind (s, "%s", ep), 0);
    free (ep);
    return s;
}

static void
s_send_events (ctx_t *c, zsock_t *sock, zframe_t *route, const char *cause, int64_t from, int64_t max)
{
    size_t n = 0;
    if (from >= 1 && from <= c->visible)
        n = (size_t) (c->visible - from + 1 < max ? c->visible - from + 1 : max);
    char *body = NULL;
    size_t size = 0;
    assert_int_equal (event_batch_encode (n ? c->log.events + from - 1 : NULL, n, c->visible, &body, &size), 0);
    envelope_t env;
    envelope_init (&env, "store.events", "fake-store");
    envelope_set (env.causation_id, sizeof env.causation_id, cause);
    env.body = body;
    env.body_size = size;
    assert_int_equal (envelope_send (zsock_resolve (sock), route, &env), 0);
    free (body);
}

static void
s_store_answer (ctx_t *c)
{
    zframe_t *route;
    zmsg_t *msg;
    envelope_t env;
    assert_int_equal (envelope_recv (zsock_resolve (c->router), 1, &route, &msg, &env), 0);
    int64_t from, max;
    assert_int_equal (store_read_all_decode (env.body, env.body_size, &from, &max), 0);
    c->last_from = from;
    s_send_events (c, c->router, route, env.id, from, max);
    zmsg_destroy (&msg);
}

/* Lines in the notifications file (0 if it does not exist yet). */
static int
s_lines (ctx_t *c, char **text_out)
{
    FILE *f = fopen (c->file, "rb");
    if (!f)
        return 0;
    char *text = calloc (1, 1 << 16);
    size_t n = fread (text, 1, (1 << 16) - 1, f);
    fclose (f);
    int lines = 0;
    for (size_t i = 0; i < n; i++)
        lines += text [i] == '\n';
    if (text_out)
        *text_out = text;
    else
        free (text);
    return lines;
}

/* Serves the fake store until the file has `lines` lines and the notifier asked
 * for `from` (0: any). */
static void
s_serve_until (ctx_t *c, int lines, int64_t from)
{
    zpoller_t *poller = zpoller_new (c->router, NULL);
    int64_t deadline = zclock_mono () + 10000;
    while (s_lines (c, NULL) < lines || (from && c->last_from != from)) {
        assert_true (zclock_mono () < deadline);
        if (zpoller_wait (poller, 20))
            s_store_answer (c);
    }
    zpoller_destroy (&poller);
}

static int64_t
s_stored_checkpoint (ctx_t *c)
{
    char path [160];
    snprintf (path, sizeof path, "%s/notifier.db", c->tmp.dir);
    sqlite3 *db;
    assert_int_equal (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_stmt *st;
    assert_int_equal (sqlite3_prepare_v2 (db, "SELECT position FROM checkpoint WHERE name = 'notifier'", -1, &st, NULL),
                      SQLITE_OK);
    int64_t position = sqlite3_step (st) == SQLITE_ROW ? sqlite3_column_int64 (st, 0) : -1;
    sqlite3_finalize (st);
    sqlite3_close (db);
    return position;
}

static void
test_relays_notifications_once (void **state)
{
    (void) state;
    ctx_t c;
    memset (&c, 0, sizeof c);
    t_tmp_new (&c.tmp, "unused");
    unsetenv ("DOSSIER_CONFIG");
    unsetenv ("DOSSIER_NOTIFY_FILE");
    setenv ("DOSSIER_DATA_DIR", c.tmp.dir, 1);
    snprintf (c.file, sizeof c.file, "%s/notifications.jsonl", c.tmp.dir);
    c.config = config_load (NULL);
    c.router = s_bound (ZMQ_ROUTER, c.config, "store");
    c.pub = s_bound (ZMQ_PUB, c.config, "store_pub");
    t_kyc_case (&c.log);                               /* NotificationRequired at 6 */
    t_kyc_documents (&c.log);                          /* 7..12: none */
    t_add (&c.log, T_KYC, "NotificationRequired", "{broken");                          /* 13: poison */
    t_add (&c.log, T_KYC, "NotificationRequired", "{\"notification_id\":\"N3\",\"case_id\":\"" T_KYC "\","
           "\"trigger\":\"DOCUMENT_REJECTED\",\"notification_type\":\"EMAIL\"}");      /* 14 */
    t_add (&c.log, T_KYC, "CaseStatusChanged", "{\"to\":\"IN_REVIEW\"}");               /* 15 */

    c.visible = 6;
    c.notifier = zactor_new (notifier_actor, c.config);
    assert_non_null (c.notifier);
    s_serve_until (&c, 1, 0);
    c.visible = (int64_t) c.log.count;
    s_send_events (&c, c.pub, NULL, "", 7, 100);       /* live batch 7..15 */
    s_serve_until (&c, 2, 0);
    zactor_destroy (&c.notifier);                      /* the checkpoint is stored at stop */
    assert_int_equal (s_stored_checkpoint (&c), (int64_t) c.log.count);

    char *text;
    assert_int_equal (s_lines (&c, &text), 2);
    char *second = strchr (text, '\n') + 1;
    json_t *n1 = json_loadb (text, (size_t) (second - text), 0, NULL);
    json_t *n3 = json_loads (second, 0, NULL);
    assert_non_null (n1);
    assert_non_null (n3);
    assert_string_equal (json_string_value (json_object_get (n1, "id")), "ev-6");
    assert_string_equal (json_string_value (json_object_get (n1, "template_id")), "kyc_case_opened");
    assert_int_equal (json_integer_value (json_object_get (n1, "event_position")), 6);
    assert_string_equal (json_string_value (json_object_get (n3, "id")), "ev-14");
    assert_string_equal (json_string_value (json_object_get (n3, "notification_id")), "N3");
    json_decref (n1);
    json_decref (n3);
    free (text);

    /* restart: resumes after the checkpoint, nothing is sent twice */
    c.last_from = 0;
    c.notifier = zactor_new (notifier_actor, c.config);
    s_serve_until (&c, 2, (int64_t) c.log.count + 1);
    t_add (&c.log, T_KYC, "NotificationRequired", "{\"notification_id\":\"N4\",\"notification_type\":\"SMS\"}");
    c.visible = (int64_t) c.log.count;
    s_send_events (&c, c.pub, NULL, "", c.visible, 1);
    s_serve_until (&c, 3, 0);
    zactor_destroy (&c.notifier);
    assert_int_equal (s_lines (&c, NULL), 3);
    assert_int_equal (s_stored_checkpoint (&c), (int64_t) c.log.count);

    zsock_destroy (&c.router);
    zsock_destroy (&c.pub);
    config_destroy (&c.config);
    t_tmp_destroy (&c.tmp);
    unsetenv ("DOSSIER_DATA_DIR");
}

static void
test_start_failure_is_reported (void **state)
{
    (void) state;
    t_tmp_t tmp;
    t_tmp_new (&tmp, "unused");
    setenv ("DOSSIER_DATA_DIR", tmp.dir, 1);
    setenv ("DOSSIER_NOTIFY_FILE", "/nonexistent-dir/x/notifications.jsonl", 1);
    config_t *config = config_load (NULL);
    assert_int_equal (notifier_run (config, NULL), -1);
    config_destroy (&config);
    unsetenv ("DOSSIER_NOTIFY_FILE");
    unsetenv ("DOSSIER_DATA_DIR");
    t_tmp_destroy (&tmp);
}

int
main (void)
{
    log_init ("test", "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_relays_notifications_once),
        cmocka_unit_test (test_start_failure_is_reported),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
