/* test_projection_partitions — two partitions writing one SQLite file give the rows
 * one projector gives; a partition new to the read models starts from the least
 * checkpoint and re-applies idempotently; a rebuild writes every partition's
 * checkpoint; a rebuild in place by partition 0 moves partition 1's checkpoint back,
 * and partition 1 notices and reads again. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include "log.h"
#include "partition.h"
#include "../../actors/projector/projection.h"
#include "test_projection_helpers.h"

/* T_KYC is in partition 1 of 2, T_KYB in partition 0 (test_partition.c). */
static void
s_log (t_log_t *log)
{
    t_kyc_case (log);
    t_kyb_case (log);
    t_kyc_documents (log);
    t_add (log, T_KYB, "DocumentStatusChanged", "{\"document_id\":\"D3\",\"from\":\"AWAITING_UPLOAD\","
           "\"to\":\"UPLOADED\",\"reason\":null,\"changed_at\":\"2026-01-05T00:00:00.000Z\"}");
    t_add (log, T_KYC, "CaseStatusChanged", "{\"to\":\"IN_REVIEW\"}");
    t_add (log, "", "CaseCreated", "{}");                      /* poison, no stream */
}

/* A projection of partition index of count (as the supervisor would set it). */
static projection_t *
s_open (const char *path, int index, int count, int rebuild)
{
    char n [8], i [8];
    snprintf (n, sizeof n, "%d", count);
    snprintf (i, sizeof i, "%d", index);
    setenv ("DOSSIER_PROJECTOR_PARTITIONS", n, 1);
    setenv ("DOSSIER_PROJECTOR_PARTITION", i, 1);
    projection_t *p = rebuild ? projection_new_rebuild (&readmodel_sqlite_ops, path, NULL)
                              : projection_new_with (&readmodel_sqlite_ops, path, NULL);
    unsetenv ("DOSSIER_PROJECTOR_PARTITIONS");
    unsetenv ("DOSSIER_PROJECTOR_PARTITION");
    assert_non_null (p);
    return p;
}

/* The dump without its checkpoint rows, and those rows apart. */
static char *
s_rows (const char *path, char **checkpoints)
{
    char *all = t_dump (path);
    char *rows = calloc (1, strlen (all) + 1), *cps = calloc (1, strlen (all) + 1);
    for (char *line = strtok (all, "\n"); line; line = strtok (NULL, "\n")) {
        char *to = strncmp (line, "checkpoint", 10) == 0 ? cps : rows;
        strcat (to, line);
        strcat (to, "\n");
    }
    free (all);
    if (checkpoints)
        *checkpoints = cps;
    else
        free (cps);
    return rows;
}

static void
s_apply (projection_t *p, const t_log_t *log, size_t from, size_t to, size_t step)
{
    for (size_t at = from; at < to; at += step)
        assert_int_equal (projection_apply (p, log->events + at, to - at < step ? to - at : step), 0);
}

static void
test_two_partitions_equal_one (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    s_log (&log);
    t_tmp_t one, two, rebuilt;
    t_tmp_new (&one, "one.db");
    t_tmp_new (&two, "two.db");
    t_tmp_new (&rebuilt, "rebuilt.db");
    projection_t *p = s_open (one.path, 0, 1, 0);
    s_apply (p, &log, 0, log.count, 3);
    projection_destroy (&p);

    /* two writers on one file, batches cut differently, interleaved; partition 1
     * goes ahead first (partition 0's row does not exist yet when it writes) */
    projection_t *p0 = s_open (two.path, 0, 2, 0), *p1 = s_open (two.path, 1, 2, 0);
    assert_int_equal (projection_apply (p1, log.events, 12), 0);
    for (size_t at = 0; at < log.count; at += 2) {
        size_t n = log.count - at < 2 ? log.count - at : 2;
        assert_int_equal (projection_apply (p1, log.events + at, n), 0);
        if (at % 4 == 2 || at + n >= log.count)
            assert_int_equal (projection_apply (p0, log.events, at + n), 0);
    }
    assert_int_equal (projection_checkpoint (p0), (int64_t) log.count);
    assert_int_equal (projection_checkpoint (p1), (int64_t) log.count);
    projection_stats_t s0, s1;
    projection_stats (p0, &s0);
    projection_stats (p1, &s1);
    assert_true (s0.applied > 0 && s1.applied > 0);
    assert_true (s0.others > 0 && s1.others > 0);
    projection_destroy (&p0);
    projection_destroy (&p1);

    char *cp_one, *cp_two;
    char *r1 = s_rows (one.path, &cp_one), *r2 = s_rows (two.path, &cp_two);
    assert_string_equal (r1, r2);
    char expected [256];
    snprintf (expected, sizeof expected, "checkpointprojector|%zu|\n", log.count);
    assert_string_equal (cp_one, expected);
    snprintf (expected, sizeof expected, "checkpointprojector/0-of-2|%zu|\ncheckpointprojector/1-of-2|%zu|\n",
              log.count, log.count);
    assert_string_equal (cp_two, expected);

    /* a rebuild target holds every partition, and every partition's checkpoint */
    projection_t *pr = s_open (rebuilt.path, 0, 2, 1);
    assert_int_equal (projection_begin (pr), 0);
    assert_int_equal (projection_clear (pr), 0);
    assert_int_equal (projection_apply_in_tx (pr, log.events, log.count), 0);
    assert_int_equal (projection_commit (pr), 0);
    projection_destroy (&pr);
    char *d2 = t_dump (two.path), *dr = t_dump (rebuilt.path);
    assert_string_equal (d2, dr);
    free (d2);
    free (dr);
    free (r1);
    free (r2);
    free (cp_one);
    free (cp_two);
    t_tmp_destroy (&one);
    t_tmp_destroy (&two);
    t_tmp_destroy (&rebuilt);
}

/* One projector took the read models to position k; then two partitions start:
 * each begins at the least checkpoint (k) and the result is the same rows. Then a
 * third partition count starts from the least of all rows (the old ones too). */
static void
test_scale_out_starts_from_least_checkpoint (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    s_log (&log);
    t_tmp_t one, grown;
    t_tmp_new (&one, "one.db");
    t_tmp_new (&grown, "grown.db");
    projection_t *p = s_open (one.path, 0, 1, 0);
    s_apply (p, &log, 0, log.count, 1);
    projection_destroy (&p);

    size_t k = 7;
    p = s_open (grown.path, 0, 1, 0);
    s_apply (p, &log, 0, k, 2);
    projection_destroy (&p);
    projection_t *p0 = s_open (grown.path, 0, 2, 0), *p1 = s_open (grown.path, 1, 2, 0);
    assert_int_equal (projection_checkpoint (p0), (int64_t) k);
    assert_int_equal (projection_checkpoint (p1), (int64_t) k);
    /* one partition goes further before the other starts again from k: replays */
    s_apply (p0, &log, 0, log.count - 2, 3);
    projection_destroy (&p0);
    s_apply (p1, &log, 0, log.count, 4);
    p0 = s_open (grown.path, 0, 2, 0);
    assert_int_equal (projection_checkpoint (p0), (int64_t) log.count - 2);
    s_apply (p0, &log, 0, log.count, 5);
    projection_destroy (&p0);
    projection_destroy (&p1);
    /* three partitions now: the third's row does not exist, the least is "projector" (k) */
    projection_t *q2 = s_open (grown.path, 2, 3, 0);
    assert_int_equal (projection_checkpoint (q2), (int64_t) k);
    projection_destroy (&q2);

    char *r1 = s_rows (one.path, NULL), *r2 = s_rows (grown.path, NULL);
    assert_string_equal (r1, r2);
    free (r1);
    free (r2);
    t_tmp_destroy (&one);
    t_tmp_destroy (&grown);
}

/* Partition 0 rebuilds in place (every partition, one transaction) while partition 1
 * is ahead of the rebuilt head: partition 1's next batch finds its checkpoint moved
 * back, says so (-2), and reading again from there gives the right rows. */
static void
test_rebuild_in_place_moves_other_partitions (void **state)
{
    (void) state;
    t_log_t log = { 0 };
    s_log (&log);
    t_tmp_t one, two;
    t_tmp_new (&one, "one.db");
    t_tmp_new (&two, "two.db");
    projection_t *p = s_open (one.path, 0, 1, 0);
    s_apply (p, &log, 0, log.count, 4);
    projection_destroy (&p);

    projection_t *p0 = s_open (two.path, 0, 2, 0), *p1 = s_open (two.path, 1, 2, 0);
    s_apply (p0, &log, 0, log.count - 1, 3);
    s_apply (p1, &log, 0, log.count - 1, 3);
    size_t k = 9;
    projection_set_all_partitions (p0, 1);
    assert_int_equal (projection_begin (p0), 0);
    assert_int_equal (projection_clear (p0), 0);
    assert_int_equal (projection_apply_in_tx (p0, log.events, k), 0);
    assert_int_equal (projection_commit (p0), 0);
    projection_set_all_partitions (p0, 0);
    assert_int_equal (projection_checkpoint (p0), (int64_t) k);
    /* p1 was at count - 1: its checkpoint row now says k */
    assert_int_equal (projection_apply (p1, log.events + log.count - 1, 1), -2);
    assert_int_equal (projection_checkpoint (p1), (int64_t) k);
    s_apply (p1, &log, k, log.count, 2);
    s_apply (p0, &log, k, log.count, 3);
    projection_destroy (&p0);
    projection_destroy (&p1);
    char *r1 = s_rows (one.path, NULL), *r2 = s_rows (two.path, NULL);
    assert_string_equal (r1, r2);
    free (r1);
    free (r2);
    t_tmp_destroy (&one);
    t_tmp_destroy (&two);
}

int
main (void)
{
    log_init ("test", "error");
    unsetenv ("DOSSIER_INSTANCE");
    unsetenv ("DOSSIER_INSTANCES");
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_two_partitions_equal_one),
        cmocka_unit_test (test_scale_out_starts_from_least_checkpoint),
        cmocka_unit_test (test_rebuild_in_place_moves_other_partitions),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
