/* projection — events to read-model rows. Every row keeps its ready-to-send JSON;
 * every time in it comes from the events, never from this process's clock, and each
 * touched case's JSON is rebuilt once per batch from its child rows, so the result
 * depends only on the log, not on how it was cut into batches, nor on the backend
 * (readmodel_store.h) that keeps it.
 *
 * Without transactions (MongoDB) a failed batch may leave some rows written and the
 * checkpoint behind; the replay then meets rows that already hold later events.
 * Rows are written only forward (guarded by updated_position), and a case's summary
 * takes only the events after the position its stored row reflects, so the replay
 * ends with exactly the rows one clean pass would have written. */
#include "projection.h"

#include <czmq.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"

/* Ids per read request when prefetching a batch's cases and documents. */
#define S_PREFETCH_CHUNK 500

/* The statuses every document_counts object lists, in this order, even at zero. */
static const char *s_doc_statuses [] = { "AWAITING_UPLOAD", "UPLOADED", "VERIFIED", "REJECTED" };

/* A stored child row, copied out of a children_get read. */
typedef struct {
    rm_kind_t kind;
    int64_t seq;
    char *id;
    char *company_id;
    char *status;
    char *json;
    size_t json_size;
} s_child_t;

/* A case seen by the batch being applied. summary NULL: its stored row is unreadable. */
typedef struct {
    int64_t seq;
    int64_t updated_position;
    int64_t stored_position;    /* updated_position of the stored row (0: new): events up
                                   to it are already in the summary */
    json_t *summary;
    int touched;                /* an event used it: rewritten at the end of the batch */
    s_child_t *children;        /* filled while flushing */
    size_t child_count, child_cap;
} s_case_t;

/* A document touched by the batch: a requirement and its status changes often
 * come in the same batch, so the row is parsed and written once, at the end.
 * row NULL: its stored row is unreadable. */
typedef struct {
    char *case_id;
    int64_t seq;
    int64_t updated_position;
    json_t *row;
    int dirty;
} s_doc_t;

struct _projection_t {
    const readmodel_store_ops_t *ops;
    void *impl;
    char *location;
    int loaded;
    int load_failing;           /* "not loaded" logged for this outage */
    int64_t checkpoint;         /* durable */
    int64_t pending;            /* applied in the open batch */
    int in_tx;
    zhash_t *cases;             /* case id -> s_case_t, for the batch being applied */
    zhash_t *docs;              /* document id -> s_doc_t, likewise */
    zhash_t *cases_absent;      /* ids the prefetch did not find in the store */
    zhash_t *docs_absent;
    projection_stats_t stats;
};

/* Growable byte buffer for assembling full_json. */
typedef struct {
    char *data;
    size_t size, cap;
    int failed;
} s_buf_t;

static void
s_buf_add (s_buf_t *b, const char *p, size_t n)
{
    if (b->failed)
        return;
    if (b->size + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 1024;
        while (cap < b->size + n + 1)
            cap *= 2;
        char *data = realloc (b->data, cap);
        if (!data) {
            b->failed = 1;
            return;
        }
        b->data = data;
        b->cap = cap;
    }
    memcpy (b->data + b->size, p, n);
    b->size += n;
    b->data [b->size] = 0;
}

static void
s_buf_str (s_buf_t *b, const char *s)
{
    s_buf_add (b, s, strlen (s));
}

/* RFC 3339 UTC with milliseconds, the format of every time in the events. */
static void
s_format_time (int64_t us, char out [32])
{
    int64_t sec = us / 1000000, rem = us % 1000000;
    if (rem < 0) {
        rem += 1000000;
        sec--;
    }
    time_t t = (time_t) sec;
    struct tm tm;
    if (!gmtime_r (&t, &tm)) {
        snprintf (out, 32, "1970-01-01T00:00:00.000Z");
        return;
    }
    /* The modulos only bound the widths for the compiler; real dates are in range. */
    snprintf (out, 32, "%04u-%02u-%02uT%02u:%02u:%02u.%03uZ", (unsigned) (tm.tm_year + 1900) % 10000u,
              (unsigned) (tm.tm_mon + 1) % 100u, (unsigned) tm.tm_mday % 100u, (unsigned) tm.tm_hour % 100u,
              (unsigned) tm.tm_min % 100u, (unsigned) tm.tm_sec % 100u, (unsigned) (rem / 1000) % 1000u);
}

static void
s_children_clear (s_case_t *c)
{
    for (size_t i = 0; i < c->child_count; i++) {
        free (c->children [i].id);
        free (c->children [i].company_id);
        free (c->children [i].status);
        free (c->children [i].json);
    }
    free (c->children);
    c->children = NULL;
    c->child_count = c->child_cap = 0;
}

static void
s_case_free (void *item)
{
    s_case_t *c = (s_case_t *) item;
    if (c) {
        json_decref (c->summary);
        s_children_clear (c);
        free (c);
    }
}

static void
s_doc_free (void *item)
{
    s_doc_t *d = (s_doc_t *) item;
    if (d) {
        json_decref (d->row);
        free (d->case_id);
        free (d);
    }
}

/* Drops the batch caches (after a flush or a rollback). 0 ok, -1 out of memory. */
static int
s_cases_forget (projection_t *self)
{
    zhash_destroy (&self->cases);
    zhash_destroy (&self->docs);
    zhash_destroy (&self->cases_absent);
    zhash_destroy (&self->docs_absent);
    self->cases = zhash_new ();
    self->docs = zhash_new ();
    self->cases_absent = zhash_new ();
    self->docs_absent = zhash_new ();
    return self->cases && self->docs && self->cases_absent && self->docs_absent ? 0 : -1;
}

projection_t *
projection_new_with (const readmodel_store_ops_t *ops, const char *location, config_t *config)
{
    if (!ops || !location)
        return NULL;
    projection_t *self = calloc (1, sizeof (projection_t));
    if (!self)
        return NULL;
    self->ops = ops;
    self->location = strdup (location);
    if (!self->location || s_cases_forget (self))
        goto fail;
    self->impl = ops->open (location, config);
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
        zhash_destroy (&self->cases);
        zhash_destroy (&self->docs);
        zhash_destroy (&self->cases_absent);
        zhash_destroy (&self->docs_absent);
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
    if (self->ops->load (self->impl, &position) != 0) {
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

int64_t
projection_checkpoint (projection_t *self)
{
    return self->checkpoint;
}

void
projection_stats (projection_t *self, projection_stats_t *stats)
{
    *stats = self->stats;
}

/* ---- reading the payload ------------------------------------------------ */

static const char *
s_str (const json_t *obj, const char *key)
{
    return json_string_value (json_object_get (obj, key));
}

/* Sets dst[key] to src[src_key], or null when absent. */
static void
s_copy (json_t *dst, const char *key, const json_t *src, const char *src_key)
{
    json_t *v = json_object_get (src, src_key);
    json_object_set (dst, key, v ? v : json_null ());
}

static void
s_set_str (json_t *dst, const char *key, const char *value)
{
    json_object_set_new (dst, key, value ? json_string (value) : json_null ());
}

/* Malloc'd compact JSON text (caller frees), NULL when out of memory. */
static char *
s_dump (const json_t *obj)
{
    return json_dumps (obj, JSON_COMPACT);
}

/* ---- loading stored rows -------------------------------------------------- */

static int
s_on_case_row (void *arg, const rm_case_row_t *row)
{
    projection_t *self = (projection_t *) arg;
    if (!row->id || zhash_lookup (self->cases, row->id))
        return 0;
    s_case_t *c = calloc (1, sizeof (s_case_t));
    if (!c)
        return -1;
    c->seq = row->seq;
    c->updated_position = c->stored_position = row->updated_position;
    if (row->summary_json) {
        c->summary = json_loadb (row->summary_json, row->summary_size, 0, NULL);
        if (!json_is_object (c->summary)) {
            json_decref (c->summary);
            c->summary = NULL;          /* not written by us: its events are skipped, not retried */
        }
    }
    if (zhash_insert (self->cases, row->id, c) != 0) {
        s_case_free (c);
        return -1;
    }
    zhash_freefn (self->cases, row->id, s_case_free);
    return 0;
}

static int
s_on_doc_row (void *arg, const rm_row_t *row)
{
    projection_t *self = (projection_t *) arg;
    if (!row->id || zhash_lookup (self->docs, row->id))
        return 0;
    s_doc_t *d = calloc (1, sizeof (s_doc_t));
    if (!d)
        return -1;
    d->seq = row->seq;
    d->updated_position = row->updated_position;
    d->case_id = row->case_id ? strdup (row->case_id) : NULL;
    if (row->json)
        d->row = json_loadb (row->json, row->json_size, 0, NULL);
    if (!d->case_id || !json_is_object (d->row)) {
        json_decref (d->row);
        d->row = NULL;                  /* unreadable */
        if (row->case_id && !d->case_id) {
            s_doc_free (d);
            return -1;
        }
    }
    if (zhash_insert (self->docs, row->id, d) != 0) {
        s_doc_free (d);
        return -1;
    }
    zhash_freefn (self->docs, row->id, s_doc_free);
    return 0;
}

/* Reads the stored rows of ids (cases or documents) not yet cached, in chunks, and
 * remembers which were not found. 0 ok, -1 database failure. */
static int
s_fetch (projection_t *self, int docs, const char *const *ids, size_t count)
{
    zhash_t *cache = docs ? self->docs : self->cases;
    zhash_t *absent = docs ? self->docs_absent : self->cases_absent;
    for (size_t at = 0; at < count; at += S_PREFETCH_CHUNK) {
        size_t n = count - at < S_PREFETCH_CHUNK ? count - at : S_PREFETCH_CHUNK;
        int rc = docs ? self->ops->documents_get (self->impl, ids + at, n, s_on_doc_row, self)
                      : self->ops->cases_get (self->impl, ids + at, n, s_on_case_row, self);
        if (rc)
            return -1;
        for (size_t i = at; i < at + n; i++)
            if (!zhash_lookup (cache, ids [i]))
                zhash_update (absent, ids [i], (void *) "");
    }
    return 0;
}

/* Looks up one id, from the caches or the store. */
static int
s_fetch_one (projection_t *self, int docs, const char *id)
{
    if (zhash_lookup (docs ? self->docs : self->cases, id)
    ||  zhash_lookup (docs ? self->docs_absent : self->cases_absent, id))
        return 0;
    const char *ids [1] = { id };
    return s_fetch (self, docs, ids, 1);
}

/* ---- cases ---------------------------------------------------------------- */

/* Finds a case in the batch cache or the store. Returns 0 with *out set (NULL
 * when the case does not exist), -1 on a database error, -2 when its stored
 * summary cannot be read (not written by us: the events are skipped, not retried). */
static int
s_case_get (projection_t *self, const char *case_id, s_case_t **out)
{
    *out = NULL;
    if (s_fetch_one (self, 0, case_id))
        return -1;
    s_case_t *c = (s_case_t *) zhash_lookup (self->cases, case_id);
    if (!c)
        return 0;
    if (!c->summary)
        return -2;
    c->touched = 1;
    *out = c;
    return 0;
}

/* Records that ev changed the case: its row is rewritten at the end of the batch.
 * An event the stored row already reflects (a replay) changes nothing. */
static void
s_case_mark (s_case_t *c, const event_t *ev, const char *at)
{
    if (ev->position <= c->stored_position)
        return;
    if (ev->position > c->updated_position)
        c->updated_position = ev->position;
    json_object_set_new (c->summary, "updated_at", json_string (at));
}

static int
s_on_child_row (void *arg, const rm_row_t *row)
{
    projection_t *self = (projection_t *) arg;
    s_case_t *c = row->case_id ? (s_case_t *) zhash_lookup (self->cases, row->case_id) : NULL;
    if (!c || !row->id || !row->json)
        return 0;                       /* not asked for, or nothing we could use */
    if ((unsigned) row->kind >= RM_KIND_COUNT)
        return 0;
    if (c->child_count == c->child_cap) {
        size_t cap = c->child_cap ? c->child_cap * 2 : 16;
        s_child_t *children = realloc (c->children, cap * sizeof (s_child_t));
        if (!children)
            return -1;
        c->children = children;
        c->child_cap = cap;
    }
    s_child_t *ch = &c->children [c->child_count];
    memset (ch, 0, sizeof *ch);
    ch->kind = row->kind;
    ch->seq = row->seq;
    ch->id = strdup (row->id);
    ch->company_id = row->company_id ? strdup (row->company_id) : NULL;
    ch->status = strdup (row->status ? row->status : "");
    ch->json = malloc (row->json_size + 1);
    c->child_count++;                   /* counted now so that a failure frees what was copied */
    if (!ch->id || !ch->status || !ch->json || (row->company_id && !ch->company_id))
        return -1;
    memcpy (ch->json, row->json, row->json_size);
    ch->json [row->json_size] = 0;
    ch->json_size = row->json_size;
    return 0;
}

static int
s_child_cmp (const void *a, const void *b)
{
    const s_child_t *x = (const s_child_t *) a, *y = (const s_child_t *) b;
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

/* document_counts: the four statuses at zero, then each status found, in byte order. */
static int
s_case_counts (s_case_t *c, json_t *summary)
{
    json_t *counts = json_object ();
    if (!counts)
        return -1;
    for (size_t i = 0; i < sizeof s_doc_statuses / sizeof s_doc_statuses [0]; i++)
        json_object_set_new (counts, s_doc_statuses [i], json_integer (0));
    const char **statuses = c->child_count ? calloc (c->child_count, sizeof (char *)) : NULL;
    if (c->child_count && !statuses) {
        json_decref (counts);
        return -1;
    }
    size_t n = 0;
    for (size_t i = 0; i < c->child_count; i++)
        if (c->children [i].kind == RM_DOCUMENT)
            statuses [n++] = c->children [i].status;
    if (n)
        qsort (statuses, n, sizeof (char *), s_str_cmp);
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j < n && strcmp (statuses [j], statuses [i]) == 0)
            j++;
        json_object_set_new (counts, statuses [i], json_integer ((json_int_t) (j - i)));
        i = j;
    }
    free (statuses);
    json_object_set_new (summary, "document_counts", counts);
    return 0;
}

/* 1 if company_id names one of the case's companies. */
static int
s_case_has_company (s_case_t *c, const char *company_id)
{
    for (size_t i = 0; company_id && i < c->child_count && c->children [i].kind == RM_COMPANY; i++)
        if (strcmp (c->children [i].id, company_id) == 0)
            return 1;
    return 0;
}

/* Appends the json of every child of kind, comma separated; returns how many. */
static size_t
s_append_children (s_buf_t *b, s_case_t *c, rm_kind_t kind, size_t max)
{
    size_t n = 0;
    for (size_t i = 0; i < c->child_count && n < max; i++) {
        s_child_t *ch = &c->children [i];
        if (ch->kind != kind)
            continue;
        /* the owners of the case's own companies */
        if (kind == RM_BENEFICIAL_OWNER && !s_case_has_company (c, ch->company_id))
            continue;
        if (n++)
            s_buf_add (b, ",", 1);
        s_buf_add (b, ch->json, ch->json_size);
    }
    return n;
}

/* Writes one touched case: summary_json, then full_json assembled from the
 * ready-made JSON of its child rows (byte concatenation, no re-parsing). */
static int
s_case_write (projection_t *self, const char *case_id, s_case_t *c)
{
    if (c->child_count)
        qsort (c->children, c->child_count, sizeof (s_child_t), s_child_cmp);
    if (s_case_counts (c, c->summary))
        return -1;
    char *summary = s_dump (c->summary);
    if (!summary)
        return -1;
    s_buf_t full = { 0 };
    size_t len = strlen (summary);
    s_buf_add (&full, summary, len - 1);           /* without the closing brace */
    s_buf_str (&full, ",\"persons\":[");
    s_append_children (&full, c, RM_PERSON, SIZE_MAX);
    s_buf_str (&full, "],\"company\":");
    if (s_append_children (&full, c, RM_COMPANY, 1) == 0)
        s_buf_str (&full, "null");
    s_buf_str (&full, ",\"beneficial_owners\":[");
    s_append_children (&full, c, RM_BENEFICIAL_OWNER, SIZE_MAX);
    s_buf_str (&full, "],\"documents\":[");
    s_append_children (&full, c, RM_DOCUMENT, SIZE_MAX);
    s_buf_str (&full, "]}");
    int rc = -1;
    if (!full.failed) {
        rm_case_row_t row = {
            .id = case_id,
            .seq = c->seq,
            .updated_position = c->updated_position,
            .client_id = s_str (c->summary, "client_id"),
            .traitement_type = s_str (c->summary, "traitement_type"),
            .status = s_str (c->summary, "status"),
            .summary_json = summary,
            .summary_size = len,
            .full_json = full.data,
            .full_size = full.size,
        };
        rc = self->ops->put_case (self->impl, &row);
    }
    free (full.data);
    free (summary);
    return rc;
}

/* Rewrites every case the batch touched, once, from its stored child rows (read in
 * one request for the whole batch). */
static int
s_cases_flush (projection_t *self)
{
    size_t count = 0;
    const char **ids = calloc (zhash_size (self->cases) + 1, sizeof (char *));
    int *fresh = calloc (zhash_size (self->cases) + 1, sizeof (int));
    if (!ids || !fresh) {
        free (ids);
        free (fresh);
        return -1;
    }
    for (s_case_t *c = (s_case_t *) zhash_first (self->cases); c; c = (s_case_t *) zhash_next (self->cases))
        if (c->touched && c->summary) {
            fresh [count] = c->stored_position == 0;       /* created by this batch */
            ids [count++] = zhash_cursor (self->cases);
        }
    int rc = 0;
    for (size_t at = 0; at < count && rc == 0; at += S_PREFETCH_CHUNK) {
        size_t n = count - at < S_PREFETCH_CHUNK ? count - at : S_PREFETCH_CHUNK;
        rc = self->ops->children_get (self->impl, ids + at, fresh + at, n, s_on_child_row, self);
        for (size_t i = at; i < at + n && rc == 0; i++) {
            s_case_t *c = (s_case_t *) zhash_lookup (self->cases, ids [i]);
            rc = s_case_write (self, ids [i], c);
            s_children_clear (c);
        }
    }
    free (ids);
    free (fresh);
    return rc;
}

/* ---- one event per type ------------------------------------------------------
 * Each handler checks the payload before it writes anything, so a -2 (poison)
 * leaves no trace but the projector_errors row. Returns 0, -1 (database), -2. */

typedef struct {
    const event_t *ev;
    const char *case_id;        /* the stream: a case's events live in the case's stream */
    const json_t *data;
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
    const char *client_id = s_str (x->data, "client_id");
    const char *type = s_str (x->data, "traitement_type");
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
    const char *status = s_str (x->data, "status");
    const char *created = s_str (x->data, "created_at");
    c = calloc (1, sizeof (s_case_t));
    if (!c)
        return -1;
    c->seq = c->updated_position = x->ev->position;
    c->touched = 1;
    json_t *s = c->summary = json_object ();
    s_set_str (s, "case_id", x->case_id);
    s_set_str (s, "client_id", client_id);
    s_copy (s, "case_type", x->data, "case_type");
    s_copy (s, "case_version", x->data, "case_version");
    s_set_str (s, "traitement_type", type);
    s_set_str (s, "status", status ? status : "OPEN");
    s_set_str (s, "created_at", created ? created : x->at);
    s_set_str (s, "updated_at", created ? created : x->at);
    json_object_set_new (s, "document_counts", json_object ());
    if (zhash_insert (self->cases, x->case_id, c) != 0) {
        s_case_free (c);
        return -1;
    }
    zhash_freefn (self->cases, x->case_id, s_case_free);
    return 0;
}

static int
s_on_case_status (projection_t *self, s_ctx_t *x)
{
    const char *to = s_str (x->data, "to");
    if (!to)
        return s_poison (x, "CaseStatusChanged without %s", "to");
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    if (x->ev->position <= c->stored_position)
        return 0;                       /* already in the stored summary */
    const char *at = s_str (x->data, "changed_at");
    json_object_set_new (c->summary, "status", json_string (to));
    s_case_mark (c, x->ev, at ? at : x->at);
    return 0;
}

/* Writes a child row (company, person or beneficial owner) created by the event. */
static int
s_put_row (projection_t *self, rm_kind_t kind, const char *id, const char *case_id, const char *company_id,
           int64_t position, json_t *row)
{
    char *text = s_dump (row);
    if (!text)
        return -1;
    rm_row_t r = {
        .kind = kind,
        .id = id,
        .case_id = case_id,
        .company_id = company_id,
        .seq = position,
        .updated_position = position,
        .json = text,
        .json_size = strlen (text),
    };
    int rc = self->ops->put_row (self->impl, &r);
    free (text);
    return rc;
}

static int
s_on_company (projection_t *self, s_ctx_t *x)
{
    const char *company_id = s_str (x->data, "company_id");
    if (!company_id)
        return s_poison (x, "CompanyProfileCreated without %s", "company_id");
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    json_t *row = json_object ();
    s_set_str (row, "company_id", company_id);
    s_set_str (row, "case_id", x->case_id);
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) x->data, key, value)
        if (strcmp (key, "case_id") && strcmp (key, "company_id"))
            json_object_set (row, key, value);
    rc = s_put_row (self, RM_COMPANY, company_id, x->case_id, NULL, x->ev->position, row);
    json_decref (row);
    if (rc == 0)
        s_case_mark (c, x->ev, x->at);
    return rc;
}

static int
s_on_person (projection_t *self, s_ctx_t *x)
{
    const char *person_id = s_str (x->data, "person_id");
    const json_t *person = json_object_get (x->data, "person");
    if (!person_id || !json_is_object (person))
        return s_poison (x, "PersonLinked without %s", person_id ? "person" : "person_id");
    const char *company_id = s_str (x->data, "company_id");
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    json_t *row = json_object ();
    s_set_str (row, "person_id", person_id);
    s_set_str (row, "case_id", x->case_id);
    s_set_str (row, "company_id", company_id);
    s_copy (row, "role", x->data, "role");
    s_copy (row, "firstname", person, "firstname");
    s_copy (row, "lastname", person, "lastname");
    s_copy (row, "birthdate", person, "birthdate");
    const char *key;
    json_t *value;
    json_object_foreach ((json_t *) person, key, value)
        if (!json_object_get (row, key))
            json_object_set (row, key, value);      /* contact fields */
    rc = s_put_row (self, RM_PERSON, person_id, x->case_id, company_id, x->ev->position, row);
    json_decref (row);
    if (rc == 0)
        s_case_mark (c, x->ev, x->at);
    return rc;
}

static int
s_on_beneficial_owner (projection_t *self, s_ctx_t *x)
{
    const char *bo_id = s_str (x->data, "beneficial_owner_id");
    const char *company_id = s_str (x->data, "company_id");
    if (!bo_id || !company_id)
        return s_poison (x, "BeneficialOwnerAdded without %s", bo_id ? "company_id" : "beneficial_owner_id");
    s_case_t *c;
    int rc = s_need_case (self, x, &c);
    if (rc)
        return rc;
    json_t *row = json_object ();
    s_set_str (row, "beneficial_owner_id", bo_id);
    s_set_str (row, "company_id", company_id);
    s_set_str (row, "case_id", x->case_id);
    s_copy (row, "person_id", x->data, "person_id");
    s_copy (row, "ownership_percentage", x->data, "ownership_percentage");
    s_copy (row, "types_of_control", x->data, "types_of_control");
    s_copy (row, "is_ubo", x->data, "is_ubo");
    s_copy (row, "person", x->data, "person");
    rc = s_put_row (self, RM_BENEFICIAL_OWNER, bo_id, x->case_id, company_id, x->ev->position, row);
    json_decref (row);
    if (rc == 0)
        s_case_mark (c, x->ev, x->at);
    return rc;
}

/* Finds a document in the batch cache or the store. Returns 0 with *out set
 * (NULL when unknown), -1 on a database error, -2 when its row is unreadable. */
static int
s_doc_get (projection_t *self, const char *doc_id, s_doc_t **out)
{
    *out = NULL;
    if (s_fetch_one (self, 1, doc_id))
        return -1;
    s_doc_t *d = (s_doc_t *) zhash_lookup (self->docs, doc_id);
    if (d && !d->row)
        return -2;
    *out = d;
    return 0;
}

/* Writes every document the batch changed (before the cases: their counts and
 * full_json read the documents). */
static int
s_docs_flush (projection_t *self)
{
    for (s_doc_t *d = (s_doc_t *) zhash_first (self->docs); d; d = (s_doc_t *) zhash_next (self->docs)) {
        if (!d->dirty)
            continue;
        char *text = s_dump (d->row);
        if (!text)
            return -1;
        rm_row_t row = {
            .kind = RM_DOCUMENT,
            .id = zhash_cursor (self->docs),
            .case_id = d->case_id,
            .status = s_str (d->row, "status"),
            .seq = d->seq,
            .updated_position = d->updated_position,
            .json = text,
            .json_size = strlen (text),
        };
        if (!row.status)
            row.status = "";
        int rc = self->ops->put_row (self->impl, &row);
        free (text);
        if (rc)
            return -1;
        d->dirty = 0;
    }
    return 0;
}

static int
s_on_document_required (projection_t *self, s_ctx_t *x)
{
    const char *doc_id = s_str (x->data, "document_id");
    if (!doc_id)
        return s_poison (x, "DocumentRequirementDetermined without %s", "document_id");
    const char *status = s_str (x->data, "status");
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
    if (rc == -2)
        zhash_delete (self->docs, doc_id);     /* an unreadable row is written anew */
    if (d && d->updated_position >= x->ev->position) {
        s_case_mark (c, x->ev, x->at);         /* the document is stored; the case may not be */
        return 0;                              /* already applied */
    }
    json_t *row = json_object ();
    s_set_str (row, "document_id", doc_id);
    s_set_str (row, "case_id", x->case_id);
    s_copy (row, "document_type", x->data, "document_type");
    s_copy (row, "subject_type", x->data, "subject_type");
    s_copy (row, "subject_id", x->data, "subject_id");
    s_copy (row, "rule_id", x->data, "rule_id");
    s_set_str (row, "status", status);
    json_object_set_new (row, "history", json_array ());
    s_set_str (row, "created_at", x->at);
    s_set_str (row, "updated_at", x->at);
    if (!d) {
        d = calloc (1, sizeof (s_doc_t));
        if (!d || !(d->case_id = strdup (x->case_id))) {
            free (d);
            json_decref (row);
            return -1;
        }
        d->seq = x->ev->position;              /* a document keeps the seq it was first seen at */
        if (zhash_insert (self->docs, doc_id, d) != 0) {
            s_doc_free (d);
            json_decref (row);
            return -1;
        }
        zhash_freefn (self->docs, doc_id, s_doc_free);
    }
    json_decref (d->row);
    d->row = row;
    d->updated_position = x->ev->position;
    d->dirty = 1;
    s_case_mark (c, x->ev, x->at);
    return 0;
}

static int
s_on_document_status (projection_t *self, s_ctx_t *x)
{
    const char *doc_id = s_str (x->data, "document_id");
    const char *to = s_str (x->data, "to");
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
    const char *at = s_str (x->data, "changed_at");
    if (!at)
        at = x->at;
    if (d->updated_position >= x->ev->position) {
        s_case_mark (c, x->ev, at);            /* the document is stored; the case may not be */
        return 0;                              /* already applied */
    }
    json_t *history = json_object_get (d->row, "history");
    if (!json_is_array (history)) {
        history = json_array ();
        json_object_set_new (d->row, "history", history);
    }
    json_t *entry = json_object ();
    s_copy (entry, "from", x->data, "from");
    s_set_str (entry, "to", to);
    s_copy (entry, "reason", x->data, "reason");
    s_set_str (entry, "at", at);
    json_array_append_new (history, entry);
    json_object_set_new (d->row, "status", json_string (to));
    json_object_set_new (d->row, "updated_at", json_string (at));
    d->updated_position = x->ev->position;
    d->dirty = 1;
    s_case_mark (c, x->ev, at);
    return 0;
}

/* Appends s as a JSON string literal. */
static void
s_buf_json_str (s_buf_t *b, const char *s)
{
    s_buf_add (b, "\"", 1);
    const char *run = s;
    for (; *s; s++) {
        unsigned char ch = (unsigned char) *s;
        if (ch >= 0x20 && ch != '"' && ch != '\\')
            continue;
        s_buf_add (b, run, (size_t) (s - run));
        if (ch == '"')
            s_buf_str (b, "\\\"");
        else
        if (ch == '\\')
            s_buf_str (b, "\\\\");
        else {
            char esc [8];
            snprintf (esc, sizeof esc, "\\u%04x", ch);
            s_buf_str (b, esc);
        }
        run = s + 1;
    }
    s_buf_add (b, run, (size_t) (s - run));
    s_buf_add (b, "\"", 1);
}

/* The audit-trail row: the event with its payload. Built as text, the payload
 * embedded as it is in the log (it was just parsed, so it is valid JSON):
 * re-serialising it would cost more than everything else this row needs. */
static int
s_put_case_event (projection_t *self, s_ctx_t *x)
{
    const event_t *ev = x->ev;
    s_buf_t row = { 0 };
    char num [64];
    snprintf (num, sizeof num, "{\"position\":%lld,\"version\":%lld,\"event_id\":",
              (long long) ev->position, (long long) ev->version);
    s_buf_str (&row, num);
    s_buf_json_str (&row, ev->id);
    s_buf_str (&row, ",\"type\":");
    s_buf_json_str (&row, ev->type);
    s_buf_str (&row, ",\"timestamp\":");
    s_buf_json_str (&row, x->at);
    s_buf_str (&row, ",\"command_id\":");
    s_buf_json_str (&row, ev->command_id);
    s_buf_str (&row, ",\"data\":");
    s_buf_add (&row, ev->data, ev->data_size);
    s_buf_add (&row, "}", 1);
    int rc = -1;
    if (!row.failed) {
        rm_event_row_t r = {
            .case_id = x->case_id,
            .version = ev->version,
            .position = ev->position,
            .json = row.data,
            .json_size = row.size,
        };
        rc = self->ops->put_event (self->impl, &r);
    }
    free (row.data);
    return rc;
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

/* Parses an event's payload. Returns the object (caller owns), or NULL with the
 * reason in err: such an event is poison. */
static json_t *
s_parse (const event_t *ev, char *err, size_t err_size)
{
    if (!ev->stream [0]) {
        snprintf (err, err_size, "event without a stream");
        return NULL;
    }
    if (!ev->data || ev->data_size == 0) {
        snprintf (err, err_size, "empty payload");
        return NULL;
    }
    json_error_t jerr;
    json_t *data = json_loadb (ev->data, ev->data_size, 0, &jerr);
    if (!data || !json_is_object (data)) {
        snprintf (err, err_size, "payload is not a JSON object: %s", data ? "not an object" : jerr.text);
        json_decref (data);
        return NULL;
    }
    return data;
}

static int
s_apply_event (projection_t *self, const event_t *ev, const json_t *data, char *err, size_t err_size)
{
    s_ctx_t x = { .ev = ev, .case_id = ev->stream, .data = data, .err = err, .err_size = err_size };
    s_format_time (ev->timestamp_us, x.at);
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
    log_error (ev->correlation_id, ev->stream, "projection: event at position %lld (id %s, %s) skipped: %s",
               (long long) ev->position, ev->id, ev->type, error);
    return self->ops->put_error (self->impl, ev->position, ev->id, error);
}

/* Reads, in a few requests, the stored cases and documents the events will need,
 * instead of one request per event. 0 ok, -1 database failure. */
static int
s_prefetch (projection_t *self, const event_t *events, json_t **parsed, size_t count)
{
    const char **case_ids = calloc (count + 1, sizeof (char *));
    const char **doc_ids = calloc (count + 1, sizeof (char *));
    zhash_t *seen = zhash_new ();
    zhash_t *seen_docs = zhash_new ();
    int rc = case_ids && doc_ids && seen && seen_docs ? 0 : -1;
    size_t n_cases = 0, n_docs = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        if (!parsed [i])
            continue;
        const char *case_id = events [i].stream;
        if (!zhash_lookup (self->cases, case_id) && !zhash_lookup (self->cases_absent, case_id)
        &&  zhash_insert (seen, case_id, (void *) "c") == 0)
            case_ids [n_cases++] = case_id;
        const char *doc_id = s_str (parsed [i], "document_id");
        if (doc_id && strncmp (events [i].type, "Document", 8) == 0 && !zhash_lookup (self->docs, doc_id)
        &&  !zhash_lookup (self->docs_absent, doc_id) && zhash_insert (seen_docs, doc_id, (void *) "d") == 0)
            doc_ids [n_docs++] = doc_id;
    }
    if (rc == 0)
        rc = s_fetch (self, 0, case_ids, n_cases);
    if (rc == 0)
        rc = s_fetch (self, 1, doc_ids, n_docs);
    zhash_destroy (&seen);
    zhash_destroy (&seen_docs);
    free (case_ids);
    free (doc_ids);
    return rc;
}

/* ---- transactions ------------------------------------------------------------ */

int
projection_begin (projection_t *self)
{
    if (self->in_tx || !self->loaded)
        return -1;
    if (self->ops->begin (self->impl))
        return -1;
    self->in_tx = 1;
    self->pending = self->checkpoint;
    s_cases_forget (self);
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
    s_cases_forget (self);
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
    s_cases_forget (self);
    return 0;
}

int
projection_apply_in_tx (projection_t *self, const event_t *events, size_t count)
{
    if (!self->in_tx)
        return -1;
    if ((!self->cases || !self->docs || !self->cases_absent || !self->docs_absent) && s_cases_forget (self))
        return -1;
    /* Parse first, so that the rows the batch needs are read in a few requests. */
    json_t **parsed = count ? calloc (count, sizeof (json_t *)) : NULL;
    char (*errors) [256] = count ? calloc (count, 256) : NULL;
    if (count && (!parsed || !errors)) {
        free (parsed);
        free (errors);
        return -1;
    }
    for (size_t i = 0; i < count; i++)
        if (events [i].position > self->pending)
            parsed [i] = s_parse (&events [i], errors [i], 256);
    int rc = s_prefetch (self, events, parsed, count);
    for (size_t i = 0; i < count && rc == 0; i++) {
        const event_t *ev = &events [i];
        if (ev->position <= self->pending) {
            self->stats.skipped++;
            continue;
        }
        int applied = parsed [i] ? s_apply_event (self, ev, parsed [i], errors [i], 256) : -2;
        if (applied == -2) {
            if (s_record_error (self, ev, errors [i]))
                rc = -1;
            else
                self->stats.poison++;
        }
        else
        if (applied)
            rc = -1;
        else
            self->stats.applied++;
        if (rc == 0)
            self->pending = ev->position;
    }
    for (size_t i = 0; i < count; i++)
        json_decref (parsed [i]);
    free (parsed);
    free (errors);
    /* Documents before cases, everything visible before the cases read their
     * children, and the checkpoint last. */
    if (rc || s_docs_flush (self) || self->ops->sync (self->impl) || s_cases_flush (self))
        return -1;
    s_cases_forget (self);
    if (self->ops->set_checkpoint (self->impl, self->pending))
        return -1;
    if (!self->ops->transactional)
        self->checkpoint = self->pending;
    return 0;
}

int
projection_apply (projection_t *self, const event_t *events, size_t count)
{
    if (projection_begin (self))
        return -1;
    if (projection_apply_in_tx (self, events, count) || projection_commit (self)) {
        projection_rollback (self);
        return -1;
    }
    return 0;
}
