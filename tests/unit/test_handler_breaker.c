/* test_handler_breaker — the circuit breaker: closed until `threshold` consecutive
 * failures, open (every call refused) for the cool-down, then half-open with exactly
 * one probe, whose success closes and whose failure re-opens it. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "../../actors/handler/circuit_breaker.h"

static void
test_opens_after_threshold (void **state)
{
    (void) state;
    circuit_breaker_t *b = circuit_breaker_new (3, 1000);
    assert_non_null (b);
    assert_int_equal (circuit_breaker_state (b, 0), CIRCUIT_CLOSED);
    assert_true (circuit_breaker_allow (b, 0));
    assert_int_equal (circuit_breaker_failure (b, 10), 0);
    assert_int_equal (circuit_breaker_failure (b, 20), 0);
    /* a success in between resets the count */
    assert_int_equal (circuit_breaker_success (b, 25), 0);
    assert_int_equal (circuit_breaker_failures (b), 0);
    assert_int_equal (circuit_breaker_failure (b, 30), 0);
    assert_int_equal (circuit_breaker_failure (b, 40), 0);
    assert_int_equal (circuit_breaker_failure (b, 50), 1);       /* the third: opens (reported once) */
    assert_int_equal (circuit_breaker_state (b, 51), CIRCUIT_OPEN);
    assert_false (circuit_breaker_allow (b, 51));
    assert_false (circuit_breaker_would_allow (b, 1049));
    assert_int_equal (circuit_breaker_failure (b, 60), 0);       /* a late failure changes nothing */
    assert_false (circuit_breaker_allow (b, 1049));
    circuit_breaker_destroy (&b);
    assert_null (b);
    circuit_breaker_destroy (&b);
}

static void
test_half_open_probe (void **state)
{
    (void) state;
    circuit_breaker_t *b = circuit_breaker_new (1, 1000);
    assert_int_equal (circuit_breaker_failure (b, 0), 1);
    assert_int_equal (circuit_breaker_state (b, 1000), CIRCUIT_HALF_OPEN);
    assert_true (circuit_breaker_would_allow (b, 1000));
    assert_true (circuit_breaker_allow (b, 1000));              /* the probe */
    assert_false (circuit_breaker_allow (b, 1001));             /* only one */
    assert_int_equal (circuit_breaker_failure (b, 1100), 0);    /* probe failed: another cool-down */
    assert_int_equal (circuit_breaker_state (b, 1500), CIRCUIT_OPEN);
    assert_false (circuit_breaker_allow (b, 2099));
    assert_true (circuit_breaker_allow (b, 2100));
    assert_int_equal (circuit_breaker_success (b, 2200), 1);    /* closed, reported once */
    assert_int_equal (circuit_breaker_state (b, 2200), CIRCUIT_CLOSED);
    assert_true (circuit_breaker_allow (b, 2201));
    assert_true (circuit_breaker_allow (b, 2201));
    assert_string_equal (circuit_breaker_state_name (CIRCUIT_HALF_OPEN), "half-open");
    circuit_breaker_destroy (&b);
}

static void
test_bad_settings_are_clamped (void **state)
{
    (void) state;
    circuit_breaker_t *b = circuit_breaker_new (0, -5);
    assert_int_equal (circuit_breaker_failure (b, 0), 1);       /* threshold 1 */
    assert_true (circuit_breaker_allow (b, 0));                 /* cool-down 0: probe at once */
    circuit_breaker_destroy (&b);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_opens_after_threshold),
        cmocka_unit_test (test_half_open_probe),
        cmocka_unit_test (test_bad_settings_are_clamped),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
