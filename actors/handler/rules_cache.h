/* rules_cache — the configuration service's answers by lookup key (the request path),
 * each with its ETag and when it was last confirmed: fresh for ttl_ms, then stale
 * (still served when the service cannot be asked: stale-if-error) up to max_stale_ms
 * more, after which it no longer counts as rules but its ETag still serves a
 * revalidation. At most max_entries: the longest unconfirmed one makes room.
 * Pure bookkeeping: the time is passed in. */
#ifndef DOSSIER_RULES_CACHE_H
#define DOSSIER_RULES_CACHE_H

#include "rules.h"

#include <stddef.h>
#include <stdint.h>

typedef enum {
    RULES_CACHE_MISS = 0,       /* nothing usable */
    RULES_CACHE_FRESH,
    RULES_CACHE_STALE           /* past its TTL: revalidate, serve if that fails */
} rules_cache_state_t;

#define RULES_CACHE_ETAG_MAX 128

typedef struct _rules_cache_t rules_cache_t;

/* NULL if out of memory. Caller owns. */
rules_cache_t *rules_cache_new (int64_t ttl_ms, int64_t max_stale_ms, size_t max_entries);
void rules_cache_destroy (rules_cache_t **self_p);

/* The state of key at now_ms; for FRESH and STALE, *rules_p is the answer (borrowed,
 * valid until the next put of any key). */
int rules_cache_get (rules_cache_t *self, const char *key, int64_t now_ms, const rules_t **rules_p);

/* The ETag remembered for key ("" when none or unknown; borrowed). */
const char *rules_cache_etag (rules_cache_t *self, const char *key);

/* Stores a new answer for key, taking *rules_p (nulled, destroyed on failure); etag may
 * be NULL. Returns 0, -1 out of memory. */
int rules_cache_put (rules_cache_t *self, const char *key, rules_t **rules_p, const char *etag, int64_t now_ms);

/* A 304 Not Modified: the answer held for key is fresh again. Returns 0, or -1 when
 * nothing is held for key (the caller must ask again without a validator). */
int rules_cache_touch (rules_cache_t *self, const char *key, int64_t now_ms);

size_t rules_cache_size (rules_cache_t *self);

#endif
