/* broker_workers — handler registry and rendezvous partitioning. A handful of
 * handlers is the norm, so a sorted array with linear and binary scans beats any
 * cleverer structure; the cap keeps a flood of fake identities bounded. */
#include "broker_workers.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    broker_id_t id;
    int64_t last_seen_ms;
} s_worker_t;

struct _broker_workers_t {
    s_worker_t *workers;        /* sorted by broker_id_cmp */
    size_t size;
    size_t capacity;
};

broker_workers_t *
broker_workers_new (void)
{
    return calloc (1, sizeof (broker_workers_t));
}

void
broker_workers_destroy (broker_workers_t **self_p)
{
    if (self_p && *self_p) {
        free ((*self_p)->workers);
        free (*self_p);
        *self_p = NULL;
    }
}

/* Index of id if present (*found = 1), else where it would be inserted. */
static size_t
s_search (broker_workers_t *self, const broker_id_t *id, int *found)
{
    size_t lo = 0, hi = self->size;
    *found = 0;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        int rc = broker_id_cmp (&self->workers [mid].id, id);
        if (rc == 0) {
            *found = 1;
            return mid;
        }
        if (rc < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

int
broker_workers_touch (broker_workers_t *self, const broker_id_t *id, int64_t now_ms)
{
    int found;
    size_t at = s_search (self, id, &found);
    if (found) {
        self->workers [at].last_seen_ms = now_ms;
        return 0;
    }
    if (self->size >= BROKER_WORKERS_MAX || id->size == 0)
        return -1;
    if (self->size == self->capacity) {
        size_t capacity = self->capacity ? self->capacity * 2 : 8;
        s_worker_t *workers = realloc (self->workers, capacity * sizeof (s_worker_t));
        if (!workers)
            return -1;
        self->workers = workers;
        self->capacity = capacity;
    }
    memmove (&self->workers [at + 1], &self->workers [at], (self->size - at) * sizeof (s_worker_t));
    self->workers [at].id = *id;
    self->workers [at].last_seen_ms = now_ms;
    self->size++;
    return 1;
}

int
broker_workers_remove (broker_workers_t *self, const broker_id_t *id)
{
    int found;
    size_t at = s_search (self, id, &found);
    if (!found)
        return -1;
    memmove (&self->workers [at], &self->workers [at + 1], (self->size - at - 1) * sizeof (s_worker_t));
    self->size--;
    return 0;
}

int
broker_workers_contains (broker_workers_t *self, const broker_id_t *id)
{
    int found;
    s_search (self, id, &found);
    return found;
}

size_t
broker_workers_size (broker_workers_t *self)
{
    return self->size;
}

const broker_id_t *
broker_workers_at (broker_workers_t *self, size_t index)
{
    return index < self->size ? &self->workers [index].id : NULL;
}

int
broker_workers_find_silent (broker_workers_t *self, int64_t now_ms, int64_t timeout_ms, broker_id_t *id)
{
    for (size_t i = 0; i < self->size; i++)
        if (now_ms - self->workers [i].last_seen_ms > timeout_ms) {
            *id = self->workers [i].id;
            return 1;
        }
    return 0;
}

/* FNV-1a, then a 64-bit finaliser (MurmurHash3 fmix64) so that scores of
 * similar identities ("handler-1", "handler-2") are unrelated. Fixed forever:
 * changing it would move every key. */
uint64_t
broker_workers_score (const char *key, const broker_id_t *id)
{
    uint64_t h = 14695981039346656037ULL;
    for (const unsigned char *p = (const unsigned char *) key; *p; p++) {
        h ^= *p;
        h *= 1099511628211ULL;
    }
    h ^= 0xff;                      /* separator: ("ab","c") differs from ("a","bc") */
    h *= 1099511628211ULL;
    for (size_t i = 0; i < id->size; i++) {
        h ^= id->data [i];
        h *= 1099511628211ULL;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

int
broker_workers_choose (broker_workers_t *self, const char *key, broker_id_t *id)
{
    if (self->size == 0)
        return -1;
    size_t best = 0;
    uint64_t best_score = broker_workers_score (key, &self->workers [0].id);
    /* Strictly greater: on a tie the first in identity order wins, everywhere. */
    for (size_t i = 1; i < self->size; i++) {
        uint64_t score = broker_workers_score (key, &self->workers [i].id);
        if (score > best_score) {
            best = i;
            best_score = score;
        }
    }
    *id = self->workers [best].id;
    return 0;
}
