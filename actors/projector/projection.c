/* projection — events to read-model rows. Every row keeps its ready-to-send JSON;
 * every time in it comes from the events, never from this process's clock, and each
 * touched case's JSON is rebuilt once per batch from its child rows, so the result
 * depends only on the log, not on how it was cut into batches, nor on the backend
 * (readmodel_store.h) that keeps it.
 *
 * Rows are assembled as text from the payloads' own bytes (canon_json.h): a payload
 * already in jansson's compact form, as the handler writes it, is copied piece by
 * piece; any other is first normalised by jansson, so the bytes are those a parse
 * and dump would give. Everything a batch needs lives in one arena, dropped at the
 * end of the batch: no allocation per event or per value.
 *
 * Without transactions (MongoDB) a failed batch may leave some rows written and the
 * checkpoint behind; the replay then meets rows that already hold later events.
 * Rows are written only forward (guarded by updated_position), and a case's summary
 * takes only the events after the position its stored row reflects, so the replay
 * ends with exactly the rows one clean pass would have written. */
#include "projection.h"
#include "projector_metrics.h"

#include <malloc.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "canon_json.h"
#include "log.h"
#include "partition.h"
#include "traceparent.h"

/* Ids per read request when prefetching a batch's cases and documents. */
#define S_PREFETCH_CHUNK 500
/* Arena chunks; the first one is kept between batches, the rest given back. */
#define S_CHUNK_SIZE     (256 * 1024)
/* Hash tables and buffers grown past these are given back after a batch, so one
 * huge catch-up page does not pin its memory for the life of the process. */
#define S_MAP_KEEP       16384
#define S_BUF_KEEP       (256 * 1024)

/* The statuses every document_counts object lists, in this order, even at zero. */
static const char *s_doc_statuses [] = { "AWAITING_UPLOAD", "UPLOADED", "VERIFIED", "REJECTED" };

#define S_SPAN(lit) ((canon_span_t) { lit, sizeof (lit) - 1 })
/* A key token for a plain name. */
#define K(name)     S_SPAN ("\"" name "\"")
static const canon_span_t s_null = { "null", 4 };

/* ---- arena -------------------------------------------------------------------- */

typedef struct _s_chunk_t {
    struct _s_chunk_t *next;
    size_t size, used;
    char data [];
} s_chunk_t;

typedef struct {
    s_chunk_t *head;            /* the chunk being filled; the kept one is last */
} s_arena_t;

/* size bytes, 8-aligned, valid until the arena is reset. NULL when out of memory. */
static void *
s_alloc (s_arena_t *a, size_t size)
{
    size = (size + 7) & ~(size_t) 7;
    if (!a->head || a->head->size - a->head->used < size) {
        size_t chunk = size > S_CHUNK_SIZE / 4 ? size : S_CHUNK_SIZE;
        s_chunk_t *c = malloc (sizeof (s_chunk_t) + chunk);
        if (!c)
            return NULL;
        c->size = chunk;
        c->used = 0;
        c->next = a->head;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += size;
    return p;
}

static char *
s_strndup (s_arena_t *a, const char *s, size_t len)
{
    char *p = (char *) s_alloc (a, len + 1);
    if (p) {
        memcpy (p, s, len);
        p [len] = 0;
    }
    return p;
}

/* Drops everything; keeps the oldest chunk when it is a regular one. */
static void
s_arena_reset (s_arena_t *a)
{
    s_chunk_t *keep = NULL;
    while (a->head) {
        s_chunk_t *next = a->head->next;
        if (!next && a->head->size == S_CHUNK_SIZE)
            keep = a->head;
        else
            free (a->head);
        a->head = next;
    }
    if (keep) {
        keep->used = 0;
        keep->next = NULL;
    }
    a->head = keep;
}

static void
s_arena_free (s_arena_t *a)
{
    s_arena_reset (a);
    free (a->head);
    a->head = NULL;
}

/* ---- string-keyed hash table (keys borrowed: they live in the arena) ---------- */

typedef struct {
    const char *key;
    void *value;
    uint64_t hash;
} s_slot_t;

typedef struct {
    s_slot_t *slots;
    size_t cap, count;
} s_map_t;

static uint64_t
s_hash (const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++)
        h = (h ^ (unsigned char) *s) * 1099511628211ULL;
    return h ? h : 1;
}

static s_slot_t *
s_map_slot (s_map_t *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        s_slot_t *s = &m->slots [i];
        if (!s->key || (s->hash == h && strcmp (s->key, key) == 0))
            return s;
    }
}

static void *
s_map_get (s_map_t *m, const char *key)
{
    if (!m->count)
        return NULL;
    s_slot_t *s = s_map_slot (m, key, s_hash (key));
    return s->key ? s->value : NULL;
}

/* Sets key (which must outlive the entry) to value. 0 ok, -1 out of memory. */
static int
s_map_put (s_map_t *m, const char *key, void *value)
{
    if ((m->count + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        s_slot_t *slots = calloc (cap, sizeof (s_slot_t));
        if (!slots)
            return -1;
        s_map_t grown = { slots, cap, 0 };
        for (size_t i = 0; i < m->cap; i++)
            if (m->slots [i].key) {
                s_slot_t *s = s_map_slot (&grown, m->slots [i].key, m->slots [i].hash);
                *s = m->slots [i];
                grown.count++;
            }
        free (m->slots);
        *m = grown;
    }
    uint64_t h = s_hash (key);
    s_slot_t *s = s_map_slot (m, key, h);
    if (!s->key) {
        s->key = key;
        s->hash = h;
        m->count++;
    }
    s->value = value;
    return 0;
}

static void
s_map_clear (s_map_t *m)
{
    if (m->cap > S_MAP_KEEP) {
        free (m->slots);
        m->slots = NULL;
        m->cap = 0;
    }
    else
    if (m->count)
        memset (m->slots, 0, m->cap * sizeof (s_slot_t));
    m->count = 0;
}

/* ---- growable buffers and pointer lists (kept between batches) ------------------ */

typedef struct {
    char *data;
    size_t size, cap;
} s_buf_t;

static int
s_buf_reserve (s_buf_t *b, size_t more)
{
    if (b->size + more + 1 <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap < b->size + more + 1)
        cap *= 2;
    char *data = realloc (b->data, cap);
    if (!data)
        return -1;
    b->data = data;
    b->cap = cap;
    return 0;
}

static int
s_buf_add (s_buf_t *b, const char *p, size_t n)
{
    if (s_buf_reserve (b, n))
        return -1;
    memcpy (b->data + b->size, p, n);
    b->size += n;
    b->data [b->size] = 0;
    return 0;
}

static int
s_buf_span (s_buf_t *b, canon_span_t s)
{
    return s_buf_add (b, s.ptr, s.len);
}

/* Appends s as a JSON string token (jansson's escaping; bytes as they are). */
static int
s_buf_json_str (s_buf_t *b, const char *s)
{
    size_t len = strlen (s);
    if (s_buf_reserve (b, len * 6 + 2))
        return -1;
    b->size += canon_string_write (s, len, b->data + b->size);
    b->data [b->size] = 0;
    return 0;
}

static void
s_buf_trim (s_buf_t *b)
{
    if (b->cap > S_BUF_KEEP) {
        free (b->data);
        b->data = NULL;
        b->cap = 0;
    }
    b->size = 0;
}

typedef struct {
    void **items;
    size_t count, cap;
} s_list_t;

static int
s_list_add (s_list_t *l, void *item)
{
    if (l->count == l->cap) {
        size_t cap = l->cap ? l->cap * 2 : 256;
        void **items = realloc (l->items, cap * sizeof (void *));
        if (!items)
            return -1;
        l->items = items;
        l->cap = cap;
    }
    l->items [l->count++] = item;
    return 0;
}

static void
s_list_clear (s_list_t *l)
{
    if (l->cap > S_MAP_KEEP) {
        free (l->items);
        l->items = NULL;
        l->cap = 0;
    }
    l->count = 0;
}

/* ---- the batch's state -------------------------------------------------------------- */

/* A JSON object as its members' text, in order (jansson keeps insertion order). */
typedef struct {
    canon_member_t *m;
    size_t count, cap;
} s_obj_t;

/* A child row of a case (company, person, beneficial owner, document). */
typedef struct _s_case_t s_case_t;
typedef struct {
    rm_kind_t kind;
    int64_t seq;
    const char *id;
    const char *company_id;
    const char *status;
    canon_span_t json;
    s_case_t *owner;            /* the case that put it during this batch */
} s_child_t;

/* A case seen by the batch. readable 0: its stored summary cannot be read (its
 * events are skipped, not retried). */
struct _s_case_t {
    const char *id;
    int64_t seq;
    int64_t updated_position;
    int64_t stored_position;    /* updated_position of the stored row (0: new): events up
                                   to it are already in the summary */
    s_obj_t summary;
    int readable;
    int touched;                /* an event used it: rewritten at the end of the batch */
    int read_children;          /* its children come from the store, not from the batch */
    s_child_t **children;
    size_t child_count, child_cap;
};

/* A document touched by the batch: a requirement and its status changes often come
 * in the same batch, so the row is written once, at the end. readable 0: its stored
 * row cannot be read. */
typedef struct {
    const char *id;
    const char *case_id;
    int64_t seq;
    int64_t updated_position;
    s_obj_t row;
    int readable;
    int dirty;
    const char *status;         /* the status column as stored or written */
    canon_span_t json;          /* the row as stored or written */
} s_doc_t;

/* What the maps hold for an id the store did not have. */
static char s_absent;

struct _projection_t {
    const readmodel_store_ops_t *ops;
    void *impl;
    char *location;
    int loaded;
    int load_failing;           /* "not loaded" logged for this outage */
    int64_t checkpoint;         /* durable */
    int64_t pending;            /* applied in the open batch */
    int part_index, part_count; /* the events it applies: those of cases in partition
                                   part_index of part_count (partition.h) */
    int all_partitions;         /* a rebuild: every event, every partition's checkpoint */
    char checkpoint_name [PARTITION_NAME_MAX];
    int in_tx;
    s_arena_t arena;            /* everything below lives until the end of the batch */
    s_map_t cases;              /* case id -> s_case_t, or &s_absent */
    s_map_t docs;               /* document id -> s_doc_t, or &s_absent */
    s_map_t children;           /* "<kind><id>" -> s_child_t put by this batch */
    s_list_t case_list;         /* the batch's cases, in the order met */
    s_list_t doc_list;
    s_case_t *last_case;        /* the case s_case_get found last (readable, touched) */
    s_buf_t out, summary;       /* scratch for rows being assembled */
    int64_t time_sec;           /* the second time_text holds, when time_valid */
    char time_text [20];
    int time_valid;
    projection_stats_t stats;
};

/* Drops the batch's state (after a flush or a rollback). */
static void
s_batch_forget (projection_t *self)
{
    self->last_case = NULL;
    s_map_clear (&self->cases);
    s_map_clear (&self->docs);
    s_map_clear (&self->children);
    s_list_clear (&self->case_list);
    s_list_clear (&self->doc_list);
    s_buf_trim (&self->out);
    s_buf_trim (&self->summary);
    s_arena_reset (&self->arena);
}

/* ---- objects ---------------------------------------------------------------------- */

/* Member value of plain name, or NULL. */
static canon_span_t *
s_obj_get (const s_obj_t *o, const char *name)
{
    for (size_t i = 0; i < o->count; i++)
        if (canon_key_is (o->m [i].key, name))
            return &o->m [i].value;
    return NULL;
}

/* Sets key (a token) to value: replaced in place, or appended. 0, -1 out of memory. */
static int
s_obj_set (projection_t *self, s_obj_t *o, canon_span_t key, canon_span_t value)
{
    for (size_t i = 0; i < o->count; i++)
        if (o->m [i].key.len == key.len && memcmp (o->m [i].key.ptr, key.ptr, key.len) == 0) {
            o->m [i].value = value;
            return 0;
        }
    if (o->count == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 16;
        canon_member_t *m = (canon_member_t *) s_alloc (&self->arena, cap * sizeof (canon_member_t));
        if (!m)
            return -1;
        if (o->count)
            memcpy (m, o->m, o->count * sizeof (canon_member_t));
        o->m = m;
        o->cap = cap;
    }
    o->m [o->count].key = key;
    o->m [o->count].value = value;
    o->count++;
    return 0;
}

/* s as a string token in the arena; NULL s gives null. Returns 0, 1 when s is not
 * valid UTF-8 (jansson makes no string of it, so the member is not set), -1. */
static int
s_str_value (projection_t *self, const char *s, canon_span_t *out)
{
    if (!s) {
        *out = s_null;
        return 0;
    }
    size_t len = strlen (s);
    size_t size = canon_string_size (s, len);
    if (!size)
        return 1;
    char *p = (char *) s_alloc (&self->arena, size);
    if (!p)
        return -1;
    out->ptr = p;
    out->len = canon_string_write (s, len, p);
    return 0;
}

/* Sets key to the string s (null when s is NULL). 0, -1 out of memory. */
static int
s_obj_set_str (projection_t *self, s_obj_t *o, canon_span_t key, const char *s)
{
    canon_span_t v;
    int rc = s_str_value (self, s, &v);
    if (rc)
        return rc < 0 ? -1 : 0;
    return s_obj_set (self, o, key, v);
}

/* Sets key to src's member name, or null when src has none. */
static int
s_obj_copy (projection_t *self, s_obj_t *dst, canon_span_t key, const s_obj_t *src, const char *name)
{
    canon_span_t *v = s_obj_get (src, name);
    return s_obj_set (self, dst, key, v ? *v : s_null);
}

/* The string member name, decoded (in the arena), or NULL when absent or not a string. */
static const char *
s_obj_str (projection_t *self, const s_obj_t *o, const char *name)
{
    canon_span_t *v = s_obj_get (o, name);
    if (!v || !canon_is_string (*v))
        return NULL;
    char *out = (char *) s_alloc (&self->arena, v->len);
    if (out)
        canon_string_decode (*v, out);
    return out;
}

/* Fills o with the members of a canonical object's text. */
static int
s_obj_load (projection_t *self, s_obj_t *o, const char *text, size_t len)
{
    memset (o, 0, sizeof *o);
    const char *cursor = text;
    canon_member_t m;
    while (canon_next_member (&cursor, text + len, &m))
        if (s_obj_set (self, o, m.key, m.value))
            return -1;
    return 0;
}

/* Parses text into o; when copy, the text is first copied into the arena (it is
 * not ours to keep). Returns 0, -2 when it is not a JSON object (err says why),
 * -1 out of memory. */
static int
s_obj_parse (projection_t *self, s_obj_t *o, const char *text, size_t len, int copy, char *err, size_t err_size)
{
    canon_member_t members [CANON_MAX_MEMBERS];
    size_t count = 0;
    if (canon_parse_object (text, len, members, &count)) {
        const char *kept = copy ? s_strndup (&self->arena, text, len) : text;
        memset (o, 0, sizeof *o);
        if (!kept || (count && !(o->m = (canon_member_t *) s_alloc (&self->arena, count * sizeof (canon_member_t)))))
            return -1;
        for (size_t i = 0; i < count; i++) {
            /* the same offsets in the copy */
            o->m [i].key.ptr = kept + (members [i].key.ptr - text);
            o->m [i].key.len = members [i].key.len;
            o->m [i].value.ptr = kept + (members [i].value.ptr - text);
            o->m [i].value.len = members [i].value.len;
        }
        o->count = o->cap = count;
        return 0;
    }
    char *normal;
    size_t normal_len;
    int rc = canon_normalize (text, len, &normal, &normal_len, err, err_size);
    if (rc)
        return rc;
    char *kept = s_strndup (&self->arena, normal, normal_len);
    free (normal);
    return kept ? s_obj_load (self, o, kept, normal_len) : -1;
}

static size_t
s_obj_size (const s_obj_t *o)
{
    size_t size = 2 + (o->count ? o->count - 1 : 0);
    for (size_t i = 0; i < o->count; i++)
        size += o->m [i].key.len + 1 + o->m [i].value.len;
    return size;
}

static size_t
s_obj_write (const s_obj_t *o, char *out)
{
    size_t n = 0;
    out [n++] = '{';
    for (size_t i = 0; i < o->count; i++) {
        if (i)
            out [n++] = ',';
        memcpy (out + n, o->m [i].key.ptr, o->m [i].key.len);
        n += o->m [i].key.len;
        out [n++] = ':';
        memcpy (out + n, o->m [i].value.ptr, o->m [i].value.len);
        n += o->m [i].value.len;
    }
    out [n++] = '}';
    return n;
}

/* The object's text in the arena (NUL-terminated). */
static int
s_obj_dump (projection_t *self, const s_obj_t *o, canon_span_t *out)
{
    size_t size = s_obj_size (o);
    char *p = (char *) s_alloc (&self->arena, size + 1);
    if (!p)
        return -1;
    out->len = s_obj_write (o, p);
    p [out->len] = 0;
    out->ptr = p;
    return 0;
}

/* ---- life cycle ---------------------------------------------------------------------- */

static projection_t *
s_new (const readmodel_store_ops_t *ops, const char *location, config_t *config, int rebuild)
{
    if (!ops || !location)
        return NULL;
    projection_t *self = calloc (1, sizeof (projection_t));
    if (!self)
        return NULL;
    self->ops = ops;
    self->location = strdup (location);
    if (!self->location)
        goto fail;
    char err [160];
    if (partition_from_config (config, &self->part_index, &self->part_count, err, sizeof err)) {
        log_error (NULL, NULL, "projection: %s", err);
        goto fail;
    }
    /* auto (no partition until a lease is claimed): the name stays empty, so load
     * reads the least row, and nothing is applied before projection_set_partition
     * (a rebuild target writes every partition's row: any index names them) */
    if (self->part_index != PARTITION_AUTO || rebuild)
        partition_checkpoint_name (self->part_index < 0 ? 0 : self->part_index, self->part_count,
                                   self->checkpoint_name, sizeof self->checkpoint_name);
    /* a rebuild target holds every partition: nobody else writes it */
    self->all_partitions = rebuild;
    self->impl = rebuild && ops->open_rebuild ? ops->open_rebuild (location, config) : ops->open (location, config);
    if (!self->impl)
        goto fail;
    if (projection_load (self) != 0 && ops->transactional)
        goto fail;
    return self;
fail:
    projection_destroy (&self);
    return NULL;
}

projection_t *
projection_new_with (const readmodel_store_ops_t *ops, const char *location, config_t *config)
{
    return s_new (ops, location, config, 0);
}

projection_t *
projection_new_rebuild (const readmodel_store_ops_t *ops, const char *location, config_t *config)
{
    return s_new (ops, location, config, 1);
}

projection_t *
projection_new (const char *path)
{
    return projection_new_with (&readmodel_sqlite_ops, path, NULL);
}

void
projection_destroy (projection_t **self_p)
{
    if (self_p && *self_p) {
        projection_t *self = *self_p;
        if (self->in_tx)
            projection_rollback (self);
        if (self->impl)
            self->ops->close (self->impl);
        s_batch_forget (self);
        free (self->cases.slots);
        free (self->docs.slots);
        free (self->children.slots);
        free (self->case_list.items);
        free (self->doc_list.items);
        free (self->out.data);
        free (self->summary.data);
        s_arena_free (&self->arena);
        free (self->location);
        free (self);
        *self_p = NULL;
    }
}

int
projection_load (projection_t *self)
{
    if (self->loaded)
        return 0;
    int64_t position = 0;
    if (self->ops->load (self->impl, self->checkpoint_name, &position) != 0) {
        if (!self->load_failing)
            log_warn (NULL, NULL, "projection: read models at %s (%s) not available yet; will retry",
                      self->location, self->ops->name);
        self->load_failing = 1;
        return -1;
    }
    if (self->load_failing)
        log_info (NULL, NULL, "projection: read models at %s available again", self->location);
    self->load_failing = 0;
    self->loaded = 1;
    self->checkpoint = self->pending = position;
    return 0;
}

int
projection_loaded (projection_t *self)
{
    return self->loaded;
}

const char *
projection_backend (projection_t *self)
{
    return self->ops->name;
}

int
projection_transactional (projection_t *self)
{
    return self->ops->transactional;
}

int
projection_in_tx (projection_t *self)
{
    return self->in_tx;
}

int64_t
projection_checkpoint (projection_t *self)
{
    return self->checkpoint;
}

void
projection_partition (projection_t *self, int *index, int *count)
{
    *index = self->part_index;
    *count = self->part_count;
}

int
projection_set_partition (projection_t *self, int index)
{
    if (!self->loaded || self->in_tx || index < 0 || index >= self->part_count)
        return -1;
    char name [PARTITION_NAME_MAX];
    int64_t position = 0;
    partition_checkpoint_name (index, self->part_count, name, sizeof name);
    if (self->ops->checkpoint_get (self->impl, name, &position) < 0)
        return -1;
    self->part_index = index;
    memcpy (self->checkpoint_name, name, sizeof name);
    self->checkpoint = self->pending = position;
    return 0;
}

int
projection_lease_claim (projection_t *self, const char *owner, int64_t now_ms, int64_t ttl_ms, int *index)
{
    return self->ops->lease_claim ? self->ops->lease_claim (self->impl, self->part_count, owner, now_ms, ttl_ms, index) : -1;
}

int
projection_lease_renew (projection_t *self, int index, const char *owner, int64_t now_ms, int64_t ttl_ms)
{
    return self->ops->lease_renew ? self->ops->lease_renew (self->impl, self->part_count, index, owner, now_ms, ttl_ms) : -1;
}

int
projection_lease_release (projection_t *self, int index, const char *owner)
{
    return self->ops->lease_release ? self->ops->lease_release (self->impl, self->part_count, index, owner) : -1;
}

void
projection_set_all_partitions (projection_t *self, int all)
{
    self->all_partitions = all;
}

int
projection_checkpoints (projection_t *self, rm_checkpoint_fn *fn, void *arg)
{
    if (!self->loaded || !self->ops->checkpoints)
        return -1;
    return self->ops->checkpoints (self->impl, fn, arg);
}

/* 1 if ev is this projection's to apply. */
static int
s_ours (projection_t *self, const event_t *ev)
{
    return self->all_partitions
        || (self->part_index != PARTITION_AUTO
            && (self->part_count <= 1 || partition_of (ev->stream, self->part_count) == self->part_index));
}

/* Writes the checkpoint rows: its own, or every partition's (a rebuild). */
static int
s_set_checkpoint (projection_t *self, int64_t position)
{
    if (!self->all_partitions || self->part_count <= 1) {
        const char *names [1] = { self->checkpoint_name };
        return self->ops->set_checkpoint (self->impl, names, 1, position);
    }
    size_t n = (size_t) self->part_count;
    char (*text) [PARTITION_NAME_MAX] = calloc (n, PARTITION_NAME_MAX);
    const char **names = calloc (n, sizeof (char *));
    int rc = text && names ? 0 : -1;
    for (size_t i = 0; i < n && rc == 0; i++) {
        partition_checkpoint_name ((int) i, self->part_count, text [i], PARTITION_NAME_MAX);
        names [i] = text [i];
    }
    if (rc == 0)
        rc = self->ops->set_checkpoint (self->impl, names, n, position);
    free (names);
    free (text);
    return rc;
}

void
projection_stats (projection_t *self, projection_stats_t *stats)
{
    *stats = self->stats;
}

void
projection_set_busy (projection_t *self, int busy)
{
    if (self->ops->set_busy && self->impl)
        self->ops->set_busy (self->impl, busy);
    if (!busy && !self->in_tx) {
        s_batch_forget (self);
        s_arena_free (&self->arena);
        /* the pages of a catch-up went back to the heap; give them to the system */
        malloc_trim (0);
    }
}

/* Writes n's decimal digits at out; returns how many. */
static size_t
s_put_int (char *out, int64_t value)
{
    char digits [24];
    size_t n = 0, len = 0;
    uint64_t v = value < 0 ? (uint64_t) 0 - (uint64_t) value : (uint64_t) value;
    do
        digits [n++] = (char) ('0' + v % 10);
    while (v /= 10);
    if (value < 0)
        out [len++] = '-';
    while (n)
        out [len++] = digits [--n];
    return len;
}

static void
s_put_2 (char *out, unsigned v)
{
    out [0] = (char) ('0' + v / 10 % 10);
    out [1] = (char) ('0' + v % 10);
}

/* RFC 3339 UTC with milliseconds, the format of every time in the events. The
 * events of one command share their second: the date part is kept from the last
 * call. */
static void
s_format_time (projection_t *self, int64_t us, char out [32])
{
    int64_t sec = us / 1000000, rem = us % 1000000;
    if (rem < 0) {
        rem += 1000000;
        sec--;
    }
    if (!self->time_valid || sec != self->time_sec) {
        time_t t = (time_t) sec;
        struct tm tm;
        if (!gmtime_r (&t, &tm)) {
            snprintf (out, 32, "1970-01-01T00:00:00.000Z");
            return;
        }
        /* The modulos keep the widths fixed; real dates are in range. */
        char *p = self->time_text;
        unsigned year = (unsigned) (tm.tm_year + 1900) % 10000u;
        s_put_2 (p, year / 100);
        s_put_2 (p + 2, year % 100);
        p [4] = '-';
        s_put_2 (p + 5, (unsigned) (tm.tm_mon + 1));
        p [7] = '-';
        s_put_2 (p + 8, (unsigned) tm.tm_mday);
        p [10] = 'T';
        s_put_2 (p + 11, (unsigned) tm.tm_hour);
        p [13] = ':';
        s_put_2 (p + 14, (unsigned) tm.tm_min);
        p [16] = ':';
        s_put_2 (p + 17, (unsigned) tm.tm_sec);
        p [19] = '.';
        self->time_sec = sec;
        self->time_valid = 1;
    }
    memcpy (out, self->time_text, 20);
    unsigned ms = (unsigned) (rem / 1000);
    out [20] = (char) ('0' + ms / 100);
    s_put_2 (out + 21, ms % 100);
    out [23] = 'Z';
    out [24] = 0;
}

/* ---- loading stored rows -------------------------------------------------------------- */

static int
s_on_case_row (void *arg, const rm_case_row_t *row)
{
    projection_t *self = (projection_t *) arg;
    if (!row->id)
        return 0;
    void *known = s_map_get (&self->cases, row->id);
    if (known && known != &s_absent)
        return 0;
    s_case_t *c = (s_case_t *) s_alloc (&self->arena, sizeof (s_case_t));
    if (!c)
        return -1;
    memset (c, 0, sizeof *c);
    if (!(c->id = s_strndup (&self->arena, row->id, strlen (row->id))))
        return -1;
    c->seq = row->seq;
    c->updated_position = c->stored_position = row->updated_position;
    if (row->summary_json) {
        char err [8];
        int rc = s_obj_parse (self, &c->summary, row->summary_json, row->summary_size, 1, err, sizeof err);
        if (rc == -1)
            return -1;
        c->readable = rc == 0;          /* not written by us: its events are skipped, not retried */
    }
    return s_map_put (&self->cases, c->id, c) || s_list_add (&self->case_list, c) ? -1 : 0;
}

static int
s_on_doc_row (void *arg, const rm_row_t *row)
{
    projection_t *self = (projection_t *) arg;
    if (!row->id)
        return 0;
    void *known = s_map_get (&self->docs, row->id);
    if (known && known != &s_absent)
        return 0;
    s_doc_t *d = (s_doc_t *) s_alloc (&self->arena, sizeof (s_doc_t));
    if (!d)
        return -1;
    memset (d, 0, sizeof *d);
    d->seq = row->seq;
    d->updated_position = row->updated_position;
    if (!(d->id = s_strndup (&self->arena, row->id, strlen (row->id))))
        return -1;
    if (row->case_id && !(d->case_id = s_strndup (&self->arena, row->case_id, strlen (row->case_id))))
        return -1;
    if (row->status && !(d->status = s_strndup (&self->arena, row->status, strlen (row->status))))
        return -1;
    if (row->json) {
        char err [8];
        int rc = s_obj_parse (self, &d->row, row->json, row->json_size, 1, err, sizeof err);
        if (rc == -1)
            return -1;
        d->readable = rc == 0 && d->case_id;
        if (d->readable && s_obj_dump (self, &d->row, &d->json))
            return -1;
    }
    return s_map_put (&self->docs, d->id, d) || s_list_add (&self->doc_list, d) ? -1 : 0;
}

/* Reads the stored rows of ids (cases or documents) not yet known, in chunks, and
 * remembers which were not found. 0 ok, -1 database failure. */
static int
s_fetch (projection_t *self, int docs, const char *const *ids, size_t count)
{
    s_map_t *map = docs ? &self->docs : &self->cases;
    for (size_t at = 0; at < count; at += S_PREFETCH_CHUNK) {
        size_t n = count - at < S_PREFETCH_CHUNK ? count - at : S_PREFETCH_CHUNK;
        int rc = docs ? self->ops->documents_get (self->impl, ids + at, n, s_on_doc_row, self)
                      : self->ops->cases_get (self->impl, ids + at, n, s_on_case_row, self);
        if (rc)
            return -1;
        for (size_t i = at; i < at + n; i++)
            if (!s_map_get (map, ids [i]) && s_map_put (map, ids [i], &s_absent))
                return -1;
    }
    return 0;
}

/* Looks up one id, from the batch or the store. */
static int
s_fetch_one (projection_t *self, int docs, const char *id)
{
    if (s_map_get (docs ? &self->docs : &self->cases, id))
        return 0;
    char *key = s_strndup (&self->arena, id, strlen (id));
    if (!key)
        return -1;
    const char *ids [1] = { key };
    return s_fetch (self, docs, ids, 1);
}

/* ---- cases ------------------------------------------------------------------------------ */

/* Finds a case in the batch or the store. Returns 0 with *out set (NULL when the
 * case does not exist), -1 on a database error, -2 when its stored summary cannot
 * be read (not written by us: the events are skipped, not retried). */
static int
s_case_get (projection_t *self, const char *case_id, s_case_t **out)
{
    /* a case's events come one after the other */
    s_case_t *last = self->last_case;
    if (last && strcmp (last->id, case_id) == 0) {
        *out = last;
        return 0;
    }
    *out = NULL;
    if (s_fetch_one (self, 0, case_id))
        return -1;
    s_case_t *c = (s_case_t *) s_map_get (&self->cases, case_id);
    if (!c || (void *) c == &s_absent)
        return 0;
    if (!c->readable)
        return -2;
    c->touched = 1;
    *out = self->last_case = c;
    return 0;
}

/* *seq = the seq of case_id's case, 0 when there is no such case; unlike s_case_get
 * it does not mark the case changed. Returns 0, or -1 on a database error. */
static int
s_case_seq (projection_t *self, const char *case_id, int64_t *seq)
{
    *seq = 0;
    s_case_t *c = self->last_case;
    if (!c || strcmp (c->id, case_id) != 0) {
        if (s_fetch_one (self, 0, case_id))
            return -1;
        c = (s_case_t *) s_map_get (&self->cases, case_id);
        if (!c || (void *) c == &s_absent)
            return 0;
    }
    *seq = c->seq;
    return 0;
}

/* Records that ev changed the case: its row is rewritten at the end of the batch.
 * An event the stored row already reflects (a replay) changes nothing. */
static int
s_case_mark (projection_t *self, s_case_t *c, const event_t *ev, const char *at)
{
    if (ev->position <= c->stored_position)
        return 0;
    if (ev->position > c->updated_position)
        c->updated_position = ev->position;
    return s_obj_set_str (self, &c->summary, K ("updated_at"), at);
}

static int
s_case_add_child (projection_t *self, s_case_t *c, s_child_t *ch)
{
    if (c->child_count == c->child_cap) {
        size_t cap = c->child_cap ? c->child_cap * 2 : 16;
        s_child_t **children = (s_child_t **) s_alloc (&self->arena, cap * sizeof (s_child_t *));
        if (!children)
            return -1;
        if (c->child_count)
            memcpy (children, c->children, c->child_count * sizeof (s_child_t *));
        c->children = children;
        c->child_cap = cap;
    }
    c->children [c->child_count++] = ch;
    return 0;
}

/* A child row as the store reports it (a case that existed before the batch). */
static int
s_on_child_row (void *arg, const rm_row_t *row)
{
    projection_t *self = (projection_t *) arg;
    s_case_t *c = row->case_id ? (s_case_t *) s_map_get (&self->cases, row->case_id) : NULL;
    if (!c || (void *) c == &s_absent || !row->id || !row->json)
        return 0;                       /* not asked for, or nothing we could use */
    if ((unsigned) row->kind >= RM_KIND_COUNT)
        return 0;
    s_child_t *ch = (s_child_t *) s_alloc (&self->arena, sizeof (s_child_t));
    if (!ch)
        return -1;
    memset (ch, 0, sizeof *ch);
    ch->kind = row->kind;
    ch->seq = row->seq;
    ch->id = s_strndup (&self->arena, row->id, strlen (row->id));
    ch->company_id = row->company_id ? s_strndup (&self->arena, row->company_id, strlen (row->company_id)) : NULL;
    ch->status = s_strndup (&self->arena, row->status ? row->status : "", row->status ? strlen (row->status) : 0);
    ch->json.ptr = s_strndup (&self->arena, row->json, row->json_size);
    ch->json.len = row->json_size;
    if (!ch->id || !ch->status || !ch->json.ptr || (row->company_id && !ch->company_id))
        return -1;
    return s_case_add_child (self, c, ch);
}

static int
s_child_cmp (const void *a, const void *b)
{
    const s_child_t *x = *(const s_child_t *const *) a, *y = *(const s_child_t *const *) b;
    if (x->kind != y->kind)
        return x->kind < y->kind ? -1 : 1;
    if (x->seq != y->seq)
        return x->seq < y->seq ? -1 : 1;
    return strcmp (x->id, y->id);
}

static int
s_str_cmp (const void *a, const void *b)
{
    return strcmp (*(const char *const *) a, *(const char *const *) b);
}

/* Appends "key":n to b (key as a string token); 0, 1 when key is not valid UTF-8
 * (jansson sets no such member), -1. */
static int
s_count_member (s_buf_t *b, const char *key, size_t n, int first)
{
    size_t len = strlen (key);
    size_t size = canon_string_size (key, len);
    if (!size)
        return 1;
    if (s_buf_reserve (b, size + 24))
        return -1;
    if (!first)
        b->data [b->size++] = ',';
    b->size += canon_string_write (key, len, b->data + b->size);
    b->size += (size_t) snprintf (b->data + b->size, 24, ":%zu", n);
    return 0;
}

/* document_counts: the four statuses at zero, then each status found, in byte order. */
static int
s_case_counts (projection_t *self, s_case_t *c)
{
    const char **statuses = NULL;
    size_t n = 0;
    if (c->child_count && !(statuses = (const char **) s_alloc (&self->arena, c->child_count * sizeof (char *))))
        return -1;
    for (size_t i = 0; i < c->child_count; i++)
        if (c->children [i]->kind == RM_DOCUMENT)
            statuses [n++] = c->children [i]->status;
    if (n > 1)
        qsort (statuses, n, sizeof (char *), s_str_cmp);
    size_t fixed [4] = { 0 };
    const size_t n_fixed = sizeof s_doc_statuses / sizeof s_doc_statuses [0];
    for (size_t i = 0; i < n; i++)
        for (size_t f = 0; f < n_fixed; f++)
            if (strcmp (statuses [i], s_doc_statuses [f]) == 0)
                fixed [f]++;
    s_buf_t *b = &self->out;
    b->size = 0;
    if (s_buf_add (b, "{", 1))
        return -1;
    for (size_t f = 0; f < n_fixed; f++)
        if (s_count_member (b, s_doc_statuses [f], fixed [f], f == 0) < 0)
            return -1;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp (statuses [j], statuses [i]) == 0)
            j++;
        int known = 0;
        for (size_t f = 0; f < n_fixed && !known; f++)
            known = strcmp (statuses [i], s_doc_statuses [f]) == 0;
        if (!known && s_count_member (b, statuses [i], j - i, 0) < 0)
            return -1;
        i = j;
    }
    if (s_buf_add (b, "}", 1))
        return -1;
    char *text = s_strndup (&self->arena, b->data, b->size);
    if (!text)
        return -1;
    canon_span_t counts = { text, b->size };
    return s_obj_set (self, &c->summary, K ("document_counts"), counts);
}

/* 1 if company_id names one of the case's companies (sorted first). */
static int
s_case_has_company (s_case_t *c, const char *company_id)
{
    for (size_t i = 0; company_id && i < c->child_count && c->children [i]->kind == RM_COMPANY; i++)
        if (strcmp (c->children [i]->id, company_id) == 0)
            return 1;
    return 0;
}

/* Appends the json of every child of kind, comma separated; returns how many. */
static size_t
s_append_children (s_buf_t *b, s_case_t *c, rm_kind_t kind, size_t max, int *failed)
{
    size_t n = 0;
    for (size_t i = 0; i < c->child_count && n < max; i++) {
        s_child_t *ch = c->children [i];
        if (ch->kind != kind)
            continue;
        /* the owners of the case's own companies */
        if (kind == RM_BENEFICIAL_OWNER && !s_case_has_company (c, ch->company_id))
            continue;
        if ((n++ && s_buf_add (b, ",", 1)) || s_buf_span (b, ch->json))
            *failed = 1;
    }
    return n;
}

/* Writes one touched case: summary_json, then full_json assembled from the
 * ready-made JSON of its child rows (byte concatenation, no re-parsing). */
static int
s_case_write (projection_t *self, s_case_t *c)
{
    if (c->child_count > 1)
        qsort (c->children, c->child_count, sizeof (s_child_t *), s_child_cmp);
    if (s_case_counts (self, c))
        return -1;
    s_buf_t *s = &self->summary;
    s->size = 0;
    if (s_buf_reserve (s, s_obj_size (&c->summary)))
        return -1;
    s->size = s_obj_write (&c->summary, s->data);
    s->data [s->size] = 0;
    s_buf_t *full = &self->out;
    full->size = 0;
    int failed = s_buf_add (full, s->data, s->size - 1);          /* without the closing brace */
    failed |= s_buf_add (full, ",\"persons\":[", 12);
    s_append_children (full, c, RM_PERSON, SIZE_MAX, &failed);
    failed |= s_buf_add (full, "],\"company\":", 12);
    if (s_append_children (full, c, RM_COMPANY, 1, &failed) == 0)
        failed |= s_buf_add (full, "null", 4);
    failed |= s_buf_add (full, ",\"beneficial_owners\":[", 22);
    s_append_children (full, c, RM_BENEFICIAL_OWNER, SIZE_MAX, &failed);
    failed |= s_buf_add (full, "],\"documents\":[", 15);
    s_append_children (full, c, RM_DOCUMENT, SIZE_MAX, &failed);
    failed |= s_buf_add (full, "]}", 2);
    if (failed)
        return -1;
    rm_case_row_t row = {
        .id = c->id,
        .seq = c->seq,
        .updated_position = c->updated_position,
        .client_id = s_obj_str (self, &c->summary, "client_id"),
        .traitement_type = s_obj_str (self, &c->summary, "traitement_type"),
        .status = s_obj_str (self, &c->summary, "status"),
        .summary_json = s->data,
        .summary_size = s->size,
        .full_json = full->data,
        .full_size = full->size,
    };
    return self->ops->put_case (self->impl, &row);
}

/* On a transactional backend the children of a case created by this batch are
 * the rows the batch put, kept in memory: its companies, persons and owners were
 * added as they were put; this adds its documents (each belongs to the case its
 * row names). A case stored before, or one whose rows the batch cannot vouch for
 * (a row put twice, an unreadable stored document), reads its children back. */
static int
s_children_in_memory (projection_t *self)
{
    for (size_t i = 0; i < self->case_list.count; i++) {
        s_case_t *c = (s_case_t *) self->case_list.items [i];
        if (c->stored_position != 0)
            c->read_children = 1;
    }
    for (size_t i = 0; i < self->doc_list.count; i++) {
        s_doc_t *d = (s_doc_t *) self->doc_list.items [i];
        s_case_t *c = d->case_id ? (s_case_t *) s_map_get (&self->cases, d->case_id) : NULL;
        if (c && (void *) c != &s_absent && !d->readable)
            c->read_children = 1;       /* its stored bytes are the store's to report */
    }
    for (size_t i = 0; i < self->doc_list.count; i++) {
        s_doc_t *d = (s_doc_t *) self->doc_list.items [i];
        s_case_t *c = d->case_id ? (s_case_t *) s_map_get (&self->cases, d->case_id) : NULL;
        if (!c || (void *) c == &s_absent || c->read_children || !d->readable)
            continue;
        s_child_t *ch = (s_child_t *) s_alloc (&self->arena, sizeof (s_child_t));
        if (!ch)
            return -1;
        memset (ch, 0, sizeof *ch);
        ch->kind = RM_DOCUMENT;
        ch->seq = d->seq;
        ch->id = d->id;
        ch->status = d->status ? d->status : "";
        ch->json = d->json;
        if (s_case_add_child (self, c, ch))
            return -1;
    }
    return 0;
}

/* Rewrites every case the batch touched, once; the children of those that read
 * them back are read in a few requests. */
static int
s_cases_flush (projection_t *self)
{
    int in_memory = self->ops->transactional;
    if (in_memory && s_children_in_memory (self))
        return -1;
    size_t total = self->case_list.count;
    const char **ids = calloc (total + 1, sizeof (char *));
    int *fresh = calloc (total + 1, sizeof (int));
    int rc = ids && fresh ? 0 : -1;
    size_t count = 0;
    for (size_t i = 0; i < total && rc == 0; i++) {
        s_case_t *c = (s_case_t *) self->case_list.items [i];
        if (!c->touched || !c->readable || (in_memory && !c->read_children))
            continue;
        c->child_count = 0;             /* the store reports them all */
        fresh [count] = c->stored_position == 0;       /* created by this batch */
        ids [count++] = c->id;
    }
    for (size_t at = 0; at < count && rc == 0; at += S_PREFETCH_CHUNK) {
        size_t n = count - at < S_PREFETCH_CHUNK ? count - at : S_PREFETCH_CHUNK;
        rc = self->ops->children_get (self->impl, ids + at, fresh + at, n, s_on_child_row, self);
    }
    for (size_t i = 0; i < total && rc == 0; i++) {
        s_case_t *c = (s_case_t *) self->case_list.items [i];
        if (c->touched && c->readable)
            rc = s_case_write (self, c);
    }
    free (ids);
    free (fresh);
    return rc;
}

/* ---- one event per type ------------------------------------------------------------
 * Each handler checks the payload before it writes anything, so a -2 (poison)
 * leaves no trace but the projector_errors row. Returns 0, -1 (database), -2. */

typedef struct {
    const event_t *ev;
    const char *case_id;        /* the stream: a case's events live in the case's stream */
    s_obj_t *data;
    char at [32];               /* the event's own time, for rows without one in data */
    char *err;
    size_t err_size;
} s_ctx_t;

static int s_poison (s_ctx_t *x, const char *fmt, ...) __attribute__ ((format (printf, 2, 3)));
static int
s_poison (s_ctx_t *x, const char *fmt, ...)
{
    va_list args;
    va_start (args, fmt);
    vsnprintf (x->err, x->err_size, fmt, args);
    va_end (args);
    return -2;
}

static const char *
s_data_str (projection_t *self, s_ctx_t *x, const char *name)
{
    return s_obj_str (self, x->data, name);
}

/* Looks up the event's case, which must exist. */
static int
s_need_case (projection_t *self, s_ctx_t *x, s_case_t **c)
{
    int rc = s_case_get (self, x->case_id, c);
    if (rc == -2)
        return s_poison (x, "unreadable summary_json of case %s", x->case_id);
    if (rc)
        return -1;
    if (!*c)
        return s_poison (x, "unknown case %s", x->case_id);
    return 0;
}

static int
s_on_case_created (projection_t *self, s_ctx_t *x)
{
    const char *client_id = s_data_str (self, x, "client_id");
    const char *type = s_data_str (self, x, "traitement_type");
    if (!client_id || !type)
        return s_poison (x, "CaseCreated without %s", client_id ? "traitement_type" : "client_id");
    s_case_t *c;
    int rc = s_case_get (self, x->case_id, &c);
    if (rc == -1)
        return -1;
    if (c && c->seq == x->ev->position)
        return 0;                       /* this very event, already stored (a replay) */
    if (c || rc == -2)
        return s_poison (x, "case %s already exists", x->case_id);
    const char *status = s_data_str (self, x, "status");
    const char *created = s_data_str (self, x, "created_at");
    c = (s_case_t *) s_alloc (&self->arena, sizeof (s_case_t));
    if (!c)
        return -1;
    memset (c, 0, sizeof *c);
    if (!(c->id = s_strndup (&self->arena, x->case_id, strlen (x->case_id))))
        return -1;
    c->seq = c->updated_position = x->ev->position;
    c->touched = c->readable = 1;
    s_obj_t *s = &c->summary;
    if (s_obj_set_str (self, s, K ("case_id"), x->case_id)
    ||  s_obj_set_str (self, s, K ("client_id"), client_id)
    ||  s_obj_copy (self, s, K ("case_type"), x->data, "case_type")
    ||  s_obj_copy (self, s, K ("case_version"), x->data, "case_version")
    ||  s_obj_set_str (self, s, K ("traitement_type"), type)
    ||  s_obj_set_str (self, s, K ("status"), status ? status : "OPEN")
    ||  s_obj_set_str (self, s, K ("created_at"), created ? created : x->at)
    ||  s_obj_set_str (self, s, K ("updated_at"), created ? created : x->at)
    ||  s_obj_set (self, s, K ("document_counts"), S_SPAN ("{}")))
        return -1;
    return s_map_put (&self->cases, c->id, c) || s_list_add (&self->case_list, c) ? -1 : 0;
}

static int
s_on_case_status (projection_t *self, s_ctx_t *x)
{
    const char *to = s_data_str (self, x, "to");
    if (!to)
        return s_poison (x, "CaseStatusChanged without %s", "to");
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    if (x->ev->position <= c->stored_position)
        return 0;                       /* already in the stored summary */
    const char *at = s_data_str (self, x, "changed_at");
    if (s_obj_set_str (self, &c->summary, K ("status"), to))
        return -1;
    return s_case_mark (self, c, x->ev, at ? at : x->at);
}

/* Writes a child row (company, person or beneficial owner) created by the event,
 * and keeps it for its case's full_json when the case is new. */
static int
s_put_row (projection_t *self, s_case_t *c, rm_kind_t kind, const char *id, const char *case_id,
           const char *company_id, int64_t position, const s_obj_t *row)
{
    canon_span_t text;
    if (s_obj_dump (self, row, &text))
        return -1;
    rm_row_t r = {
        .kind = kind,
        .id = id,
        .case_id = case_id,
        .company_id = company_id,
        .seq = position,
        .updated_position = position,
        .json = text.ptr,
        .json_size = text.len,
    };
    int existed = self->ops->put_row (self->impl, &r);
    if (existed < 0)
        return -1;
    if (!self->ops->transactional)
        return 0;                       /* every case reads its children back */
    if (existed)
        c->read_children = 1;           /* the stored row keeps its first seq */
    /* Keyed by kind and id: a row put twice by one batch (moved to another case, or
     * written again) has its final owner and seq in the store, so both cases read
     * their children back from it. */
    size_t id_len = strlen (id);
    char *key = (char *) s_alloc (&self->arena, id_len + 2);
    if (!key)
        return -1;
    key [0] = (char) ('0' + kind);
    memcpy (key + 1, id, id_len + 1);
    s_child_t *twice = (s_child_t *) s_map_get (&self->children, key);
    if (twice) {
        twice->owner->read_children = 1;
        c->read_children = 1;
        return 0;
    }
    s_child_t *ch = (s_child_t *) s_alloc (&self->arena, sizeof (s_child_t));
    if (!ch)
        return -1;
    memset (ch, 0, sizeof *ch);
    ch->kind = kind;
    ch->seq = position;
    ch->id = key + 1;
    ch->company_id = company_id ? s_strndup (&self->arena, company_id, strlen (company_id)) : NULL;
    ch->status = "";
    ch->json = text;
    ch->owner = c;
    if ((company_id && !ch->company_id) || s_map_put (&self->children, key, ch))
        return -1;
    /* a case stored before the batch reads its children back anyway */
    return c->stored_position == 0 && !c->read_children ? s_case_add_child (self, c, ch) : 0;
}

static int
s_on_company (projection_t *self, s_ctx_t *x)
{
    const char *company_id = s_data_str (self, x, "company_id");
    if (!company_id)
        return s_poison (x, "CompanyProfileCreated without %s", "company_id");
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    s_obj_t row = { 0 };
    if (s_obj_set_str (self, &row, K ("company_id"), company_id)
    ||  s_obj_set_str (self, &row, K ("case_id"), x->case_id))
        return -1;
    for (size_t i = 0; i < x->data->count; i++) {
        canon_member_t *m = &x->data->m [i];
        if (!canon_key_is (m->key, "case_id") && !canon_key_is (m->key, "company_id")
        &&  s_obj_set (self, &row, m->key, m->value))
            return -1;
    }
    if (s_put_row (self, c, RM_COMPANY, company_id, x->case_id, NULL, x->ev->position, &row))
        return -1;
    return s_case_mark (self, c, x->ev, x->at);
}

static int
s_on_person (projection_t *self, s_ctx_t *x)
{
    const char *person_id = s_data_str (self, x, "person_id");
    canon_span_t *person_text = s_obj_get (x->data, "person");
    int is_object = person_text && person_text->len >= 2 && person_text->ptr [0] == '{';
    if (!person_id || !is_object)
        return s_poison (x, "PersonLinked without %s", person_id ? "person" : "person_id");
    const char *company_id = s_data_str (self, x, "company_id");
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    s_obj_t person;
    if (s_obj_load (self, &person, person_text->ptr, person_text->len))
        return -1;
    s_obj_t row = { 0 };
    if (s_obj_set_str (self, &row, K ("person_id"), person_id)
    ||  s_obj_set_str (self, &row, K ("case_id"), x->case_id)
    ||  s_obj_set_str (self, &row, K ("company_id"), company_id)
    ||  s_obj_copy (self, &row, K ("role"), x->data, "role")
    ||  s_obj_copy (self, &row, K ("firstname"), &person, "firstname")
    ||  s_obj_copy (self, &row, K ("lastname"), &person, "lastname")
    ||  s_obj_copy (self, &row, K ("birthdate"), &person, "birthdate"))
        return -1;
    /* the contact fields: every member the row does not have yet */
    for (size_t i = 0; i < person.count; i++) {
        int present = 0;
        for (size_t j = 0; j < row.count && !present; j++)
            present = row.m [j].key.len == person.m [i].key.len
                   && memcmp (row.m [j].key.ptr, person.m [i].key.ptr, person.m [i].key.len) == 0;
        if (!present && s_obj_set (self, &row, person.m [i].key, person.m [i].value))
            return -1;
    }
    if (s_put_row (self, c, RM_PERSON, person_id, x->case_id, company_id, x->ev->position, &row))
        return -1;
    return s_case_mark (self, c, x->ev, x->at);
}

static int
s_on_beneficial_owner (projection_t *self, s_ctx_t *x)
{
    const char *bo_id = s_data_str (self, x, "beneficial_owner_id");
    const char *company_id = s_data_str (self, x, "company_id");
    if (!bo_id || !company_id)
        return s_poison (x, "BeneficialOwnerAdded without %s", bo_id ? "company_id" : "beneficial_owner_id");
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    s_obj_t row = { 0 };
    if (s_obj_set_str (self, &row, K ("beneficial_owner_id"), bo_id)
    ||  s_obj_set_str (self, &row, K ("company_id"), company_id)
    ||  s_obj_set_str (self, &row, K ("case_id"), x->case_id)
    ||  s_obj_copy (self, &row, K ("person_id"), x->data, "person_id")
    ||  s_obj_copy (self, &row, K ("ownership_percentage"), x->data, "ownership_percentage")
    ||  s_obj_copy (self, &row, K ("types_of_control"), x->data, "types_of_control")
    ||  s_obj_copy (self, &row, K ("is_ubo"), x->data, "is_ubo")
    ||  s_obj_copy (self, &row, K ("person"), x->data, "person"))
        return -1;
    if (s_put_row (self, c, RM_BENEFICIAL_OWNER, bo_id, x->case_id, company_id, x->ev->position, &row))
        return -1;
    return s_case_mark (self, c, x->ev, x->at);
}

/* Finds a document in the batch or the store. Returns 0 with *out set (NULL when
 * unknown), -1 on a database error, -2 when its row is unreadable (*out is then
 * the unreadable entry). */
static int
s_doc_get (projection_t *self, const char *doc_id, s_doc_t **out)
{
    *out = NULL;
    if (s_fetch_one (self, 1, doc_id))
        return -1;
    s_doc_t *d = (s_doc_t *) s_map_get (&self->docs, doc_id);
    if (!d || (void *) d == &s_absent)
        return 0;
    *out = d;
    return d->readable ? 0 : -2;
}

/* Writes every document the batch changed (before the cases: their counts and
 * full_json read the documents). */
static int
s_docs_flush (projection_t *self)
{
    for (size_t i = 0; i < self->doc_list.count; i++) {
        s_doc_t *d = (s_doc_t *) self->doc_list.items [i];
        if (!d->dirty)
            continue;
        const char *status = s_obj_str (self, &d->row, "status");
        if (s_obj_dump (self, &d->row, &d->json))
            return -1;
        d->status = status ? status : "";
        rm_row_t row = {
            .kind = RM_DOCUMENT,
            .id = d->id,
            .case_id = d->case_id,
            .status = d->status,
            .seq = d->seq,
            .updated_position = d->updated_position,
            .json = d->json.ptr,
            .json_size = d->json.len,
        };
        if (self->ops->put_row (self->impl, &row) < 0)
            return -1;
        d->dirty = 0;
    }
    return 0;
}

static int
s_on_document_required (projection_t *self, s_ctx_t *x)
{
    const char *doc_id = s_data_str (self, x, "document_id");
    if (!doc_id)
        return s_poison (x, "DocumentRequirementDetermined without %s", "document_id");
    const char *status = s_data_str (self, x, "status");
    if (!status)
        status = "AWAITING_UPLOAD";
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    s_doc_t *d;
    rc = s_doc_get (self, doc_id, &d);
    if (rc == -1)
        return -1;
    if (rc == -2) {
        /* An unreadable row is written anew (the store keeps its seq and case), so
         * the cases read their documents back from the store. */
        c->read_children = 1;
        s_case_t *owner = d->case_id ? (s_case_t *) s_map_get (&self->cases, d->case_id) : NULL;
        if (owner && (void *) owner != &s_absent)
            owner->read_children = 1;
        d->readable = 1;
        d->updated_position = 0;
        d->case_id = NULL;
    }
    else
    if (d && d->updated_position >= x->ev->position)
        return s_case_mark (self, c, x->ev, x->at);     /* already applied: the document is
                                                           stored; the case may not be */
    s_obj_t row = { 0 };
    if (s_obj_set_str (self, &row, K ("document_id"), doc_id)
    ||  s_obj_set_str (self, &row, K ("case_id"), x->case_id)
    ||  s_obj_copy (self, &row, K ("document_type"), x->data, "document_type")
    ||  s_obj_copy (self, &row, K ("subject_type"), x->data, "subject_type")
    ||  s_obj_copy (self, &row, K ("subject_id"), x->data, "subject_id")
    ||  s_obj_copy (self, &row, K ("rule_id"), x->data, "rule_id")
    ||  s_obj_set_str (self, &row, K ("status"), status)
    ||  s_obj_set (self, &row, K ("history"), S_SPAN ("[]"))
    ||  s_obj_set_str (self, &row, K ("created_at"), x->at)
    ||  s_obj_set_str (self, &row, K ("updated_at"), x->at))
        return -1;
    if (!d) {
        d = (s_doc_t *) s_alloc (&self->arena, sizeof (s_doc_t));
        if (!d)
            return -1;
        memset (d, 0, sizeof *d);
        d->readable = 1;
        if (!(d->id = s_strndup (&self->arena, doc_id, strlen (doc_id))))
            return -1;
        if (s_map_put (&self->docs, d->id, d) || s_list_add (&self->doc_list, d))
            return -1;
    }
    if (!d->case_id) {
        if (!(d->case_id = s_strndup (&self->arena, x->case_id, strlen (x->case_id))))
            return -1;
        d->seq = x->ev->position;      /* a document keeps the seq it was first seen at */
    }
    d->row = row;
    d->updated_position = x->ev->position;
    d->dirty = 1;
    return s_case_mark (self, c, x->ev, x->at);
}

static int
s_on_document_status (projection_t *self, s_ctx_t *x)
{
    const char *doc_id = s_data_str (self, x, "document_id");
    const char *to = s_data_str (self, x, "to");
    if (!doc_id || !to)
        return s_poison (x, "DocumentStatusChanged without %s", doc_id ? "to" : "document_id");
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    s_doc_t *d;
    rc = s_doc_get (self, doc_id, &d);
    if (rc == -1)
        return -1;
    if (rc == -2)
        return s_poison (x, "unreadable row of document %s", doc_id);
    if (!d)
        return s_poison (x, "unknown document %s", doc_id);
    const char *at = s_data_str (self, x, "changed_at");
    if (!at)
        at = x->at;
    if (d->updated_position >= x->ev->position)
        return s_case_mark (self, c, x->ev, at);        /* already applied */
    canon_span_t *history = s_obj_get (&d->row, "history");
    canon_span_t empty = S_SPAN ("[]");
    if (!history || history->len < 2 || history->ptr [0] != '[') {
        if (s_obj_set (self, &d->row, K ("history"), empty))
            return -1;
        history = &empty;
    }
    s_obj_t entry = { 0 };
    canon_span_t entry_text;
    if (s_obj_copy (self, &entry, K ("from"), x->data, "from")
    ||  s_obj_set_str (self, &entry, K ("to"), to)
    ||  s_obj_copy (self, &entry, K ("reason"), x->data, "reason")
    ||  s_obj_set_str (self, &entry, K ("at"), at)
    ||  s_obj_dump (self, &entry, &entry_text))
        return -1;
    /* the array with one more item: "[...]" -> "[...,entry]" */
    size_t kept = history->len - 1;
    int empty_array = history->len == 2;
    char *grown = (char *) s_alloc (&self->arena, kept + 1 + entry_text.len + 1);
    if (!grown)
        return -1;
    memcpy (grown, history->ptr, kept);
    size_t n = kept;
    if (!empty_array)
        grown [n++] = ',';
    memcpy (grown + n, entry_text.ptr, entry_text.len);
    n += entry_text.len;
    grown [n++] = ']';
    canon_span_t grown_span = { grown, n };
    if (s_obj_set (self, &d->row, K ("history"), grown_span)
    ||  s_obj_set_str (self, &d->row, K ("status"), to)
    ||  s_obj_set_str (self, &d->row, K ("updated_at"), at))
        return -1;
    d->updated_position = x->ev->position;
    d->dirty = 1;
    return s_case_mark (self, c, x->ev, at);
}

/* The audit-trail row: the event with its payload. Built as text, the payload
 * embedded as it is in the log (it was just parsed, so it is valid JSON):
 * re-serialising it would cost more than everything else this row needs. */
static int
s_put_case_event (projection_t *self, s_ctx_t *x)
{
    const event_t *ev = x->ev;
    s_buf_t *row = &self->out;
    row->size = 0;
    char num [80];
    size_t n = 0;
    memcpy (num, "{\"position\":", 12);
    n = 12 + s_put_int (num + 12, ev->position);
    memcpy (num + n, ",\"version\":", 11);
    n += 11;
    n += s_put_int (num + n, ev->version);
    memcpy (num + n, ",\"event_id\":", 12);
    n += 12;
    if (s_buf_add (row, num, n)
    ||  s_buf_json_str (row, ev->id)
    ||  s_buf_add (row, ",\"type\":", 8)
    ||  s_buf_json_str (row, ev->type)
    ||  s_buf_add (row, ",\"timestamp\":", 13)
    ||  s_buf_json_str (row, x->at)
    ||  s_buf_add (row, ",\"command_id\":", 14)
    ||  s_buf_json_str (row, ev->command_id)
    /* Only when the event has one (events from before trace context have none). */
    ||  (ev->traceparent [0] && (s_buf_add (row, ",\"traceparent\":", 15)
                                 || s_buf_json_str (row, ev->traceparent)))
    ||  s_buf_add (row, ",\"data\":", 8)
    ||  s_buf_add (row, ev->data, ev->data_size)
    ||  s_buf_add (row, "}", 1))
        return -1;
    int64_t case_seq = 0;
    if (s_case_seq (self, x->case_id, &case_seq))
        return -1;
    if (case_seq == 0)
        return 0;               /* no such case: nobody can read its trail (404) */
    rm_event_row_t r = {
        .case_id = x->case_id,
        .case_seq = case_seq,
        .version = ev->version,
        .position = ev->position,
        .json = row->data,
        .json_size = row->size,
    };
    return self->ops->put_event (self->impl, &r);
}

typedef int (s_handler_fn) (projection_t *self, s_ctx_t *x);
static const struct {
    const char *type;
    s_handler_fn *fn;
} s_handlers [] = {
    { "CaseCreated", s_on_case_created },
    { "CompanyProfileCreated", s_on_company },
    { "PersonLinked", s_on_person },
    { "BeneficialOwnerAdded", s_on_beneficial_owner },
    { "DocumentRequirementDetermined", s_on_document_required },
    { "DocumentStatusChanged", s_on_document_status },
    { "CaseStatusChanged", s_on_case_status },
    /* NotificationRequired and unknown types: only the audit trail. */
};

/* Parses an event's payload into data. Returns 0, -2 with the reason in err (such
 * an event is poison), -1 out of memory. */
static int
s_parse (projection_t *self, const event_t *ev, s_obj_t *data, char *err, size_t err_size)
{
    if (!ev->stream [0]) {
        snprintf (err, err_size, "event without a stream");
        return -2;
    }
    if (!ev->data || ev->data_size == 0) {
        snprintf (err, err_size, "empty payload");
        return -2;
    }
    /* the payload outlives the batch's use of it: no copy */
    return s_obj_parse (self, data, ev->data, ev->data_size, 0, err, err_size);
}

static int
s_apply_event (projection_t *self, const event_t *ev, s_obj_t *data, char *err, size_t err_size)
{
    s_ctx_t x = { .ev = ev, .case_id = ev->stream, .data = data, .err = err, .err_size = err_size };
    s_format_time (self, ev->timestamp_us, x.at);
    int rc = 0;
    for (size_t i = 0; i < sizeof s_handlers / sizeof s_handlers [0]; i++)
        if (strcmp (ev->type, s_handlers [i].type) == 0) {
            rc = s_handlers [i].fn (self, &x);
            break;
        }
    if (rc == 0)
        rc = s_put_case_event (self, &x);
    return rc;
}

static int
s_record_error (projection_t *self, const event_t *ev, const char *error)
{
    char trace_id [33];
    log_set_trace (traceparent_trace_id (ev->traceparent, trace_id));
    log_error (ev->correlation_id, ev->stream, "projection: event at position %lld (id %s, %s) skipped: %s",
               (long long) ev->position, ev->id, ev->type, error);
    projector_metrics_poison ();
    log_set_trace (NULL);
    return self->ops->put_error (self->impl, ev->position, ev->id, error);
}

/* One event of the batch, parsed: data, or the reason it is poison. */
typedef struct {
    s_obj_t data;
    const char *error;          /* NULL: parsed */
    int parsed;
} s_event_t;

/* Reads, in a few requests, the stored cases and documents the events will need,
 * instead of one request per event. 0 ok, -1 database failure. */
static int
s_prefetch (projection_t *self, const event_t *events, s_event_t *parsed, size_t count)
{
    const char **case_ids = (const char **) s_alloc (&self->arena, (count + 1) * sizeof (char *));
    const char **doc_ids = (const char **) s_alloc (&self->arena, (count + 1) * sizeof (char *));
    if (!case_ids || !doc_ids)
        return -1;
    s_map_t seen = { 0 };
    size_t n_cases = 0, n_docs = 0;
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (!parsed [i].parsed)
            continue;
        const char *case_id = events [i].stream;
        if (!s_map_get (&self->cases, case_id)) {
            char *key = s_strndup (&self->arena, case_id, strlen (case_id));
            if (!key || s_map_put (&self->cases, key, &s_absent))
                rc = -1;
            else
                case_ids [n_cases++] = key;
        }
        if (strncmp (events [i].type, "Document", 8) != 0)
            continue;
        const char *doc_id = s_obj_str (self, &parsed [i].data, "document_id");
        if (doc_id && !s_map_get (&self->docs, doc_id) && !s_map_get (&seen, doc_id)) {
            if (s_map_put (&seen, doc_id, (void *) doc_id))
                rc = -1;
            else
                doc_ids [n_docs++] = doc_id;
        }
    }
    free (seen.slots);
    /* Ids marked absent above are replaced by what the store has. */
    if (rc == 0)
        rc = s_fetch (self, 0, case_ids, n_cases);
    if (rc == 0)
        rc = s_fetch (self, 1, doc_ids, n_docs);
    return rc;
}

/* ---- transactions ---------------------------------------------------------------------- */

int
projection_begin (projection_t *self)
{
    if (self->in_tx || !self->loaded)
        return -1;
    if (self->ops->begin (self->impl))
        return -1;
    self->in_tx = 1;
    /* Another writer of the same read models (a rebuild in place by partition 0) may
     * have moved this partition's checkpoint since: forward, the rows up to it are
     * there; back, rows this one had written are gone and must be written again. */
    int64_t stored = self->checkpoint;
    int found = self->ops->transactional && self->ops->checkpoint_get
              ? self->ops->checkpoint_get (self->impl, self->checkpoint_name, &stored) : 1;
    if (found < 0) {
        projection_rollback (self);
        return -1;
    }
    /* no row of its own yet (its first batch, or cleared): the other partitions'
     * rows say nothing about this one's events */
    if (found == 1)
        stored = self->checkpoint;
    int moved_back = stored < self->checkpoint;
    if (stored != self->checkpoint)
        log_info (NULL, NULL, "projection: checkpoint %s moved from %lld to %lld by another writer",
                  self->checkpoint_name, (long long) self->checkpoint, (long long) stored);
    self->checkpoint = stored;
    self->pending = self->checkpoint;
    s_batch_forget (self);
    if (moved_back) {
        projection_rollback (self);
        return -2;
    }
    return 0;
}

int
projection_commit (projection_t *self)
{
    if (!self->in_tx)
        return -1;
    if (self->ops->commit (self->impl))
        return -1;
    self->in_tx = 0;
    self->checkpoint = self->pending;
    return 0;
}

void
projection_rollback (projection_t *self)
{
    if (self->in_tx) {
        self->ops->rollback (self->impl);
        self->in_tx = 0;
    }
    /* Without transactions the checkpoint already follows every durable page. */
    self->pending = self->checkpoint;
    s_batch_forget (self);
}

int
projection_is_readmodel_file (const char *path)
{
    return readmodel_sqlite_ops.is_readmodel (path, NULL) == 1;
}

int
projection_clear (projection_t *self)
{
    if (!self->in_tx)
        return -1;
    if (self->ops->clear (self->impl))
        return -1;
    self->pending = 0;
    if (!self->ops->transactional)
        self->checkpoint = 0;           /* the checkpoint is gone with the rows */
    s_batch_forget (self);
    return 0;
}

int
projection_apply_in_tx (projection_t *self, const event_t *events, size_t count)
{
    /* no partition yet (auto, before its lease): nothing is its to apply, and it has
     * no checkpoint row to move */
    if (!self->in_tx || (self->part_index == PARTITION_AUTO && !self->all_partitions))
        return -1;
    s_batch_forget (self);
    /* Parse first, so that the rows the batch needs are read in a few requests. */
    s_event_t *parsed = count ? calloc (count, sizeof (s_event_t)) : NULL;
    if (count && !parsed)
        return -1;
    int rc = 0;
    char err [256];
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (events [i].position <= self->pending || !s_ours (self, &events [i]))
            continue;
        int parse = s_parse (self, &events [i], &parsed [i].data, err, sizeof err);
        if (parse == -1)
            rc = -1;
        else
        if (parse == -2 && !(parsed [i].error = s_strndup (&self->arena, err, strlen (err))))
            rc = -1;
        parsed [i].parsed = parse == 0;
    }
    if (rc == 0)
        rc = s_prefetch (self, events, parsed, count);
    for (size_t i = 0; i < count && rc == 0; i++) {
        const event_t *ev = &events [i];
        if (ev->position <= self->pending) {
            self->stats.skipped++;
            continue;
        }
        if (!s_ours (self, ev)) {
            self->stats.others++;
            self->pending = ev->position;       /* another partition's */
            continue;
        }
        const char *error = parsed [i].error;
        int applied = -2;
        if (parsed [i].parsed) {
            applied = s_apply_event (self, ev, &parsed [i].data, err, sizeof err);
            error = err;
        }
        if (applied == -2) {
            if (s_record_error (self, ev, error))
                rc = -1;
            else
                self->stats.poison++;
        }
        else
        if (applied)
            rc = -1;
        else {
            self->stats.applied++;
            if (log_level () <= LOG_LEVEL_DEBUG) {
                char trace_id [33];
                log_set_trace (traceparent_trace_id (ev->traceparent, trace_id));
                log_debug (ev->correlation_id, ev->stream, "projection: %s at position %lld applied",
                           ev->type, (long long) ev->position);
                log_set_trace (NULL);
            }
        }
        if (rc == 0)
            self->pending = ev->position;
    }
    free (parsed);
    /* Documents before cases, everything visible before the cases read their
     * children, and the checkpoint last. */
    if (rc || s_docs_flush (self) || self->ops->sync (self->impl) || s_cases_flush (self))
        return -1;
    s_batch_forget (self);
    if (s_set_checkpoint (self, self->pending))
        return -1;
    if (!self->ops->transactional)
        self->checkpoint = self->pending;
    return 0;
}

int
projection_apply (projection_t *self, const event_t *events, size_t count)
{
    int rc = projection_begin (self);
    if (rc)
        return rc;
    if (projection_apply_in_tx (self, events, count) || projection_commit (self)) {
        projection_rollback (self);
        return -1;
    }
    return 0;
}
