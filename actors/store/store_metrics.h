/* store_metrics — the store's Prometheus series, looked up once so that a batch
 * costs a few locked adds: appends by outcome, events appended, append latency and
 * batch size (observed per batch), the log head, and backend errors. */
#ifndef DOSSIER_STORE_METRICS_H
#define DOSSIER_STORE_METRICS_H

#include "metrics.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    STORE_METRICS_OK = 0,           /* events written */
    STORE_METRICS_DUPLICATE,        /* command id already in the log: first result returned */
    STORE_METRICS_CONFLICT,         /* wrong expected version */
    STORE_METRICS_EXPIRED,          /* older than its sender's timeout: not done */
    STORE_METRICS_ERROR,            /* malformed, or the backend refused */
    STORE_METRICS_OUTCOMES
} store_metrics_outcome_t;

typedef struct {
    metric_t *appends [STORE_METRICS_OUTCOMES];
    metric_t *events;
    metric_t *latency;
    metric_t *batch;
    metric_t *head;
    metric_t *errors_append, *errors_read;
} store_metrics_t;

/* Looks every series up in registry (NULL: metrics off, every update a no-op).
 * The series belong to the registry. */
void store_metrics_init (store_metrics_t *self, metrics_t *registry);

/* One group commit: appends answered by outcome (counts indexed by
 * store_metrics_outcome_t), events written, the batch's time from its first request
 * taken off the socket to its last reply sent (observed once per append request). */
void store_metrics_batch (store_metrics_t *self, const uint64_t *appends, uint64_t events, double seconds);

#endif
