/* test_ingest_offsets — the at-least-once rule of the Kafka source on its own: the
 * offset that may be stored is the one after the longest acknowledged prefix,
 * whatever order acknowledgments come in; revoked partitions are forgotten;
 * re-fetched records are refused; offsets with gaps are fine. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>

#include "../../actors/ingest/ingest_offsets.h"

static void
test_in_order_and_out_of_order (void **state)
{
    (void) state;
    ingest_offsets_t *offsets = ingest_offsets_new ();
    assert_non_null (offsets);
    assert_int_equal (ingest_offsets_commit_point (offsets, 0), -1);
    for (int64_t o = 10; o < 15; o++)
        assert_int_equal (ingest_offsets_track (offsets, 0, o), 0);
    assert_int_equal (ingest_offsets_in_flight (offsets), 5);

    /* 12 and 11 first: nothing may be stored while 10 is in flight */
    assert_int_equal (ingest_offsets_ack (offsets, 0, 12), 0);
    assert_int_equal (ingest_offsets_ack (offsets, 0, 11), 0);
    assert_int_equal (ingest_offsets_commit_point (offsets, 0), -1);
    int32_t parts [4];
    int64_t points [4];
    assert_int_equal (ingest_offsets_dirty (offsets, parts, points, 4), 0);

    /* 10 completes the prefix 10..12: the commit point jumps to 13 */
    assert_int_equal (ingest_offsets_ack (offsets, 0, 10), 1);
    assert_int_equal (ingest_offsets_commit_point (offsets, 0), 13);
    assert_int_equal (ingest_offsets_dirty (offsets, parts, points, 4), 1);
    assert_int_equal (parts [0], 0);
    assert_int_equal (points [0], 13);
    assert_int_equal (ingest_offsets_dirty (offsets, parts, points, 4), 0);     /* mark cleared */

    /* acknowledged twice, or never tracked: refused */
    assert_int_equal (ingest_offsets_ack (offsets, 0, 12), -2);
    assert_int_equal (ingest_offsets_ack (offsets, 0, 99), -2);
    assert_int_equal (ingest_offsets_ack (offsets, 7, 10), -2);

    assert_int_equal (ingest_offsets_ack (offsets, 0, 14), 0);
    assert_int_equal (ingest_offsets_ack (offsets, 0, 13), 1);
    assert_int_equal (ingest_offsets_commit_point (offsets, 0), 15);
    assert_int_equal (ingest_offsets_in_flight (offsets), 0);
    ingest_offsets_destroy (&offsets);
    assert_null (offsets);
    ingest_offsets_destroy (&offsets);          /* NULL is fine */
}

static void
test_gaps_and_refetch (void **state)
{
    (void) state;
    ingest_offsets_t *offsets = ingest_offsets_new ();
    /* compacted topic, transaction markers: offsets need not be consecutive */
    assert_int_equal (ingest_offsets_track (offsets, 3, 100), 0);
    assert_int_equal (ingest_offsets_track (offsets, 3, 104), 0);
    assert_int_equal (ingest_offsets_track (offsets, 3, 110), 0);
    /* a record at or before the last one tracked is a re-fetch */
    assert_int_equal (ingest_offsets_track (offsets, 3, 104), 1);
    assert_int_equal (ingest_offsets_track (offsets, 3, 50), 1);
    assert_int_equal (ingest_offsets_ack (offsets, 3, 104), 0);
    assert_int_equal (ingest_offsets_ack (offsets, 3, 100), 1);
    assert_int_equal (ingest_offsets_commit_point (offsets, 3), 105);
    assert_int_equal (ingest_offsets_ack (offsets, 3, 110), 1);
    assert_int_equal (ingest_offsets_commit_point (offsets, 3), 111);
    /* everything acknowledged: an already-acknowledged offset still counts as seen */
    assert_int_equal (ingest_offsets_track (offsets, 3, 110), 1);
    assert_int_equal (ingest_offsets_track (offsets, 3, 111), 0);
    ingest_offsets_destroy (&offsets);
}

static void
test_partitions_and_revoke (void **state)
{
    (void) state;
    ingest_offsets_t *offsets = ingest_offsets_new ();
    for (int32_t p = 0; p < 20; p++)            /* more partitions than the first allocation */
        for (int64_t o = 0; o < 3; o++)
            assert_int_equal (ingest_offsets_track (offsets, p, o), 0);
    assert_int_equal (ingest_offsets_in_flight (offsets), 60);      /* 57 after the acks below */
    assert_int_equal (ingest_offsets_ack (offsets, 5, 0), 1);
    assert_int_equal (ingest_offsets_ack (offsets, 5, 2), 0);
    assert_int_equal (ingest_offsets_ack (offsets, 6, 0), 1);
    assert_int_equal (ingest_offsets_partition_in_flight (offsets, 5), 1);

    /* revoke 5: its records and commit point are gone; the others are untouched */
    ingest_offsets_drop (offsets, 5);
    assert_int_equal (ingest_offsets_in_flight (offsets), 56);
    assert_int_equal (ingest_offsets_commit_point (offsets, 5), -1);
    assert_int_equal (ingest_offsets_ack (offsets, 5, 1), -2);  /* a late answer for a revoked record */
    assert_int_equal (ingest_offsets_commit_point (offsets, 6), 1);
    ingest_offsets_drop (offsets, 42);                          /* unknown partition: nothing */

    /* reassigned: it starts again wherever the group's committed offset says */
    assert_int_equal (ingest_offsets_track (offsets, 5, 1), 0);
    assert_int_equal (ingest_offsets_ack (offsets, 5, 1), 1);
    assert_int_equal (ingest_offsets_commit_point (offsets, 5), 2);

    /* dirty marks come out in batches of at most max */
    int32_t parts [1];
    int64_t points [1];
    size_t total = 0, n;
    while ((n = ingest_offsets_dirty (offsets, parts, points, 1)) > 0)
        total += n;
    assert_int_equal (total, 2);                /* partitions 5 and 6 */
    ingest_offsets_destroy (&offsets);
}

/* Many records, acknowledged in a shuffled order: after each acknowledgment the
 * commit point is exactly the first unacknowledged offset (or -1). */
static void
test_shuffled_against_a_model (void **state)
{
    (void) state;
    enum { N = 10000 };
    ingest_offsets_t *offsets = ingest_offsets_new ();
    int64_t *order = malloc (N * sizeof (int64_t));
    char *acked = calloc (N, 1);
    assert_non_null (order);
    assert_non_null (acked);
    for (int64_t i = 0; i < N; i++) {
        assert_int_equal (ingest_offsets_track (offsets, 1, i * 2), 0);     /* even offsets only */
        order [i] = i;
    }
    srand (7);
    for (int i = N - 1; i > 0; i--) {
        int j = rand () % (i + 1);
        int64_t t = order [i];
        order [i] = order [j];
        order [j] = t;
    }
    int64_t first_unacked = 0;
    for (int i = 0; i < N; i++) {
        int rc = ingest_offsets_ack (offsets, 1, order [i] * 2);
        acked [order [i]] = 1;
        int64_t before = first_unacked;
        while (first_unacked < N && acked [first_unacked])
            first_unacked++;
        assert_int_equal (rc, first_unacked != before ? 1 : 0);
        int64_t expected = first_unacked == 0 ? -1 : (first_unacked - 1) * 2 + 1;
        assert_int_equal (ingest_offsets_commit_point (offsets, 1), expected);
    }
    assert_int_equal (ingest_offsets_in_flight (offsets), 0);
    assert_int_equal (ingest_offsets_commit_point (offsets, 1), (N - 1) * 2 + 1);
    free (order);
    free (acked);
    ingest_offsets_destroy (&offsets);
}

/* The ring wraps around while records come and go. */
static void
test_ring_wraps (void **state)
{
    (void) state;
    ingest_offsets_t *offsets = ingest_offsets_new ();
    int64_t next = 0, oldest = 0;
    for (int round = 0; round < 1000; round++) {
        for (int k = 0; k < 7; k++)
            assert_int_equal (ingest_offsets_track (offsets, 0, next++), 0);
        for (int k = 0; k < 5; k++)
            assert_int_equal (ingest_offsets_ack (offsets, 0, oldest++), 1);
        assert_int_equal (ingest_offsets_commit_point (offsets, 0), oldest);
    }
    assert_int_equal (ingest_offsets_in_flight (offsets), (size_t) (next - oldest));
    ingest_offsets_destroy (&offsets);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_in_order_and_out_of_order),
        cmocka_unit_test (test_gaps_and_refetch),
        cmocka_unit_test (test_partitions_and_revoke),
        cmocka_unit_test (test_shuffled_against_a_model),
        cmocka_unit_test (test_ring_wraps),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
