/* test_metrics — the Prometheus registry: series identity, type safety, counter
 * monotonicity, histogram buckets, label escaping and the exact text format. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "metrics.h"
#include "metrics_memo.h"

#include <math.h>
#include <stdlib.h>
#include <stdio.h>
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

static void
test_observe_n_counts_a_batch (void **state)
{
    (void) state;
    metrics_t *m = metrics_new (NULL);
    const double bounds [] = { 0.01, 0.1 };
    metric_t *h = metrics_histogram (m, "dossier_batch_seconds", "Batch.", NULL, bounds, 2);
    metric_observe_n (h, 0.0625, 3);        /* exact in binary: the sum prints exactly */
    metric_observe_n (h, 0.5, 0);           /* nothing observed */
    char *text = metrics_render (m, NULL);
    assert_string_equal (text,
        "# HELP dossier_batch_seconds Batch.\n"
        "# TYPE dossier_batch_seconds histogram\n"
        "dossier_batch_seconds_bucket{le=\"0.01\"} 0\n"
        "dossier_batch_seconds_bucket{le=\"0.1\"} 3\n"
        "dossier_batch_seconds_bucket{le=\"+Inf\"} 3\n"
        "dossier_batch_seconds_sum 0.1875\n"
        "dossier_batch_seconds_count 3\n");
    free (text);
    metrics_destroy (&m);
}

static void
test_memo_finds_series_and_caps_label_sets (void **state)
{
    (void) state;
    metrics_t *m = metrics_new (NULL);
    metrics_memo_t memo = METRICS_MEMO_COUNTER ("dossier_in_total", "In.", "type=\"other\"");
    assert_null (metrics_memo_get (&memo, NULL, "type=\"a\""));         /* no registry: nothing kept */
    assert_int_equal (memo.n, 0);
    metric_t *a = metrics_memo_get (&memo, m, "type=\"a\"");
    assert_non_null (a);
    assert_ptr_equal (metrics_memo_get (&memo, m, "type=\"a\""), a);
    assert_ptr_equal (metrics_counter (m, "dossier_in_total", NULL, "type=\"a\""), a);
    char labels [64];
    for (int i = 1; i < METRICS_MEMO_SLOTS; i++) {
        snprintf (labels, sizeof labels, "type=\"t%d\"", i);
        metric_add (metrics_memo_get (&memo, m, labels), 1);
    }
    assert_int_equal (memo.n, METRICS_MEMO_SLOTS);
    /* past the cap: every new label set is the overflow series */
    metric_t *other = metrics_memo_get (&memo, m, "type=\"new\"");
    assert_non_null (other);
    assert_ptr_equal (metrics_memo_get (&memo, m, "type=\"newer\""), other);
    assert_ptr_equal (metrics_counter (m, "dossier_in_total", NULL, "type=\"other\""), other);
    metrics_memo_t hist = METRICS_MEMO_HISTOGRAM ("dossier_h_seconds", "H.", "", metrics_latency_buckets,
                                                  metrics_latency_buckets_count);
    metric_observe (metrics_memo_get (&hist, m, "route=\"x\""), 0.2);
    assert_true (metric_value (metrics_memo_get (&hist, m, "route=\"x\"")) == 1);
    metrics_destroy (&m);
}

int
main (void)
{
    const struct CMUnitTest tests [] = {
        cmocka_unit_test (test_counters_and_gauges_render_exactly),
        cmocka_unit_test (test_histogram_buckets_are_cumulative),
        cmocka_unit_test (test_bad_names_types_and_labels),
        cmocka_unit_test (test_observe_n_counts_a_batch),
        cmocka_unit_test (test_memo_finds_series_and_caps_label_sets),
    };
    return cmocka_run_group_tests (tests, NULL, NULL);
}
