/* circuit_breaker — stops calling a service that keeps failing. After `threshold`
 * consecutive failures it opens for `cooldown_ms` (calls are refused at no cost), then
 * lets one probe through (half-open): the probe's success closes it, its failure opens
 * it again for another cool-down. Pure bookkeeping: the time is passed in. */
#ifndef DOSSIER_CIRCUIT_BREAKER_H
#define DOSSIER_CIRCUIT_BREAKER_H

#include <stdint.h>

typedef enum {
    CIRCUIT_CLOSED = 0,
    CIRCUIT_OPEN,
    CIRCUIT_HALF_OPEN           /* cool-down over: the next call is the probe */
} circuit_state_t;

typedef struct _circuit_breaker_t circuit_breaker_t;

/* threshold >= 1, cooldown_ms >= 0. NULL if out of memory. Caller owns. */
circuit_breaker_t *circuit_breaker_new (int threshold, int64_t cooldown_ms);
void circuit_breaker_destroy (circuit_breaker_t **self_p);

/* 1 when a call may be made now, and counts it as made: in half-open, the first call
 * is the probe and every other is refused until the probe reports. */
int circuit_breaker_allow (circuit_breaker_t *self, int64_t now_ms);
/* What circuit_breaker_allow would answer, without counting a call. */
int circuit_breaker_would_allow (const circuit_breaker_t *self, int64_t now_ms);

/* Reports a call's outcome. Returns 1 when the report changed the state to closed
 * (success) or to open (failure), so the caller can log the change once; else 0. */
int circuit_breaker_success (circuit_breaker_t *self, int64_t now_ms);
int circuit_breaker_failure (circuit_breaker_t *self, int64_t now_ms);

int circuit_breaker_state (const circuit_breaker_t *self, int64_t now_ms);   /* circuit_state_t */
/* "closed", "open", "half-open". */
const char *circuit_breaker_state_name (int state);
/* Consecutive failures so far (reset by a success). */
int circuit_breaker_failures (const circuit_breaker_t *self);

#endif
