/* metrics — one process's Prometheus metrics: counters, gauges and histograms,
 * each family with labelled series, rendered in the text exposition format
 * (0.0.4). One mutex guards a registry: updates are cheap next to the work they
 * count, and a scrape sees a consistent snapshot. */
#ifndef DOSSIER_METRICS_H
#define DOSSIER_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef struct _metrics_t metrics_t;
typedef struct _metric_t metric_t;

typedef enum { METRICS_COUNTER, METRICS_GAUGE, METRICS_HISTOGRAM } metrics_type_t;

/* Latency buckets in seconds, 100 µs .. 10 s: what append, projection and HTTP
 * latencies span. */
#define METRICS_LATENCY_BUCKETS 16      /* a constant, for static initialisers */
extern const double metrics_latency_buckets [];
extern const size_t metrics_latency_buckets_count;

/* A registry. const_labels (e.g. `process="store",instance="0"`, may be NULL) is
 * added to every series it renders. Caller owns; NULL when out of memory. */
metrics_t *metrics_new (const char *const_labels);
void metrics_destroy (metrics_t **self_p);

/* The series of family name with labels (pre-rendered `k="v",k2="v2"`, values
 * escaped with metrics_label_value; NULL or "" for none), created on first use
 * with help. The registry owns it; it lives as long as the registry. Returns NULL
 * when out of memory, when name is not a valid metric name, or when the family
 * exists with another type (a programming error, logged once). */
metric_t *metrics_counter (metrics_t *self, const char *name, const char *help, const char *labels);
metric_t *metrics_gauge (metrics_t *self, const char *name, const char *help, const char *labels);
/* bounds: ascending upper bounds (the +Inf bucket is implicit); the first series
 * of a family fixes them for all. */
metric_t *metrics_histogram (metrics_t *self, const char *name, const char *help, const char *labels,
                             const double *bounds, size_t n_bounds);

/* Updates; a NULL metric is ignored, so a failed lookup costs nothing later.
 * Counters only go up: a negative add is ignored. */
void metric_add (metric_t *metric, double by);
void metric_set (metric_t *metric, double value);
void metric_observe (metric_t *metric, double value);
/* n observations of the same value at once (one lock): a batch whose requests all
 * took the batch's time. */
void metric_observe_n (metric_t *metric, double value, uint64_t n);
double metric_value (metric_t *metric);         /* counter/gauge value; histogram: count */

/* Writes value escaped for a label (backslash, quote, newline) into out; returns
 * 0, or -1 when it did not fit (out then holds a truncated, still valid string). */
int metrics_label_value (char *out, size_t size, const char *value);

/* The registry in text format. Caller frees; NULL when out of memory. */
char *metrics_render (metrics_t *self, size_t *size);

#endif
