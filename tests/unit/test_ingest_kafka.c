/* test_ingest_kafka — the Kafka source inside the real ingest actor, against
 * librdkafka's in-process mock cluster (no JVM): the test produces records, plays
 * the broker frontend (a ROUTER), and reads the dead-letter topic and the group's
 * committed offsets. Records become commands (the idempotency-key header names
 * the command), poison goes to <topic>.DLT with its reasons, a 503 is retried and
 * never dead-lettered, and an offset is committed only once everything before it
 * is in the log or in the DLT — also while the DLT cannot be written. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "endpoints.h"
#include "envelope.h"
#include "log.h"
#include "../../actors/ingest/ingest_server.h"

#define WAIT_MS 30000                   /* joining the mock group takes a few seconds */

typedef struct {
    char dir [64];
    config_t *config;
    rd_kafka_t *producer;               /* owns the mock cluster; produces the test records */
    rd_kafka_mock_cluster_t *mock;
    zactor_t *server;
    zsock_t *broker;                    /* ROUTER: we are the broker frontend */
} s_fixture_t;

static int
s_setup (void **state)
{
    s_fixture_t *f = calloc (1, sizeof (s_fixture_t));
    assert_non_null (f);
    snprintf (f->dir, sizeof f->dir, "/tmp/dkfk-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    char err [256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    assert_int_equal (rd_kafka_conf_set (conf, "test.mock.num.brokers", "1", err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "log_level", "0", err, sizeof err), RD_KAFKA_CONF_OK);
    f->producer = rd_kafka_new (RD_KAFKA_PRODUCER, conf, err, sizeof err);
    assert_non_null (f->producer);
    f->mock = rd_kafka_handle_mock_cluster (f->producer);
    assert_non_null (f->mock);
    assert_int_equal (rd_kafka_mock_topic_create (f->mock, "recs", 2, 1), 0);
    /* one DLT partition for two source partitions: letters go to partition % 1 */
    assert_int_equal (rd_kafka_mock_topic_create (f->mock, "recs.DLT", 1, 1), 0);

    char path [128];
    snprintf (path, sizeof path, "%s/test.cfg", f->dir);
    FILE *file = fopen (path, "w");
    assert_non_null (file);
    fprintf (file, "dossier\n    data_dir = \"%s/data\"\n    log_level = \"error\"\n"
                   "    ingest_timeout_ms = \"2000\"\n    kafka_brokers = \"%s\"\n"
                   "    kafka_topic = \"recs\"\n    kafka_group = \"g1\"\n"
                   "    kafka_retry_backoff_ms = \"50\"\n    kafka_retry_backoff_max_ms = \"200\"\n"
                   "kafka\n    message.timeout.ms = \"1000\"\n    log_level = \"0\"\n",
             f->dir, rd_kafka_mock_cluster_bootstraps (f->mock));
    fclose (file);
    unsetenv ("DOSSIER_CONFIG");
    unsetenv ("DOSSIER_INSTANCE");
    unsetenv ("DOSSIER_KAFKA_BROKERS");
    unsetenv ("DOSSIER_KAFKA_TOPIC");
    unsetenv ("DOSSIER_KAFKA_GROUP");
    log_init ("ingest", getenv ("TEST_LOG_LEVEL") ? getenv ("TEST_LOG_LEVEL") : "error");
    f->config = config_load (path);
    assert_non_null (f->config);
    char *endpoint = endpoints_get (f->config, "broker_front");
    f->broker = zsock_new (ZMQ_ROUTER);
    assert_int_equal (zsock_bind (f->broker, "%s", endpoint), 0);
    free (endpoint);
    *state = f;
    return 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = (s_fixture_t *) *state;
    zactor_destroy (&f->server);
    zsock_destroy (&f->broker);
    config_destroy (&f->config);
    rd_kafka_destroy (f->producer);     /* and the mock cluster with it */
    char command [128];
    snprintf (command, sizeof command, "rm -rf '%s'", f->dir);
    if (system (command) != 0)
        fprintf (stderr, "could not remove %s\n", f->dir);
    free (f);
    return 0;
}

static void
s_start (s_fixture_t *f)
{
    f->server = zactor_new (ingest_server_actor, f->config);
    assert_non_null (f->server);
}

static void
s_produce (s_fixture_t *f, int32_t partition, const char *key, const char *value, const char *idempotency_key)
{
    rd_kafka_headers_t *headers = rd_kafka_headers_new (1);
    if (idempotency_key)
        rd_kafka_header_add (headers, "idempotency-key", -1, idempotency_key, (ssize_t) strlen (idempotency_key));
    rd_kafka_resp_err_t rc = rd_kafka_producev (f->producer, RD_KAFKA_V_TOPIC ("recs"),
        RD_KAFKA_V_PARTITION (partition), RD_KAFKA_V_MSGFLAGS (RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_KEY (key, strlen (key)), RD_KAFKA_V_VALUE ((void *) value, strlen (value)),
        RD_KAFKA_V_HEADERS (headers), RD_KAFKA_V_END);
    assert_int_equal (rc, RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void
s_flush (s_fixture_t *f)
{
    assert_int_equal (rd_kafka_flush (f->producer, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static int
s_wait (zsock_t *sock, int timeout_ms)
{
    if (zsock_events (sock) & ZMQ_POLLIN)
        return 1;
    zmq_pollitem_t item = { zsock_resolve (sock), 0, ZMQ_POLLIN, 0 };
    return zmq_poll (&item, 1, timeout_ms) == 1;
}

typedef struct {
    zframe_t *route;
    char id [ENVELOPE_ID_MAX];
    char body [512];
} s_command_t;

/* The next command at the broker (route owned by the caller). */
static void
s_broker_recv (s_fixture_t *f, s_command_t *cmd)
{
    if (!s_wait (f->broker, WAIT_MS))
        fail_msg ("no command reached the broker");
    zframe_t *routes [1];
    zmsg_t *msg = NULL;
    envelope_t env;
    assert_int_equal (envelope_recv (f->broker, 1, routes, &msg, &env), 0);
    assert_string_equal (env.type, "cmd.create_case");
    cmd->route = zframe_dup (routes [0]);
    snprintf (cmd->id, sizeof cmd->id, "%s", env.id);
    snprintf (cmd->body, sizeof cmd->body, "%.*s", (int) env.body_size, env.body);
    zmsg_destroy (&msg);
}

static void
s_broker_reply (s_fixture_t *f, s_command_t *cmd, const char *type, const char *body)
{
    envelope_t env;
    envelope_init (&env, type, "reply-id");
    envelope_set (env.causation_id, sizeof env.causation_id, cmd->id);
    envelope_set (env.correlation_id, sizeof env.correlation_id, cmd->id);
    env.body = body;
    env.body_size = strlen (body);
    assert_int_equal (envelope_send (f->broker, cmd->route, &env), 0);
    zframe_destroy (&cmd->route);
}

/* The committed offset of recs/partition in group g1 (negative: none). */
static int64_t
s_committed (s_fixture_t *f, rd_kafka_t *reader, int32_t partition)
{
    (void) f;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new (1);
    rd_kafka_topic_partition_list_add (list, "recs", partition);
    int64_t offset = -1000;
    if (rd_kafka_committed (reader, list, 5000) == RD_KAFKA_RESP_ERR_NO_ERROR && !list->elems [0].err)
        offset = list->elems [0].offset;
    rd_kafka_topic_partition_list_destroy (list);
    return offset;
}

static rd_kafka_t *
s_client (s_fixture_t *f, const char *group)
{
    char err [256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new ();
    assert_int_equal (rd_kafka_conf_set (conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps (f->mock),
                                         err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "group.id", group, err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "enable.auto.commit", "false", err, sizeof err), RD_KAFKA_CONF_OK);
    assert_int_equal (rd_kafka_conf_set (conf, "log_level", "0", err, sizeof err), RD_KAFKA_CONF_OK);
    rd_kafka_t *rk = rd_kafka_new (RD_KAFKA_CONSUMER, conf, err, sizeof err);
    assert_non_null (rk);
    return rk;
}

static int64_t
s_wait_committed (s_fixture_t *f, rd_kafka_t *reader, int32_t partition, int64_t expected)
{
    int64_t offset = -1000;
    for (int64_t deadline = zclock_mono () + WAIT_MS; zclock_mono () < deadline; zclock_sleep (100)) {
        offset = s_committed (f, reader, partition);
        if (offset == expected)
            break;
    }
    return offset;
}

/* What the dead-letter topic holds. Messages must go before their handle. */
typedef struct {
    rd_kafka_t *rk;
    rd_kafka_message_t *messages [8];
    int count;
} s_dlt_t;

/* Reads partition 0 of the DLT from the start until want letters or timeout_ms. */
static void
s_read_dlt (s_fixture_t *f, s_dlt_t *dlt, int want, int timeout_ms)
{
    dlt->rk = s_client (f, "dlt-reader");
    dlt->count = 0;
    rd_kafka_topic_partition_list_t *list = rd_kafka_topic_partition_list_new (1);
    rd_kafka_topic_partition_list_add (list, "recs.DLT", 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal (rd_kafka_assign (dlt->rk, list), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy (list);
    for (int64_t deadline = zclock_mono () + timeout_ms; dlt->count < want && dlt->count < 8
                                                         && zclock_mono () < deadline; ) {
        rd_kafka_message_t *message = rd_kafka_consumer_poll (dlt->rk, 100);
        if (message && message->err)
            rd_kafka_message_destroy (message);
        else
        if (message)
            dlt->messages [dlt->count++] = message;
    }
}

static void
s_dlt_done (s_dlt_t *dlt)
{
    for (int i = 0; i < dlt->count; i++)
        rd_kafka_message_destroy (dlt->messages [i]);
    rd_kafka_consumer_close (dlt->rk);
    rd_kafka_destroy (dlt->rk);
    dlt->count = 0;
}

static const char *
s_header (const rd_kafka_message_t *message, const char *name, char *text, size_t size)
{
    rd_kafka_headers_t *headers = NULL;
    const void *value = NULL;
    size_t value_size = 0;
    if (rd_kafka_message_headers (message, &headers) != RD_KAFKA_RESP_ERR_NO_ERROR
    ||  rd_kafka_header_get_last (headers, name, &value, &value_size) != RD_KAFKA_RESP_ERR_NO_ERROR)
        return NULL;
    snprintf (text, size, "%.*s", (int) value_size, value ? (const char *) value : "");
    return text;
}

static const char *s_rec = "{\"client_id\":\"K-%d\",\"case_type\":\"KYC\",\"case_version\":1}";

static void
test_records_poison_and_retry (void **state)
{
    s_fixture_t *f = (s_fixture_t *) *state;
    char r0 [128], r2 [128], r3 [128], r4 [128];
    snprintf (r0, sizeof r0, s_rec, 0);
    snprintf (r2, sizeof r2, s_rec, 2);
    snprintf (r3, sizeof r3, s_rec, 3);
    snprintf (r4, sizeof r4, s_rec, 4);
    s_produce (f, 0, "k0", r0, NULL);                   /* offset 0: ok */
    s_produce (f, 0, "k1", "{not json", NULL);          /* offset 1: poison before it is a command */
    s_produce (f, 0, "k2", r2, NULL);                   /* offset 2: the handler refuses it (422) */
    s_produce (f, 0, "k3", r3, NULL);                   /* offset 3: 503 once, then ok */
    s_produce (f, 1, "k4", r4, "onb-4711");             /* partition 1, offset 0: named by its header */
    s_flush (f);
    s_start (f);

    /* four commands, all in flight before any answer */
    s_command_t cmds [4];
    for (int i = 0; i < 4; i++)
        s_broker_recv (f, &cmds [i]);
    int seen_r4 = 0;
    s_command_t retry_of_r3 = { 0 };
    char r3_id [ENVELOPE_ID_MAX] = "";
    for (int i = 0; i < 4; i++) {
        if (strcmp (cmds [i].body, r4) == 0) {
            assert_string_equal (cmds [i].id, "http:onb-4711");
            seen_r4 = 1;
        }
        else
            assert_true (strncmp (cmds [i].id, "rec:", 4) == 0);
        if (strcmp (cmds [i].body, r2) == 0)
            s_broker_reply (f, &cmds [i], "reply.error",
                            "{\"status\":422,\"error\":\"validation.persons\",\"detail\":\"persons is required\"}");
        else
        if (strcmp (cmds [i].body, r3) == 0) {
            strcpy (r3_id, cmds [i].id);
            s_broker_reply (f, &cmds [i], "reply.error", "{\"status\":503,\"error\":\"unavailable\",\"detail\":\"store down\"}");
        }
        else
            s_broker_reply (f, &cmds [i], "reply.ok", "{\"duplicate\":false}");
    }
    assert_true (seen_r4);
    /* the 503 comes back: the same command, never a dead letter */
    s_broker_recv (f, &retry_of_r3);
    assert_string_equal (retry_of_r3.id, r3_id);
    assert_string_equal (retry_of_r3.body, r3);
    s_broker_reply (f, &retry_of_r3, "reply.ok", "{\"duplicate\":true}");

    s_dlt_t letters;
    s_read_dlt (f, &letters, 2, WAIT_MS);
    int n = letters.count;
    rd_kafka_message_t **dlt = letters.messages;
    assert_int_equal (n, 2);
    char text [256];
    int seen [2] = { 0, 0 };
    for (int i = 0; i < n; i++) {
        assert_int_equal (dlt [i]->partition, 0);
        const char *offset = s_header (dlt [i], "kafka_dlt-original-offset", text, sizeof text);
        assert_non_null (offset);
        if (strcmp (offset, "1") == 0) {
            seen [0]++;
            assert_int_equal (dlt [i]->key_len, 2);
            assert_memory_equal (dlt [i]->key, "k1", 2);
            assert_int_equal (dlt [i]->len, strlen ("{not json"));
            assert_memory_equal (dlt [i]->payload, "{not json", dlt [i]->len);
            assert_string_equal (s_header (dlt [i], "kafka_dlt-exception-fqcn", text, sizeof text), "malformed_json");
            assert_string_equal (s_header (dlt [i], "dossier-error-status", text, sizeof text), "400");
        }
        else {
            assert_string_equal (offset, "2");
            seen [1]++;
            assert_int_equal (dlt [i]->len, strlen (r2));
            assert_memory_equal (dlt [i]->payload, r2, dlt [i]->len);
            assert_string_equal (s_header (dlt [i], "kafka_dlt-exception-fqcn", text, sizeof text), "validation.persons");
            assert_string_equal (s_header (dlt [i], "kafka_dlt-exception-message", text, sizeof text), "persons is required");
            assert_true (strncmp (s_header (dlt [i], "dossier-command-id", text, sizeof text), "rec:", 4) == 0);
        }
        assert_string_equal (s_header (dlt [i], "kafka_dlt-original-topic", text, sizeof text), "recs");
        assert_string_equal (s_header (dlt [i], "kafka_dlt-original-partition", text, sizeof text), "0");
        assert_string_equal (s_header (dlt [i], "kafka_dlt-original-consumer-group", text, sizeof text), "g1");
        assert_non_null (s_header (dlt [i], "kafka_dlt-original-timestamp", text, sizeof text));
        assert_non_null (s_header (dlt [i], "kafka_dlt-exception-message", text, sizeof text));
    }
    assert_int_equal (seen [0], 1);
    assert_int_equal (seen [1], 1);
    s_dlt_done (&letters);

    /* every record is in the log or the DLT: both partitions committed to the end */
    rd_kafka_t *reader = s_client (f, "g1");
    assert_int_equal (s_wait_committed (f, reader, 0, 4), 4);
    assert_int_equal (s_wait_committed (f, reader, 1, 1), 1);
    rd_kafka_destroy (reader);
}

static void
test_offset_waits_for_the_dead_letter (void **state)
{
    s_fixture_t *f = (s_fixture_t *) *state;
    char r1 [128];
    snprintf (r1, sizeof r1, s_rec, 11);
    s_produce (f, 0, "p", "[\"poison\"]", NULL);        /* offset 0: 422, not an object */
    s_produce (f, 0, "k", r1, NULL);                    /* offset 1: ok */
    s_flush (f);
    /* From now on produce requests fail for a while, each attempt eating one error:
     * first errors librdkafka retries by itself, then ones it reports, so the
     * source has to produce the letter again. */
    enum { ERRORS = 30 };
    rd_kafka_resp_err_t errors [ERRORS];
    for (int i = 0; i < ERRORS; i++)
        errors [i] = i < ERRORS - 3 ? RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS : RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED;
    rd_kafka_mock_push_request_errors_array (f->mock, 0 /* Produce */, ERRORS, errors);
    s_start (f);

    s_command_t cmd;
    s_broker_recv (f, &cmd);
    assert_string_equal (cmd.body, r1);
    s_broker_reply (f, &cmd, "reply.ok", "{\"duplicate\":false}");

    /* record 1 is in the log, but record 0's letter is not written: nothing may be
     * committed past offset 0 */
    rd_kafka_t *reader = s_client (f, "g1");
    int checks = 0;
    for (; checks < 10; checks++) {
        s_dlt_t letters;
        int64_t committed = s_committed (f, reader, 0);
        s_read_dlt (f, &letters, 1, 100);
        int n = letters.count;
        s_dlt_done (&letters);
        if (n)
            break;
        if (committed > 0)
            fail_msg ("offset %lld committed before the dead letter was written", (long long) committed);
        zclock_sleep (150);
    }
    assert_true (checks > 0);           /* the letter was held back at least once */
    /* the errors run out: the letter is written once all is well, then the offset moves */
    s_dlt_t letters;
    s_read_dlt (f, &letters, 1, WAIT_MS);
    assert_true (letters.count >= 1);
    char text [64];
    assert_string_equal (s_header (letters.messages [0], "kafka_dlt-original-offset", text, sizeof text), "0");
    assert_string_equal (s_header (letters.messages [0], "kafka_dlt-exception-fqcn", text, sizeof text),
                         "validation.record");
    s_dlt_done (&letters);
    assert_int_equal (s_wait_committed (f, reader, 0, 2), 2);
    rd_kafka_destroy (reader);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_records_poison_and_retry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_offset_waits_for_the_dead_letter, s_setup, s_teardown),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
