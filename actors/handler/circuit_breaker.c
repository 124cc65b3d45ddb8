/* circuit_breaker — closed / open / half-open, as in the classic pattern. A success
 * that arrives while open (a call started before it opened) closes it: the service
 * answered, which is all a probe would have shown. */
#include "circuit_breaker.h"

#include <stdlib.h>

struct _circuit_breaker_t {
    int threshold;
    int64_t cooldown_ms;
    int failures;               /* consecutive */
    int open;
    int64_t open_until_ms;
    int probing;                /* half-open: the probe is out */
};

circuit_breaker_t *
circuit_breaker_new (int threshold, int64_t cooldown_ms)
{
    circuit_breaker_t *self = calloc (1, sizeof (circuit_breaker_t));
    if (self) {
        self->threshold = threshold < 1 ? 1 : threshold;
        self->cooldown_ms = cooldown_ms < 0 ? 0 : cooldown_ms;
    }
    return self;
}

void
circuit_breaker_destroy (circuit_breaker_t **self_p)
{
    if (self_p && *self_p) {
        free (*self_p);
        *self_p = NULL;
    }
}

int
circuit_breaker_state (const circuit_breaker_t *self, int64_t now_ms)
{
    if (!self->open)
        return CIRCUIT_CLOSED;
    return now_ms >= self->open_until_ms ? CIRCUIT_HALF_OPEN : CIRCUIT_OPEN;
}

const char *
circuit_breaker_state_name (int state)
{
    return state == CIRCUIT_CLOSED ? "closed" : state == CIRCUIT_OPEN ? "open" : "half-open";
}

int
circuit_breaker_failures (const circuit_breaker_t *self)
{
    return self->failures;
}

int
circuit_breaker_would_allow (const circuit_breaker_t *self, int64_t now_ms)
{
    int state = circuit_breaker_state (self, now_ms);
    return state == CIRCUIT_CLOSED || (state == CIRCUIT_HALF_OPEN && !self->probing);
}

int
circuit_breaker_allow (circuit_breaker_t *self, int64_t now_ms)
{
    if (!circuit_breaker_would_allow (self, now_ms))
        return 0;
    if (self->open)
        self->probing = 1;
    return 1;
}

int
circuit_breaker_success (circuit_breaker_t *self, int64_t now_ms)
{
    (void) now_ms;
    int changed = self->open;
    self->failures = 0;
    self->open = 0;
    self->probing = 0;
    return changed;
}

int
circuit_breaker_failure (circuit_breaker_t *self, int64_t now_ms)
{
    self->failures++;
    if (self->open) {
        /* The probe failed: another cool-down. A late failure of a call made before
         * the breaker opened changes nothing. */
        if (self->probing) {
            self->probing = 0;
            self->open_until_ms = now_ms + self->cooldown_ms;
        }
        return 0;
    }
    if (self->failures < self->threshold)
        return 0;
    self->open = 1;
    self->probing = 0;
    self->open_until_ms = now_ms + self->cooldown_ms;
    return 1;
}
