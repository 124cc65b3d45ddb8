/* test_handler_command — the handler's socket-free logic: command envelopes to parsed
 * commands (case id rules, fingerprints, 400/404/422 refusals), decisions to the
 * store.append body (decoded back and checked), and the reply bodies, including the
 * rewrite of a remembered result into a duplicate answer. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../actors/handler/handler_command.h"
#include "../../actors/handler/handler_reply.h"
#include "command_id.h"
#include "ids.h"
#include "store_proto.h"
#include "test_domain_fixtures.h"

static void
s_env (envelope_t *env, const char *type, const char *id, const char *key, const char *body)
{
    envelope_init (env, type, id);
    envelope_set (env->key, sizeof env->key, key);
    envelope_set (env->correlation_id, sizeof env->correlation_id, "corr-1");
    env->body = body;
    env->body_size = body ? strlen (body) : 0;
}

static rules_t *
s_rules (void)
{
    rules_t *rules = rules_parse (fixture_rules, strlen (fixture_rules), NULL, 0);
    assert_non_null (rules);
    return rules;
}

static json_t *
s_json (const char *text)
{
    json_t *json = json_loads (text, 0, NULL);
    assert_non_null (json);
    return json;
}

/* ---- parsing */

static void
test_create_parsing (void **state)
{
    (void) state;
    envelope_t env;
    handler_command_t *cmd = NULL;
    handler_error_t err;
    char case_id [IDS_UUID_LEN];
    command_id_case_id ("http:k1", case_id);

    /* no key: the case id comes from the command id */
    s_env (&env, "cmd.create_case", "http:k1", "", fixture_kyc);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), 0);
    assert_int_equal (handler_command_kind (cmd), HANDLER_CMD_CREATE);
    assert_string_equal (handler_command_case_id (cmd), case_id);
    assert_string_equal (handler_command_id (cmd), "http:k1");
    assert_string_equal (handler_command_correlation_id (cmd), "corr-1");
    assert_null (handler_command_document_id (cmd));
    char fingerprint [41];
    ids_sha1_hex (fixture_kyc, strlen (fixture_kyc), fingerprint);
    assert_string_equal (handler_command_fingerprint (cmd), fingerprint);
    handler_command_destroy (&cmd);
    assert_null (cmd);

    /* the key, when given, must be that same id (any case) */
    s_env (&env, "cmd.create_case", "http:k1", case_id, fixture_kyc);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), 0);
    handler_command_destroy (&cmd);
    char upper [IDS_UUID_LEN];
    for (size_t i = 0; i < IDS_UUID_LEN; i++)
        upper [i] = (char) toupper ((unsigned char) case_id [i]);
    s_env (&env, "cmd.create_case", "http:k1", upper, fixture_kyc);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), 0);
    assert_string_equal (handler_command_case_id (cmd), case_id);
    handler_command_destroy (&cmd);

    s_env (&env, "cmd.create_case", "http:k1", "00000000-0000-4000-8000-000000000000", fixture_kyc);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_null (cmd);
    assert_int_equal (err.status, 400);
    assert_string_equal (err.error, "bad_request");

    /* an invalid record: 422 with the class and the field */
    json_t *bad = s_json (fixture_kyb);
    json_object_set_new (json_array_get (json_object_get (bad, "beneficial_owners"), 1),
                         "ownership_percentage", json_integer (101));
    char *text = json_dumps (bad, 0);
    json_decref (bad);
    s_env (&env, "cmd.create_case", "http:k2", "", text);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_int_equal (err.status, 422);
    assert_string_equal (err.error, "validation.ownership_percentage");
    assert_string_equal (err.field, "beneficial_owners[1].ownership_percentage");
    free (text);
    s_env (&env, "cmd.create_case", "http:k2", "", "{not json");
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_int_equal (err.status, 422);
    assert_string_equal (err.error, "validation.body");
    s_env (&env, "cmd.create_case", "http:k2", "", NULL);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_int_equal (err.status, 422);

    /* the date of `now` bounds the record's dates */
    s_env (&env, "cmd.create_case", "http:k3", "", fixture_kyc);
    assert_int_equal (handler_command_new (&env, "1988-04-16T23:59:59.999Z", &cmd, &err), -2);
    assert_string_equal (err.error, "validation.birthdate");

    /* no id, unknown type */
    s_env (&env, "cmd.create_case", "", "", fixture_kyc);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_int_equal (err.status, 400);
    s_env (&env, "cmd.delete_everything", "x", "", "{}");
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_int_equal (err.status, 400);
}

static void
test_other_parsing (void **state)
{
    (void) state;
    envelope_t env;
    handler_command_t *cmd = NULL;
    handler_error_t err;
    const char *case_id = "6f1c3e52-8a07-4b1d-9e55-21c470d30b9a";
    const char *body = "{\"document_id\": \"d-1\", \"status\": \"UPLOADED\"}";
    s_env (&env, "cmd.update_document_status", "http:u1", case_id, body);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), 0);
    assert_int_equal (handler_command_kind (cmd), HANDLER_CMD_DOCUMENT);
    assert_string_equal (handler_command_case_id (cmd), case_id);
    assert_string_equal (handler_command_document_id (cmd), "d-1");
    char first [41];
    snprintf (first, sizeof first, "%s", handler_command_fingerprint (cmd));
    handler_command_destroy (&cmd);
    /* the same body for another case is another payload */
    s_env (&env, "cmd.update_document_status", "http:u1", "6f1c3e52-8a07-4b1d-9e55-21c470d30b9b", body);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), 0);
    assert_string_not_equal (handler_command_fingerprint (cmd), first);
    handler_command_destroy (&cmd);

    s_env (&env, "cmd.update_document_status", "http:u1", "", body);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_int_equal (err.status, 400);
    s_env (&env, "cmd.update_document_status", "http:u1", "not-a-case", body);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_int_equal (err.status, 404);
    assert_string_equal (err.error, "not_found");
    s_env (&env, "cmd.update_document_status", "http:u1", case_id, "{\"document_id\": \"d\", \"status\": \"LOST\"}");
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_int_equal (err.status, 422);
    assert_string_equal (err.error, "validation.status");
    assert_string_equal (err.field, "status");
    s_env (&env, "cmd.decide_case", "http:d1", case_id, "{\"decision\": \"MAYBE\"}");
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), -2);
    assert_string_equal (err.error, "validation.decision");
    s_env (&env, "cmd.decide_case", "http:d1", case_id, "{\"decision\": \"reject\"}");
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), 0);
    assert_int_equal (handler_command_kind (cmd), HANDLER_CMD_DECIDE);
    handler_command_destroy (&cmd);
    s_env (&env, "cmd.close_case", "http:c1", case_id, NULL);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), 0);
    assert_int_equal (handler_command_kind (cmd), HANDLER_CMD_CLOSE);
    handler_command_destroy (&cmd);
}

/* ---- deciding and the append body */

static void
test_create_append_body (void **state)
{
    (void) state;
    rules_t *rules = s_rules ();
    envelope_t env;
    handler_command_t *cmd = NULL;
    handler_error_t err;
    s_env (&env, "cmd.create_case", "rec:abc", "", fixture_kyb);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &cmd, &err), 0);
    case_events_t *events = NULL;
    assert_int_equal (handler_command_decide (cmd, NULL, rules, FIXTURE_NOW, &events, &err), 0);
    assert_int_equal (case_events_count (events), 14);
    case_t *after = case_new ();
    for (size_t i = 0; i < case_events_count (events); i++) {
        const case_event_t *e = case_events_at (events, i);
        assert_int_equal (case_apply (after, e->type, e->data, e->size), 0);
    }
    char *result = handler_command_result (cmd, after, case_events_count (events), 0, 0);
    json_t *r = s_json (result);
    assert_string_equal (json_string_value (json_object_get (r, "case_id")), handler_command_case_id (cmd));
    assert_string_equal (json_string_value (json_object_get (r, "status")), "AWAITING_DOCUMENTS");
    assert_int_equal (json_integer_value (json_object_get (r, "events")), 14);
    assert_true (json_is_false (json_object_get (r, "duplicate")));
    assert_null (json_object_get (r, "document_id"));
    json_decref (r);

    char *body = NULL;
    size_t size = 0;
    assert_int_equal (handler_command_append_body (cmd, 0, events, result, &body, &size), 0);
    store_append_t req;
    assert_int_equal (store_append_decode (body, size, &req), 0);
    assert_string_equal (req.stream, handler_command_case_id (cmd));
    assert_int_equal (req.expected_version, 0);
    assert_string_equal (req.command_id, "rec:abc");
    assert_string_equal (req.fingerprint, handler_command_fingerprint (cmd));
    assert_int_equal (req.result_size, strlen (result));
    assert_memory_equal (req.result, result, req.result_size);
    assert_int_equal (req.count, 14);
    for (size_t i = 0; i < req.count; i++) {
        const case_event_t *e = case_events_at (events, i);
        assert_string_equal (req.events [i].id, e->id);
        assert_string_equal (req.events [i].type, e->type);
        assert_int_equal (req.events [i].data_size, e->size);
        assert_memory_equal (req.events [i].data, e->data, e->size);
    }
    store_append_free (&req);
    free (body);
    /* nothing to append is not an append */
    case_events_t *none = NULL;
    assert_int_equal (handler_command_append_body (cmd, 0, none, result, &body, &size), -1);
    free (result);

    /* now a document upload against the folded case */
    const case_document_t *doc = case_document_at (after, 0);
    char doc_body [256];
    snprintf (doc_body, sizeof doc_body, "{\"document_id\": \"%s\", \"status\": \"UPLOADED\"}", doc->id);
    handler_command_t *upload = NULL;
    s_env (&env, "cmd.update_document_status", "http:up", handler_command_case_id (cmd), doc_body);
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &upload, &err), 0);
    case_events_t *more = NULL;
    assert_int_equal (handler_command_decide (upload, after, rules, FIXTURE_NOW, &more, &err), 0);
    assert_int_equal (case_events_count (more), 1);
    case_t *later = case_dup (after);
    const case_event_t *e = case_events_at (more, 0);
    assert_int_equal (case_apply (later, e->type, e->data, e->size), 0);
    result = handler_command_result (upload, later, 1, 42, 0);
    r = s_json (result);
    assert_string_equal (json_string_value (json_object_get (r, "document_id")), doc->id);
    assert_string_equal (json_string_value (json_object_get (r, "document_status")), "UPLOADED");
    assert_int_equal (json_integer_value (json_object_get (r, "position")), 42);
    json_decref (r);
    assert_int_equal (handler_command_append_body (upload, case_get_version (after), more, result, &body, &size), 0);
    assert_int_equal (store_append_decode (body, size, &req), 0);
    assert_int_equal (req.expected_version, 14);
    store_append_free (&req);
    free (body);
    free (result);

    /* a refusal comes back as a handler error */
    case_events_t *refused = NULL;
    handler_command_t *approve = NULL;
    s_env (&env, "cmd.decide_case", "http:ap", handler_command_case_id (cmd), "{\"decision\": \"APPROVE\"}");
    assert_int_equal (handler_command_new (&env, FIXTURE_NOW, &approve, &err), 0);
    assert_int_equal (handler_command_decide (approve, later, rules, FIXTURE_NOW, &refused, &err), -2);
    assert_null (refused);
    assert_int_equal (err.status, 409);
    assert_string_equal (err.error, "conflict.state");
    /* and on a case that does not exist */
    case_t *empty = case_new ();
    assert_int_equal (handler_command_decide (approve, empty, rules, FIXTURE_NOW, &refused, &err), -2);
    assert_int_equal (err.status, 404);
    case_destroy (&empty);

    handler_command_destroy (&approve);
    case_destroy (&later);
    case_events_destroy (&more);
    handler_command_destroy (&upload);
    case_destroy (&after);
    case_events_destroy (&events);
    handler_command_destroy (&cmd);
    rules_destroy (&rules);
}

/* ---- replies */

static void
test_replies (void **state)
{
    (void) state;
    char *body = handler_reply_ok ("c-1", "IN_REVIEW", 3, 99, 0, NULL, NULL);
    assert_string_equal (body, "{\"case_id\":\"c-1\",\"status\":\"IN_REVIEW\",\"events\":3,\"position\":99,\"duplicate\":false}");
    char *dup = handler_reply_duplicate (body, strlen (body));
    json_t *d = s_json (dup);
    assert_true (json_is_true (json_object_get (d, "duplicate")));
    assert_int_equal (json_integer_value (json_object_get (d, "position")), 99);
    assert_string_equal (json_string_value (json_object_get (d, "case_id")), "c-1");
    json_decref (d);
    free (dup);
    free (body);
    assert_null (handler_reply_duplicate ("[1]", 3));
    assert_null (handler_reply_duplicate ("garbage", 7));
    assert_null (handler_reply_duplicate (NULL, 0));

    body = handler_reply_ok ("c-1", "AWAITING_DOCUMENTS", 4, 7, 1, "d-1", "AWAITING_UPLOAD");
    d = s_json (body);
    assert_string_equal (json_string_value (json_object_get (d, "document_id")), "d-1");
    assert_string_equal (json_string_value (json_object_get (d, "document_status")), "AWAITING_UPLOAD");
    assert_true (json_is_true (json_object_get (d, "duplicate")));
    json_decref (d);
    free (body);

    handler_error_t err;
    assert_int_equal (handler_error_set (&err, 422, "idempotency.mismatch", "%s", "Idempotency-Key reused with a different payload"), -2);
    body = handler_reply_error (&err);
    assert_string_equal (body, "{\"status\":422,\"error\":\"idempotency.mismatch\",\"detail\":\"Idempotency-Key reused with a different payload\"}");
    free (body);
    /* a field, and a detail cut in the middle of a UTF-8 sequence, still make valid JSON */
    handler_error_set (&err, 422, "validation.lastname", "bad \xc3");
    snprintf (err.field, sizeof err.field, "persons[0].lastname");
    body = handler_reply_error (&err);
    assert_non_null (body);
    d = s_json (body);
    assert_int_equal (json_integer_value (json_object_get (d, "status")), 422);
    assert_string_equal (json_string_value (json_object_get (d, "field")), "persons[0].lastname");
    json_decref (d);
    free (body);
}

static void
test_time_format (void **state)
{
    (void) state;
    char out [HANDLER_TIME_MAX];
    handler_command_time (0, out);
    assert_string_equal (out, "1970-01-01T00:00:00.000Z");
    handler_command_time (1795341600123456LL, out);
    assert_string_equal (out, "2026-11-22T10:00:00.123Z");
    handler_command_time (-5, out);
    assert_string_equal (out, "1970-01-01T00:00:00.000Z");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_create_parsing),
        cmocka_unit_test (test_other_parsing),
        cmocka_unit_test (test_create_append_body),
        cmocka_unit_test (test_replies),
        cmocka_unit_test (test_time_format),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
