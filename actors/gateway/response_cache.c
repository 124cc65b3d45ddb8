/* response_cache — a chained hash table of entries on an LRU list. Each entry is one
 * h2o shared allocation (header, key, body) so that a response can send the body
 * without copying it and an eviction never frees bytes a socket is still writing. */
#include "response_cache.h"
#include "gw_h2o.h"

#include <stdlib.h>
#include <string.h>

#define S_MIN_BUCKETS 1024

typedef struct s_entry_s s_entry_t;
struct s_entry_s {
    s_entry_t *chain;           /* next in the bucket */
    s_entry_t *newer, *older;   /* LRU list */
    uint64_t hash;
    size_t key_len;
    size_t size;
    /* then key_len bytes of key, then size bytes of body */
};

struct _gw_cache_t {
    s_entry_t **buckets;
    size_t bucket_count;        /* a power of two */
    s_entry_t *newest, *oldest;
    size_t entries;
    size_t bytes;
    size_t max_bytes;
    uint64_t generation;
    uint64_t hits, misses;
};

static char *
s_key (s_entry_t *entry)
{
    return (char *) (entry + 1);
}

/* Keys are short request targets; eight bytes per step, then a final mix. A client
 * choosing targets to collide only slows its own misses (chains stay bounded by the
 * byte budget). */
static uint64_t
s_hash (const char *key, size_t len)
{
    uint64_t h = 0x9e3779b97f4a7c15ULL ^ (uint64_t) len;
    while (len >= 8) {
        uint64_t v;
        memcpy (&v, key, 8);
        h = (h ^ v) * 0xff51afd7ed558ccdULL;
        h ^= h >> 29;
        key += 8;
        len -= 8;
    }
    uint64_t tail = 0;
    if (len)
        memcpy (&tail, key, len);
    h = (h ^ tail) * 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 32;
    return h;
}

static size_t
s_cost (const s_entry_t *entry)
{
    return sizeof (s_entry_t) + entry->key_len + entry->size;
}

gw_cache_t *
gw_cache_new (size_t max_bytes)
{
    gw_cache_t *self = calloc (1, sizeof (gw_cache_t));
    if (!self)
        return NULL;
    self->bucket_count = S_MIN_BUCKETS;
    self->buckets = calloc (self->bucket_count, sizeof (s_entry_t *));
    if (!self->buckets) {
        free (self);
        return NULL;
    }
    self->max_bytes = max_bytes;
    return self;
}

static void
s_lru_unlink (gw_cache_t *self, s_entry_t *entry)
{
    if (entry->newer)
        entry->newer->older = entry->older;
    else
        self->newest = entry->older;
    if (entry->older)
        entry->older->newer = entry->newer;
    else
        self->oldest = entry->newer;
    entry->newer = entry->older = NULL;
}

static void
s_lru_push (gw_cache_t *self, s_entry_t *entry)
{
    entry->older = self->newest;
    entry->newer = NULL;
    if (self->newest)
        self->newest->newer = entry;
    self->newest = entry;
    if (!self->oldest)
        self->oldest = entry;
}

/* Takes entry out of the table and the list and drops the cache's reference. */
static void
s_remove (gw_cache_t *self, s_entry_t *entry)
{
    s_entry_t **link = &self->buckets [entry->hash & (self->bucket_count - 1)];
    while (*link && *link != entry)
        link = &(*link)->chain;
    if (*link)
        *link = entry->chain;
    s_lru_unlink (self, entry);
    self->entries--;
    self->bytes -= s_cost (entry);
    h2o_mem_release_shared (entry);
}

static void
s_clear (gw_cache_t *self)
{
    while (self->oldest)
        s_remove (self, self->oldest);
}

void
gw_cache_destroy (gw_cache_t **self_p)
{
    if (!self_p || !*self_p)
        return;
    gw_cache_t *self = *self_p;
    s_clear (self);
    free (self->buckets);
    free (self);
    *self_p = NULL;
}

void
gw_cache_validate (gw_cache_t *self, uint64_t generation)
{
    if (generation != self->generation || generation == 0) {
        s_clear (self);
        self->generation = generation;
    }
}

static s_entry_t *
s_find (gw_cache_t *self, const char *key, size_t key_len, uint64_t hash)
{
    for (s_entry_t *e = self->buckets [hash & (self->bucket_count - 1)]; e; e = e->chain)
        if (e->hash == hash && e->key_len == key_len && memcmp (s_key (e), key, key_len) == 0)
            return e;
    return NULL;
}

static void
s_fill (s_entry_t *entry, gw_cache_body_t *out)
{
    out->shared = (const char *) entry;
    out->body = s_key (entry) + entry->key_len;
    out->size = entry->size;
}

int
gw_cache_get (gw_cache_t *self, const char *key, size_t key_len, gw_cache_body_t *out)
{
    s_entry_t *entry = self->entries ? s_find (self, key, key_len, s_hash (key, key_len)) : NULL;
    if (!entry) {
        self->misses++;
        return 0;
    }
    self->hits++;
    if (self->newest != entry) {
        s_lru_unlink (self, entry);
        s_lru_push (self, entry);
    }
    s_fill (entry, out);
    return 1;
}

/* Doubles the table when it gets crowded; a failed grow just leaves longer chains. */
static void
s_grow (gw_cache_t *self)
{
    size_t count = self->bucket_count * 2;
    s_entry_t **buckets = calloc (count, sizeof (s_entry_t *));
    if (!buckets)
        return;
    for (size_t i = 0; i < self->bucket_count; i++) {
        s_entry_t *e = self->buckets [i];
        while (e) {
            s_entry_t *next = e->chain;
            e->chain = buckets [e->hash & (count - 1)];
            buckets [e->hash & (count - 1)] = e;
            e = next;
        }
    }
    free (self->buckets);
    self->buckets = buckets;
    self->bucket_count = count;
}

int
gw_cache_put (gw_cache_t *self, uint64_t generation, const char *key, size_t key_len,
              const char *body, size_t size, gw_cache_body_t *out)
{
    if (generation == 0 || generation != self->generation)
        return -1;
    size_t cost = sizeof (s_entry_t) + key_len + size;
    if (size > self->max_bytes / 16 || cost > self->max_bytes / 16)
        return -1;
    uint64_t hash = s_hash (key, key_len);
    s_entry_t *old = s_find (self, key, key_len, hash);
    if (old)
        s_remove (self, old);
    while (self->oldest && self->bytes + cost > self->max_bytes)
        s_remove (self, self->oldest);
    /* h2o_mem_alloc_shared aborts rather than return NULL on OOM, like all of h2o. */
    s_entry_t *entry = (s_entry_t *) h2o_mem_alloc_shared (NULL, cost, NULL);
    memset (entry, 0, sizeof (s_entry_t));
    entry->hash = hash;
    entry->key_len = key_len;
    entry->size = size;
    memcpy (s_key (entry), key, key_len);
    if (size)
        memcpy (s_key (entry) + key_len, body, size);
    if (self->entries >= self->bucket_count)
        s_grow (self);
    s_entry_t **bucket = &self->buckets [hash & (self->bucket_count - 1)];
    entry->chain = *bucket;
    *bucket = entry;
    s_lru_push (self, entry);
    self->entries++;
    self->bytes += cost;
    if (out)
        s_fill (entry, out);
    return 0;
}

void
gw_cache_stats (gw_cache_t *self, gw_cache_stats_t *stats)
{
    stats->hits = self->hits;
    stats->misses = self->misses;
    stats->entries = self->entries;
    stats->bytes = self->bytes;
}
