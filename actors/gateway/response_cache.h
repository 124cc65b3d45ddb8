/* response_cache — ready-to-send GET answers of the gateway, keyed by request target,
 * valid for one generation of the read models (gw_reader_snapshot): when the
 * generation moves, everything is dropped, so an answer from the cache is always
 * byte for byte what the read models would give now. Bounded in bytes, least
 * recently used out first. One cache per event-loop thread. */
#ifndef DOSSIER_GW_RESPONSE_CACHE_H
#define DOSSIER_GW_RESPONSE_CACHE_H

#include <stddef.h>
#include <stdint.h>

typedef struct _gw_cache_t gw_cache_t;

/* A cached body. `shared` is its h2o shared allocation (h2o_mem_alloc_shared): a
 * request that sends body links shared to its pool, so an entry evicted meanwhile
 * stays alive until that request is done. */
typedef struct {
    const char *shared;
    const char *body;
    size_t size;
} gw_cache_body_t;

/* A cache holding at most max_bytes of keys and bodies; a body over max_bytes / 16
 * is never kept. Returns NULL on OOM. */
gw_cache_t *gw_cache_new (size_t max_bytes);
void gw_cache_destroy (gw_cache_t **self_p);

/* Declares the read models' current generation; a different one than the entries
 * were made under empties the cache. Generation 0 means "unknown": it empties the
 * cache too, and puts are refused until a real one is declared. */
void gw_cache_validate (gw_cache_t *self, uint64_t generation);

/* Finds key. Returns 1 and fills out (borrowed until the next put or validate;
 * link out->shared to keep it longer), else 0. */
int gw_cache_get (gw_cache_t *self, const char *key, size_t key_len, gw_cache_body_t *out);

/* Stores a copy of body under key for generation, which must be the declared one
 * (else nothing is stored: the body may be from other data). Fills out with the
 * stored copy when out is not NULL. Returns 0 stored, -1 not stored (too big, OOM,
 * other generation). */
int gw_cache_put (gw_cache_t *self, uint64_t generation, const char *key, size_t key_len,
                  const char *body, size_t size, gw_cache_body_t *out);

/* Counters since creation (for /metrics-style reports and tests). */
typedef struct {
    uint64_t hits;
    uint64_t misses;
    uint64_t entries;
    uint64_t bytes;
} gw_cache_stats_t;
void gw_cache_stats (gw_cache_t *self, gw_cache_stats_t *stats);

#endif
