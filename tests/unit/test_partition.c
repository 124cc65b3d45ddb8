/* test_partition — the partition function is fixed forever (checkpoints depend on
 * it): known values, a fair split of case ids, checkpoint names, and the settings
 * from config and from the supervisor's DOSSIER_INSTANCE(S). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "ids.h"
#include "partition.h"

static void
test_known_values (void **state)
{
    (void) state;
    /* the same numbers tests/e2e/test_scaling.py computes in Python */
    assert_int_equal (partition_hash (""), 2872998923u);
    assert_int_equal (partition_hash ("a"), 444641715u);
    assert_int_equal (partition_hash ("11111111-1111-5111-8111-111111111111"), 2789490113u);
    assert_int_equal (partition_of ("11111111-1111-5111-8111-111111111111", 2), 1);
    assert_int_equal (partition_of ("22222222-2222-5222-8222-222222222222", 2), 0);
    assert_int_equal (partition_of ("anything", 1), 0);
    assert_int_equal (partition_of ("anything", 0), 0);
}

/* UUIDv5 case ids (what the handler makes) spread over 2, 3 and 4 partitions. */
static void
test_case_ids_spread (void **state)
{
    (void) state;
    for (int n = 2; n <= 4; n++) {
        int counts [4] = { 0 };
        for (int i = 0; i < 4000; i++) {
            char name [32], id [IDS_UUID_LEN];
            snprintf (name, sizeof name, "rec:%d", i);
            ids_uuid5 (name, id);
            counts [partition_of (id, n)]++;
        }
        for (int p = 0; p < n; p++)
            assert_true (counts [p] > 4000 / n * 8 / 10);
    }
}

static void
test_checkpoint_names (void **state)
{
    (void) state;
    char name [PARTITION_NAME_MAX];
    assert_int_equal (partition_checkpoint_name (0, 1, name, sizeof name), 0);
    assert_string_equal (name, "projector");
    assert_int_equal (partition_checkpoint_name (1, 2, name, sizeof name), 0);
    assert_string_equal (name, "projector/1-of-2");
    assert_int_equal (partition_checkpoint_name (1023, 1024, name, sizeof name), 0);
    assert_string_equal (name, "projector/1023-of-1024");
    assert_int_equal (partition_checkpoint_name (1, 2, name, 8), -1);
}

static void
s_env (const char *n, const char *i, const char *instances, const char *instance)
{
    const char *names [] = { "DOSSIER_PROJECTOR_PARTITIONS", "DOSSIER_PROJECTOR_PARTITION",
                             "DOSSIER_INSTANCES", "DOSSIER_INSTANCE" };
    const char *values [] = { n, i, instances, instance };
    for (int k = 0; k < 4; k++)
        if (values [k])
            setenv (names [k], values [k], 1);
        else
            unsetenv (names [k]);
}

static void
test_settings (void **state)
{
    (void) state;
    int index = -1, count = -1;
    char err [160];
    s_env (NULL, NULL, NULL, NULL);
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), 0);
    assert_int_equal (index, 0);
    assert_int_equal (count, 1);
    /* under the supervisor: instance 1 of 2 */
    s_env (NULL, NULL, "2", "1");
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), 0);
    assert_int_equal (index, 1);
    assert_int_equal (count, 2);
    /* explicit settings win */
    s_env ("3", "2", "2", "1");
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), 0);
    assert_int_equal (index, 2);
    assert_int_equal (count, 3);
    /* a container's DOSSIER_INSTANCE is a host name: no partition, one of one */
    s_env (NULL, NULL, NULL, "projector-7f9c");
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), 0);
    assert_int_equal (index, 0);
    assert_int_equal (count, 1);
    /* ... but not with several partitions */
    s_env ("2", NULL, NULL, "projector-7f9c");
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), -1);
    s_env ("2", "2", NULL, NULL);
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), -1);
    s_env ("0", NULL, NULL, NULL);
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), -1);
    s_env ("x", NULL, NULL, NULL);
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), -1);
    /* auto: no index yet (a lease gives one), the count as usual; under the
     * supervisor, the explicit auto wins over DOSSIER_INSTANCE */
    s_env ("2", "auto", "3", "2");
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), 0);
    assert_int_equal (index, PARTITION_AUTO);
    assert_int_equal (count, 2);
    s_env (NULL, "auto", NULL, "projector-7f9c");
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), 0);
    assert_int_equal (index, PARTITION_AUTO);
    assert_int_equal (count, 1);
    /* only the explicit setting may say auto */
    s_env ("2", NULL, NULL, "auto");
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), -1);
    s_env ("2", "Auto", NULL, NULL);
    assert_int_equal (partition_from_config (NULL, &index, &count, err, sizeof err), -1);
    s_env (NULL, NULL, NULL, NULL);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_known_values),
        cmocka_unit_test (test_case_ids_spread),
        cmocka_unit_test (test_checkpoint_names),
        cmocka_unit_test (test_settings),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
