/* ingest_window — how many Kafka commands ingest keeps in flight: an adaptive limit
 * (additive increase, multiplicative decrease, with a latency signal as in TCP Vegas
 * and Netflix's gradient limiter) so a slow store gets only the work it can absorb
 * instead of a burst that times out. Pure: times are passed in, nothing is sent. */
#ifndef DOSSIER_INGEST_WINDOW_H
#define DOSSIER_INGEST_WINDOW_H

#include <stddef.h>
#include <stdint.h>

/* Plain data, owned by the caller (embed it); fields are private to ingest_window.c.
 *
 * The limit moves once per round (as many answers as the limit: about one round
 * trip). A round whose mean latency stays under 2 × baseline + slack_ms, where the
 * baseline is the lowest round mean seen, grows the limit: doubling until the first
 * sign of congestion (slow start), then by √limit. Rounds that ran with the window
 * less than half used do not grow it (a light load says nothing about capacity). A
 * round over that bound shrinks the limit by bound / mean (at most by half); a
 * transient failure (5xx, timeout: the store expired it) halves it. After a
 * decrease, answers to commands sent before it are not counted again: they
 * measured the old window. The limit stays within [min, max]. */
typedef struct {
    double limit;
    size_t min, max;
    int64_t slack_ms;
    int slow_start;
    double baseline_ms;                 /* lowest round mean; 0 until the first round */
    double round_sum_ms;
    size_t round_n;
    size_t round_busiest;               /* most commands in flight seen this round */
    int64_t cut_ms;                     /* the last decrease; 0 none yet */
    uint64_t decreases;
} ingest_window_t;

/* min ≥ 1 and max ≥ min (adjusted if not); slack_ms ≥ 0. Starts at 16 (within
 * [min, max]) in slow start. */
void ingest_window_init (ingest_window_t *self, size_t min, size_t max, int64_t slack_ms);

/* Commands that may be in flight now. */
size_t ingest_window_limit (const ingest_window_t *self);

/* A command sent at sent_ms was answered at now_ms by the store's side (accepted or
 * a duplicate), with in_flight commands in flight just before this answer. */
void ingest_window_success (ingest_window_t *self, int64_t sent_ms, int64_t now_ms, size_t in_flight);

/* A command sent at sent_ms failed transiently at now_ms (503, timeout, expired).
 * Returns 1 when the limit was cut, 0 when that cut was already made. */
int ingest_window_failure (ingest_window_t *self, int64_t sent_ms, int64_t now_ms);

/* The lowest round mean latency seen, in ms (0 before the first round). */
double ingest_window_baseline_ms (const ingest_window_t *self);

#endif
