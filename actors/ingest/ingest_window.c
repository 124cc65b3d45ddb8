/* ingest_window — the adaptive in-flight limit of the Kafka source (see
 * ingest_window.h). Rounds of answers, a latency bound relative to the lowest
 * latency seen, additive growth, multiplicative cuts, at most one cut per round
 * trip. */
#include "ingest_window.h"

#include <math.h>

#define S_START       16
#define S_TOLERANCE   2.0               /* latency may double before it counts as queueing */
#define S_MIN_CUT     0.5               /* a latency cut never more than halves the limit */

static double
s_clamp (const ingest_window_t *self, double limit)
{
    if (limit < (double) self->min)
        return (double) self->min;
    if (limit > (double) self->max)
        return (double) self->max;
    return limit;
}

static void
s_round_reset (ingest_window_t *self)
{
    self->round_sum_ms = 0;
    self->round_n = 0;
    self->round_busiest = 0;
}

void
ingest_window_init (ingest_window_t *self, size_t min, size_t max, int64_t slack_ms)
{
    self->min = min ? min : 1;
    self->max = max >= self->min ? max : self->min;
    self->slack_ms = slack_ms > 0 ? slack_ms : 0;
    self->slow_start = 1;
    self->baseline_ms = 0;
    self->cut_ms = 0;
    self->decreases = 0;
    self->limit = s_clamp (self, S_START);
    s_round_reset (self);
}

size_t
ingest_window_limit (const ingest_window_t *self)
{
    return (size_t) self->limit;
}

double
ingest_window_baseline_ms (const ingest_window_t *self)
{
    return self->baseline_ms;
}

static void
s_cut (ingest_window_t *self, double factor, int64_t now_ms)
{
    self->limit = s_clamp (self, self->limit * factor);
    self->slow_start = 0;
    /* Commands already sent went out under the old limit: their answers would
     * only repeat what made this cut. A clock that reads 0 is taken as 1. */
    self->cut_ms = now_ms > 0 ? now_ms : 1;
    self->decreases++;
    s_round_reset (self);
}

void
ingest_window_success (ingest_window_t *self, int64_t sent_ms, int64_t now_ms, size_t in_flight)
{
    if (sent_ms < self->cut_ms)
        return;
    double latency = now_ms > sent_ms ? (double) (now_ms - sent_ms) : 0;
    self->round_sum_ms += latency;
    self->round_n++;
    if (in_flight > self->round_busiest)
        self->round_busiest = in_flight;
    if (self->round_n < ingest_window_limit (self))
        return;
    double mean = self->round_sum_ms / (double) self->round_n;
    /* 1 ms at least: a bound of a few microseconds would read any jitter as queueing. */
    double floor = mean < 1 ? 1 : mean;
    if (self->baseline_ms == 0 || floor < self->baseline_ms)
        self->baseline_ms = floor;
    double bound = S_TOLERANCE * self->baseline_ms + (double) self->slack_ms;
    if (mean > bound) {
        double factor = bound / mean;
        s_cut (self, factor < S_MIN_CUT ? S_MIN_CUT : factor, now_ms);
        return;
    }
    if ((double) self->round_busiest * 2 >= self->limit) {
        if (self->slow_start)
            self->limit = s_clamp (self, self->limit * 2);
        else
            self->limit = s_clamp (self, self->limit + sqrt (self->limit));
    }
    s_round_reset (self);
}

int
ingest_window_failure (ingest_window_t *self, int64_t sent_ms, int64_t now_ms)
{
    if (sent_ms < self->cut_ms)
        return 0;
    s_cut (self, 0.5, now_ms);
    return 1;
}
