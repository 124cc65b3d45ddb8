/* test_metrics — the Prometheus registry: series identity, type safety, counter
 * monotonicity, histogram buckets, label escaping and the exact text format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static void
test_counters_and_gauges_render_exactly (void **state)
{
    (void) state;
    metrics_t *m = metrics_new ("process=\"store\"");
    assert_non_null (m);
    metric_t *appended = metrics_counter (m, "dossier_store_appends_total", "Appends done.", "outcome=\"appended\"");
    metric_t *again = metrics_counter (m, "dossier_store_appends_total", "ignored", "outcome=\"appended\"");
    assert_ptr_equal (appended, again);
    metric_t *dup = metrics_counter (m, "dossier_store_appends_total", NULL, "outcome=\"duplicate\"");
    metric_t *head = metrics_gauge (m, "dossier_store_head_position", "Last position.\nOf the log.", NULL);
    metric_add (appended, 3);
    metric_add (appended, -5);              /* a counter never goes down */
    metric_add (dup, 1);
    metric_set (head, 1234);
    metric_set (appended, 99);              /* not a gauge: ignored */
    assert_true (metric_value (appended) == 3);
    size_t size = 0;
    char *text = metrics_render (m, &size);
    assert_non_null (text);
    assert_int_equal (size, strlen (text));
    assert_string_equal (text,
        "# HELP dossier_store_appends_total Appends done.\n"
        "# TYPE dossier_store_appends_total counter\n"
        "dossier_store_appends_total{process=\"store\",outcome=\"appended\"} 3\n"
        "dossier_store_appends_total{process=\"store\",outcome=\"duplicate\"} 1\n"
        "# HELP dossier_store_head_position Last position.\\nOf the log.\n"
        "# TYPE dossier_store_head_position gauge\n"
        "dossier_store_head_position{process=\"store\"} 1234\n");
    free (text);
    metrics_destroy (&m);
    assert_null (m);
}

static void
test_histogram_buckets_are_cumulative (void **state)
{
    (void) state;
    metrics_t *m = metrics_new (NULL);
    const double bounds [] = { 0.001, 0.01, 0.1 };
    metric_t *h = metrics_histogram (m, "dossier_x_seconds", "Latency.", "route=\"/v1/cases\"", bounds, 3);
    assert_non_null (h);
    metric_observe (h, 0.0005);
    metric_observe (h, 0.001);              /* on the bound: le is inclusive */
    metric_observe (h, 0.05);
    metric_observe (h, 3);
    metric_observe (h, NAN);                /* ignored */
    assert_true (metric_value (h) == 4);
    char *text = metrics_render (m, NULL);
    assert_string_equal (text,
        "# HELP dossier_x_seconds Latency.\n"
        "# TYPE dossier_x_seconds histogram\n"
        "dossier_x_seconds_bucket{route=\"/v1/cases\",le=\"0.001\"} 2\n"
        "dossier_x_seconds_bucket{route=\"/v1/cases\",le=\"0.01\"} 2\n"
        "dossier_x_seconds_bucket{route=\"/v1/cases\",le=\"0.1\"} 3\n"
        "dossier_x_seconds_bucket{route=\"/v1/cases\",le=\"+Inf\"} 4\n"
        "dossier_x_seconds_sum{route=\"/v1/cases\"} 3.0515\n"
        "dossier_x_seconds_count{route=\"/v1/cases\"} 4\n");
    free (text);
    metrics_destroy (&m);
}

static void
test_bad_names_types_and_labels (void **state)
{
    (void) state;
    metrics_t *m = metrics_new (NULL);
    assert_null (metrics_counter (m, "9starts_with_digit", "", NULL));
    assert_null (metrics_counter (m, "has space", "", NULL));
    assert_null (metrics_counter (m, "", "", NULL));
    assert_null (metrics_counter (NULL, "ok", "", NULL));
    assert_non_null (metrics_counter (m, "dossier_a_total", "", NULL));
    assert_null (metrics_gauge (m, "dossier_a_total", "", NULL));          /* same series, other type */
    assert_null (metrics_gauge (m, "dossier_a_total", "", "x=\"1\""));     /* same family, other type */
    assert_null (metrics_histogram (m, "dossier_h", "", NULL, NULL, 0));
    metric_add (NULL, 1);                   /* NULL metrics are ignored */
    metric_observe (NULL, 1);
    assert_true (metric_value (NULL) == 0);

    char out [16];
    assert_int_equal (metrics_label_value (out, sizeof out, "a\"b\\c\nd"), 0);
    assert_string_equal (out, "a\\\"b\\\\c\\nd");
    assert_int_equal (metrics_label_value (out, 6, "abcdefgh"), -1);
    assert_string_equal (out, "abcde");
    assert_int_equal (metrics_label_value (out, 3, "\"\"\""), -1);
    assert_string_equal (out, "\\\"");      /* never half an escape */
    metrics_destroy (&m);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_counters_and_gauges_render_exactly),
        cmocka_unit_test (test_histogram_buckets_are_cumulative),
        cmocka_unit_test (test_bad_names_types_and_labels),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
