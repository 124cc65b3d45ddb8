/* test_traceparent — W3C traceparent: the spec's valid and invalid examples,
 * forward-compatible versions, and generation (fresh trace, child span). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "traceparent.h"

#include <string.h>

static int
s_parse (const char *value, traceparent_t *out)
{
    return traceparent_parse (value, strlen (value), out);
}

static void
test_parse_valid_and_invalid (void **state)
{
    (void) state;
    traceparent_t tp;
    assert_int_equal (s_parse ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", &tp), 0);
    assert_string_equal (tp.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_equal (tp.parent_id, "00f067aa0ba902b7");
    assert_int_equal (tp.flags, 1);
    char text [TRACEPARENT_LEN];
    traceparent_format (&tp, text);
    assert_string_equal (text, "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");

    /* A later version: the first four fields, more may follow after a dash. */
    assert_int_equal (s_parse ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09-what-the-future-holds", &tp), 0);
    assert_int_equal (tp.flags, 9);
    assert_int_equal (s_parse ("cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09", &tp), 0);

    const char *invalid [] = {
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-",      /* 00 is exactly 55 */
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-09x",      /* no dash after */
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",       /* forbidden version */
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",       /* zero trace id */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",       /* zero parent id */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",       /* upper case */
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",        /* short trace id */
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0z",
        "",
    };
    traceparent_t untouched = { "keep", "keep", 7 };
    for (size_t i = 0; i < sizeof invalid / sizeof invalid [0]; i++) {
        tp = untouched;
        assert_int_equal (s_parse (invalid [i], &tp), -1);
        assert_string_equal (tp.trace_id, "keep");
    }
    assert_int_equal (traceparent_parse (NULL, 0, &tp), -1);
    /* size bounds the read: a valid value cut short is invalid. */
    assert_int_equal (traceparent_parse ("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01", 54, &tp), -1);
}

static void
test_new_and_child (void **state)
{
    (void) state;
    traceparent_t a, b, child;
    traceparent_new (&a);
    traceparent_new (&b);
    assert_string_not_equal (a.trace_id, b.trace_id);
    assert_int_equal (strlen (a.trace_id), 32);
    assert_int_equal (strlen (a.parent_id), 16);
    assert_int_equal (a.flags, 1);
    char text [TRACEPARENT_LEN];
    traceparent_format (&a, text);
    assert_int_equal (strlen (text), 55);
    traceparent_t back;
    assert_int_equal (s_parse (text, &back), 0);     /* what we make, we accept */
    assert_string_equal (back.trace_id, a.trace_id);

    traceparent_child (&a, &child);
    assert_string_equal (child.trace_id, a.trace_id);
    assert_string_not_equal (child.parent_id, a.parent_id);
    assert_int_equal (child.flags, a.flags);
    traceparent_child (&child, &child);             /* in place */
    assert_string_equal (child.trace_id, a.trace_id);
}

/* One hop: a child of what came, else of a new trace; and the trace id for the logs. */
static void
test_hop_and_trace_id (void **state)
{
    (void) state;
    const char *in = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00";
    char out [TRACEPARENT_LEN], id [33];
    traceparent_hop (in, strlen (in), out);
    traceparent_t hop;
    assert_int_equal (s_parse (out, &hop), 0);
    assert_string_equal (hop.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_string_not_equal (hop.parent_id, "00f067aa0ba902b7");
    assert_int_equal (hop.flags, 0);
    assert_string_equal (traceparent_trace_id (out, id), "4bf92f3577b34da6a3ce929d0e0e4736");
    /* none, or malformed: a new trace, sampled */
    const char *bad [] = { NULL, "", "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01" };
    for (int i = 0; i < 3; i++) {
        traceparent_hop (bad [i], bad [i] ? strlen (bad [i]) : 0, out);
        assert_int_equal (s_parse (out, &hop), 0);
        assert_string_not_equal (hop.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_int_equal (hop.flags, 1);
        assert_null (traceparent_trace_id (bad [i], id));
    }
    /* a hop is only as long as the given size */
    traceparent_hop (in, 54, out);
    assert_int_equal (s_parse (out, &hop), 0);
    assert_string_not_equal (hop.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_parse_valid_and_invalid),
        cmocka_unit_test (test_new_and_child),
        cmocka_unit_test (test_hop_and_trace_id),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
