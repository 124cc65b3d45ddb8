/* rules_cache — a zhashx of entries. Eviction scans for the oldest entry: it runs only
 * when a new key arrives at the cap, and keys are few (trigger x context). */
#include "rules_cache.h"

#include <czmq.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    rules_t *rules;
    char etag [RULES_CACHE_ETAG_MAX];
    int64_t confirmed_ms;       /* fetched, or revalidated by a 304 */
} s_entry_t;

struct _rules_cache_t {
    zhashx_t *entries;          /* key -> s_entry_t (owned) */
    int64_t ttl_ms;
    int64_t max_stale_ms;
    size_t max_entries;
};

static void
s_entry_destroy (void **item)
{
    if (item && *item) {
        s_entry_t *entry = (s_entry_t *) *item;
        rules_destroy (&entry->rules);
        free (entry);
        *item = NULL;
    }
}

rules_cache_t *
rules_cache_new (int64_t ttl_ms, int64_t max_stale_ms, size_t max_entries)
{
    rules_cache_t *self = calloc (1, sizeof (rules_cache_t));
    if (!self)
        return NULL;
    self->entries = zhashx_new ();
    if (!self->entries) {
        free (self);
        return NULL;
    }
    zhashx_set_destructor (self->entries, s_entry_destroy);
    self->ttl_ms = ttl_ms < 0 ? 0 : ttl_ms;
    self->max_stale_ms = max_stale_ms < 0 ? 0 : max_stale_ms;
    self->max_entries = max_entries ? max_entries : 1;
    return self;
}

void
rules_cache_destroy (rules_cache_t **self_p)
{
    if (self_p && *self_p) {
        zhashx_destroy (&(*self_p)->entries);
        free (*self_p);
        *self_p = NULL;
    }
}

int
rules_cache_get (rules_cache_t *self, const char *key, int64_t now_ms, const rules_t **rules_p)
{
    *rules_p = NULL;
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, key);
    if (!entry || !entry->rules)
        return RULES_CACHE_MISS;
    int64_t age = now_ms - entry->confirmed_ms;
    if (age > self->ttl_ms + self->max_stale_ms)
        return RULES_CACHE_MISS;
    *rules_p = entry->rules;
    return age < self->ttl_ms ? RULES_CACHE_FRESH : RULES_CACHE_STALE;
}

const char *
rules_cache_etag (rules_cache_t *self, const char *key)
{
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, key);
    return entry ? entry->etag : "";
}

/* Makes room for one more entry by dropping the one confirmed longest ago. */
static void
s_evict (rules_cache_t *self)
{
    const char *oldest = NULL;
    int64_t oldest_ms = INT64_MAX;
    for (s_entry_t *entry = (s_entry_t *) zhashx_first (self->entries); entry;
         entry = (s_entry_t *) zhashx_next (self->entries))
        if (entry->confirmed_ms < oldest_ms) {
            oldest_ms = entry->confirmed_ms;
            oldest = (const char *) zhashx_cursor (self->entries);
        }
    if (oldest) {
        char *key = strdup (oldest);
        if (key) {
            zhashx_delete (self->entries, key);
            free (key);
        }
    }
}

int
rules_cache_put (rules_cache_t *self, const char *key, rules_t **rules_p, const char *etag, int64_t now_ms)
{
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, key);
    if (!entry) {
        if (zhashx_size (self->entries) >= self->max_entries)
            s_evict (self);
        entry = calloc (1, sizeof (s_entry_t));
        if (!entry || zhashx_insert (self->entries, key, entry) != 0) {
            free (entry);
            rules_destroy (rules_p);
            return -1;
        }
    }
    rules_destroy (&entry->rules);
    entry->rules = *rules_p;
    *rules_p = NULL;
    /* An ETag too long to send back is as good as none. */
    if (etag && strlen (etag) < sizeof entry->etag)
        memcpy (entry->etag, etag, strlen (etag) + 1);
    else
        entry->etag [0] = 0;
    entry->confirmed_ms = now_ms;
    return 0;
}

int
rules_cache_touch (rules_cache_t *self, const char *key, int64_t now_ms)
{
    s_entry_t *entry = (s_entry_t *) zhashx_lookup (self->entries, key);
    if (!entry || !entry->rules)
        return -1;
    entry->confirmed_ms = now_ms;
    return 0;
}

size_t
rules_cache_size (rules_cache_t *self)
{
    return zhashx_size (self->entries);
}
