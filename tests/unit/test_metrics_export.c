/* test_metrics_export — the textfile export: the process file appears, is replaced
 * whole, merges with other processes' files into one family each, goes stale and
 * is removed at stop. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics_export.h"

#include <czmq.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static void
test_merge_groups_families (void **state)
{
    (void) state;
    const char *store =
        "# HELP dossier_messages_total Messages.\n"
        "# TYPE dossier_messages_total counter\n"
        "dossier_messages_total{process=\"store\",type=\"store.append\"} 5\n"
        "# HELP dossier_append_seconds Append latency.\n"
        "# TYPE dossier_append_seconds histogram\n"
        "dossier_append_seconds_bucket{process=\"store\",le=\"+Inf\"} 1\n"
        "dossier_append_seconds_sum{process=\"store\"} 0.5\n"
        "dossier_append_seconds_count{process=\"store\"} 1\n";
    const char *broker =
        "# HELP dossier_messages_total Other help, ignored.\n"
        "# TYPE dossier_messages_total counter\n"
        "dossier_messages_total{process=\"broker\",type=\"cmd.create_case\"} 7\n";
    const char *texts [] = { store, NULL, broker, "garbage without newline" };
    size_t size = 0;
    char *merged = metrics_export_merge (texts, 4, &size);
    assert_non_null (merged);
    assert_int_equal (size, strlen (merged));
    assert_string_equal (merged,
        "# HELP dossier_messages_total Messages.\n"
        "# TYPE dossier_messages_total counter\n"
        "dossier_messages_total{process=\"store\",type=\"store.append\"} 5\n"
        "dossier_messages_total{process=\"broker\",type=\"cmd.create_case\"} 7\n"
        "# HELP dossier_append_seconds Append latency.\n"
        "# TYPE dossier_append_seconds histogram\n"
        "dossier_append_seconds_bucket{process=\"store\",le=\"+Inf\"} 1\n"
        "dossier_append_seconds_sum{process=\"store\"} 0.5\n"
        "dossier_append_seconds_count{process=\"store\"} 1\n"
        "garbage without newline\n");
    free (merged);
}

static void
test_export_file_collect_and_stop (void **state)
{
    (void) state;
    char dir [] = "/tmp/dossier-metrics-XXXXXX";
    assert_non_null (mkdtemp (dir));
    unsetenv ("DOSSIER_CONFIG");
    setenv ("DOSSIER_DATA_DIR", dir, 1);
    setenv ("DOSSIER_INSTANCE", "2", 1);
    config_t *config = config_load (NULL);
    assert_non_null (config);

    assert_null (metrics_process ());
    assert_int_equal (metrics_export_start (config, "handler"), 0);
    metrics_t *m = metrics_process ();
    assert_non_null (m);
    metric_add (metrics_counter (m, "dossier_handler_commands_total", "Commands.", "type=\"cmd.create_case\""), 2);
    assert_int_equal (metrics_export_flush (), 0);

    char path [256];
    snprintf (path, sizeof path, "%s/run/metrics/handler-2.prom", dir);
    struct stat info;
    assert_int_equal (stat (path, &info), 0);

    /* Another process's file, and a stale one that must not be served. */
    char other [256], stale [256];
    snprintf (other, sizeof other, "%s/run/metrics/store-0.prom", dir);
    snprintf (stale, sizeof stale, "%s/run/metrics/projector-0.prom", dir);
    FILE *f = fopen (other, "w");
    fputs ("# TYPE dossier_store_head_position gauge\ndossier_store_head_position{process=\"store\"} 42\n", f);
    fclose (f);
    f = fopen (stale, "w");
    fputs ("dossier_stale 1\n", f);
    fclose (f);
    time_t old = time (NULL) - 3600;
    struct timespec times [2] = { { old, 0 }, { old, 0 } };
    assert_int_equal (utimensat (AT_FDCWD, stale, times, 0), 0);

    char *all = metrics_export_collect (config, NULL, 15000, NULL);
    assert_non_null (all);
    assert_non_null (strstr (all, "dossier_store_head_position{process=\"store\"} 42\n"));
    assert_non_null (strstr (all,
        "dossier_handler_commands_total{process=\"handler\",instance=\"2\",type=\"cmd.create_case\"} 2\n"));
    assert_null (strstr (all, "dossier_stale"));
    free (all);
    /* With the caller's own rendering, its (older) file is left out. */
    all = metrics_export_collect (config, "# TYPE dossier_gateway_up gauge\ndossier_gateway_up 1\n", 15000, NULL);
    assert_non_null (all);
    assert_non_null (strstr (all, "dossier_gateway_up 1\n"));
    assert_non_null (strstr (all, "dossier_store_head_position{process=\"store\"} 42\n"));
    assert_null (strstr (all, "dossier_handler_commands_total"));
    free (all);

    metrics_export_stop ();
    assert_null (metrics_process ());
    assert_int_not_equal (stat (path, &info), 0);     /* a stopped process is not scraped */
    unlink (other);
    unlink (stale);
    char sub [256];
    snprintf (sub, sizeof sub, "%s/run/metrics", dir);
    assert_int_equal (rmdir (sub), 0);
    snprintf (sub, sizeof sub, "%s/run", dir);
    assert_int_equal (rmdir (sub), 0);
    assert_int_equal (rmdir (dir), 0);
    config_destroy (&config);
    unsetenv ("DOSSIER_DATA_DIR");
    unsetenv ("DOSSIER_INSTANCE");
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_merge_groups_families),
        cmocka_unit_test (test_export_file_collect_and_stop),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
