/* test_notifier_kafka_actor — the notifier actor with Kafka on, against a fake store
 * made of real sockets in this thread: with no broker the file still gets its lines
 * but the checkpoint never passes an unconfirmed notification (a restart sends it
 * again); with DOSSIER_TEST_KAFKA_BROKERS set, the checkpoint reaches the head and the
 * notifications are read back from the topic with their key, headers and value. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

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
    zsock_t *router;
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

/* Answers one read_all with everything from its from_position. */
static void
s_store_answer (ctx_t *c)
{
    zframe_t *route;
    zmsg_t *msg;
    envelope_t env;
    assert_int_equal (envelope_recv (zsock_resolve (c->router), 1, &route, &msg, &env), 0);
    int64_t from, max;
    assert_int_equal (store_read_all_decode (env.body, env.body_size, &from, &max), 0);
    int64_t visible = (int64_t) c->log.count;
    size_t n = from >= 1 && from <= visible ? (size_t) (visible - from + 1) : 0;
    char *body = NULL;
    size_t size = 0;
    assert_int_equal (event_batch_encode (n ? c->log.events + from - 1 : NULL, n, visible, &body, &size), 0);
    envelope_t reply;
    envelope_init (&reply, "store.events", "fake-store");
    envelope_set (reply.causation_id, sizeof reply.causation_id, env.id);
    reply.body = body;
    reply.body_size = size;
    assert_int_equal (envelope_send (zsock_resolve (c->router), route, &reply), 0);
    free (body);
    zmsg_destroy (&msg);
}

static int
s_lines (ctx_t *c)
{
    FILE *f = fopen (c->file, "rb");
    if (!f)
        return 0;
    int lines = 0, ch;
    while ((ch = fgetc (f)) != EOF)
        lines += ch == '\n';
    fclose (f);
    return lines;
}

static int64_t
s_stored_checkpoint (ctx_t *c)
{
    char path [160];
    snprintf (path, sizeof path, "%s/notifier.db", c->tmp.dir);
    sqlite3 *db;
    if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        sqlite3_close (db);
        return -1;
    }
    sqlite3_busy_timeout (db, 1000);
    sqlite3_stmt *st = NULL;
    int64_t position = -1;
    if (sqlite3_prepare_v2 (db, "SELECT position FROM checkpoint WHERE name = 'notifier'", -1, &st, NULL) == SQLITE_OK
    &&  sqlite3_step (st) == SQLITE_ROW)
        position = sqlite3_column_int64 (st, 0);
    sqlite3_finalize (st);
    sqlite3_close (db);
    return position;
}

/* Serves the fake store until the file has `lines` lines (and, when checkpoint >= 0,
 * the stored checkpoint is that), or fails after 20 s. */
static void
s_serve_until (ctx_t *c, int lines, int64_t checkpoint)
{
    zpoller_t *poller = zpoller_new (c->router, NULL);
    int64_t deadline = zclock_mono () + 20000;
    while (s_lines (c) < lines || (checkpoint >= 0 && s_stored_checkpoint (c) != checkpoint)) {
        assert_true (zclock_mono () < deadline);
        if (zpoller_wait (poller, 20))
            s_store_answer (c);
    }
    zpoller_destroy (&poller);
}

static void
s_setup (ctx_t *c)
{
    memset (c, 0, sizeof *c);
    t_tmp_new (&c->tmp, "unused");
    unsetenv ("DOSSIER_CONFIG");
    unsetenv ("DOSSIER_NOTIFY_FILE");
    setenv ("DOSSIER_DATA_DIR", c->tmp.dir, 1);
    setenv ("DOSSIER_NOTIFY_FLUSH_MS", "300", 1);
    snprintf (c->file, sizeof c->file, "%s/notifications.jsonl", c->tmp.dir);
    c->config = config_load (NULL);
    c->router = s_bound (ZMQ_ROUTER, c->config, "store");
    t_kyc_case (&c->log);                              /* NotificationRequired at 6 */
    t_kyc_documents (&c->log);                         /* 7..12: none */
    t_add (&c->log, T_KYC, "CaseStatusChanged", "{\"to\":\"IN_REVIEW\"}");               /* 13 */
    t_add (&c->log, T_KYC, "NotificationRequired", "{\"notification_id\":\"N3\",\"case_id\":\"" T_KYC "\","
           "\"trigger\":\"DOCUMENT_REJECTED\",\"notification_type\":\"EMAIL\"}");      /* 14 */
    t_add (&c->log, T_KYC, "CaseStatusChanged", "{\"to\":\"IN_REVIEW\"}");               /* 15 */
}

static void
s_teardown (ctx_t *c)
{
    zsock_destroy (&c->router);
    config_destroy (&c->config);
    t_tmp_destroy (&c->tmp);
    unsetenv ("DOSSIER_DATA_DIR");
    unsetenv ("DOSSIER_NOTIFY_FLUSH_MS");
    unsetenv ("DOSSIER_KAFKA_BROKERS");
    unsetenv ("DOSSIER_NOTIFY_TOPIC");
}

static void
test_no_broker_checkpoint_waits (void **state)
{
    (void) state;
    ctx_t c;
    s_setup (&c);
    /* a port where nobody listens */
    zsock_t *probe = zsock_new (ZMQ_PULL);
    int port = zsock_bind (probe, "tcp://127.0.0.1:*");
    zsock_destroy (&probe);
    char brokers [64];
    snprintf (brokers, sizeof brokers, "127.0.0.1:%d", port);
    setenv ("DOSSIER_KAFKA_BROKERS", brokers, 1);

    zactor_t *notifier = zactor_new (notifier_actor, c.config);
    assert_non_null (notifier);
    s_serve_until (&c, 2, -1);                         /* the file took both */
    zactor_destroy (&notifier);                        /* flush gives up after 300 ms */
    /* Kafka confirmed nothing: the checkpoint stays before the first notification */
    assert_int_equal (s_stored_checkpoint (&c), 5);

    /* a restart sends both again (at least once), and still stores 5 */
    notifier = zactor_new (notifier_actor, c.config);
    s_serve_until (&c, 4, -1);
    zactor_destroy (&notifier);
    assert_int_equal (s_stored_checkpoint (&c), 5);
    s_teardown (&c);
}

/* What the test looks at in one consumed message (copied: librdkafka's messages
 * must all be destroyed before their consumer can be). */
typedef struct {
    char key [128];
    char id [128], ce_id [128], ce_type [128], content_type [128];
    char value [4096];
} s_msg_t;

static void
s_header (rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *hdrs;
    const void *value;
    size_t vsize;
    buf [0] = 0;
    if (rd_kafka_message_headers (m, &hdrs) == 0 && rd_kafka_header_get_last (hdrs, name, &value, &vsize) == 0
    &&  vsize < size) {
        memcpy (buf, value, vsize);
        buf [vsize] = 0;
    }
}

/* Reads up to `want` messages from topic (from the start) within 20 s. */
static size_t
s_consume (const char *brokers, const char *topic, s_msg_t *out, size_t want)
{
    char err [256], group [96];
    snprintf (group, sizeof group, "test-%s", topic);
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    assert_int_equal (rd_kafka_conf_set (conf, "bootstrap.servers", brokers, err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "group.id", group, err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "auto.offset.reset", "earliest", err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null (rk);
    rd_kafka_poll_set_consumer (rk);
    rd_kafka_topic_partition_list_t *topics = rd_kafka_topic_partition_list_new (1);
    rd_kafka_topic_partition_list_add (topics, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal (rd_kafka_subscribe (rk, topics), 0);
    rd_kafka_topic_partition_list_destroy (topics);
    size_t n = 0;
    int64_t deadline = zclock_mono () + 20000;
    while (n < want && zclock_mono () < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll (rk, 200);
        if (!m)
            continue;
        if (!m->err && m->key_len < sizeof out [n].key && m->len < sizeof out [n].value) {
            s_msg_t *o = &out [n++];
            memcpy (o->key, m->key, m->key_len);
            o->key [m->key_len] = 0;
            memcpy (o->value, m->payload, m->len);
            o->value [m->len] = 0;
            s_header (m, "id", o->id, sizeof o->id);
            s_header (m, "ce_id", o->ce_id, sizeof o->ce_id);
            s_header (m, "ce_type", o->ce_type, sizeof o->ce_type);
            s_header (m, "content-type", o->content_type, sizeof o->content_type);
        }
        rd_kafka_message_destroy (m);
    }
    rd_kafka_consumer_close (rk);
    rd_kafka_destroy (rk);
    return n;
}

static void
test_real_broker_round_trip (void **state)
{
    (void) state;
    const char *brokers = getenv ("DOSSIER_TEST_KAFKA_BROKERS");
    if (!brokers || !*brokers) {
        skip ();
        return;
    }
    ctx_t c;
    s_setup (&c);
    char topic [64];
    snprintf (topic, sizeof topic, "unit_actor_%lld", (long long) zclock_time ());
    setenv ("DOSSIER_KAFKA_BROKERS", brokers, 1);
    setenv ("DOSSIER_NOTIFY_TOPIC", topic, 1);
    zactor_t *notifier = zactor_new (notifier_actor, c.config);
    s_serve_until (&c, 2, 15);                         /* both confirmed: the checkpoint reaches the head */
    zactor_destroy (&notifier);
    assert_int_equal (s_stored_checkpoint (&c), 15);

    s_msg_t msgs [2];
    assert_int_equal (s_consume (brokers, topic, msgs, 2), 2);
    /* one partition per key: both are the same case, so in log order */
    const char *ids [2] = { "ev-6", "ev-14" };
    for (int i = 0; i < 2; i++) {
        assert_string_equal (msgs [i].key, T_KYC);
        assert_string_equal (msgs [i].id, ids [i]);
        assert_string_equal (msgs [i].ce_id, ids [i]);
        assert_string_equal (msgs [i].ce_type, "com.dossier.notification.required");
        assert_string_equal (msgs [i].content_type, "application/json");
        json_t *value = json_loads (msgs [i].value, 0, NULL);
        assert_non_null (value);
        assert_string_equal (json_string_value (json_object_get (value, "id")), ids [i]);
        assert_string_equal (json_string_value (json_object_get (value, "case_id")), T_KYC);
        json_decref (value);
    }
    s_teardown (&c);
}

int
main (void)
{
    log_init ("test", "error");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_no_broker_checkpoint_waits),
        cmocka_unit_test (test_real_broker_round_trip),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
