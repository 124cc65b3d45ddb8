/* test_ingest_window — the adaptive in-flight limit of the Kafka source on its own:
 * slow start while latency stays low, a cut when it climbs well above the lowest
 * seen or a command fails, one cut per round trip, no growth while the window is
 * barely used, and the [min, max] bounds. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "../../actors/ingest/ingest_window.h"

/* One full round at the current limit: every command sent at *now, answered
 * latency ms later with the window full; the clock moves past the answers. */
static void
s_round (ingest_window_t *w, int64_t *now, int64_t latency)
{
    size_t n = ingest_window_limit (w);
    int64_t sent = *now;
    for (size_t i = 0; i < n; i++)
        ingest_window_success (w, sent, sent + latency, n);
    *now = sent + latency + 1;
}

static void
test_slow_start_then_bounded (void **state)
{
    (void) state;
    ingest_window_t w;
    ingest_window_init (&w, 4, 1000, 100);
    assert_int_equal (ingest_window_limit (&w), 16);
    int64_t now = 1000;
    s_round (&w, &now, 5);
    assert_int_equal (ingest_window_limit (&w), 32);
    assert_true (ingest_window_baseline_ms (&w) == 5);
    s_round (&w, &now, 6);
    assert_int_equal (ingest_window_limit (&w), 64);
    for (int i = 0; i < 10; i++)
        s_round (&w, &now, 8);
    assert_int_equal (ingest_window_limit (&w), 1000);     /* never past max */
}

static void
test_latency_cut_and_additive_growth (void **state)
{
    (void) state;
    ingest_window_t w;
    ingest_window_init (&w, 4, 1000, 10);
    int64_t now = 1000;
    s_round (&w, &now, 10);                             /* baseline 10: bound 2*10+10 = 30 */
    s_round (&w, &now, 20);
    assert_int_equal (ingest_window_limit (&w), 64);
    s_round (&w, &now, 40);                             /* over the bound: × 30/40 */
    assert_int_equal (ingest_window_limit (&w), 48);
    /* Out of slow start: under the bound it grows by √limit, not ×2. */
    s_round (&w, &now, 20);
    assert_int_equal (ingest_window_limit (&w), 54);    /* 48 + 6.93 */
    /* Far over the bound: at most halved. */
    s_round (&w, &now, 1000);
    assert_int_equal (ingest_window_limit (&w), 27);
    /* The baseline is the lowest round mean: a slow round does not raise it. */
    assert_true (ingest_window_baseline_ms (&w) == 10);
}

static void
test_failure_halves_once_per_round_trip (void **state)
{
    (void) state;
    ingest_window_t w;
    ingest_window_init (&w, 4, 1000, 100);
    int64_t now = 1000;
    for (int i = 0; i < 4; i++)
        s_round (&w, &now, 5);
    assert_int_equal (ingest_window_limit (&w), 256);
    /* A whole window of commands sent before 2000 times out at 10000: one cut. */
    assert_int_equal (ingest_window_failure (&w, 2000, 10000), 1);
    assert_int_equal (ingest_window_limit (&w), 128);
    for (int i = 0; i < 255; i++)
        assert_int_equal (ingest_window_failure (&w, 2000, 10000 + i), 0);
    assert_int_equal (ingest_window_limit (&w), 128);
    /* Their late successes do not count either: they measured the old window. */
    for (int i = 0; i < 500; i++)
        ingest_window_success (&w, 2000, 10500, 128);
    assert_int_equal (ingest_window_limit (&w), 128);
    /* A command sent after the cut that fails again cuts again, down to min. */
    assert_int_equal (ingest_window_failure (&w, 10001, 20000), 1);
    assert_int_equal (ingest_window_limit (&w), 64);
    int64_t t = 20001;
    for (int i = 0; i < 10; i++, t += 2)
        ingest_window_failure (&w, t, t + 1);
    assert_int_equal (ingest_window_limit (&w), 4);
    /* Slow start is over: recovery is additive (4 + 2). */
    now = t + 10;
    s_round (&w, &now, 5);
    assert_int_equal (ingest_window_limit (&w), 6);
}

static void
test_light_load_does_not_grow (void **state)
{
    (void) state;
    ingest_window_t w;
    ingest_window_init (&w, 4, 1000, 100);
    /* Answers come one at a time (one in flight): fast, but the window is not the limit. */
    for (int i = 0; i < 200; i++)
        ingest_window_success (&w, 1000 + i * 10, 1000 + i * 10 + 2, 1);
    assert_int_equal (ingest_window_limit (&w), 16);
    /* Half used is enough to grow. */
    for (int i = 0; i < 16; i++)
        ingest_window_success (&w, 5000, 5003, 8);
    assert_int_equal (ingest_window_limit (&w), 32);
}

static void
test_bounds (void **state)
{
    (void) state;
    ingest_window_t w;
    ingest_window_init (&w, 0, 0, -5);                 /* adjusted to [1, 1] */
    assert_int_equal (ingest_window_limit (&w), 1);
    assert_int_equal (ingest_window_failure (&w, 10, 20), 1);
    assert_int_equal (ingest_window_limit (&w), 1);
    ingest_window_init (&w, 20, 10, 0);                /* max below min: max = min */
    assert_int_equal (ingest_window_limit (&w), 20);
    ingest_window_init (&w, 2, 8, 0);                  /* the start is within the bounds */
    assert_int_equal (ingest_window_limit (&w), 8);
    /* A zero-latency answer (no store involved) cannot make the bound zero. */
    for (int i = 0; i < 8; i++)
        ingest_window_success (&w, 100, 100, 8);
    assert_true (ingest_window_baseline_ms (&w) == 1);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_slow_start_then_bounded),
        cmocka_unit_test (test_latency_cut_and_additive_growth),
        cmocka_unit_test (test_failure_halves_once_per_round_trip),
        cmocka_unit_test (test_light_load_does_not_grow),
        cmocka_unit_test (test_bounds),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
