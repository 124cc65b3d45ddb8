/* notifier_tracker — a ring of (position, settled) in increasing position order.
 * Settled entries are released from the head only, so the head is always the lowest
 * unsettled position; a settle in the middle is found by binary search. */
#include "notifier_tracker.h"

#include <stdlib.h>

#define S_INITIAL 64

typedef struct {
    int64_t position;
    int settled;
} s_slot_t;

struct _notifier_tracker_t {
    s_slot_t *ring;
    size_t capacity;            /* a power of two */
    size_t head;                /* index of the lowest tracked position */
    size_t count;
    int64_t last;               /* the highest position ever added */
};

notifier_tracker_t *
notifier_tracker_new (void)
{
    notifier_tracker_t *self = calloc (1, sizeof (notifier_tracker_t));
    if (!self)
        return NULL;
    self->ring = calloc (S_INITIAL, sizeof (s_slot_t));
    if (!self->ring) {
        free (self);
        return NULL;
    }
    self->capacity = S_INITIAL;
    return self;
}

void
notifier_tracker_destroy (notifier_tracker_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->ring);
        free (*self_p);
        *self_p = NULL;
    }
}

static s_slot_t *
s_at (notifier_tracker_t *self, size_t i)
{
    return &self->ring [(self->head + i) & (self->capacity - 1)];
}

/* Doubles the ring, unwrapping it so the head is at index 0. 0 ok, -1 out of memory. */
static int
s_grow (notifier_tracker_t *self)
{
    if (self->capacity > SIZE_MAX / 2 / sizeof (s_slot_t))
        return -1;
    s_slot_t *ring = malloc (self->capacity * 2 * sizeof (s_slot_t));
    if (!ring)
        return -1;
    for (size_t i = 0; i < self->count; i++)
        ring [i] = *s_at (self, i);
    free (self->ring);
    self->ring = ring;
    self->capacity *= 2;
    self->head = 0;
    return 0;
}

int
notifier_tracker_reserve (notifier_tracker_t *self, size_t n)
{
    while (self->capacity - self->count < n)
        if (s_grow (self))
            return -1;
    return 0;
}

int
notifier_tracker_add (notifier_tracker_t *self, int64_t position)
{
    if (position <= self->last)
        return -2;
    if (self->count == self->capacity && s_grow (self))
        return -1;
    *s_at (self, self->count) = (s_slot_t) { .position = position, .settled = 0 };
    self->count++;
    self->last = position;
    return 0;
}

int
notifier_tracker_settle (notifier_tracker_t *self, int64_t position)
{
    size_t lo = 0, hi = self->count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s_at (self, mid)->position < position)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == self->count || s_at (self, lo)->position != position || s_at (self, lo)->settled)
        return -1;
    s_at (self, lo)->settled = 1;
    while (self->count > 0 && s_at (self, 0)->settled) {
        self->head = (self->head + 1) & (self->capacity - 1);
        self->count--;
    }
    return 0;
}

int64_t
notifier_tracker_settled (notifier_tracker_t *self)
{
    return self->count ? s_at (self, 0)->position - 1 : INT64_MAX;
}

size_t
notifier_tracker_count (notifier_tracker_t *self)
{
    return self->count;
}
