/* test_projection_canon — canon_json against jansson itself: whatever the checker
 * calls canonical, jansson loads and dumps to the very same bytes (hand-picked
 * cases, then a few hundred thousand generated ones); members, string tokens and
 * their decoding agree with jansson too. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../../actors/projector/canon_json.h"

/* 1 if jansson loads text as an object and dumps it back to the same bytes. */
static int
s_jansson_same (const char *text, size_t len)
{
    json_t *j = json_loadb (text, len, 0, NULL);
    char *dump = j && json_is_object (j) ? json_dumps (j, JSON_COMPACT) : NULL;
    int same = dump && strlen (dump) == len && memcmp (dump, text, len) == 0;
    free (dump);
    json_decref (j);
    return same;
}

static void
s_expect (const char *text, int canonical)
{
    size_t len = strlen (text);
    if (canon_is_object (text, len) != canonical)
        fail_msg ("canon_is_object (%s) != %d", text, canonical);
    if (s_jansson_same (text, len) != canonical)
        fail_msg ("jansson round trip of %s != %d", text, canonical);
}

static void
test_hand_picked (void **state)
{
    (void) state;
    s_expect ("{}", 1);
    s_expect ("{\"a\":1,\"b\":\"x\",\"c\":[true,false,null],\"d\":{\"e\":[]}}", 1);
    s_expect ("{\"n\":-12,\"r\":12.5,\"t\":0.10000000000000001,\"e\":1e20,\"s\":9.9999999999999995e-8}", 1);
    s_expect ("{\"big\":9223372036854775807,\"small\":-9223372036854775808}", 1);
    s_expect ("{\"s\":\"tab\\there \\\"q\\\" back\\\\ \\u001F \xc3\xa9 \xf0\x9f\x98\x80\"}", 1);
    /* what jansson would write otherwise */
    s_expect ("{ \"a\":1}", 0);
    s_expect ("{\"a\":1} ", 0);
    s_expect ("{\"a\": 1}", 0);
    s_expect ("{\"a\":1,\"a\":2}", 0);
    s_expect ("{\"a\":{\"b\":1,\"b\":1}}", 0);
    s_expect ("{\"r\":1.0e2}", 0);
    s_expect ("{\"r\":1E2}", 0);
    s_expect ("{\"r\":0.1}", 0);
    s_expect ("{\"r\":1e+20}", 0);
    s_expect ("{\"z\":-0}", 0);
    s_expect ("{\"s\":\"\\/\"}", 0);
    s_expect ("{\"s\":\"\\u00e9\"}", 0);
    s_expect ("{\"s\":\"\\u001f\"}", 0);
    s_expect ("{\"s\":\"\\u000A\"}", 0);
    s_expect ("{\"s\":\"\\ud83d\\ude00\"}", 0);
    /* what jansson refuses */
    s_expect ("{\"big\":9223372036854775808}", 0);
    s_expect ("{\"r\":1e400}", 0);
    s_expect ("{\"s\":\"\\u0000\"}", 0);
    s_expect ("{\"s\":\"\xc3\"}", 0);
    s_expect ("{\"s\":\"\xed\xa0\x80\"}", 0);
    s_expect ("{\"s\":\"\xc0\xaf\"}", 0);
    s_expect ("{\"s\":\"\x01\"}", 0);
    s_expect ("{\"a\":01}", 0);
    s_expect ("{\"a\":1,}", 0);
    s_expect ("{\"a\"}", 0);
    s_expect ("[1]", 0);
    s_expect ("{\"a\":tru}", 0);
    s_expect ("{\"a\":\"unterminated}", 0);
    s_expect ("{\"a\":[1,2}", 0);
    /* never reads past the length it was given */
    assert_int_equal (canon_is_object ("{\"a\":1}", 6), 0);
    assert_int_equal (canon_is_object ("{\"a\":\"x\"}", 8), 0);
    assert_int_equal (canon_is_object (NULL, 0), 0);
    /* too deep for the checker: jansson's business, never canonical here */
    char deep [200] = "{\"a\":";
    for (int i = 0; i < 40; i++)
        strcat (deep, "[");
    for (int i = 0; i < 40; i++)
        strcat (deep, "]");
    strcat (deep, "}");
    assert_int_equal (canon_is_object (deep, strlen (deep)), 0);
}

/* xorshift: the same corpus every run */
static unsigned long long s_rng = 88172645463325252ULL;
static unsigned
s_rand (void)
{
    s_rng ^= s_rng << 13;
    s_rng ^= s_rng >> 7;
    s_rng ^= s_rng << 17;
    return (unsigned) s_rng;
}

static const char *s_atoms [] = {
    "0", "-0", "1", "-1", "12", "012", "1.5", "12.5", "0.1", "0.10000000000000001", "1e5", "1E5",
    "100000.0", "1.0", "-0.0", "1e+20", "1e20", "1e-7", "9.9999999999999995e-8", "9223372036854775807",
    "9223372036854775808", "-9223372036854775808", "-9223372036854775809", "true", "false", "null", "nul",
    "\"\"", "\"a\"", "\"\\u001F\"", "\"\\u001f\"", "\"\\u0000\"", "\"\\n\"", "\"\\u000A\"", "\"\\/\"", "\"/\"",
    "\"\\u00e9\"", "\"\xc3\xa9\"", "\"\xc3\"", "\"\xed\xa0\x80\"", "\"\xf4\x90\x80\x80\"", "\"\xf0\x9f\x98\x80\"",
    "\"\\\"\"", "\"\\\\\"", "\"\x7f\"", "\"\x01\"", "1.5e300", "1e400", "[]", "{}", " 1", "1 ",
    "\"\\ud83d\\ude00\"", "123456789012345678", "0.5", "2.5e-5",
};

static void
s_gen (char *b, size_t *n, int depth)
{
    unsigned r = s_rand () % 10;
    if (depth > 3 || r < 5) {
        const char *a = s_atoms [s_rand () % (sizeof s_atoms / sizeof s_atoms [0])];
        memcpy (b + *n, a, strlen (a));
        *n += strlen (a);
        return;
    }
    int object = r < 8;
    b [(*n)++] = object ? '{' : '[';
    int k = (int) (s_rand () % 4);
    for (int i = 0; i < k; i++) {
        if (i)
            b [(*n)++] = s_rand () % 30 ? ',' : ' ';
        if (object) {
            static const char *keys [] = { "\"a\"", "\"b\"", "\"c\"", "\"\\u0041\"", "\"A\"", "\"\\n\"" };
            const char *key = keys [s_rand () % 6];
            memcpy (b + *n, key, strlen (key));
            *n += strlen (key);
            b [(*n)++] = ':';
        }
        s_gen (b, n, depth + 1);
    }
    b [(*n)++] = object ? '}' : ']';
}

static void
test_generated_agree_with_jansson (void **state)
{
    (void) state;
    static char buf [1 << 15];
    int accepted = 0;
    for (int it = 0; it < 200000; it++) {
        size_t n = 0;
        buf [n++] = '{';
        int k = (int) (s_rand () % 5);
        for (int i = 0; i < k; i++) {
            if (i)
                buf [n++] = ',';
            n += (size_t) sprintf (buf + n, "\"k%u\":", s_rand () % 6);
            s_gen (buf, &n, 1);
        }
        buf [n++] = '}';
        if (s_rand () % 50 == 0)
            buf [s_rand () % n] = "{}[]\",: 0\\"[s_rand () % 10];
        int canonical = canon_is_object (buf, n);
        int same = s_jansson_same (buf, n);
        if (canonical && !same)
            fail_msg ("taken as canonical, but jansson writes it otherwise: %.*s", (int) n, buf);
        if (!canonical)
            continue;
        accepted++;
        /* the members, joined again, are the text */
        canon_member_t members [CANON_MAX_MEMBERS], m;
        size_t count = 0, i = 0;
        assert_int_equal (canon_parse_object (buf, n, members, &count), 1);
        const char *cursor = buf;
        static char again [1 << 15];
        size_t len = 0;
        again [len++] = '{';
        while (canon_next_member (&cursor, buf + n, &m)) {
            assert_true (i < count);
            assert_ptr_equal (m.key.ptr, members [i].key.ptr);
            assert_int_equal (m.value.len, members [i].value.len);
            i++;
            if (len > 1)
                again [len++] = ',';
            memcpy (again + len, m.key.ptr, m.key.len);
            len += m.key.len;
            again [len++] = ':';
            memcpy (again + len, m.value.ptr, m.value.len);
            len += m.value.len;
        }
        again [len++] = '}';
        assert_int_equal (i, count);
        assert_int_equal (len, n);
        assert_memory_equal (again, buf, n);
    }
    assert_true (accepted > 10000);
}

static void
test_strings_as_jansson_writes_them (void **state)
{
    (void) state;
    for (int it = 0; it < 50000; it++) {
        char s [16];
        size_t n = s_rand () % 8;
        for (size_t i = 0; i < n; i++) {
            unsigned r = s_rand () % 6;
            s [i] = r == 0 ? (char) (1 + s_rand () % 31) : r == 1 ? (char) (0x80 + s_rand () % 128)
                  : r == 2 ? "\"\\/" [s_rand () % 3] : (char) ('a' + s_rand () % 26);
        }
        s [n] = 0;
        json_t *j = json_stringn (s, n);
        size_t size = canon_string_size (s, n);
        if (!j) {
            assert_int_equal (size, 0);             /* not UTF-8: no string at all */
            continue;
        }
        char *dump = json_dumps (j, JSON_COMPACT | JSON_ENCODE_ANY);
        char out [128], back [128];
        size_t written = canon_string_write (s, n, out);
        assert_int_equal (written, size);
        assert_int_equal (strlen (dump), written);
        assert_memory_equal (dump, out, written);
        canon_span_t token = { out, written };
        assert_int_equal (canon_is_string (token), 1);
        assert_int_equal (canon_string_decode (token, back), n);
        assert_memory_equal (back, s, n);
        free (dump);
        json_decref (j);
    }
    canon_span_t key = { "\"case_id\"", 9 };
    assert_int_equal (canon_key_is (key, "case_id"), 1);
    assert_int_equal (canon_key_is (key, "case"), 0);
}

static void
test_normalize (void **state)
{
    (void) state;
    char *out = NULL, err [128] = "";
    size_t len = 0;
    const char *odd = "{ \"a\" : 1E2, \"a\": \"\\u00e9\" }";
    assert_int_equal (canon_normalize (odd, strlen (odd), &out, &len, err, sizeof err), 0);
    assert_string_equal (out, "{\"a\":\"\xc3\xa9\"}");
    assert_int_equal (len, strlen (out));
    assert_int_equal (canon_is_object (out, len), 1);
    free (out);
    assert_int_equal (canon_normalize ("[1]", 3, &out, &len, err, sizeof err), -2);
    assert_string_equal (err, "payload is not a JSON object: not an object");
    assert_null (out);
    assert_int_equal (canon_normalize ("{not", 4, &out, &len, err, sizeof err), -2);
    assert_non_null (strstr (err, "payload is not a JSON object: "));
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_hand_picked),
        cmocka_unit_test (test_generated_agree_with_jansson),
        cmocka_unit_test (test_strings_as_jansson_writes_them),
        cmocka_unit_test (test_normalize),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
