/* test_json_scan — json_scan_load says yes only where json_loadb says yes, and then
 * builds the very same tree (types, values, member order): fixed cases, then
 * records mutated at random (bytes flipped, inserted, cut; escapes, numbers,
 * nesting, duplicate keys) compared with jansson. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "json_scan.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *s_records [] = {
    "{\"client_id\":\"C-1\",\"case_type\":\"STANDARD\",\"case_version\":1,\"traitement_type\":\"KYC\","
    "\"persons\":[{\"firstname\":\"Zo\\u00eb\",\"lastname\":\"\\\"O'Neil\\\" \\\\ /\\/\",\"birthdate\":\"1980-01-02\","
    "\"role\":\"APPLICANT\",\"nationality\":\"FR\",\"address\":{\"street\":\"1 Main St\\n2nd\\tfloor\",\"city\":\"Lyon\","
    "\"postal_code\":\"69001\",\"country\":\"FR\"},\"email\":\"a@example.org\",\"phone\":\"+33 1\"}]}",
    " {\"client_id\" : \"K-9\" , \"case_type\":\"STANDARD\", \"case_version\":\"v2\",\r\n \"traitement_type\":\"KYB\","
    "\"company_profile\":{\"registered_name\":\"Acme \xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80 \\ud83d\\ude00 Ltd\","
    "\"registration_number\":\"R1\",\"country_of_incorporation\":\"DE\",\"registered_address\":{\"country\":\"DE\"}},"
    "\"beneficial_owners\":[{\"firstname\":\"O\",\"ownership_percentage\":33.33,\"control_types\":[\"SHARES\"]},"
    "{\"ownership_percentage\":1e2,\"x\":-0,\"y\":-0.0,\"z\":0.1e-5,\"w\":12345678901234567,\"v\":true,\"u\":false,"
    "\"t\":null,\"s\":[],\"r\":{},\"q\":[[[]]],\"p\":-12.5E+3}]} \n",
    "[1,2,\"three\",{\"four\":4.0}]",
    "{}",
    "[]",
};

/* jansson's answer and ours for text: equal trees, or we gave up. Returns 1 when
 * we answered. */
/* json_scan_members against jansson's tree: a yes only for an object jansson
 * accepts, with the same members. */
static void
s_compare_members (const char *text, size_t size, size_t flags)
{
    static const char *const names [] = { "client_id", "case_type", "case_version", "persons" };
    json_t *values [4];
    int sure = json_scan_members (text, size, flags, names, 4, values);
    json_t *theirs = json_loadb (text, size, flags, NULL);
    if (!sure) {
        for (size_t i = 0; i < 4; i++)
            assert_null (values [i]);
        json_decref (theirs);
        return;
    }
    if (!theirs)
        print_message ("json_scan_members accepted what jansson refuses: %.*s\n", (int) size, text);
    assert_non_null (theirs);
    assert_true (json_is_object (theirs));
    size_t dump = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION (17);
    for (size_t i = 0; i < 4; i++) {
        json_t *expected = json_object_get (theirs, names [i]);
        if (!expected) {
            assert_null (values [i]);
            continue;
        }
        assert_non_null (values [i]);
        char *a = json_dumps (values [i], dump), *b = json_dumps (expected, dump);
        assert_string_equal (a, b);
        free (a);
        free (b);
        json_decref (values [i]);
    }
    json_decref (theirs);
}

static int
s_compare (const char *text, size_t size, size_t flags)
{
    s_compare_members (text, size, flags);
    json_t *mine = NULL;
    int sure = json_scan_load (text, size, flags, &mine);
    json_error_t error;
    json_t *theirs = json_loadb (text, size, flags, &error);
    if (!sure) {
        assert_null (mine);
        json_decref (theirs);
        return 0;
    }
    if (!theirs)
        print_message ("json_scan accepted what jansson refuses (%s): %.*s\n", error.text, (int) size, text);
    assert_non_null (theirs);
    assert_true (json_equal (mine, theirs));
    /* json_equal ignores member order and sees 1.0 == 1.0 loosely: dump both */
    size_t dump = JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION (17);
    char *a = json_dumps (mine, dump), *b = json_dumps (theirs, dump);
    assert_non_null (a);
    assert_non_null (b);
    assert_string_equal (a, b);
    free (a);
    free (b);
    json_decref (mine);
    json_decref (theirs);
    return 1;
}

static void
test_fixed_cases (void **state)
{
    (void) state;
    size_t flags [] = { JSON_REJECT_DUPLICATES, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, 0, JSON_DECODE_ANY };
    for (size_t f = 0; f < 4; f++)
        for (size_t i = 0; i < sizeof s_records / sizeof s_records [0]; i++)
            assert_int_equal (s_compare (s_records [i], strlen (s_records [i]), flags [f]), 1);
    /* Refused by jansson: we must not say yes (a 0 is the right answer) */
    const char *bad [] = {
        "", " ", "{", "}", "{\"a\":1,}", "[1,]", "{\"a\" 1}", "{'a':1}", "{\"a\":01}", "{\"a\":+1}", "{\"a\":.5}",
        "{\"a\":1.}", "{\"a\":1e}", "{\"a\":-}", "{\"a\":1x}", "{\"a\":tru}", "{\"a\":truex}", "{\"a\":nul}",
        "{\"a\":\"\x01\"}", "{\"a\":\"\n\"}", "{\"a\":\"\\x\"}", "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800\"}",
        "{\"a\":\"\\udc00\"}", "{\"a\":\"\\u0000\"}", "{\"a\":\"\xc0\x80\"}", "{\"a\":\"\xed\xa0\x80\"}",
        "{\"a\":\"\xff\"}", "{\"a\":1,\"a\":2}", "{\"a\":1} x", "{\"a\":1}{}", "{\"\\u0061\":1,\"a\":2}",
        "{\"a\":99999999999999999999}", "{\"a\":1e999}", "{\"a\":-1e400}", "\"top\"", "12", "null",
        "{\"a\":[1,2}", "{\"a\":{\"b\":1]}", "{\"a\":\"x}", "{\"a\":\"x\\", "{\"a\"", "{\"a\":", "[\"\\uD83D\\u0041\"]",
        "{\"a\":1}\x00", "{\"a\":NaN}", "{\"a\":Infinity}", "{\"a\":-Infinity}", "/*c*/{}", "{}//",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad [0]; i++) {
        size_t size = strlen (bad [i]) + (strcmp (bad [i], "{\"a\":1}") == 0 ? 1 : 0);
        s_compare (bad [i], size, JSON_REJECT_DUPLICATES);
        s_compare (bad [i], size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY);
    }
    /* deep nesting: fine to leave to jansson, never wrong */
    char deep [300];
    memset (deep, '[', 150);
    memset (deep + 150, ']', 150);
    s_compare (deep, sizeof deep, 0);
    assert_int_equal (s_compare ("[[[[1]]]]", 9, 0), 1);
    /* flags it does not know: always jansson's */
    json_t *json = NULL;
    assert_int_equal (json_scan_load ("{}", 2, JSON_ALLOW_NUL, &json), 0);
    assert_null (json);
    /* the drop-in: same results either way */
    json_error_t error;
    json = json_scan_loadb ("{\"a\":[1]}", 9, JSON_REJECT_DUPLICATES, &error);
    assert_non_null (json);
    json_decref (json);
    assert_null (json_scan_loadb ("{\"a\":[1}", 8, JSON_REJECT_DUPLICATES, &error));
    assert_true (error.text [0] != 0);
}

static uint64_t s_seed = 0x2545f4914f6cdd1dULL;

static uint32_t
s_rand (void)
{
    s_seed ^= s_seed << 13;
    s_seed ^= s_seed >> 7;
    s_seed ^= s_seed << 17;
    return (uint32_t) (s_seed >> 20);
}

static void
test_mutations (void **state)
{
    (void) state;
    static const char *inserts [] = {
        "\"", "\\", "\\u", "\\u00e9", "\\ud83d\\ude00", "\\ud83d", "\\u0000", "{", "}", "[", "]", ",", ":", " ",
        "\n", "\x01", "\x7f", "\xc3\xa9", "\xc3", "\x80", "\xed\xa0\x80", "\xf4\x90\x80\x80", "0", "-", ".", "e",
        "E+", "1e5", "00", "true", "null", "\"a\":1,", "\"client_id\":\"dup\",", "\\n", "\\/", "9223372036854775807",
        "123456789012345678", "1234567890123456789", "0.1", "1e-400"
    };
    char text [2048];
    int answered = 0;
    for (int round = 0; round < 30000; round++) {
        const char *base = s_records [s_rand () % 2];
        size_t size = strlen (base);
        memcpy (text, base, size);
        int edits = 1 + (int) (s_rand () % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = size ? s_rand () % size : 0;
            switch (s_rand () % 4) {
                case 0:         /* overwrite a byte */
                    text [at] = (char) (s_rand () & 0xff);
                    break;
                case 1: {       /* insert a piece */
                    const char *piece = inserts [s_rand () % (sizeof inserts / sizeof inserts [0])];
                    size_t len = strlen (piece);
                    if (size + len >= sizeof text)
                        break;
                    memmove (text + at + len, text + at, size - at);
                    memcpy (text + at, piece, len);
                    size += len;
                    break;
                }
                case 2:         /* delete a byte */
                    if (size) {
                        memmove (text + at, text + at + 1, size - at - 1);
                        size--;
                    }
                    break;
                default:        /* cut */
                    size = at;
                    break;
            }
        }
        answered += s_compare (text, size, JSON_REJECT_DUPLICATES);
        s_compare (text, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY);
    }
    /* most single edits inside strings keep a record valid: the fast path must
     * have answered a fair share of them itself */
    assert_true (answered > 1000);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_fixed_cases),
        cmocka_unit_test (test_mutations),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
