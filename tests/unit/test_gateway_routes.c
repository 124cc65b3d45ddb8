/* test_gateway_routes — the gateway's pure request parsing: routing table, 405s,
 * percent-decoding, the /v1/cases query string, the pagination cursor, and the
 * JSON error bodies. No sockets: every odd input is fed straight in. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../actors/gateway/http_reply.h"
#include "../../actors/gateway/http_routes.h"

static gw_route_t
s_match (const char *method, const char *path)
{
    gw_route_t route;
    gw_routes_match (method, strlen (method), path, strlen (path), &route);
    return route;
}

static void
test_routes_known_paths (void **state)
{
    (void) state;
    struct { const char *method, *path; gw_action_t action; const char *id; } cases [] = {
        { "GET",   "/health",                              GW_ACT_HEALTH,          "" },
        { "GET",   "/ready",                               GW_ACT_READY,           "" },
        { "GET",   "/v1/cases",                            GW_ACT_LIST_CASES,      "" },
        { "GET",   "/v1/cases?status=OPEN&limit=2",        GW_ACT_LIST_CASES,      "" },
        { "POST",  "/v1/cases",                            GW_ACT_CREATE_CASE,     "" },
        { "GET",   "/v1/cases/abc-1",                      GW_ACT_GET_CASE,        "abc-1" },
        { "GET",   "/v1/cases/abc-1/events",               GW_ACT_CASE_EVENTS,     "abc-1" },
        { "GET",   "/v1/cases/abc-1/documents",            GW_ACT_CASE_DOCUMENTS,  "abc-1" },
        { "POST",  "/v1/cases/abc-1/decision",             GW_ACT_DECIDE_CASE,     "abc-1" },
        { "POST",  "/v1/cases/abc-1/close",                GW_ACT_CLOSE_CASE,      "abc-1" },
        { "GET",   "/v1/companies/co-9",                   GW_ACT_GET_COMPANY,     "co-9" },
        { "GET",   "/v1/companies/co-9/beneficial-owners", GW_ACT_COMPANY_OWNERS,  "co-9" },
        { "GET",   "/v1/persons/p-1",                      GW_ACT_GET_PERSON,      "p-1" },
        { "GET",   "/v1/documents/d-1",                    GW_ACT_GET_DOCUMENT,    "d-1" },
        { "PATCH", "/v1/documents/d-1",                    GW_ACT_UPDATE_DOCUMENT, "d-1" },
        { "POST",  "/v1/documents/d-1/status",             GW_ACT_UPDATE_DOCUMENT, "d-1" },
        { "GET",   "/v1/cases/%61%62c",                    GW_ACT_GET_CASE,        "abc" },
        { "GET",   "/v1/%63ases/x",                        GW_ACT_GET_CASE,        "x" },
        { "GET",   "/v1/cases/x#frag",                     GW_ACT_GET_CASE,        "x" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        gw_route_t route = s_match (cases [i].method, cases [i].path);
        if (route.action != cases [i].action)
            fail_msg ("%s %s: action %d, expected %d", cases [i].method, cases [i].path,
                      route.action, cases [i].action);
        assert_string_equal (route.id, cases [i].id);
        assert_int_equal (route.head, 0);
        assert_non_null (route.allow);
    }
}

static void
test_routes_head_follows_get (void **state)
{
    (void) state;
    gw_route_t route = s_match ("HEAD", "/v1/cases/abc");
    assert_int_equal (route.action, GW_ACT_GET_CASE);
    assert_int_equal (route.head, 1);
    route = s_match ("HEAD", "/v1/cases/abc/close");
    assert_int_equal (route.action, GW_ACT_METHOD_NOT_ALLOWED);
    assert_int_equal (route.head, 0);
}

static void
test_routes_method_not_allowed (void **state)
{
    (void) state;
    struct { const char *method, *path, *allow; } cases [] = {
        { "DELETE",  "/v1/cases",              "GET, HEAD, POST" },
        { "PUT",     "/v1/cases/x",            "GET, HEAD" },
        { "POST",    "/v1/cases/x",            "GET, HEAD" },
        { "GET",     "/v1/cases/x/decision",   "POST" },
        { "GET",     "/v1/documents/d/status", "POST" },
        { "POST",    "/v1/documents/d",        "GET, HEAD, PATCH" },
        { "POST",    "/health",                "GET, HEAD" },
        { "get",     "/health",                "GET, HEAD" },   /* methods are case-sensitive */
        { "OPTIONS", "/ready",                 "GET, HEAD" },
        { "",        "/ready",                 "GET, HEAD" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases [0]; i++) {
        gw_route_t route = s_match (cases [i].method, cases [i].path);
        if (route.action != GW_ACT_METHOD_NOT_ALLOWED)
            fail_msg ("%s %s: action %d, expected 405", cases [i].method, cases [i].path, route.action);
        assert_string_equal (route.allow, cases [i].allow);
    }
}

static void
test_routes_not_found (void **state)
{
    (void) state;
    const char *paths [] = {
        "", "/", "//", "/v1", "/v1/", "/v1/cases/", "/v1//cases", "/v1/cases//events",
        "/v1/cases/x/", "/v1/cases/x/events/more", "/v1/cases/x/unknown", "/v2/cases",
        "/V1/cases", "health", "/health/", "/a/b/c/d/e/f/g/h", "/v1/cases/%", "/v1/cases/%4",
        "/v1/cases/%zz", "/v1/cases/%00abc", "/v1/cases/a%20b", "/v1/cases/a%0ab",
        "/v1/cases/\xc3\xa9", "/v1/cases/\x01", "?x=/health",
        "/v1/cases/%2F", "/v1/companies", "/v1/persons", "/v1/documents",
    };
    for (size_t i = 0; i < sizeof paths / sizeof paths [0]; i++) {
        gw_route_t route = s_match ("GET", paths [i]);
        if (route.action != GW_ACT_NOT_FOUND)
            fail_msg ("GET %s: action %d, expected 404", paths [i], route.action);
    }
    /* NULL and over-long inputs */
    gw_route_t route;
    gw_routes_match (NULL, 0, NULL, 0, &route);
    assert_int_equal (route.action, GW_ACT_NOT_FOUND);
    char id [300];
    memset (id, 'a', sizeof id);
    char path [400];
    snprintf (path, sizeof path, "/v1/cases/%.*s", GW_ID_MAX, id);
    assert_int_equal (s_match ("GET", path).action, GW_ACT_NOT_FOUND);
    snprintf (path, sizeof path, "/v1/cases/%.*s", GW_ID_MAX - 1, id);
    route = s_match ("GET", path);
    assert_int_equal (route.action, GW_ACT_GET_CASE);
    assert_int_equal (strlen (route.id), GW_ID_MAX - 1);
}

static void
test_routes_path_is_length_bounded (void **state)
{
    (void) state;
    /* The router must read only path_len bytes: no NUL terminator needed. */
    const char raw [] = "/v1/cases/abcdef";
    gw_route_t route;
    gw_routes_match ("GET", 3, raw, strlen ("/v1/cases/abc"), &route);
    assert_int_equal (route.action, GW_ACT_GET_CASE);
    assert_string_equal (route.id, "abc");
    gw_routes_match ("GETX", 3, raw, 9, &route);
    assert_int_equal (route.action, GW_ACT_LIST_CASES);
}

static void
test_percent_decode (void **state)
{
    (void) state;
    char out [16];
    assert_int_equal (gw_percent_decode ("a%41+b", 6, out, sizeof out, 1), 4);
    assert_string_equal (out, "aA b");
    assert_int_equal (gw_percent_decode ("a%41+b", 6, out, sizeof out, 0), 4);
    assert_string_equal (out, "aA+b");
    assert_int_equal (gw_percent_decode ("", 0, out, sizeof out, 1), 0);
    assert_string_equal (out, "");
    assert_int_equal (gw_percent_decode ("%", 1, out, sizeof out, 1), -2);
    assert_int_equal (gw_percent_decode ("%4", 2, out, sizeof out, 1), -2);
    assert_int_equal (gw_percent_decode ("%g1", 3, out, sizeof out, 1), -2);
    assert_int_equal (gw_percent_decode ("%00", 3, out, sizeof out, 1), -2);
    assert_int_equal (gw_percent_decode ("0123456789abcdef", 16, out, sizeof out, 1), -2);
    assert_int_equal (gw_percent_decode ("0123456789abcde", 15, out, sizeof out, 1), 15);
    assert_int_equal (gw_percent_decode ("x", 1, out, 0, 1), -2);
}

static void
test_query_defaults_and_filters (void **state)
{
    (void) state;
    gw_cases_query_t q;
    char detail [160];
    assert_int_equal (gw_query_parse_cases (NULL, 0, &q, detail, sizeof detail), 0);
    assert_int_equal (q.limit, GW_LIMIT_DEFAULT);
    assert_int_equal (q.after_seq, 0);
    assert_string_equal (q.client_id, "");

    const char *qs = "client_id=C%2B1+x&traitement_type=KYB&status=IN_REVIEW&limit=500&unknown=1&&x";
    assert_int_equal (gw_query_parse_cases (qs, strlen (qs), &q, detail, sizeof detail), 0);
    assert_string_equal (q.client_id, "C+1 x");
    assert_string_equal (q.traitement_type, "KYB");
    assert_string_equal (q.status, "IN_REVIEW");
    assert_int_equal (q.limit, 500);

    /* Empty values are absent filters. */
    qs = "client_id=&status=&limit=&cursor=&traitement_type";
    assert_int_equal (gw_query_parse_cases (qs, strlen (qs), &q, detail, sizeof detail), 0);
    assert_string_equal (q.status, "");
    assert_int_equal (q.limit, GW_LIMIT_DEFAULT);

    char cursor [GW_CURSOR_MAX], buf [128];
    gw_cursor_encode (42, cursor);
    snprintf (buf, sizeof buf, "limit=1&cursor=%s", cursor);
    assert_int_equal (gw_query_parse_cases (buf, strlen (buf), &q, detail, sizeof detail), 0);
    assert_int_equal (q.after_seq, 42);
    assert_int_equal (q.limit, 1);
}

static void
test_query_rejects_bad_values (void **state)
{
    (void) state;
    const char *bad [] = {
        "status=open", "status=PENDING", "status=OPEN%00", "traitement_type=kyc",
        "traitement_type=KYCX", "limit=0", "limit=501", "limit=-1", "limit=1e2", "limit=+5",
        "limit=5x", "limit=9999999999999999999", "cursor=abc", "cursor=%%%", "cursor=42",
        "status=OPEN&status=CLOSED", "limit=1&limit=2", "client_id=%zz", "client_id=%00",
    };
    gw_cases_query_t q;
    char detail [160];
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        detail [0] = 0;
        if (gw_query_parse_cases (bad [i], strlen (bad [i]), &q, detail, sizeof detail) != -2)
            fail_msg ("query \"%s\" was accepted", bad [i]);
        assert_true (strlen (detail) > 0);
    }
    /* A huge value is refused, not truncated. */
    size_t len = 100000;
    char *huge = malloc (len + 1);
    memcpy (huge, "client_id=", 10);
    memset (huge + 10, 'a', len - 10);
    huge [len] = 0;
    assert_int_equal (gw_query_parse_cases (huge, len, &q, detail, sizeof detail), -2);
    /* ...and an unknown huge parameter is ignored. */
    huge [0] = 'x';
    assert_int_equal (gw_query_parse_cases (huge, len, &q, detail, sizeof detail), 0);
    free (huge);
}

static void
test_cursor_round_trip (void **state)
{
    (void) state;
    int64_t values [] = { 0, 1, 9, 10, 99, 12345, 1000000007LL, INT64_MAX };
    for (size_t i = 0; i < sizeof values / sizeof values [0]; i++) {
        char cursor [GW_CURSOR_MAX];
        gw_cursor_encode (values [i], cursor);
        assert_true (strlen (cursor) > 0 && strlen (cursor) < GW_CURSOR_MAX);
        /* URL-safe: no escaping needed in a query string */
        assert_int_equal (strspn (cursor, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"),
                          strlen (cursor));
        int64_t back = -1;
        assert_int_equal (gw_cursor_decode (cursor, strlen (cursor), &back), 0);
        assert_int_equal (back, values [i]);
    }
}

static void
test_cursor_rejects_forgeries (void **state)
{
    (void) state;
    int64_t seq;
    const char *bad [] = {
        "", "a", "djE", "djE6", "djE6NDJ", "djE6NDJ=", "djI6NDI", "djE6LTQy", "djE6MDQy",
        "djE6OTk5OTk5OTk5OTk5OTk5OTk5OTk5", "!!!!", "djE6NDI-",
        "djE6OTIyMzM3MjAzNjg1NDc3NTgwOA",     /* INT64_MAX + 1 */
    };
    /* djE6NDI is "v1:42" and must be the one accepted form of 42. */
    assert_int_equal (gw_cursor_decode ("djE6NDI", 7, &seq), 0);
    assert_int_equal (seq, 42);
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        if (strcmp (bad [i], "djE6NDI") == 0)
            continue;
        if (gw_cursor_decode (bad [i], strlen (bad [i]), &seq) == 0)
            fail_msg ("cursor \"%s\" accepted as %lld", bad [i], (long long) seq);
    }
    assert_int_equal (gw_cursor_decode (NULL, 0, &seq), -2);
}

static void
test_json_string_escaping (void **state)
{
    (void) state;
    gw_buf_t buf;
    gw_buf_init (&buf);
    const char input [] = "a\"b\\c\n\x01\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xff\xc3(\xed\xa0\x80\xc0\xaf end";
    gw_buf_append_json_string (&buf, input, sizeof input - 1);
    const char *text = gw_buf_cstr (&buf);
    assert_non_null (text);
    json_error_t error;
    json_t *parsed = json_loads (text, JSON_DECODE_ANY, &error);
    if (!parsed)
        fail_msg ("escaped string is not JSON: %s: %s", text, error.text);
    assert_true (json_is_string (parsed));
    const char *value = json_string_value (parsed);
    /* valid parts survive; invalid bytes become U+FFFD */
    assert_memory_equal (value, "a\"b\\c\n\x01\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \xef\xbf\xbd", 20);
    assert_non_null (strstr (value, " end"));
    json_decref (parsed);

    /* error bodies are always valid JSON */
    assert_int_equal (gw_reply_error_body (&buf, "validation.x", "bad \xff byte"), 0);
    parsed = json_loadb (buf.data, buf.size, 0, &error);
    assert_non_null (parsed);
    assert_string_equal (json_string_value (json_object_get (parsed, "error")), "validation.x");
    json_decref (parsed);
    assert_int_equal (gw_reply_error_body (&buf, NULL, NULL), 0);
    parsed = json_loadb (buf.data, buf.size, 0, &error);
    assert_non_null (parsed);
    assert_string_equal (json_string_value (json_object_get (parsed, "detail")), "");
    json_decref (parsed);
    gw_buf_free (&buf);
    gw_buf_free (&buf);     /* twice is harmless */
}

static void
test_buf_limits (void **state)
{
    (void) state;
    gw_buf_t buf;
    gw_buf_init (&buf);
    assert_int_equal (gw_buf_append (&buf, "x", 1), 0);
    assert_int_equal (gw_buf_append (&buf, "x", (size_t) GW_BUF_MAX), -1);
    assert_true (buf.failed);
    assert_int_equal (gw_buf_append (&buf, "y", 1), -1);     /* sticky */
    gw_buf_reset (&buf);
    assert_int_equal (gw_buf_append_str (&buf, "ok"), 0);
    assert_int_equal (buf.size, 2);
    gw_buf_free (&buf);
}

static void
test_media_type (void **state)
{
    (void) state;
    const char *good [] = { "application/json", "Application/JSON", " application/json ",
                            "application/json; charset=utf-8", "application/json;charset=UTF-8",
                            "application/json ; x=y" };
    const char *bad [] = { "", "text/plain", "application/jsonx", "application/json-patch+json",
                           "application/ json", "json", "application/json,text/plain", "application" };
    for (size_t i = 0; i < sizeof good / sizeof good [0]; i++)
        if (!gw_reply_is_json_media_type (good [i], strlen (good [i])))
            fail_msg ("\"%s\" refused", good [i]);
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++)
        if (gw_reply_is_json_media_type (bad [i], strlen (bad [i])))
            fail_msg ("\"%s\" accepted", bad [i]);
    assert_int_equal (gw_reply_is_json_media_type (NULL, 0), 0);
    assert_string_equal (gw_reply_reason (404), "Not Found");
    assert_string_equal (gw_reply_reason (599), "Server Error");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_routes_known_paths),
        cmocka_unit_test (test_routes_head_follows_get),
        cmocka_unit_test (test_routes_method_not_allowed),
        cmocka_unit_test (test_routes_not_found),
        cmocka_unit_test (test_routes_path_is_length_bounded),
        cmocka_unit_test (test_percent_decode),
        cmocka_unit_test (test_query_defaults_and_filters),
        cmocka_unit_test (test_query_rejects_bad_values),
        cmocka_unit_test (test_cursor_round_trip),
        cmocka_unit_test (test_cursor_rejects_forgeries),
        cmocka_unit_test (test_json_string_escaping),
        cmocka_unit_test (test_buf_limits),
        cmocka_unit_test (test_media_type),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
