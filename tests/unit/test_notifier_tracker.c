/* test_notifier_tracker — the contiguous settled-position tracker: the checkpoint
 * bound is the lowest unsettled position minus one, whatever order reports come in,
 * across ring wrap-around and growth, and bad calls are refused without harm. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdint.h>
#include <stdlib.h>

#include "../../actors/notifier/notifier_tracker.h"

static void
test_empty_and_in_order (void **state)
{
    (void) state;
    notifier_tracker_t *t = notifier_tracker_new ();
    assert_non_null (t);
    assert_true (notifier_tracker_settled (t) == INT64_MAX);     /* nothing owed */
    assert_int_equal (notifier_tracker_count (t), 0);
    assert_int_equal (notifier_tracker_add (t, 6), 0);
    assert_int_equal (notifier_tracker_add (t, 14), 0);
    assert_int_equal (notifier_tracker_add (t, 20), 0);
    assert_int_equal (notifier_tracker_settled (t), 5);
    assert_int_equal (notifier_tracker_settle (t, 6), 0);
    assert_int_equal (notifier_tracker_settled (t), 13);
    assert_int_equal (notifier_tracker_settle (t, 14), 0);
    assert_int_equal (notifier_tracker_settled (t), 19);
    assert_int_equal (notifier_tracker_settle (t, 20), 0);
    assert_true (notifier_tracker_settled (t) == INT64_MAX);
    assert_int_equal (notifier_tracker_count (t), 0);
    notifier_tracker_destroy (&t);
    assert_null (t);
    notifier_tracker_destroy (&t);
    notifier_tracker_destroy (NULL);
}

static void
test_out_of_order (void **state)
{
    (void) state;
    notifier_tracker_t *t = notifier_tracker_new ();
    for (int64_t p = 10; p <= 50; p += 10)
        assert_int_equal (notifier_tracker_add (t, p), 0);
    /* later ones first: the bound stays below the lowest unsettled */
    assert_int_equal (notifier_tracker_settle (t, 50), 0);
    assert_int_equal (notifier_tracker_settle (t, 30), 0);
    assert_int_equal (notifier_tracker_settled (t), 9);
    assert_int_equal (notifier_tracker_count (t), 5);
    assert_int_equal (notifier_tracker_settle (t, 10), 0);
    assert_int_equal (notifier_tracker_settled (t), 19);
    assert_int_equal (notifier_tracker_settle (t, 20), 0);       /* releases 20 and 30 */
    assert_int_equal (notifier_tracker_settled (t), 39);
    assert_int_equal (notifier_tracker_count (t), 2);
    assert_int_equal (notifier_tracker_settle (t, 40), 0);       /* releases 40 and 50 */
    assert_true (notifier_tracker_settled (t) == INT64_MAX);
    notifier_tracker_destroy (&t);
}

static void
test_refusals (void **state)
{
    (void) state;
    notifier_tracker_t *t = notifier_tracker_new ();
    assert_int_equal (notifier_tracker_add (t, 5), 0);
    assert_int_equal (notifier_tracker_add (t, 5), -2);         /* not above the last */
    assert_int_equal (notifier_tracker_add (t, 3), -2);
    assert_int_equal (notifier_tracker_add (t, 0), -2);
    assert_int_equal (notifier_tracker_add (t, 9), 0);
    assert_int_equal (notifier_tracker_settle (t, 7), -1);      /* never added */
    assert_int_equal (notifier_tracker_settle (t, 100), -1);
    assert_int_equal (notifier_tracker_settle (t, 9), 0);
    assert_int_equal (notifier_tracker_settle (t, 9), -1);      /* twice */
    assert_int_equal (notifier_tracker_settled (t), 4);
    assert_int_equal (notifier_tracker_settle (t, 5), 0);
    assert_int_equal (notifier_tracker_settle (t, 5), -1);      /* released: unknown now */
    assert_int_equal (notifier_tracker_add (t, 9), -2);         /* positions never go back */
    assert_true (notifier_tracker_settled (t) == INT64_MAX);
    notifier_tracker_destroy (&t);
}

/* Many positions, settled in a scrambled order, with the ring wrapping and growing;
 * checked against a plain array after every step. */
static void
test_against_a_model (void **state)
{
    (void) state;
    enum { N = 5000 };
    notifier_tracker_t *t = notifier_tracker_new ();
    int64_t *pos = malloc (N * sizeof (int64_t));
    int *settled = calloc (N, sizeof (int));
    size_t added = 0, next_low = 0;
    unsigned seed = 12345;
    int64_t p = 0;
    for (int round = 0; round < 4 * N; round++) {
        seed = seed * 1103515245u + 12345u;
        if (added < N && (seed >> 16) % 3 != 0) {
            p += 1 + (int64_t) ((seed >> 8) % 7);            /* gaps: events without notifications */
            assert_int_equal (notifier_tracker_add (t, p), 0);
            pos [added++] = p;
        }
        else
        if (added > next_low) {
            /* settle a random unsettled one among the outstanding */
            size_t span = added - next_low;
            size_t i = next_low + (seed >> 10) % span;
            while (settled [i])
                i = i + 1 < added ? i + 1 : next_low;
            assert_int_equal (notifier_tracker_settle (t, pos [i]), 0);
            settled [i] = 1;
            while (next_low < added && settled [next_low])
                next_low++;
        }
        int64_t expect = next_low < added ? pos [next_low] - 1 : INT64_MAX;
        assert_true (notifier_tracker_settled (t) == expect);
        assert_int_equal (notifier_tracker_count (t), added - next_low);
    }
    free (pos);
    free (settled);
    notifier_tracker_destroy (&t);
}

static void
test_reserve (void **state)
{
    (void) state;
    notifier_tracker_t *t = notifier_tracker_new ();
    assert_int_equal (notifier_tracker_reserve (t, 10000), 0);
    for (int64_t p = 1; p <= 10000; p++)
        assert_int_equal (notifier_tracker_add (t, p), 0);
    assert_int_equal (notifier_tracker_reserve (t, 0), 0);
    assert_int_equal (notifier_tracker_settled (t), 0);
    for (int64_t p = 10000; p >= 1; p--)
        assert_int_equal (notifier_tracker_settle (t, p), 0);
    assert_true (notifier_tracker_settled (t) == INT64_MAX);
    notifier_tracker_destroy (&t);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_empty_and_in_order),
        cmocka_unit_test (test_out_of_order),
        cmocka_unit_test (test_refusals),
        cmocka_unit_test (test_against_a_model),
        cmocka_unit_test (test_reserve),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
