/* metrics_memo — the series of one family remembered by label set, for hot loops
 * that label by something only known per message (a message type, an outcome).
 * A few string compares find the metric_t again, without the registry's hash and
 * lock; the number of label sets is capped so that hostile input (a client
 * inventing message types) cannot grow the registry: past the cap, updates go to
 * the memo's overflow series. One memo is used by one thread. */
#ifndef DOSSIER_METRICS_MEMO_H
#define DOSSIER_METRICS_MEMO_H

#include "metrics.h"

#include <stddef.h>

#define METRICS_MEMO_SLOTS      32
#define METRICS_MEMO_LABELS_MAX 160

typedef struct {
    /* Set once (METRICS_MEMO_* initialisers below). */
    metrics_type_t type;
    const char *name;
    const char *help;
    const char *overflow;           /* labels of the series past the cap, e.g. type="other" */
    const double *bounds;           /* histograms */
    size_t n_bounds;
    /* Filled as label sets are met; forgotten when the registry changes. */
    metrics_t *registry;
    size_t n;
    struct {
        char labels [METRICS_MEMO_LABELS_MAX];
        metric_t *metric;           /* owned by the registry */
    } slots [METRICS_MEMO_SLOTS];
    metric_t *overflow_metric;
} metrics_memo_t;

#define METRICS_MEMO_COUNTER(name_, help_, overflow_) \
    { .type = METRICS_COUNTER, .name = (name_), .help = (help_), .overflow = (overflow_) }
#define METRICS_MEMO_GAUGE(name_, help_, overflow_) \
    { .type = METRICS_GAUGE, .name = (name_), .help = (help_), .overflow = (overflow_) }
#define METRICS_MEMO_HISTOGRAM(name_, help_, overflow_, bounds_, n_bounds_) \
    { .type = METRICS_HISTOGRAM, .name = (name_), .help = (help_), .overflow = (overflow_), \
      .bounds = (bounds_), .n_bounds = (n_bounds_) }

/* The series with labels (pre-rendered, values escaped) in registry, created on
 * first use. Borrowed from the registry. NULL when registry is NULL (metrics not
 * exported: updates on NULL cost nothing) or out of memory; nothing is
 * remembered then, so a later call with a registry still finds it. Labels longer
 * than METRICS_MEMO_LABELS_MAX - 1 go to the overflow series. */
metric_t *metrics_memo_get (metrics_memo_t *memo, metrics_t *registry, const char *labels);

#endif
