/* projector_metrics — the projector's Prometheus series: events applied (as the
 * durable checkpoint moves, so a rolled-back batch is not counted twice), poison
 * events skipped, the time and size of each applied batch, and where it is: its
 * checkpoint, the highest log head it has seen, and the lag between the two.
 * Used from the projector's one thread; no-ops without a process registry. */
#ifndef DOSSIER_PROJECTOR_METRICS_H
#define DOSSIER_PROJECTOR_METRICS_H

#include <stddef.h>
#include <stdint.h>

/* One batch handed to the read models: its events and how long applying took. */
void projector_metrics_batch (size_t events, double seconds);

/* An event skipped as poison (recorded in the read models' error table). */
void projector_metrics_poison (void);

/* Where the projector is: cheap when nothing moved (call every loop turn). */
void projector_metrics_progress (int64_t checkpoint, int64_t head);

#endif
