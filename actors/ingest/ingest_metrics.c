/* ingest_metrics — ingest's series (see ingest_metrics.h). */
#include "ingest_metrics.h"
#include "ingest_kafka.h"
#include "ingest_pending.h"
#include "metrics_export.h"
#include "metrics_memo.h"

#include <stdio.h>
#include <string.h>

static metrics_memo_t s_records = METRICS_MEMO_COUNTER ("dossier_ingest_records_total",
    "Records received, by source (cli, kafka; a retry or re-fetch is not a new record).", "source=\"other\"");
static metrics_memo_t s_results = METRICS_MEMO_COUNTER ("dossier_ingest_results_total",
    "Answers to record submissions (one per attempt), by source, outcome (accepted, rejected, failed) and error class.",
    "source=\"other\",outcome=\"other\"");
static metrics_memo_t s_dead = METRICS_MEMO_COUNTER ("dossier_ingest_dead_letters_total",
    "Kafka records written to the dead-letter topic (delivery confirmed).", "");
static metrics_memo_t s_retries = METRICS_MEMO_COUNTER ("dossier_ingest_kafka_retries_total",
    "Kafka records submitted again after a transient failure.", "");
static metrics_memo_t s_in_flight = METRICS_MEMO_GAUGE ("dossier_ingest_commands_in_flight",
    "Commands sent (or queued behind one of the same id) and not yet answered.", "");
static metrics_memo_t s_window = METRICS_MEMO_GAUGE ("dossier_ingest_kafka_window_commands",
    "Kafka commands ingest may keep in flight now (the adaptive window: it shrinks when the store's "
    "answers slow down or fail, grows while they stay fast).", "");
static metrics_memo_t s_lag = METRICS_MEMO_GAUGE ("dossier_ingest_kafka_consumer_lag",
    "Records of a partition after the group's committed offset (the stored one before the first commit); "
    "0 once this instance no longer owns the partition.", "topic=\"other\",partition=\"other\"");

static const char *
s_source (int source)
{
    return source == INGEST_SOURCE_CLI ? "cli" : source == INGEST_SOURCE_KAFKA ? "kafka" : "other";
}

void
ingest_metrics_record (int source)
{
    char labels [48];
    snprintf (labels, sizeof labels, "source=\"%s\"", s_source (source));
    metric_add (metrics_memo_get (&s_records, metrics_process (), labels), 1);
}

void
ingest_metrics_result (int source, int status, const char *error)
{
    metrics_t *registry = metrics_process ();
    if (!registry)
        return;
    char labels [160];
    if (status >= 200 && status < 300)
        snprintf (labels, sizeof labels, "source=\"%s\",outcome=\"accepted\"", s_source (source));
    else {
        char class [32], escaped [64];
        error = error && *error ? error : "unknown";
        size_t n = strcspn (error, ".");
        snprintf (class, sizeof class, "%.*s", (int) (n < sizeof class ? n : sizeof class - 1), error);
        metrics_label_value (escaped, sizeof escaped, class);
        snprintf (labels, sizeof labels, "source=\"%s\",outcome=\"%s\",class=\"%s\"", s_source (source),
                  status >= 400 && status < 500 ? "rejected" : "failed", escaped);
    }
    metric_add (metrics_memo_get (&s_results, registry, labels), 1);
}

void
ingest_metrics_dead_letter (void)
{
    metric_add (metrics_memo_get (&s_dead, metrics_process (), ""), 1);
}

void
ingest_metrics_kafka_retry (void)
{
    metric_add (metrics_memo_get (&s_retries, metrics_process (), ""), 1);
}

void
ingest_metrics_in_flight (size_t commands)
{
    metric_set (metrics_memo_get (&s_in_flight, metrics_process (), ""), (double) commands);
}

void
ingest_metrics_kafka_window (size_t commands)
{
    metric_set (metrics_memo_get (&s_window, metrics_process (), ""), (double) commands);
}

void
ingest_metrics_kafka_lag (const char *topic, int32_t partition, int64_t lag)
{
    metrics_t *registry = metrics_process ();
    if (!registry)
        return;
    char value [128], labels [METRICS_MEMO_LABELS_MAX];
    metrics_label_value (value, sizeof value, topic);
    snprintf (labels, sizeof labels, "topic=\"%s\",partition=\"%d\"", value, (int) partition);
    metric_set (metrics_memo_get (&s_lag, registry, labels), (double) lag);
}
