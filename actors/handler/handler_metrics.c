/* handler_metrics — the handler's series (see handler_metrics.h). */
#include "handler_metrics.h"
#include "envelope.h"
#include "metrics_export.h"
#include "metrics_memo.h"

#include <stdio.h>
#include <string.h>

static metrics_memo_t s_commands = METRICS_MEMO_COUNTER ("dossier_handler_commands_total",
    "Commands answered, by type and outcome (accepted, duplicate, rejected, failed) and error class.",
    "type=\"other\",outcome=\"other\"");
static metrics_memo_t s_latency = METRICS_MEMO_HISTOGRAM ("dossier_handler_command_duration_seconds",
    "A command's arrival at the handler to its reply.", "type=\"other\"",
    metrics_latency_buckets, METRICS_LATENCY_BUCKETS);
static metrics_memo_t s_config = METRICS_MEMO_COUNTER ("dossier_handler_config_requests_total",
    "Requests to the configuration service, by outcome (HTTP status class, not_modified, or error).",
    "outcome=\"other\"");
static metrics_memo_t s_config_latency = METRICS_MEMO_HISTOGRAM ("dossier_handler_config_request_duration_seconds",
    "Configuration-service request durations.", "", metrics_latency_buckets, METRICS_LATENCY_BUCKETS);
static metrics_memo_t s_conflicts = METRICS_MEMO_COUNTER ("dossier_handler_conflicts_total",
    "Appends the store refused for a stale expected version (decided again).", "");

void
handler_metrics_command (const char *type, int status, int duplicate, const char *error, double seconds)
{
    metrics_t *registry = metrics_process ();
    if (!registry)
        return;
    /* (longer than a memo keeps: such a label set is counted under the overflow) */
    char value [ENVELOPE_TYPE_MAX * 2], labels [2 * METRICS_MEMO_LABELS_MAX];
    metrics_label_value (value, sizeof value, type);
    const char *outcome = status < 400 ? (duplicate ? "duplicate" : "accepted") : status < 500 ? "rejected" : "failed";
    if (status < 400 || !error || !*error)
        snprintf (labels, sizeof labels, "type=\"%s\",outcome=\"%s\"", value, outcome);
    else {
        char class [32], escaped [64];
        size_t n = strcspn (error, ".");
        snprintf (class, sizeof class, "%.*s", (int) (n < sizeof class ? n : sizeof class - 1), error);
        metrics_label_value (escaped, sizeof escaped, class);
        snprintf (labels, sizeof labels, "type=\"%s\",outcome=\"%s\",class=\"%s\"", value, outcome, escaped);
    }
    metric_add (metrics_memo_get (&s_commands, registry, labels), 1);
    if (seconds >= 0) {
        snprintf (labels, sizeof labels, "type=\"%s\"", value);
        metric_observe (metrics_memo_get (&s_latency, registry, labels), seconds);
    }
}

void
handler_metrics_conflict (void)
{
    metric_add (metrics_memo_get (&s_conflicts, metrics_process (), ""), 1);
}

void
handler_metrics_config_request (long status, double seconds)
{
    metrics_t *registry = metrics_process ();
    if (!registry)
        return;
    const char *outcome = status == 304 ? "not_modified" : status >= 200 && status < 300 ? "2xx"
                        : status >= 400 && status < 500 ? "4xx" : status >= 500 && status < 600 ? "5xx"
                        : status == 0 ? "error" : "other";
    char labels [48];
    snprintf (labels, sizeof labels, "outcome=\"%s\"", outcome);
    metric_add (metrics_memo_get (&s_config, registry, labels), 1);
    metric_observe (metrics_memo_get (&s_config_latency, registry, ""), seconds);
}
