/* metrics_memo — a small array of (labels, series) per family (see
 * metrics_memo.h). Linear search on purpose: a family has a handful of label
 * sets, and a few strcmp are cheaper than hashing the key and taking a lock. */
#include "metrics_memo.h"

#include <string.h>

static metric_t *
s_lookup (metrics_memo_t *memo, metrics_t *registry, const char *labels)
{
    switch (memo->type) {
        case METRICS_COUNTER:
            return metrics_counter (registry, memo->name, memo->help, labels);
        case METRICS_GAUGE:
            return metrics_gauge (registry, memo->name, memo->help, labels);
        case METRICS_HISTOGRAM:
            return metrics_histogram (registry, memo->name, memo->help, labels, memo->bounds, memo->n_bounds);
    }
    return NULL;
}

metric_t *
metrics_memo_get (metrics_memo_t *memo, metrics_t *registry, const char *labels)
{
    if (!memo || !registry)
        return NULL;
    if (registry != memo->registry) {
        memo->registry = registry;
        memo->n = 0;
        memo->overflow_metric = NULL;
    }
    labels = labels ? labels : "";
    for (size_t i = 0; i < memo->n; i++)
        if (strcmp (memo->slots [i].labels, labels) == 0)
            return memo->slots [i].metric;
    size_t length = strlen (labels);
    if (memo->n == METRICS_MEMO_SLOTS || length >= METRICS_MEMO_LABELS_MAX) {
        if (!memo->overflow_metric)
            memo->overflow_metric = s_lookup (memo, registry, memo->overflow);
        return memo->overflow_metric;
    }
    metric_t *metric = s_lookup (memo, registry, labels);
    if (!metric)
        return NULL;
    memcpy (memo->slots [memo->n].labels, labels, length + 1);
    memo->slots [memo->n].metric = metric;
    memo->n++;
    return metric;
}
