/* test_heap_trim — the trim waits for a quiet period after the last work, happens
 * once per burst, and says how long a poll may sleep until it is due. (What
 * malloc_trim gives back is measured by bench/run.py's memory section.) */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "heap_trim.h"

static void
test_nothing_pending_until_work (void **state)
{
    (void) state;
    heap_trim_t t;
    heap_trim_init (&t, 200);
    assert_int_equal (heap_trim_tick (&t, 0), -1);
    assert_int_equal (heap_trim_tick (&t, 1000000), -1);
}

static void
test_waits_for_quiet_then_trims_once (void **state)
{
    (void) state;
    heap_trim_t t;
    heap_trim_init (&t, 200);
    heap_trim_busy (&t, 1000);
    assert_int_equal (heap_trim_tick (&t, 1000), 200);
    assert_int_equal (heap_trim_tick (&t, 1150), 50);
    heap_trim_busy (&t, 1150);                      /* more work: the wait starts again */
    assert_int_equal (heap_trim_tick (&t, 1300), 50);
    assert_int_equal (heap_trim_tick (&t, 1350), -1);  /* trimmed */
    assert_int_equal (heap_trim_tick (&t, 5000), -1);  /* once */
}

static void
test_default_quiet (void **state)
{
    (void) state;
    heap_trim_t t;
    heap_trim_init (&t, 0);
    heap_trim_busy (&t, 0);
    assert_int_equal (heap_trim_tick (&t, 0), HEAP_TRIM_QUIET_MS);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_nothing_pending_until_work),
        cmocka_unit_test (test_waits_for_quiet_then_trims_once),
        cmocka_unit_test (test_default_quiet),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
