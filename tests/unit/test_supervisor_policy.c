/* test_supervisor_policy — the supervisor's pure parts: backoff doubling and its
 * ceiling, the intensity window (give up past N restarts in P seconds, forget old
 * ones), and the process table (config order, env overrides, bad entries, status). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "../../supervisor/process_table.h"
#include "../../supervisor/restart_policy.h"

static restart_policy_t
s_policy (int64_t backoff, int64_t max, int intensity, int64_t period_ms)
{
    restart_policy_t policy = { backoff, max, intensity, period_ms };
    return policy;
}

static void
test_backoff_doubles_to_ceiling (void **state)
{
    (void) state;
    restart_policy_t policy = s_policy (100, 5000, 5, 30000);
    assert_int_equal (restart_policy_backoff (&policy, 1), 100);
    assert_int_equal (restart_policy_backoff (&policy, 2), 200);
    assert_int_equal (restart_policy_backoff (&policy, 3), 400);
    assert_int_equal (restart_policy_backoff (&policy, 6), 3200);
    assert_int_equal (restart_policy_backoff (&policy, 7), 5000);
    assert_int_equal (restart_policy_backoff (&policy, 1000), 5000);   /* no overflow */
    assert_int_equal (restart_policy_backoff (&policy, 0), 100);
    restart_policy_t zero = s_policy (0, 0, 5, 1000);
    assert_int_equal (restart_policy_backoff (&zero, 10), 0);
}

static void
test_defaults_match_config (void **state)
{
    (void) state;
    restart_policy_t policy;
    restart_policy_defaults (&policy);
    assert_int_equal (policy.backoff_ms, 100);
    assert_int_equal (policy.backoff_max_ms, 5000);
    assert_int_equal (policy.intensity, 5);
    assert_int_equal (policy.period_ms, 30000);
    assert_int_equal (restart_policy_normalise (&policy), 0);
}

static void
test_normalise_clamps (void **state)
{
    (void) state;
    restart_policy_t policy = s_policy (-5, -10, 1000, 0);
    assert_int_equal (restart_policy_normalise (&policy), -2);
    assert_int_equal (policy.backoff_ms, 0);
    assert_int_equal (policy.backoff_max_ms, 0);
    assert_int_equal (policy.intensity, RESTART_POLICY_HISTORY_MAX - 1);
    assert_true (policy.period_ms > 0);
    policy = s_policy (500, 100, 3, 1000);
    assert_int_equal (restart_policy_normalise (&policy), -2);
    assert_int_equal (policy.backoff_max_ms, 500);
}

static void
test_gives_up_past_intensity (void **state)
{
    (void) state;
    restart_policy_t policy = s_policy (100, 5000, 5, 30000);
    restart_history_t history = { .count = 0 };
    int64_t delay = -1;
    int count = 0;
    int64_t expected [] = { 100, 200, 400, 800, 1600 };
    for (int i = 0; i < 5; i++) {
        assert_int_equal (restart_policy_decide (&policy, &history, 1000 + i * 10, &delay, &count),
                          RESTART_POLICY_RESTART);
        assert_int_equal (count, i + 1);
        assert_int_equal (delay, expected [i]);
    }
    /* the sixth within 30 s: "giving up on handler#1: 6 restarts in 30 s" */
    assert_int_equal (restart_policy_decide (&policy, &history, 1100, &delay, &count),
                      RESTART_POLICY_GIVE_UP);
    assert_int_equal (count, 6);
}

static void
test_window_forgets_old_restarts (void **state)
{
    (void) state;
    restart_policy_t policy = s_policy (100, 5000, 2, 10000);
    restart_history_t history = { .count = 0 };
    int64_t delay;
    int count;
    assert_int_equal (restart_policy_decide (&policy, &history, 0, &delay, &count), RESTART_POLICY_RESTART);
    assert_int_equal (restart_policy_decide (&policy, &history, 5000, &delay, &count), RESTART_POLICY_RESTART);
    assert_int_equal (delay, 200);
    /* at 10 s the restart at 0 has left the window: 2 in it again, allowed */
    assert_int_equal (restart_policy_decide (&policy, &history, 10000, &delay, &count), RESTART_POLICY_RESTART);
    assert_int_equal (count, 2);
    assert_int_equal (delay, 200);
    /* a process stable for a whole period starts again from the first delay */
    assert_int_equal (restart_history_count (&history, &policy, 30000), 0);
    assert_int_equal (restart_policy_decide (&policy, &history, 30000, &delay, &count), RESTART_POLICY_RESTART);
    assert_int_equal (count, 1);
    assert_int_equal (delay, 100);
    /* three within the window: give up */
    restart_policy_decide (&policy, &history, 30001, &delay, &count);
    assert_int_equal (restart_policy_decide (&policy, &history, 30002, &delay, &count), RESTART_POLICY_GIVE_UP);
}

static void
test_intensity_zero_never_restarts (void **state)
{
    (void) state;
    restart_policy_t policy = s_policy (100, 5000, 0, 30000);
    restart_history_t history = { .count = 0 };
    assert_int_equal (restart_policy_decide (&policy, &history, 5, NULL, NULL), RESTART_POLICY_GIVE_UP);
}

static void
test_history_never_overflows (void **state)
{
    (void) state;
    /* not normalised: intensity above the cap must still stay within the array */
    restart_policy_t policy = s_policy (1, 1, 1000, 1000000);
    restart_history_t history = { .count = 0 };
    for (int i = 0; i < 500; i++)
        restart_policy_decide (&policy, &history, i, NULL, NULL);
    assert_true (history.count <= RESTART_POLICY_HISTORY_MAX);
}

static zconfig_t *
s_config (const char *text)
{
    zconfig_t *tree = zconfig_str_load (text);
    assert_non_null (tree);
    return tree;
}

static void
test_table_loads_in_file_order (void **state)
{
    (void) state;
    unsetenv ("DOSSIER_PROCESSES_HANDLER");
    zconfig_t *tree = s_config (
        "processes\n"
        "    store = 1\n"
        "    broker = 1\n"
        "    handler = 3\n"
        "    gateway = 0\n"
        "    ingest = 1\n");
    process_table_t *table = process_table_new ();
    assert_int_equal (process_table_load (table, tree), 0);
    assert_int_equal (process_table_size (table), 6);
    assert_int_equal (process_table_groups (table), 5);
    const char *names [] = { "store", "broker", "handler", "handler", "handler", "ingest" };
    int instances [] = { 0, 0, 0, 1, 2, 0 };
    for (size_t i = 0; i < 6; i++) {
        process_t *proc = process_table_at (table, i);
        assert_string_equal (proc->name, names [i]);
        assert_int_equal (proc->instance, instances [i]);
        assert_int_equal (proc->state, PROCESS_STOPPED);
        assert_int_equal (proc->pid, 0);
        assert_int_equal (proc->ready_fd, -1);
    }
    assert_string_equal (process_table_group_name (table, 3), "gateway");
    assert_int_equal (process_table_at (table, 5)->group, 4);
    assert_null (process_table_at (table, 6));
    assert_null (process_table_group_name (table, 5));
    process_table_destroy (&table);
    assert_null (table);
    zconfig_destroy (&tree);
}

static void
test_table_env_override (void **state)
{
    (void) state;
    zconfig_t *tree = s_config ("processes\n    store = 1\n    handler = 2\n");
    setenv ("DOSSIER_PROCESSES_HANDLER", "4", 1);
    process_table_t *table = process_table_new ();
    assert_int_equal (process_table_load (table, tree), 0);
    assert_int_equal (process_table_size (table), 5);
    process_table_destroy (&table);

    setenv ("DOSSIER_PROCESSES_HANDLER", "lots", 1);
    table = process_table_new ();
    assert_int_equal (process_table_load (table, tree), -2);
    assert_int_equal (process_table_size (table), 1);       /* handler skipped */
    process_table_destroy (&table);
    unsetenv ("DOSSIER_PROCESSES_HANDLER");
    zconfig_destroy (&tree);
}

static void
test_table_refuses_bad_entries (void **state)
{
    (void) state;
    zconfig_t *tree = s_config (
        "processes\n"
        "    store = 1\n"
        "    Evil = 1\n"
        "    handler = -1\n"
        "    gateway = 9999\n"
        "    notifier = x\n"
        "    store = 1\n"
        "    ingest = 1\n");
    process_table_t *table = process_table_new ();
    assert_int_equal (process_table_load (table, tree), -2);
    assert_int_equal (process_table_size (table), 2);
    assert_string_equal (process_table_at (table, 1)->name, "ingest");
    assert_int_equal (process_table_add (table, "../bin/sh", 1), -2);
    assert_int_equal (process_table_add (table, "", 1), -2);
    assert_int_equal (process_table_add (table, "a.b", 1), -2);
    assert_int_equal (process_table_add (table, "abcdefghijklmnopqrstuvwxyz0123456", 1), -2);
    assert_int_equal (process_table_add (table, "x-y_1", 2), 0);
    process_table_destroy (&table);
    process_table_destroy (&table);         /* NULL is fine */
    zconfig_destroy (&tree);
}

static void
test_table_defaults_without_config (void **state)
{
    (void) state;
    process_table_t *table = process_table_new ();
    assert_int_equal (process_table_load (table, NULL), 0);
    assert_int_equal (process_table_groups (table), 8);
    assert_string_equal (process_table_group_name (table, 0), "store");
    assert_string_equal (process_table_group_name (table, 5), "scheduler");
    assert_string_equal (process_table_group_name (table, 7), "ingest");
    process_table_destroy (&table);
}

static void
test_table_find_pid_and_status (void **state)
{
    (void) state;
    process_table_t *table = process_table_new ();
    assert_int_equal (process_table_add (table, "store", 1), 0);
    assert_int_equal (process_table_add (table, "handler", 2), 0);
    process_t *handler1 = process_table_at (table, 2);
    handler1->pid = 4242;
    handler1->state = PROCESS_RUNNING;
    handler1->started_ms = 1000;
    handler1->restarts = 3;
    process_table_at (table, 0)->state = PROCESS_FAILED;
    assert_ptr_equal (process_table_find_pid (table, 4242), handler1);
    assert_null (process_table_find_pid (table, 1));
    assert_null (process_table_find_pid (table, 0));

    char *text = process_table_status_json (table, 13500);
    assert_non_null (text);
    json_error_t error;
    json_t *root = json_loads (text, 0, &error);
    assert_non_null (root);
    json_t *list = json_object_get (root, "processes");
    assert_int_equal (json_array_size (list), 3);
    json_t *row = json_array_get (list, 2);
    assert_string_equal (json_string_value (json_object_get (row, "name")), "handler");
    assert_int_equal (json_integer_value (json_object_get (row, "instance")), 1);
    assert_int_equal (json_integer_value (json_object_get (row, "pid")), 4242);
    assert_string_equal (json_string_value (json_object_get (row, "state")), "running");
    assert_true (json_real_value (json_object_get (row, "uptime_s")) == 12.5);
    assert_int_equal (json_integer_value (json_object_get (row, "restarts")), 3);
    row = json_array_get (list, 0);
    assert_string_equal (json_string_value (json_object_get (row, "state")), "failed");
    assert_true (json_real_value (json_object_get (row, "uptime_s")) == 0.0);
    assert_non_null (strstr (text, "\"uptime_s\":12.5"));
    json_decref (root);
    free (text);
    process_table_destroy (&table);
}

static void
test_state_names (void **state)
{
    (void) state;
    assert_string_equal (process_state_name (PROCESS_STARTING), "starting");
    assert_string_equal (process_state_name (PROCESS_RUNNING), "running");
    assert_string_equal (process_state_name (PROCESS_BACKOFF), "backoff");
    assert_string_equal (process_state_name (PROCESS_FAILED), "failed");
    assert_string_equal (process_state_name (PROCESS_STOPPED), "stopped");
    assert_string_equal (process_state_name ((process_state_t) 99), "unknown");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_backoff_doubles_to_ceiling),
        cmocka_unit_test (test_defaults_match_config),
        cmocka_unit_test (test_normalise_clamps),
        cmocka_unit_test (test_gives_up_past_intensity),
        cmocka_unit_test (test_window_forgets_old_restarts),
        cmocka_unit_test (test_intensity_zero_never_restarts),
        cmocka_unit_test (test_history_never_overflows),
        cmocka_unit_test (test_table_loads_in_file_order),
        cmocka_unit_test (test_table_env_override),
        cmocka_unit_test (test_table_refuses_bad_entries),
        cmocka_unit_test (test_table_defaults_without_config),
        cmocka_unit_test (test_table_find_pid_and_status),
        cmocka_unit_test (test_state_names),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
