/* store_metrics — the store's series (see store_metrics.h). Names follow the
 * Prometheus conventions: counters end in _total, durations are in seconds. */
#include "store_metrics.h"

#include <stdio.h>
#include <string.h>

/* Appends per group commit: 1 when idle, up to STORE_SERVER_DRAIN_MAX under load. */
static const double s_batch_bounds [] = { 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000 };

void
store_metrics_init (store_metrics_t *self, metrics_t *registry)
{
    memset (self, 0, sizeof *self);
    if (!registry)
        return;
    static const char *outcomes [STORE_METRICS_OUTCOMES] = { "ok", "duplicate", "conflict", "expired", "error" };
    for (int i = 0; i < STORE_METRICS_OUTCOMES; i++) {
        char labels [48];
        snprintf (labels, sizeof labels, "outcome=\"%s\"", outcomes [i]);
        self->appends [i] = metrics_counter (registry, "dossier_store_appends_total",
                                             "Append requests (one per command attempt) by outcome.", labels);
    }
    self->events = metrics_counter (registry, "dossier_store_events_appended_total",
                                    "Events written to the log.", NULL);
    self->latency = metrics_histogram (registry, "dossier_store_append_duration_seconds",
                                       "Append request taken off the socket to its reply sent (its group commit's time).",
                                       NULL, metrics_latency_buckets, metrics_latency_buckets_count);
    self->batch = metrics_histogram (registry, "dossier_store_batch_appends",
                                     "Append requests sharing one transaction (group commit).", NULL,
                                     s_batch_bounds, sizeof s_batch_bounds / sizeof s_batch_bounds [0]);
    self->head = metrics_gauge (registry, "dossier_store_log_head_position",
                                "Last position written to the log.", NULL);
    self->errors_append = metrics_counter (registry, "dossier_store_backend_errors_total",
                                           "Backend operations that failed.", "operation=\"append\"");
    self->errors_read = metrics_counter (registry, "dossier_store_backend_errors_total",
                                         "Backend operations that failed.", "operation=\"read\"");
}

void
store_metrics_batch (store_metrics_t *self, const uint64_t *appends, uint64_t events, double seconds)
{
    uint64_t total = 0;
    for (int i = 0; i < STORE_METRICS_OUTCOMES; i++) {
        if (appends [i])
            metric_add (self->appends [i], (double) appends [i]);
        total += appends [i];
    }
    if (events)
        metric_add (self->events, (double) events);
    if (total) {
        metric_observe_n (self->latency, seconds, total);
        metric_observe (self->batch, (double) total);
    }
}
