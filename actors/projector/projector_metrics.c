/* projector_metrics — the projector's series (see projector_metrics.h), looked
 * up once per registry. */
#include "projector_metrics.h"
#include "metrics_export.h"

/* Events per delivered batch: one live append's few, up to a read_all page. */
static const double s_batch_bounds [] = { 1, 5, 10, 50, 100, 500, 1000, 5000, 10000 };

static struct {
    metrics_t *registry;
    metric_t *applied, *poison, *latency, *size, *checkpoint, *head, *lag;
    int64_t last_checkpoint, last_head;
    int known;                      /* last_* hold what was last reported */
} s;

static int
s_ready (void)
{
    metrics_t *registry = metrics_process ();
    if (!registry)
        return 0;
    if (registry == s.registry)
        return 1;
    s.applied = metrics_counter (registry, "dossier_projector_events_applied_total",
                                 "Events applied to the read models (counted as the durable checkpoint moves).", NULL);
    s.poison = metrics_counter (registry, "dossier_projector_poison_events_total",
                                "Events skipped as unreadable or inconsistent (kept in the error table).", NULL);
    s.latency = metrics_histogram (registry, "dossier_projector_batch_duration_seconds",
                                   "Time to apply one delivered batch to the read models.", NULL,
                                   metrics_latency_buckets, metrics_latency_buckets_count);
    s.size = metrics_histogram (registry, "dossier_projector_batch_events", "Events per delivered batch.", NULL,
                                s_batch_bounds, sizeof s_batch_bounds / sizeof s_batch_bounds [0]);
    s.checkpoint = metrics_gauge (registry, "dossier_projector_checkpoint_position",
                                  "The read models' durable checkpoint (log position).", NULL);
    s.head = metrics_gauge (registry, "dossier_projector_log_head_position",
                            "The highest log head the projector has seen (store replies and feed).", NULL);
    s.lag = metrics_gauge (registry, "dossier_projector_lag_events",
                           "Log head minus checkpoint: events appended and not yet projected.", NULL);
    s.registry = registry;
    s.known = 0;
    return 1;
}

void
projector_metrics_batch (size_t events, double seconds)
{
    if (!s_ready ())
        return;
    metric_observe (s.latency, seconds);
    metric_observe (s.size, (double) events);
}

void
projector_metrics_poison (void)
{
    if (s_ready ())
        metric_add (s.poison, 1);
}

void
projector_metrics_progress (int64_t checkpoint, int64_t head)
{
    if (!s_ready () || (s.known && checkpoint == s.last_checkpoint && head == s.last_head))
        return;
    /* The first report is where the projector starts, not work it did; a
     * checkpoint going back (a rebuild from zero) is not negative work. */
    if (s.known && checkpoint > s.last_checkpoint)
        metric_add (s.applied, (double) (checkpoint - s.last_checkpoint));
    s.last_checkpoint = checkpoint;
    s.last_head = head;
    if (head < checkpoint)
        head = checkpoint;          /* before the first store reply, the checkpoint is all it knows */
    metric_set (s.checkpoint, (double) checkpoint);
    metric_set (s.head, (double) head);
    metric_set (s.lag, (double) (head - checkpoint));
    s.known = 1;
}
