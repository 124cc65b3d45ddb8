/* test_handler_actor — the handler actor in a thread between a fake broker and a fake
 * store (ROUTER sockets in the test, on ipc endpoints in a temporary data directory):
 * create → append → reply; duplicates and key reuse; a read-decide-append with a
 * version conflict re-decided on the newer state; a retried command found in the log;
 * a create meeting an existing case; an unreachable store (503 after resends); hostile
 * broker input. Every wait is on a socket with a timeout, never a sleep. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../actors/handler/handler.h"
#include "case.h"
#include "command_id.h"
#include "config.h"
#include "endpoints.h"
#include "envelope.h"
#include "event.h"
#include "ids.h"
#include "log.h"
#include "store_proto.h"
#include "traceparent.h"
#include "test_domain_fixtures.h"

#define S_WAIT_MS 5000
#define S_MAX_LOG 256

typedef struct {
    char dir [64];
    config_t *config;
    zsock_t *broker;            /* fake broker backend */
    zsock_t *store;             /* fake store */
    zactor_t *actor;
    /* the fake store's log of one case */
    event_t log [S_MAX_LOG];
    size_t log_count;
} s_fixture_t;

static void
s_actor (zsock_t *pipe, void *args)
{
    handler_t *handler = handler_new ((config_t *) args);
    zsock_signal (pipe, handler ? 0 : 1);
    if (handler)
        handler_run (handler, pipe);
    handler_destroy (&handler);
}

static void
s_write (const char *path, const char *text)
{
    FILE *f = fopen (path, "w");
    assert_non_null (f);
    fputs (text, f);
    fclose (f);
}

/* Receives one message on sock within S_WAIT_MS, else fails. */
static zmsg_t *
s_recv (zsock_t *sock)
{
    zpoller_t *poller = zpoller_new (sock, NULL);
    void *which = zpoller_wait (poller, S_WAIT_MS);
    zpoller_destroy (&poller);
    if (which != sock)
        fail_msg ("nothing received within %d ms", S_WAIT_MS);
    zmsg_t *msg = zmsg_recv (sock);
    assert_non_null (msg);
    return msg;
}

static int
s_setup (void **state)
{
    log_init ("test", "error");
    s_fixture_t *f = calloc (1, sizeof (s_fixture_t));
    snprintf (f->dir, sizeof f->dir, "/tmp/dossier-test-handler-XXXXXX");
    assert_non_null (mkdtemp (f->dir));
    char path [256], text [1024];
    snprintf (path, sizeof path, "%s/rules.json", f->dir);
    s_write (path, fixture_rules);
    snprintf (text, sizeof text,
              "dossier\n    data_dir = \"%s\"\n    rules_file = \"%s/rules.json\"\n"
              "    log_level = \"error\"\n    handler_store_timeout_ms = \"1500\"\n", f->dir, f->dir);
    snprintf (path, sizeof path, "%s/dossier.cfg", f->dir);
    s_write (path, text);
    unsetenv ("DOSSIER_CONFIG");
    unsetenv ("DOSSIER_DATA_DIR");
    unsetenv ("DOSSIER_RULES_FILE");
    unsetenv ("DOSSIER_ENDPOINT_BROKER_BACK");
    unsetenv ("DOSSIER_ENDPOINT_STORE");
    unsetenv ("DOSSIER_HANDLER_STORE_TIMEOUT_MS");
    setenv ("DOSSIER_INSTANCE", "t0", 1);
    f->config = config_load (path);
    assert_non_null (f->config);
    char *back = endpoints_get (f->config, "broker_back");
    char *store = endpoints_get (f->config, "store");
    f->broker = zsock_new (ZMQ_ROUTER);
    f->store = zsock_new (ZMQ_ROUTER);
    assert_int_equal (zsock_bind (f->broker, "%s", back), 0);
    assert_int_equal (zsock_bind (f->store, "%s", store), 0);
    free (back);
    free (store);
    f->actor = zactor_new (s_actor, f->config);
    assert_non_null (f->actor);
    /* the handler says it is ready: then the broker can route to it */
    for (;;) {
        zmsg_t *msg = s_recv (f->broker);
        char *identity = zmsg_popstr (msg);
        zframe_t *frame = zmsg_pop (msg);
        envelope_t env;
        assert_int_equal (envelope_decode (zframe_data (frame), zframe_size (frame), &env), 0);
        int ready = streq (env.type, "ctl.ready");
        if (ready)
            assert_string_equal (identity, "handler-t0");
        zstr_free (&identity);
        zframe_destroy (&frame);
        zmsg_destroy (&msg);
        if (ready)
            break;
    }
    *state = f;
    return 0;
}

static void
s_log_clear (s_fixture_t *f)
{
    for (size_t i = 0; i < f->log_count; i++)
        free ((void *) f->log [i].data);
    f->log_count = 0;
}

static int
s_teardown (void **state)
{
    s_fixture_t *f = *state;
    zactor_destroy (&f->actor);
    zsock_destroy (&f->broker);
    zsock_destroy (&f->store);
    config_destroy (&f->config);
    s_log_clear (f);
    char cmd [160];
    snprintf (cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    assert_int_equal (system (cmd), 0);
    free (f);
    return 0;
}

/* ---- the fake broker */

/* The traceparent the next commands carry ("" none). */
static const char *s_command_tp = "";

static void
s_command (s_fixture_t *f, const char *type, const char *id, const char *key, const char *body)
{
    envelope_t env;
    envelope_init (&env, type, id);
    envelope_set (env.key, sizeof env.key, key);
    envelope_set (env.correlation_id, sizeof env.correlation_id, "corr-test");
    envelope_set (env.traceparent, sizeof env.traceparent, s_command_tp);
    env.body = body;
    env.body_size = body ? strlen (body) : 0;
    zframe_t *handler = zframe_new ("handler-t0", 10);
    zframe_t *client = zframe_new ("client-1", 8);
    assert_int_equal (envelope_send_routed (zsock_resolve (f->broker), handler, client, &env), 0);
    zframe_destroy (&handler);
    zframe_destroy (&client);
}

/* Waits for the reply to command_id (skipping heartbeats); returns its JSON body and
 * whether it was reply.ok. */
static json_t *
s_reply (s_fixture_t *f, const char *command_id, int *ok)
{
    for (;;) {
        zmsg_t *msg = s_recv (f->broker);
        size_t frames = zmsg_size (msg);
        zframe_t *frame = zmsg_last (msg);
        envelope_t env;
        assert_int_equal (envelope_decode (zframe_data (frame), zframe_size (frame), &env), 0);
        if (frames == 2) {
            assert_true (strncmp (env.type, "ctl.", 4) == 0);
            zmsg_destroy (&msg);
            continue;
        }
        assert_int_equal (frames, 3);
        zmsg_first (msg);                       /* the handler's identity */
        zframe_t *client = zmsg_next (msg);
        assert_true (zframe_streq (client, "client-1"));
        assert_string_equal (env.causation_id, command_id);
        assert_string_equal (env.correlation_id, "corr-test");
        *ok = streq (env.type, "reply.ok");
        if (!*ok)
            assert_string_equal (env.type, "reply.error");
        json_t *body = json_loadb (env.body, env.body_size, 0, NULL);
        assert_non_null (body);
        if (*ok)
            assert_string_equal (env.key, json_string_value (json_object_get (body, "case_id")));
        zmsg_destroy (&msg);
        return body;
    }
}

static json_t *
s_expect_ok (s_fixture_t *f, const char *command_id)
{
    int ok;
    json_t *body = s_reply (f, command_id, &ok);
    if (!ok) {
        char *text = json_dumps (body, 0);
        fail_msg ("expected reply.ok, got %s", text);
    }
    return body;
}

static void
s_expect_error (s_fixture_t *f, const char *command_id, int status, const char *error)
{
    int ok;
    json_t *body = s_reply (f, command_id, &ok);
    assert_false (ok);
    assert_int_equal (json_integer_value (json_object_get (body, "status")), status);
    assert_string_equal (json_string_value (json_object_get (body, "error")), error);
    assert_true (strlen (json_string_value (json_object_get (body, "detail"))) > 0);
    json_decref (body);
}

/* ---- the fake store */

typedef struct {
    zmsg_t *msg;
    zframe_t *route;            /* borrowed from msg */
    envelope_t env;
} s_request_t;

static void
s_store_request (s_fixture_t *f, s_request_t *r, const char *type)
{
    r->msg = s_recv (f->store);
    assert_int_equal (zmsg_size (r->msg), 2);
    r->route = zmsg_first (r->msg);
    zframe_t *frame = zmsg_next (r->msg);
    assert_int_equal (envelope_decode (zframe_data (frame), zframe_size (frame), &r->env), 0);
    assert_string_equal (r->env.type, type);
}

static void
s_store_answer (s_fixture_t *f, s_request_t *r, const char *type, char *body, size_t size)
{
    envelope_t env;
    envelope_init (&env, type, "store-reply");
    envelope_set (env.causation_id, sizeof env.causation_id, r->env.id);
    env.body = body;
    env.body_size = size;
    assert_int_equal (envelope_send (zsock_resolve (f->store), r->route, &env), 0);
    free (body);
}

static void
s_request_done (s_request_t *r)
{
    zmsg_destroy (&r->msg);
}

/* Writes an append into the fake log; answers store.appended. */
static void
s_store_append (s_fixture_t *f, s_request_t *r, store_append_t *req)
{
    int64_t first = (int64_t) f->log_count + 1;
    for (size_t i = 0; i < req->count; i++) {
        event_t *ev = &f->log [f->log_count++];
        memset (ev, 0, sizeof (*ev));
        ev->position = (int64_t) f->log_count;
        ev->version = (int64_t) f->log_count;
        snprintf (ev->stream, sizeof ev->stream, "%s", req->stream);
        snprintf (ev->id, sizeof ev->id, "%s", req->events [i].id);
        snprintf (ev->type, sizeof ev->type, "%s", req->events [i].type);
        snprintf (ev->command_id, sizeof ev->command_id, "%s", req->command_id);
        char *data = malloc (req->events [i].data_size);
        memcpy (data, req->events [i].data, req->events [i].data_size);
        ev->data = data;
        ev->data_size = req->events [i].data_size;
    }
    size_t size;
    char *body = store_appended_encode (first, (int64_t) f->log_count, (int64_t) f->log_count, &size);
    s_store_answer (f, r, "store.appended", body, size);
}

/* Answers a read_stream from the fake log. */
static void
s_store_events (s_fixture_t *f, s_request_t *r)
{
    char stream [EVENT_ID_MAX];
    int64_t from;
    assert_int_equal (store_read_stream_decode (r->env.body, r->env.body_size, stream, &from), 0);
    size_t start = from > 0 ? (size_t) from - 1 : 0;
    if (start > f->log_count)
        start = f->log_count;
    char *body;
    size_t size;
    assert_int_equal (event_batch_encode (f->log + start, f->log_count - start, (int64_t) f->log_count,
                                          &body, &size), 0);
    s_store_answer (f, r, "store.events", body, size);
}

/* Creates the KYC case through the handler; returns its case id. */
static void
s_create (s_fixture_t *f, const char *command_id, char case_id [IDS_UUID_LEN])
{
    s_command (f, "cmd.create_case", command_id, "", fixture_kyc);
    s_request_t r;
    s_store_request (f, &r, "store.append");
    store_append_t req;
    assert_int_equal (store_append_decode (r.env.body, r.env.body_size, &req), 0);
    s_store_append (f, &r, &req);
    store_append_free (&req);
    s_request_done (&r);
    json_t *reply = s_expect_ok (f, command_id);
    snprintf (case_id, IDS_UUID_LEN, "%s", json_string_value (json_object_get (reply, "case_id")));
    json_decref (reply);
}

/* ---- tests */

/* Trace context: the append of a traced command carries a span of the handler's in
 * the same trace (same trace id and flags, another span id); a command without one
 * (or with a malformed one) gets a new trace, so every append carries one. */
static void
test_append_carries_the_trace (void **state)
{
    s_fixture_t *f = *state;
    const char *tps [] = { "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00", "", "00-xyz" };
    const char *ids [] = { "http:t1", "http:t2", "http:t3" };
    for (int i = 0; i < 3; i++) {
        s_command_tp = tps [i];
        s_command (f, "cmd.create_case", ids [i], "", fixture_kyc);
        s_command_tp = "";
        s_request_t r;
        s_store_request (f, &r, "store.append");
        traceparent_t sent;
        assert_int_equal (traceparent_parse (r.env.traceparent, strlen (r.env.traceparent), &sent), 0);
        if (i == 0) {
            assert_string_equal (sent.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
            assert_string_not_equal (sent.parent_id, "00f067aa0ba902b7");
            assert_int_equal (sent.flags, 0);
        }
        else
            assert_string_not_equal (sent.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        store_append_t req;
        assert_int_equal (store_append_decode (r.env.body, r.env.body_size, &req), 0);
        s_store_append (f, &r, &req);
        store_append_free (&req);
        s_request_done (&r);
        json_decref (s_expect_ok (f, ids [i]));
    }
}

static void
test_create_duplicate_and_mismatch (void **state)
{
    s_fixture_t *f = *state;
    char expected [IDS_UUID_LEN];
    command_id_case_id ("http:k1", expected);

    s_command (f, "cmd.create_case", "http:k1", "", fixture_kyc);
    s_request_t r;
    s_store_request (f, &r, "store.append");
    assert_string_equal (r.env.key, expected);
    assert_string_equal (r.env.correlation_id, "corr-test");
    store_append_t req;
    assert_int_equal (store_append_decode (r.env.body, r.env.body_size, &req), 0);
    assert_string_equal (req.stream, expected);
    assert_int_equal (req.expected_version, 0);
    assert_string_equal (req.command_id, "http:k1");
    assert_int_equal (req.count, 6);
    assert_string_equal (req.events [0].type, "CaseCreated");
    char fingerprint [64], *result = malloc (req.result_size + 1);
    snprintf (fingerprint, sizeof fingerprint, "%s", req.fingerprint);
    memcpy (result, req.result, req.result_size);
    size_t result_size = req.result_size;
    s_store_append (f, &r, &req);
    store_append_free (&req);
    s_request_done (&r);
    json_t *reply = s_expect_ok (f, "http:k1");
    assert_string_equal (json_string_value (json_object_get (reply, "case_id")), expected);
    assert_string_equal (json_string_value (json_object_get (reply, "status")), "AWAITING_DOCUMENTS");
    assert_int_equal (json_integer_value (json_object_get (reply, "events")), 6);
    assert_int_equal (json_integer_value (json_object_get (reply, "position")), 6);
    assert_true (json_is_false (json_object_get (reply, "duplicate")));
    json_decref (reply);

    /* the same command again: the store says duplicate, the first result comes back */
    s_command (f, "cmd.create_case", "http:k1", expected, fixture_kyc);
    s_store_request (f, &r, "store.append");
    size_t size;
    {
        char *answer = store_duplicate_encode (result, result_size, fingerprint, &size);
        s_store_answer (f, &r, "store.duplicate", answer, size);
    }
    s_request_done (&r);
    reply = s_expect_ok (f, "http:k1");
    assert_string_equal (json_string_value (json_object_get (reply, "case_id")), expected);
    assert_true (json_is_true (json_object_get (reply, "duplicate")));
    json_decref (reply);

    /* the same id with another payload */
    json_t *other = json_loads (fixture_kyc, 0, NULL);
    json_object_set_new (json_array_get (json_object_get (other, "persons"), 0), "firstname", json_string ("Other"));
    char *text = json_dumps (other, 0);
    json_decref (other);
    s_command (f, "cmd.create_case", "http:k1", "", text);
    free (text);
    s_store_request (f, &r, "store.append");
    {
        char *answer = store_duplicate_encode (result, result_size, fingerprint, &size);
        s_store_answer (f, &r, "store.duplicate", answer, size);
    }
    s_request_done (&r);
    s_expect_error (f, "http:k1", 422, "idempotency.mismatch");
    free (result);

    /* an invalid record never reaches the store: the next store request is the read
     * of the following command, a close of a case that does not exist */
    s_command (f, "cmd.create_case", "http:bad", "", "{\"client_id\": 12345}");
    s_expect_error (f, "http:bad", 422, "validation.client_id");
    s_command (f, "cmd.create_case", "http:k9", "00000000-0000-4000-8000-000000000000", fixture_kyc);
    s_expect_error (f, "http:k9", 400, "bad_request");
    s_command (f, "cmd.close_case", "http:close", "00000000-0000-4000-8000-000000000001", NULL);
    s_store_request (f, &r, "store.read_stream");
    s_log_clear (f);
    s_store_events (f, &r);
    s_request_done (&r);
    s_expect_error (f, "http:close", 404, "not_found");
}

static void
test_document_conflict_and_retry (void **state)
{
    s_fixture_t *f = *state;
    char case_id [IDS_UUID_LEN];
    s_create (f, "http:create-2", case_id);
    /* document ids as the domain derives them */
    char prefix [128], doc0 [IDS_UUID_LEN], doc1 [IDS_UUID_LEN];
    snprintf (prefix, sizeof prefix, "%s/document", case_id);
    ids_uuid5_indexed (prefix, 0, doc0);
    ids_uuid5_indexed (prefix, 1, doc1);

    char body [256];
    snprintf (body, sizeof body, "{\"document_id\": \"%s\", \"status\": \"UPLOADED\"}", doc0);
    s_command (f, "cmd.update_document_status", "http:up0", case_id, body);
    s_request_t r;
    s_store_request (f, &r, "store.read_stream");
    s_store_events (f, &r);
    s_request_done (&r);
    s_store_request (f, &r, "store.append");
    store_append_t req;
    assert_int_equal (store_append_decode (r.env.body, r.env.body_size, &req), 0);
    assert_int_equal (req.expected_version, 6);
    assert_int_equal (req.count, 1);
    store_append_free (&req);

    /* meanwhile someone else uploaded the other document */
    event_t *ev = &f->log [f->log_count++];
    memset (ev, 0, sizeof (*ev));
    ev->position = ev->version = (int64_t) f->log_count;
    snprintf (ev->stream, sizeof ev->stream, "%s", case_id);
    snprintf (ev->id, sizeof ev->id, "other-event");
    snprintf (ev->type, sizeof ev->type, "DocumentStatusChanged");
    snprintf (ev->command_id, sizeof ev->command_id, "http:someone-else");
    char data [256];
    snprintf (data, sizeof data, "{\"case_id\":\"%s\",\"document_id\":\"%s\",\"from\":\"AWAITING_UPLOAD\","
              "\"to\":\"UPLOADED\",\"reason\":\"\",\"changed_at\":\"" FIXTURE_NOW "\"}", case_id, doc1);
    ev->data = strdup (data);
    ev->data_size = strlen (data);
    size_t size;
    {
        char *answer = store_conflict_encode (7, &size);
        s_store_answer (f, &r, "store.conflict", answer, size);
    }
    s_request_done (&r);

    /* the handler reads only what is new, decides again on it and appends at 7 */
    s_store_request (f, &r, "store.read_stream");
    char stream [EVENT_ID_MAX];
    int64_t from;
    assert_int_equal (store_read_stream_decode (r.env.body, r.env.body_size, stream, &from), 0);
    assert_int_equal (from, 7);
    s_store_events (f, &r);
    s_request_done (&r);
    s_store_request (f, &r, "store.append");
    assert_int_equal (store_append_decode (r.env.body, r.env.body_size, &req), 0);
    assert_int_equal (req.expected_version, 7);
    assert_int_equal (req.count, 3);        /* the upload, IN_REVIEW, the notification */
    s_store_append (f, &r, &req);
    store_append_free (&req);
    s_request_done (&r);
    json_t *reply = s_expect_ok (f, "http:up0");
    assert_string_equal (json_string_value (json_object_get (reply, "status")), "IN_REVIEW");
    assert_string_equal (json_string_value (json_object_get (reply, "document_id")), doc0);
    assert_string_equal (json_string_value (json_object_get (reply, "document_status")), "UPLOADED");
    assert_int_equal (json_integer_value (json_object_get (reply, "events")), 3);
    assert_int_equal (json_integer_value (json_object_get (reply, "position")), 10);
    json_decref (reply);

    /* the same command again (e.g. re-dispatched): its events are in the log, so it
     * is answered from there and nothing is appended */
    s_command (f, "cmd.update_document_status", "http:up0", case_id, body);
    s_store_request (f, &r, "store.read_stream");
    s_store_events (f, &r);
    s_request_done (&r);
    reply = s_expect_ok (f, "http:up0");
    assert_true (json_is_true (json_object_get (reply, "duplicate")));
    assert_string_equal (json_string_value (json_object_get (reply, "status")), "IN_REVIEW");
    assert_string_equal (json_string_value (json_object_get (reply, "document_status")), "UPLOADED");
    assert_int_equal (json_integer_value (json_object_get (reply, "events")), 3);
    assert_int_equal (json_integer_value (json_object_get (reply, "position")), 10);
    json_decref (reply);

    /* a refused command appends nothing: approve before verification */
    s_command (f, "cmd.decide_case", "http:approve", case_id, "{\"decision\": \"APPROVE\"}");
    s_store_request (f, &r, "store.read_stream");
    s_store_events (f, &r);
    s_request_done (&r);
    s_expect_error (f, "http:approve", 409, "conflict.state");
    /* bad command bodies are refused before the store is asked */
    s_command (f, "cmd.update_document_status", "http:lost", case_id, "{\"document_id\": \"x\", \"status\": \"LOST\"}");
    s_expect_error (f, "http:lost", 422, "validation.status");
    s_command (f, "cmd.decide_case", "http:nokey", "", "{\"decision\": \"REJECT\"}");
    s_expect_error (f, "http:nokey", 400, "bad_request");
}

static void
test_create_meets_existing_case (void **state)
{
    s_fixture_t *f = *state;
    /* another command already opened a case under this id */
    char case_id [IDS_UUID_LEN];
    s_create (f, "http:first", case_id);
    char second [IDS_UUID_LEN];
    command_id_case_id ("http:second", second);
    for (size_t i = 0; i < f->log_count; i++) {
        snprintf (f->log [i].command_id, sizeof f->log [i].command_id, "http:someone-else");
        snprintf (f->log [i].stream, sizeof f->log [i].stream, "%s", second);
    }
    s_command (f, "cmd.create_case", "http:second", "", fixture_kyc);
    s_request_t r;
    s_store_request (f, &r, "store.append");
    size_t size;
    {
        char *answer = store_conflict_encode ((int64_t) f->log_count, &size);
        s_store_answer (f, &r, "store.conflict", answer, size);
    }
    s_request_done (&r);
    s_store_request (f, &r, "store.read_stream");
    s_store_events (f, &r);
    s_request_done (&r);
    s_expect_error (f, "http:second", 409, "conflict.exists");

    /* ... and when the existing events are this command's own, it is a duplicate */
    for (size_t i = 0; i < f->log_count; i++)
        snprintf (f->log [i].command_id, sizeof f->log [i].command_id, "http:second");
    s_command (f, "cmd.create_case", "http:second", "", fixture_kyc);
    s_store_request (f, &r, "store.append");
    {
        char *answer = store_conflict_encode ((int64_t) f->log_count, &size);
        s_store_answer (f, &r, "store.conflict", answer, size);
    }
    s_request_done (&r);
    s_store_request (f, &r, "store.read_stream");
    s_store_events (f, &r);
    s_request_done (&r);
    json_t *reply = s_expect_ok (f, "http:second");
    assert_true (json_is_true (json_object_get (reply, "duplicate")));
    assert_string_equal (json_string_value (json_object_get (reply, "status")), "AWAITING_DOCUMENTS");
    json_decref (reply);
}

static void
test_store_unreachable (void **state)
{
    s_fixture_t *f = *state;
    s_command (f, "cmd.create_case", "http:slow", "", fixture_kyc);
    s_request_t first, again;
    s_store_request (f, &first, "store.append");
    /* no answer: the same request comes again */
    s_store_request (f, &again, "store.append");
    assert_string_equal (again.env.id, first.env.id);
    assert_int_equal (again.env.body_size, first.env.body_size);
    assert_memory_equal (again.env.body, first.env.body, first.env.body_size);
    s_request_done (&again);
    /* and after the configured 1.5 s: 503 */
    s_expect_error (f, "http:slow", 503, "unavailable");
    /* a late answer is ignored; the handler goes on serving */
    size_t size;
    {
        char *answer = store_appended_encode (1, 6, 6, &size);
        s_store_answer (f, &first, "store.appended", answer, size);
    }
    s_request_done (&first);
    char case_id [IDS_UUID_LEN];
    /* drain any further resends of the abandoned request before the next one */
    s_command (f, "cmd.create_case", "http:after", "", fixture_kyc);
    for (;;) {
        s_request_t r;
        s_store_request (f, &r, "store.append");
        store_append_t req;
        assert_int_equal (store_append_decode (r.env.body, r.env.body_size, &req), 0);
        int mine = streq (req.command_id, "http:after");
        if (mine)
            s_store_append (f, &r, &req);
        store_append_free (&req);
        s_request_done (&r);
        if (mine)
            break;
    }
    json_t *reply = s_expect_ok (f, "http:after");
    snprintf (case_id, sizeof case_id, "%s", json_string_value (json_object_get (reply, "case_id")));
    json_decref (reply);
}

static void
test_hostile_broker_input (void **state)
{
    s_fixture_t *f = *state;
    /* garbage, wrong frame counts, non-commands: dropped */
    zstr_sendm (f->broker, "handler-t0");
    zstr_sendm (f->broker, "client-1");
    zstr_send (f->broker, "not msgpack");
    zstr_sendm (f->broker, "handler-t0");
    zstr_send (f->broker, "one frame only");
    zstr_sendm (f->broker, "handler-t0");
    zstr_sendm (f->broker, "a");
    zstr_sendm (f->broker, "b");
    zstr_send (f->broker, "c");
    s_command (f, "ctl.whatever", "x", "", NULL);
    /* an unknown command type is answered */
    s_command (f, "cmd.launch_rockets", "http:rockets", "", "{}");
    s_expect_error (f, "http:rockets", 400, "bad_request");
    /* a command without an id */
    s_command (f, "cmd.create_case", "", "", fixture_kyc);
    s_expect_error (f, "", 400, "bad_request");
    /* and it still works */
    char case_id [IDS_UUID_LEN];
    s_create (f, "http:still-alive", case_id);
    /* heartbeats keep coming */
    for (;;) {
        zmsg_t *msg = s_recv (f->broker);
        zframe_t *frame = zmsg_last (msg);
        envelope_t env;
        assert_int_equal (envelope_decode (zframe_data (frame), zframe_size (frame), &env), 0);
        int heartbeat = streq (env.type, "ctl.heartbeat");
        zmsg_destroy (&msg);
        if (heartbeat)
            break;
    }
}

static void
test_bad_rules_file (void **state)
{
    s_fixture_t *f = *state;
    char path [160];
    snprintf (path, sizeof path, "%s/broken.json", f->dir);
    s_write (path, "{\"version\": \"x\", \"documents\": [{\"subject\": \"nobody\"}], \"notifications\": []}");
    setenv ("DOSSIER_RULES_FILE", path, 1);
    assert_null (handler_new (f->config));
    snprintf (path, sizeof path, "%s/missing.json", f->dir);
    setenv ("DOSSIER_RULES_FILE", path, 1);
    assert_null (handler_new (f->config));
    unsetenv ("DOSSIER_RULES_FILE");
    handler_destroy (NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test_setup_teardown (test_create_duplicate_and_mismatch, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_append_carries_the_trace, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_document_conflict_and_retry, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_create_meets_existing_case, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_store_unreachable, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_hostile_broker_input, s_setup, s_teardown),
        cmocka_unit_test_setup_teardown (test_bad_rules_file, s_setup, s_teardown),
    };
    int rc = cmocka_run_group_tests (tests, NULL, NULL);
    zsys_shutdown ();
    return rc;
}
