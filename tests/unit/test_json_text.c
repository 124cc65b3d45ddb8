/* test_json_text — json_text writes exactly what json_dumps writes (events and
 * replies are compared byte for byte elsewhere): fixed tricky values, then random
 * trees with hostile strings (control bytes, every kind of bad UTF-8), extreme
 * integers and reals, compared with jansson's own output. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "json_text.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define S_FLAGS (JSON_COMPACT | JSON_REAL_PRECISION (15))

/* Both writers on value with flags: the same bytes, or both refuse. */
static void
s_same (const json_t *value, size_t flags)
{
    char *expected = json_dumps (value, flags);
    size_t size = 0;
    char *got = json_text_dump (value, flags, &size);
    if (!expected) {
        if (got)
            print_message ("json_text wrote %s where json_dumps refused\n", got);
        assert_null (got);
        return;
    }
    if (!got)
        print_message ("json_text refused where json_dumps wrote %s\n", expected);
    assert_non_null (got);
    assert_string_equal (got, expected);
    assert_int_equal (size, strlen (expected));
    free (expected);
    free (got);
}

static void
test_fixed_values (void **state)
{
    (void) state;
    json_t *v = json_pack ("{s:s, s:s, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:[], s:{}, s:n, s:b, s:b,"
                           " s:[i, s, {s:[s]}]}",
                           "a\x1f\x7f/\"\\\b\f\n\r\t", "x\x01\x1f", "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80", "",
                           "r", 33.33, "r2", 1e20, "r3", 1.0, "r4", 1e-7, "r5", 123456789012345678.0, "r6", -0.0,
                           "i", (json_int_t) -42, "max", (json_int_t) LLONG_MAX, "min", (json_int_t) LLONG_MIN,
                           "arr", "obj", "nul", "t", 1, "f", 0, "nest", 7, "two", "deep", "x");
    assert_non_null (v);
    s_same (v, S_FLAGS);
    s_same (v, JSON_COMPACT);
    s_same (v, JSON_COMPACT | JSON_REAL_PRECISION (17));
    /* A NUL inside a string, and a key with one */
    json_object_set_new (v, "nul\0key", json_stringn ("a\0b", 3));
    json_object_setn_new (v, "k\0ey", 4, json_stringn ("\0", 1));
    s_same (v, S_FLAGS);
    /* Scalars need JSON_ENCODE_ANY, as in json_dumps */
    json_t *s = json_string ("plain");
    s_same (s, S_FLAGS);
    s_same (s, S_FLAGS | JSON_ENCODE_ANY);
    json_t *r = json_real (0.1);
    s_same (r, S_FLAGS | JSON_ENCODE_ANY);
    /* Flags it does not reproduce go to jansson whole */
    s_same (v, JSON_INDENT (2));
    s_same (v, JSON_COMPACT | JSON_SORT_KEYS);
    s_same (v, JSON_COMPACT | JSON_ENSURE_ASCII);
    assert_null (json_text_dump (NULL, S_FLAGS, NULL));
    json_decref (v);
    json_decref (s);
    json_decref (r);
}

static void
test_bad_utf8_refused (void **state)
{
    (void) state;
    const char *bad [] = {
        "\x80", "\xbf", "\xc0\x80", "\xc1\xbf", "\xc2", "\xc2\x41", "\xe0\x80\x80", "\xed\xa0\x80",
        "\xef\xbf", "\xf0\x80\x80\x80", "\xf4\x90\x80\x80", "\xf5\x80\x80\x80", "\xff", "ok\xfe"
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        json_t *v = json_object ();
        json_object_set_new (v, "k", json_stringn_nocheck (bad [i], strlen (bad [i])));
        s_same (v, S_FLAGS);
        json_decref (v);
        v = json_object ();
        json_object_set_new_nocheck (v, bad [i], json_true ());
        s_same (v, S_FLAGS);
        json_decref (v);
    }
    /* the largest valid code points of each length */
    json_t *v = json_pack ("[s, s, s, s]", "\x7f", "\xdf\xbf", "\xef\xbf\xbf", "\xf4\x8f\xbf\xbf");
    assert_non_null (v);
    s_same (v, S_FLAGS);
    json_decref (v);
}

/* A reproducible pseudo-random source for the fuzz. */
static uint64_t s_seed = 0x9e3779b97f4a7c15ULL;

static uint32_t
s_rand (void)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return (uint32_t) (s_seed >> 16);
}

/* Random bytes: mostly text, some control bytes and UTF-8, sometimes broken. */
static size_t
s_random_bytes (char *out, size_t cap)
{
    static const char *pieces [] = { "a", "Z", " ", "\"", "\\", "/", "\n", "\t", "\x01", "\x1f", "\x7f",
                                     "\xc3\xa9", "\xe2\x82\xac", "\xf0\x9f\x98\x80", "\xc3", "\x80", "\xed\xa0\x80" };
    size_t n = 0, count = s_rand () % 12;
    for (size_t i = 0; i < count; i++) {
        const char *p = pieces [s_rand () % (s_rand () % 8 ? 14 : 17)];
        size_t len = strlen (p);
        if (n + len >= cap)
            break;
        memcpy (out + n, p, len);
        n += len;
    }
    out [n] = 0;
    return n;
}

static json_t *
s_random_value (int depth)
{
    char bytes [64];
    switch (s_rand () % (depth > 3 ? 6 : 8)) {
        case 0: {
            size_t n = s_random_bytes (bytes, sizeof bytes);
            return json_stringn_nocheck (bytes, n);
        }
        case 1: {
            int64_t values [] = { 0, 1, -1, 42, INT64_MAX, INT64_MIN, 1000000007, -987654321 };
            return json_integer ((json_int_t) values [s_rand () % 8]);
        }
        case 2: {
            double values [] = { 0.5, 33.33, 1e300, -2.5e-300, 3.0, 0.1, 123456.789, 1e15, 1e16 };
            return json_real (values [s_rand () % 9]);
        }
        case 3: return json_true ();
        case 4: return json_false ();
        case 5: return json_null ();
        case 6: {
            json_t *a = json_array ();
            size_t n = s_rand () % 5;
            for (size_t i = 0; i < n; i++)
                json_array_append_new (a, s_random_value (depth + 1));
            return a;
        }
        default: {
            json_t *o = json_object ();
            size_t n = s_rand () % 6;
            for (size_t i = 0; i < n; i++) {
                size_t len = s_random_bytes (bytes, sizeof bytes);
                json_object_setn_new_nocheck (o, bytes, len, s_random_value (depth + 1));
            }
            return o;
        }
    }
}

static void
test_random_trees (void **state)
{
    (void) state;
    for (int i = 0; i < 20000; i++) {
        json_t *v = s_random_value (0);
        s_same (v, S_FLAGS);
        s_same (v, S_FLAGS | JSON_ENCODE_ANY);
        json_decref (v);
    }
}

static void
test_text_building (void **state)
{
    (void) state;
    json_text_t t;
    json_text_init (&t);
    assert_int_equal (json_text_raw (&t, "{\"n\":", 5), 0);
    assert_int_equal (json_text_integer (&t, -12), 0);
    assert_int_equal (json_text_raw (&t, ",\"s\":", 5), 0);
    assert_int_equal (json_text_string (&t, "a\"b", 3), 0);
    assert_int_equal (json_text_raw (&t, "}", 1), 0);
    size_t size = 0;
    char *text = json_text_take (&t, &size);
    assert_string_equal (text, "{\"n\":-12,\"s\":\"a\\\"b\"}");
    assert_int_equal (size, strlen (text));
    free (text);
    /* a failure sticks: take gives NULL and frees */
    assert_int_equal (json_text_raw (&t, "[", 1), 0);
    assert_int_equal (json_text_string (&t, "\xff", 1), -1);
    assert_int_equal (json_text_raw (&t, "]", 1), -1);
    assert_null (json_text_take (&t, NULL));
    json_text_reset (&t);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_fixed_values),
        cmocka_unit_test (test_bad_utf8_refused),
        cmocka_unit_test (test_random_trees),
        cmocka_unit_test (test_text_building),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
