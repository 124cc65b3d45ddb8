/* test_ingest_record — ingest's pure parts: a raw record becomes a command or an
 * immediate rejection (hostile bytes included), a handler's reply becomes the
 * ingest.result body, and the in-flight table serialises records that share a
 * command id, expires in send order and respects its limit. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "command_id.h"
#include "../../actors/ingest/ingest_pending.h"
#include "../../actors/ingest/ingest_record.h"

static const char s_record [] = "{\"client_id\":\"C-1\",\"case_type\":\"KYC\",\"case_version\":1,\"x\":[1,2]}";

static json_t *
s_json (const char *text)
{
    json_error_t error;
    json_t *root = json_loads (text, 0, &error);
    if (!root)
        fail_msg ("not JSON (%s): %s", error.text, text);
    return root;
}

static void
test_record_becomes_a_command (void **state)
{
    (void) state;
    ingest_record_t out;
    assert_int_equal (ingest_record_parse (s_record, strlen (s_record), 1048576, &out), 0);
    /* the same derivation as the gateway and handler use */
    json_t *record = s_json (s_record);
    char expected [COMMAND_ID_MAX], case_id [37];
    command_id_from_record (record, s_record, strlen (s_record), expected);
    command_id_case_id (expected, case_id);
    json_decref (record);
    assert_string_equal (out.command_id, expected);
    assert_true (strncmp (out.command_id, "rec:", 4) == 0);
    assert_string_equal (out.case_id, case_id);

    /* same record, same id: the handler can answer "duplicate" */
    ingest_record_t again;
    assert_int_equal (ingest_record_parse (s_record, strlen (s_record), 0, &again), 0);
    assert_string_equal (again.command_id, out.command_id);

    /* an object without the natural key still gets an id (the handler rejects it) */
    const char *bare = "{\"name\":\"x\"}";
    assert_int_equal (ingest_record_parse (bare, strlen (bare), 0, &out), 0);
    assert_true (strncmp (out.command_id, "raw:", 4) == 0);
}

static void
test_bad_records_are_rejected_at_once (void **state)
{
    (void) state;
    static const struct { const char *raw; size_t size; int status; const char *error; } cases [] = {
        { "{not json", 9, 400, "malformed_json" },
        { "", 0, 400, "malformed_json" },
        { "{\"a\":\"\xff\xfe\"}", 11, 400, "malformed_json" },           /* invalid UTF-8 */
        { "{\"a\":1}\0{\"b\":2}", 15, 400, "malformed_json" },           /* NUL inside */
        { "{\"a\":1,\"a\":2}", 13, 400, "malformed_json" },              /* duplicate key */
        { "{\"a\":1} trailing", 16, 400, "malformed_json" },
        { "[1,2,3]", 7, 422, "validation.record" },
        { "\"text\"", 6, 422, "validation.record" },
        { "42", 2, 422, "validation.record" },
        { "null", 4, 422, "validation.record" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        ingest_record_t out;
        assert_int_equal (ingest_record_parse (cases [i].raw, cases [i].size, 1024, &out), -2);
        assert_int_equal (out.status, cases [i].status);
        assert_string_equal (out.error, cases [i].error);
        assert_true (strlen (out.detail) > 0);
        for (const char *p = out.detail; *p; p++)        /* detail is printable ASCII */
            assert_true (*p >= 0x20 && *p < 0x7f);
        assert_string_equal (out.command_id, "");
    }
    /* over the body limit: 413 before any parsing */
    ingest_record_t out;
    assert_int_equal (ingest_record_parse (s_record, strlen (s_record), 10, &out), -2);
    assert_int_equal (out.status, 413);
    assert_string_equal (out.error, "too_large");
    /* deep nesting: an error, never a stack overflow */
    size_t depth = 100000;
    char *deep = malloc (depth + 1);
    memset (deep, '[', depth);
    deep [depth] = 0;
    assert_int_equal (ingest_record_parse (deep, depth, 0, &out), -2);
    assert_int_equal (out.status, 400);
    free (deep);
    /* NULL raw is just empty */
    assert_int_equal (ingest_record_parse (NULL, 0, 0, &out), -2);
}

static void
test_line_from_id (void **state)
{
    (void) state;
    long line = -1;
    assert_int_equal (ingest_record_line_from_id ("line:42", &line), 0);
    assert_int_equal (line, 42);
    assert_int_equal (ingest_record_line_from_id ("line:0", &line), 0);
    assert_int_equal (line, 0);
    assert_int_equal (ingest_record_line_from_id ("line:", &line), -2);
    assert_int_equal (ingest_record_line_from_id ("line:-3", &line), -2);
    assert_int_equal (ingest_record_line_from_id ("line:4x", &line), -2);
    assert_int_equal (ingest_record_line_from_id ("row:4", &line), -2);
    assert_int_equal (ingest_record_line_from_id (NULL, &line), -2);
}

static void
test_result_bodies (void **state)
{
    (void) state;
    char *text = ingest_record_result_ok (7, "c-id", 1);
    json_t *root = s_json (text);
    assert_int_equal (json_integer_value (json_object_get (root, "line")), 7);
    assert_true (json_is_true (json_object_get (root, "ok")));
    assert_string_equal (json_string_value (json_object_get (root, "case_id")), "c-id");
    assert_true (json_is_true (json_object_get (root, "duplicate")));
    json_decref (root);
    free (text);

    text = ingest_record_result_error (8, 422, "validation.client_id", "Zoë is not an id");
    root = s_json (text);
    assert_true (json_is_false (json_object_get (root, "ok")));
    assert_int_equal (json_integer_value (json_object_get (root, "status")), 422);
    assert_string_equal (json_string_value (json_object_get (root, "error")), "validation.client_id");
    assert_string_equal (json_string_value (json_object_get (root, "detail")), "Zoë is not an id");
    json_decref (root);
    free (text);

    /* invalid UTF-8 from a peer is replaced, not a lost answer */
    text = ingest_record_result_error (9, 400, "bad\xff", "x\xc3");
    assert_non_null (text);
    root = s_json (text);
    assert_string_equal (json_string_value (json_object_get (root, "error")), "bad?");
    json_decref (root);
    free (text);
}

static json_t *
s_from_reply (const char *type, const char *body)
{
    char *text = ingest_record_result_from_reply (3, type, body, body ? strlen (body) : 0, "fallback-id");
    assert_non_null (text);
    json_t *root = s_json (text);
    free (text);
    assert_int_equal (json_integer_value (json_object_get (root, "line")), 3);
    return root;
}

static void
test_replies_become_results (void **state)
{
    (void) state;
    json_t *r = s_from_reply ("reply.ok", "{\"case_id\":\"abc\",\"status\":\"AWAITING_DOCUMENTS\","
                                          "\"events\":4,\"position\":9,\"duplicate\":false}");
    assert_true (json_is_true (json_object_get (r, "ok")));
    assert_string_equal (json_string_value (json_object_get (r, "case_id")), "abc");
    assert_true (json_is_false (json_object_get (r, "duplicate")));
    json_decref (r);

    r = s_from_reply ("reply.ok", "{\"duplicate\":true}");
    assert_string_equal (json_string_value (json_object_get (r, "case_id")), "fallback-id");
    assert_true (json_is_true (json_object_get (r, "duplicate")));
    json_decref (r);

    r = s_from_reply ("reply.error", "{\"status\":422,\"error\":\"validation.persons\",\"detail\":\"no persons\"}");
    assert_true (json_is_false (json_object_get (r, "ok")));
    assert_int_equal (json_integer_value (json_object_get (r, "status")), 422);
    assert_string_equal (json_string_value (json_object_get (r, "error")), "validation.persons");
    assert_string_equal (json_string_value (json_object_get (r, "detail")), "no persons");
    json_decref (r);

    r = s_from_reply ("reply.error", "{\"status\":409,\"error\":\"conflict.state\"}");
    assert_int_equal (json_integer_value (json_object_get (r, "status")), 409);
    assert_string_equal (json_string_value (json_object_get (r, "detail")), "");
    json_decref (r);

    /* anything that is not the record's fault becomes 503: the CLI retries */
    const char *retry [][2] = {
        { "reply.error", "{\"status\":503,\"error\":\"unavailable\",\"detail\":\"store down\"}" },
        { "reply.error", "{\"status\":500,\"error\":\"internal\"}" },
        { "reply.error", "{\"status\":\"422\"}" },
        { "reply.error", "not json" },
        { "reply.ok", "[1]" },
        { "reply.ok", NULL },
        { "reply.strange", "{}" },
        { NULL, "{}" },
    };
    for (size_t i = 0; i < sizeof retry / sizeof retry [0]; i++) {
        r = s_from_reply (retry [i][0], retry [i][1]);
        assert_true (json_is_false (json_object_get (r, "ok")));
        assert_int_equal (json_integer_value (json_object_get (r, "status")), 503);
        assert_string_equal (json_string_value (json_object_get (r, "error")), "unavailable");
        json_decref (r);
    }
}

static ingest_waiter_t *
s_waiter (const char *command_id, long line)
{
    zframe_t *route = zframe_new ("peer", 4);
    char request [32];
    snprintf (request, sizeof request, "line:%ld", line);
    ingest_waiter_t *waiter = ingest_waiter_new (command_id, "case", INGEST_SOURCE_CLI, route, request, line);
    zframe_destroy (&route);
    assert_non_null (waiter);
    return waiter;
}

static void
test_pending_take_and_serialise (void **state)
{
    (void) state;
    ingest_pending_t *pending = ingest_pending_new (100);
    ingest_waiter_t *w = s_waiter ("rec:a", 1);
    assert_int_equal (ingest_pending_add (pending, &w, "A1", 2, 1000), 1);
    assert_null (w);
    w = s_waiter ("rec:b", 2);
    assert_int_equal (ingest_pending_add (pending, &w, "B", 1, 1001), 1);
    /* same command id while one is in flight: queued, with its bytes kept */
    w = s_waiter ("rec:a", 3);
    assert_int_equal (ingest_pending_add (pending, &w, "A2", 2, 1002), 0);
    assert_int_equal (ingest_pending_size (pending), 3);

    /* nothing queued can be promoted while the head is in flight */
    assert_null (ingest_pending_promote (pending, "rec:a", 1003));

    ingest_waiter_t *got = ingest_pending_take (pending, "rec:a");
    assert_non_null (got);
    assert_int_equal (got->line, 1);
    assert_int_equal (zframe_size (got->route), 4);
    assert_string_equal (got->request_id, "line:1");
    ingest_waiter_destroy (&got);
    assert_null (got);
    /* a reply for an id with only a queued waiter takes nothing */
    assert_null (ingest_pending_take (pending, "rec:a"));

    ingest_waiter_t *next = ingest_pending_promote (pending, "rec:a", 1004);
    assert_non_null (next);
    assert_int_equal (next->line, 3);
    assert_int_equal (next->raw_size, 2);
    assert_memory_equal (next->raw, "A2", 2);
    assert_int_equal (next->sent_ms, 1004);
    assert_null (ingest_pending_promote (pending, "rec:a", 1005));

    got = ingest_pending_take (pending, "rec:a");
    assert_ptr_equal (got, next);
    ingest_waiter_destroy (&got);
    assert_null (ingest_pending_take (pending, "rec:zzz"));
    assert_null (ingest_pending_take (pending, NULL));
    assert_int_equal (ingest_pending_size (pending), 1);
    ingest_pending_destroy (&pending);       /* frees rec:b */
    assert_null (pending);
}

static void
test_pending_expires_in_send_order (void **state)
{
    (void) state;
    ingest_pending_t *pending = ingest_pending_new (100);
    assert_int_equal (ingest_pending_next_expiry (pending, 0, 100), -1);
    for (long i = 1; i <= 5; i++) {
        char id [32];
        snprintf (id, sizeof id, "rec:%ld", i);
        ingest_waiter_t *w = s_waiter (id, i);
        assert_int_equal (ingest_pending_add (pending, &w, "x", 1, 1000 + i * 10), 1);
    }
    /* queued behind rec:2: not sent, so it cannot expire yet */
    ingest_waiter_t *w = s_waiter ("rec:2", 6);
    assert_int_equal (ingest_pending_add (pending, &w, "y", 1, 1060), 0);
    /* a reply removes rec:3 from the middle of the send order */
    ingest_waiter_t *got = ingest_pending_take (pending, "rec:3");
    ingest_waiter_destroy (&got);

    assert_int_equal (ingest_pending_next_expiry (pending, 1050, 100), 60);
    assert_null (ingest_pending_expire (pending, 1109, 100));
    got = ingest_pending_expire (pending, 1120, 100);
    assert_non_null (got);
    assert_int_equal (got->line, 1);
    ingest_waiter_destroy (&got);
    got = ingest_pending_expire (pending, 1120, 100);
    assert_int_equal (got->line, 2);
    ingest_waiter_destroy (&got);
    assert_null (ingest_pending_expire (pending, 1120, 100));
    /* the queued one goes out after its predecessor ended, with its own clock */
    ingest_waiter_t *next = ingest_pending_promote (pending, "rec:2", 1120);
    assert_int_equal (next->line, 6);
    got = ingest_pending_expire (pending, 1200, 100);
    assert_int_equal (got->line, 4);
    ingest_waiter_destroy (&got);
    got = ingest_pending_expire (pending, 1200, 100);
    assert_int_equal (got->line, 5);
    ingest_waiter_destroy (&got);
    assert_null (ingest_pending_expire (pending, 1200, 100));
    assert_int_equal (ingest_pending_next_expiry (pending, 1200, 100), 20);
    got = ingest_pending_expire (pending, 1220, 100);
    assert_int_equal (got->line, 6);
    ingest_waiter_destroy (&got);
    assert_int_equal (ingest_pending_size (pending), 0);
    ingest_pending_destroy (&pending);
}

static void
test_pending_limit (void **state)
{
    (void) state;
    ingest_pending_t *pending = ingest_pending_new (2);
    ingest_waiter_t *w = s_waiter ("rec:1", 1);
    assert_int_equal (ingest_pending_add (pending, &w, "x", 1, 1), 1);
    w = s_waiter ("rec:1", 2);
    assert_int_equal (ingest_pending_add (pending, &w, "x", 1, 1), 0);
    w = s_waiter ("rec:2", 3);
    assert_int_equal (ingest_pending_add (pending, &w, "x", 1, 1), -1);
    assert_non_null (w);                    /* still ours */
    ingest_waiter_destroy (&w);
    ingest_waiter_t *none = NULL;
    assert_int_equal (ingest_pending_add (pending, &none, "x", 1, 1), -1);
    ingest_pending_destroy (&pending);      /* frees the queued one and its bytes */
    ingest_pending_destroy (&pending);
    ingest_waiter_destroy (&w);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_record_becomes_a_command),
        cmocka_unit_test (test_bad_records_are_rejected_at_once),
        cmocka_unit_test (test_line_from_id),
        cmocka_unit_test (test_result_bodies),
        cmocka_unit_test (test_replies_become_results),
        cmocka_unit_test (test_pending_take_and_serialise),
        cmocka_unit_test (test_pending_expires_in_send_order),
        cmocka_unit_test (test_pending_limit),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
