/* test_projection_actor — the projector actor (projector.c) against a fake store
 * made of real sockets in this thread: catch-up, live batches, a poison event,
 * ctl.status, a rebuild into a target equal to the live read models, an in-place
 * rebuild, and refusals (busy, bad target, unknown type), two partitions as two
 * actors, three actors sharing two partitions by lease; on SQLite and on MongoDB
 * (a private FerretDB), where it also starts before its database is up. */
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
#include "../../actors/projector/projector.h"
#include "test_projection_helpers.h"
#include "test_projection_ferretdb.h"

static t_ferret_t s_ferret;
static mongoc_client_t *s_client;

typedef struct {
    int mongo;                  /* read models on MongoDB, database `db` */
    char db [32];
    t_tmp_t tmp;
    config_t *config;
    t_log_t log;
    int64_t visible;            /* events the fake store admits to */
    zsock_t *router, *pub;      /* the fake store */
    zsock_t *client;            /* our DEALER to the projector's control socket */
    zactor_t *projector;
    int reads;                  /* read_all requests answered */
    int hold;                   /* do not answer reads */
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

/* Answers one read_all on the fake store's ROUTER. */
static void
s_store_answer (ctx_t *c)
{
    zframe_t *route;
    zmsg_t *msg;
    envelope_t env;
    assert_int_equal (envelope_recv (zsock_resolve (c->router), 1, &route, &msg, &env), 0);
    assert_string_equal (env.type, "store.read_all");
    int64_t from, max;
    assert_int_equal (store_read_all_decode (env.body, env.body_size, &from, &max), 0);
    assert_true (max >= 1 && max <= STORE_READ_MAX);
    s_send_events (c, c->router, route, env.id, from, max);
    c->reads++;
    zmsg_destroy (&msg);
}

/* Sends a control request. */
static void
s_ctl_send (ctx_t *c, const char *type, const char *id, const char *body)
{
    envelope_t env;
    envelope_init (&env, type, id);
    env.body = body;
    env.body_size = body ? strlen (body) : 0;
    assert_int_equal (envelope_send (zsock_resolve (c->client), NULL, &env), 0);
}

/* Serves the store until a control reply arrives; returns its type and parsed body. */
static json_t *
s_ctl_recv (ctx_t *c, char type [ENVELOPE_TYPE_MAX], char cause [ENVELOPE_ID_MAX])
{
    /* while holding, the store's requests wait unread: leave it out of the poller */
    zpoller_t *poller = c->hold ? zpoller_new (c->client, NULL) : zpoller_new (c->router, c->client, NULL);
    int64_t deadline = zclock_mono () + 10000;
    json_t *body = NULL;
    while (1) {
        assert_true (zclock_mono () < deadline);
        void *which = zpoller_wait (poller, 100);
        if (which == c->router && !c->hold)
            s_store_answer (c);
        else
        if (which == c->client) {
            zmsg_t *msg;
            envelope_t env;
            assert_int_equal (envelope_recv (zsock_resolve (c->client), 0, NULL, &msg, &env), 0);
            snprintf (type, ENVELOPE_TYPE_MAX, "%s", env.type);
            snprintf (cause, ENVELOPE_ID_MAX, "%s", env.causation_id);
            body = env.body_size ? json_loadb (env.body, env.body_size, 0, NULL) : json_object ();
            assert_non_null (body);
            zmsg_destroy (&msg);
            break;
        }
    }
    zpoller_destroy (&poller);
    return body;
}

static int64_t
s_status (ctx_t *c, int64_t *head)
{
    s_ctl_send (c, "ctl.status", "st-1", NULL);
    char type [ENVELOPE_TYPE_MAX], cause [ENVELOPE_ID_MAX];
    json_t *body = s_ctl_recv (c, type, cause);
    assert_string_equal (type, "ctl.status");
    assert_string_equal (cause, "st-1");
    int64_t position = json_integer_value (json_object_get (body, "position"));
    if (head)
        *head = json_integer_value (json_object_get (body, "head"));
    json_decref (body);
    return position;
}

/* Asks for the status until the projector reached position (serving the store meanwhile). */
static void
s_wait_position (ctx_t *c, int64_t position)
{
    int64_t deadline = zclock_mono () + 10000;
    while (s_status (c, NULL) < position)
        assert_true (zclock_mono () < deadline);
    assert_int_equal (s_status (c, NULL), position);
}

/* Makes events up to `upto` visible and publishes them as one live batch. */
static void
s_commit (ctx_t *c, int64_t upto)
{
    int64_t from = c->visible + 1;
    c->visible = upto;
    s_send_events (c, c->pub, NULL, "", from, upto - from + 1);
}

/* Runs a rebuild to the end; returns ctl.done's event count and the number of
 * progress messages, or -1 if it ended in ctl.error (error copied out). */
static int64_t
s_rebuild (ctx_t *c, const char *body, int *progress, char error [64])
{
    s_ctl_send (c, "ctl.rebuild", "rb-1", body);
    *progress = 0;
    while (1) {
        char type [ENVELOPE_TYPE_MAX], cause [ENVELOPE_ID_MAX];
        json_t *reply = s_ctl_recv (c, type, cause);
        assert_string_equal (cause, "rb-1");
        if (strcmp (type, "ctl.progress") == 0) {
            (*progress)++;
            assert_true (json_is_integer (json_object_get (reply, "done")));
            assert_true (json_is_integer (json_object_get (reply, "total")));
            json_decref (reply);
            continue;
        }
        int64_t n = -1;
        if (strcmp (type, "ctl.done") == 0) {
            n = json_integer_value (json_object_get (reply, "events"));
            assert_true (json_is_real (json_object_get (reply, "seconds")));
        }
        else {
            assert_string_equal (type, "ctl.error");
            snprintf (error, 64, "%s", json_string_value (json_object_get (reply, "error")));
            assert_non_null (json_string_value (json_object_get (reply, "detail")));
        }
        json_decref (reply);
        return n;
    }
}

static void
s_setup_store (ctx_t *c, int mongo)
{
    static int databases;
    memset (c, 0, sizeof *c);
    t_tmp_new (&c->tmp, "unused");
    unsetenv ("DOSSIER_CONFIG");
    setenv ("DOSSIER_DATA_DIR", c->tmp.dir, 1);
    c->mongo = mongo;
    if (mongo) {
        snprintf (c->db, sizeof c->db, "t_actor_%d", ++databases);
        setenv ("DOSSIER_STORE", "mongodb", 1);
        setenv ("DOSSIER_MONGODB_URI", s_ferret.uri, 1);
        setenv ("DOSSIER_MONGODB_DATABASE", c->db, 1);
    }
    c->config = config_load (NULL);
    assert_non_null (c->config);
    c->router = s_bound (ZMQ_ROUTER, c->config, "store");
    c->pub = s_bound (ZMQ_PUB, c->config, "store_pub");
    t_kyc_case (&c->log);
    t_kyc_documents (&c->log);
    t_kyb_case (&c->log);
    t_add (&c->log, T_KYB, "PersonLinked", "{broken");
    t_add (&c->log, T_KYB, "NotificationRequired", "{\"notification_id\":\"N9\"}");
}

static void
s_setup (ctx_t *c)
{
    s_setup_store (c, 0);
}

/* Drops a database of the test server. */
static void
s_drop (const char *db)
{
    mongoc_database_t *d = mongoc_client_get_database (s_client, db);
    assert_true (mongoc_database_drop (d, NULL));
    mongoc_database_destroy (d);
}

/* The live read models (or those at target: a file or a database) as text. */
static char *
s_dump (ctx_t *c, const char *target)
{
    if (c->mongo)
        return t_mongo_dump (s_client, target ? target : c->db);
    char live [160];
    snprintf (live, sizeof live, "%s/readmodels.db", c->tmp.dir);
    return t_dump (target ? target : live);
}

static void
s_start_projector (ctx_t *c)
{
    c->projector = zactor_new (projector_actor, c->config);
    assert_non_null (c->projector);
    char *ep = endpoints_get (c->config, "projector");
    c->client = zsock_new (ZMQ_DEALER);
    zsock_set_linger (c->client, 0);
    assert_int_equal (zsock_connect (c->client, "%s", ep), 0);
    free (ep);
}

static void
s_teardown (ctx_t *c)
{
    zactor_destroy (&c->projector);
    zsock_destroy (&c->client);
    zsock_destroy (&c->router);
    zsock_destroy (&c->pub);
    config_destroy (&c->config);
    t_tmp_destroy (&c->tmp);
    unsetenv ("DOSSIER_DATA_DIR");
    if (c->mongo) {
        s_drop (c->db);
        unsetenv ("DOSSIER_STORE");
        unsetenv ("DOSSIER_MONGODB_DATABASE");
    }
}

static void
s_catch_up_live_and_rebuilds (int mongo)
{
    ctx_t c;
    s_setup_store (&c, mongo);
    c.visible = 6;
    s_start_projector (&c);
    s_wait_position (&c, 6);                 /* catch-up */
    s_commit (&c, 12);                       /* live */
    s_wait_position (&c, 12);
    s_commit (&c, 15);
    s_commit (&c, (int64_t) c.log.count);    /* KYB case, a poison event, a notification */
    s_wait_position (&c, (int64_t) c.log.count);
    int64_t head;
    assert_int_equal (s_status (&c, &head), (int64_t) c.log.count);
    assert_int_equal (head, (int64_t) c.log.count);

    char target [160];
    if (mongo)
        snprintf (target, sizeof target, "%s_rebuilt", c.db);
    else
        snprintf (target, sizeof target, "%s/rebuilt.db", c.tmp.dir);
    char *live_dump = s_dump (&c, NULL);
    assert_non_null (strstr (live_dump, "projector_errors20|ev-20|"));

    /* a rebuild into a target equals the live read models, byte for byte */
    char body [256], error [64];
    int progress;
    snprintf (body, sizeof body, "{\"target\":\"%s\"}", target);
    assert_int_equal (s_rebuild (&c, body, &progress, error), (int64_t) c.log.count);
    assert_true (progress >= 1);
    char *target_dump = s_dump (&c, target);
    assert_string_equal (live_dump, target_dump);
    free (target_dump);

    /* in place: same rows again, and the live feed goes on from the new checkpoint */
    assert_int_equal (s_rebuild (&c, NULL, &progress, error), (int64_t) c.log.count);
    char *again = s_dump (&c, NULL);
    assert_string_equal (live_dump, again);
    free (again);
    free (live_dump);
    assert_int_equal (s_status (&c, NULL), (int64_t) c.log.count);

    /* a target that exists is rebuilt from nothing */
    assert_int_equal (s_rebuild (&c, body, &progress, error), (int64_t) c.log.count);
    if (mongo)
        s_drop (target);
    s_teardown (&c);
}

static void
test_catch_up_live_and_rebuilds (void **state)
{
    (void) state;
    s_catch_up_live_and_rebuilds (0);
}

/* Busy as soon as it is behind at all: batches share transactions (committed once
 * caught up), and the rows are the same. */
static void
test_catch_up_in_shared_transactions (void **state)
{
    (void) state;
    setenv ("DOSSIER_PROJECTOR_BUSY_BEHIND", "0", 1);
    s_catch_up_live_and_rebuilds (0);
    unsetenv ("DOSSIER_PROJECTOR_BUSY_BEHIND");
}

static void
test_catch_up_live_and_rebuilds_mongo (void **state)
{
    (void) state;
    s_catch_up_live_and_rebuilds (1);
}

/* Two partitions as two actors on one read-model store: partition 0 answers the
 * control socket, its status counts both checkpoints, and its rebuild (into a target,
 * and in place on SQLite) covers both; in place on MongoDB is refused. */
static void
s_two_partitions (int mongo)
{
    ctx_t c;
    s_setup_store (&c, mongo);
    c.visible = 6;
    setenv ("DOSSIER_PROJECTOR_PARTITIONS", "2", 1);
    setenv ("DOSSIER_PROJECTOR_PARTITION", "1", 1);
    config_t *config1 = config_load (NULL);         /* its own: config_get is not thread-safe */
    zactor_t *second = zactor_new (projector_actor, config1);
    assert_non_null (second);
    setenv ("DOSSIER_PROJECTOR_PARTITION", "0", 1);
    s_start_projector (&c);
    s_wait_position (&c, 6);
    s_commit (&c, 12);
    s_commit (&c, (int64_t) c.log.count);
    s_wait_position (&c, (int64_t) c.log.count);

    s_ctl_send (&c, "ctl.status", "st-2", NULL);
    char type [ENVELOPE_TYPE_MAX], cause [ENVELOPE_ID_MAX];
    json_t *status = s_ctl_recv (&c, type, cause);
    assert_string_equal (type, "ctl.status");
    assert_int_equal (json_integer_value (json_object_get (status, "partitions")), 2);
    assert_int_equal (json_integer_value (json_object_get (status, "partition")), 0);
    json_t *rows = json_object_get (status, "checkpoints");
    assert_int_equal (json_object_size (rows), 2);
    assert_int_equal (json_integer_value (json_object_get (rows, "projector/0-of-2")), (int64_t) c.log.count);
    assert_int_equal (json_integer_value (json_object_get (rows, "projector/1-of-2")), (int64_t) c.log.count);
    json_decref (status);

    char target [160], body [256], error [64] = "";
    int progress;
    if (mongo)
        snprintf (target, sizeof target, "%s_rebuilt", c.db);
    else
        snprintf (target, sizeof target, "%s/rebuilt.db", c.tmp.dir);
    snprintf (body, sizeof body, "{\"target\":\"%s\"}", target);
    char *live_dump = s_dump (&c, NULL);
    assert_int_equal (s_rebuild (&c, body, &progress, error), (int64_t) c.log.count);
    char *target_dump = s_dump (&c, target);
    assert_string_equal (live_dump, target_dump);
    free (target_dump);
    if (mongo) {
        assert_int_equal (s_rebuild (&c, NULL, &progress, error), -1);
        assert_string_equal (error, "validation.target");
        s_drop (target);
    }
    else {
        assert_int_equal (s_rebuild (&c, NULL, &progress, error), (int64_t) c.log.count);
        char *again = s_dump (&c, NULL);
        assert_string_equal (live_dump, again);
        free (again);
    }
    free (live_dump);
    assert_int_equal (s_status (&c, NULL), (int64_t) c.log.count);
    zactor_destroy (&second);
    config_destroy (&config1);
    unsetenv ("DOSSIER_PROJECTOR_PARTITIONS");
    unsetenv ("DOSSIER_PROJECTOR_PARTITION");
    s_teardown (&c);
}

static void
test_two_partitions (void **state)
{
    (void) state;
    s_two_partitions (0);
}

static void
test_two_partitions_mongo (void **state)
{
    (void) state;
    s_two_partitions (1);
}

/* The status of whoever binds the control socket now, asked on a fresh DEALER (the
 * old holder's socket is gone), serving the store meanwhile; NULL if none answers
 * within wait_ms. */
static json_t *
s_status_fresh (ctx_t *c, int wait_ms)
{
    zsock_destroy (&c->client);
    char *ep = endpoints_get (c->config, "projector");
    c->client = zsock_new (ZMQ_DEALER);
    zsock_set_linger (c->client, 0);
    assert_int_equal (zsock_connect (c->client, "%s", ep), 0);
    free (ep);
    s_ctl_send (c, "ctl.status", "st-auto", NULL);
    zpoller_t *poller = zpoller_new (c->router, c->client, NULL);
    int64_t deadline = zclock_mono () + wait_ms;
    json_t *body = NULL;
    while (!body && zclock_mono () < deadline) {
        void *which = zpoller_wait (poller, 50);
        if (which == c->router)
            s_store_answer (c);
        else
        if (which == c->client) {
            zmsg_t *msg;
            envelope_t env;
            assert_int_equal (envelope_recv (zsock_resolve (c->client), 0, NULL, &msg, &env), 0);
            assert_string_equal (env.type, "ctl.status");
            body = json_loadb (env.body, env.body_size, 0, NULL);
            assert_non_null (body);
            zmsg_destroy (&msg);
        }
    }
    zpoller_destroy (&poller);
    return body;
}

/* projector_partition = auto, three actors, two partitions: the first claims 0 and
 * binds the control socket, the second 1, the third waits; its status names the
 * lease. The first stops cleanly (releasing its lease): the standby takes partition
 * 0, binds the control socket, and the two follow the log to its end. */
static void
s_auto_partitions (int mongo)
{
    ctx_t c;
    s_setup_store (&c, mongo);
    c.visible = 6;
    setenv ("DOSSIER_PROJECTOR_PARTITIONS", "2", 1);
    setenv ("DOSSIER_PROJECTOR_PARTITION", "auto", 1);
    setenv ("DOSSIER_PROJECTOR_LEASE_MS", "600", 1);
    config_destroy (&c.config);
    c.config = config_load (NULL);
    s_start_projector (&c);                 /* claims at start: partition 0 */
    config_t *config1 = config_load (NULL), *config2 = config_load (NULL);
    zactor_t *second = zactor_new (projector_actor, config1);
    zactor_t *third = zactor_new (projector_actor, config2);
    assert_non_null (second);
    assert_non_null (third);
    s_wait_position (&c, 6);

    json_t *status = s_status_fresh (&c, 10000);
    assert_non_null (status);
    assert_int_equal (json_integer_value (json_object_get (status, "partition")), 0);
    assert_int_equal (json_integer_value (json_object_get (status, "partitions")), 2);
    json_t *lease = json_object_get (status, "lease");
    assert_string_equal (json_string_value (json_object_get (lease, "state")), "held");
    assert_int_equal (json_integer_value (json_object_get (lease, "ttl_ms")), 600);
    assert_true (json_integer_value (json_object_get (lease, "expires_at")) > zclock_time ());
    char first [128];
    snprintf (first, sizeof first, "%s", json_string_value (json_object_get (lease, "owner")));
    json_decref (status);

    /* the first stops: one of the others (the standby) has partition 0 within a few
     * hundred ms, not the TTL, since the stop released it */
    zactor_destroy (&c.projector);
    int64_t deadline = zclock_mono () + 10000;
    char now_owner [128] = "";
    while (1) {
        assert_true (zclock_mono () < deadline);
        status = s_status_fresh (&c, 300);
        if (status) {
            lease = json_object_get (status, "lease");
            assert_int_equal (json_integer_value (json_object_get (status, "partition")), 0);
            snprintf (now_owner, sizeof now_owner, "%s", json_string_value (json_object_get (lease, "owner")));
            json_decref (status);
            if (strcmp (now_owner, first) != 0)
                break;
        }
    }
    s_commit (&c, 12);
    s_commit (&c, (int64_t) c.log.count);
    s_wait_position (&c, (int64_t) c.log.count);
    status = s_status_fresh (&c, 10000);
    json_t *rows = json_object_get (status, "checkpoints");
    assert_int_equal (json_integer_value (json_object_get (rows, "projector/0-of-2")), (int64_t) c.log.count);
    assert_int_equal (json_integer_value (json_object_get (rows, "projector/1-of-2")), (int64_t) c.log.count);
    json_decref (status);

    zactor_destroy (&third);
    zactor_destroy (&second);
    config_destroy (&config2);
    config_destroy (&config1);
    unsetenv ("DOSSIER_PROJECTOR_PARTITIONS");
    unsetenv ("DOSSIER_PROJECTOR_PARTITION");
    unsetenv ("DOSSIER_PROJECTOR_LEASE_MS");
    s_teardown (&c);
}

static void
test_auto_partitions (void **state)
{
    (void) state;
    s_auto_partitions (0);
}

static void
test_auto_partitions_mongo (void **state)
{
    (void) state;
    s_auto_partitions (1);
}

static void
test_control_refusals (void **state)
{
    (void) state;
    ctx_t c;
    s_setup (&c);
    c.visible = 6;
    s_start_projector (&c);
    s_wait_position (&c, 6);
    char error [64] = "";
    int progress;
    assert_int_equal (s_rebuild (&c, "{\"target\":\"relative.db\"}", &progress, error), -1);
    assert_string_equal (error, "validation.target");
    assert_int_equal (s_rebuild (&c, "not json", &progress, error), -1);
    assert_string_equal (error, "validation.body");
    char live [160], body [256];
    snprintf (live, sizeof live, "%s/readmodels.db", c.tmp.dir);
    snprintf (body, sizeof body, "{\"target\":\"%s\"}", live);
    assert_int_equal (s_rebuild (&c, body, &progress, error), -1);
    assert_string_equal (error, "validation.target");

    /* never clear somebody else's database (e.g. the event log) */
    char foreign [160];
    snprintf (foreign, sizeof foreign, "%s/events.db", c.tmp.dir);
    sqlite3 *db;
    assert_int_equal (sqlite3_open (foreign, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db, "CREATE TABLE events (position INTEGER PRIMARY KEY)", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);
    snprintf (body, sizeof body, "{\"target\":\"%s\"}", foreign);
    assert_int_equal (s_rebuild (&c, body, &progress, error), -1);
    assert_string_equal (error, "validation.target");
    assert_int_equal (sqlite3_open (foreign, &db), SQLITE_OK);
    assert_int_equal (sqlite3_exec (db, "SELECT count(*) FROM events", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close (db);
    /* a target whose directory does not exist fails cleanly */
    snprintf (body, sizeof body, "{\"target\":\"%s/no/such/dir.db\"}", c.tmp.dir);
    assert_int_equal (s_rebuild (&c, body, &progress, error), -1);
    assert_string_equal (error, "failed");

    /* a second rebuild while one runs is refused; the first still completes */
    c.hold = 1;
    s_ctl_send (&c, "ctl.rebuild", "rb-1", NULL);
    s_ctl_send (&c, "ctl.rebuild", "rb-2", NULL);
    char type [ENVELOPE_TYPE_MAX], cause [ENVELOPE_ID_MAX];
    json_t *reply = s_ctl_recv (&c, type, cause);
    assert_string_equal (type, "ctl.error");
    assert_string_equal (cause, "rb-2");
    assert_string_equal (json_string_value (json_object_get (reply, "error")), "busy");
    json_decref (reply);
    /* status is answered while the rebuild waits on the store */
    int64_t position = s_status (&c, NULL);
    assert_int_equal (position, 6);
    c.hold = 0;
    do {
        reply = s_ctl_recv (&c, type, cause);
        json_decref (reply);
    } while (strcmp (type, "ctl.progress") == 0);
    assert_string_equal (type, "ctl.done");
    assert_string_equal (cause, "rb-1");

    s_ctl_send (&c, "ctl.frobnicate", "x-1", NULL);
    reply = s_ctl_recv (&c, type, cause);
    assert_string_equal (type, "ctl.error");
    assert_string_equal (json_string_value (json_object_get (reply, "error")), "unknown_type");
    json_decref (reply);
    /* garbage on the control socket is dropped, the projector still answers */
    zstr_send (c.client, "garbage");
    assert_int_equal (s_status (&c, NULL), 6);
    s_teardown (&c);
}

static void
s_restart_resumes_from_checkpoint (int mongo)
{
    ctx_t c;
    s_setup_store (&c, mongo);
    c.visible = 12;
    s_start_projector (&c);
    s_wait_position (&c, 12);
    zactor_destroy (&c.projector);
    zsock_destroy (&c.client);
    /* events committed while the projector was down are caught up on restart */
    c.visible = (int64_t) c.log.count;
    c.reads = 0;
    s_start_projector (&c);
    s_wait_position (&c, (int64_t) c.log.count);
    s_teardown (&c);
}

static void
test_restart_resumes_from_checkpoint (void **state)
{
    (void) state;
    s_restart_resumes_from_checkpoint (0);
}

static void
test_restart_resumes_from_checkpoint_mongo (void **state)
{
    (void) state;
    s_restart_resumes_from_checkpoint (1);
}

static void
test_control_refusals_mongo (void **state)
{
    (void) state;
    ctx_t c;
    s_setup_store (&c, 1);
    c.visible = 6;
    s_start_projector (&c);
    s_wait_position (&c, 6);
    char error [64] = "", body [256];
    int progress;
    /* a file path is no database name; nor is the live database a target */
    assert_int_equal (s_rebuild (&c, "{\"target\":\"/tmp/rebuilt.db\"}", &progress, error), -1);
    assert_string_equal (error, "validation.target");
    snprintf (body, sizeof body, "{\"target\":\"%s\"}", c.db);
    assert_int_equal (s_rebuild (&c, body, &progress, error), -1);
    assert_string_equal (error, "validation.target");
    /* never clear somebody else's database (e.g. the event log) */
    mongoc_collection_t *coll = mongoc_client_get_collection (s_client, "t_foreign", "events");
    bson_t *doc = BCON_NEW ("_id", BCON_INT64 (1));
    assert_true (mongoc_collection_insert_one (coll, doc, NULL, NULL, NULL));
    bson_destroy (doc);
    assert_int_equal (s_rebuild (&c, "{\"target\":\"t_foreign\"}", &progress, error), -1);
    assert_string_equal (error, "validation.target");
    bson_t empty = BSON_INITIALIZER;
    assert_int_equal (mongoc_collection_count_documents (coll, &empty, NULL, NULL, NULL, NULL), 1);
    mongoc_collection_destroy (coll);
    s_drop ("t_foreign");
    assert_int_equal (s_status (&c, NULL), 6);
    s_teardown (&c);
}

/* MongoDB down when the projector starts: it still says ready, answers status, and
 * catches up by itself once the database is there. */
static void
test_starts_before_its_database_mongo (void **state)
{
    (void) state;
    ctx_t c;
    s_setup_store (&c, 1);
    c.visible = (int64_t) c.log.count;
    t_ferret_stop (&s_ferret);
    s_start_projector (&c);
    assert_int_equal (s_status (&c, NULL), 0);
    char error [64] = "";
    int progress;
    assert_int_equal (s_rebuild (&c, NULL, &progress, error), -1);
    assert_string_equal (error, "unavailable");
    t_ferret_restart (&s_ferret);
    int64_t deadline = zclock_mono () + 20000;
    while (s_status (&c, NULL) < (int64_t) c.log.count)
        assert_true (zclock_mono () < deadline);
    s_teardown (&c);
}

static int
s_group_setup (void **state)
{
    (void) state;
    t_ferret_new (&s_ferret);
    s_client = t_ferret_client (&s_ferret);
    return 0;
}

static int
s_group_teardown (void **state)
{
    (void) state;
    mongoc_client_destroy (s_client);
    t_ferret_destroy (&s_ferret);
    return 0;
}

int
main (void)
{
    log_init ("test", "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_catch_up_live_and_rebuilds),
        cmocka_unit_test (test_catch_up_in_shared_transactions),
        cmocka_unit_test (test_control_refusals),
        cmocka_unit_test (test_restart_resumes_from_checkpoint),
        cmocka_unit_test (test_two_partitions),
        cmocka_unit_test (test_auto_partitions),
        cmocka_unit_test (test_catch_up_live_and_rebuilds_mongo),
        cmocka_unit_test (test_two_partitions_mongo),
        cmocka_unit_test (test_auto_partitions_mongo),
        cmocka_unit_test (test_control_refusals_mongo),
        cmocka_unit_test (test_restart_resumes_from_checkpoint_mongo),
        cmocka_unit_test (test_starts_before_its_database_mongo),
    };
    int rc = cmocka_run_group_tests (tests, s_group_setup, s_group_teardown);
    zsys_shutdown ();
    mongoc_cleanup ();
    return rc;
}
