/* readmodel_mongo — the read models in MongoDB collections (schemas/readmodels.md),
 * without transactions. Rows are written forward only: a row is inserted, and when
 * it exists already (duplicate key) it is upserted with a guard on its
 * updated_position, so an older write never replaces a newer one. Writes are queued
 * per collection and sent as unordered bulks; the checkpoint is written only after
 * every row before it was acknowledged with the configured write concern. A crash in
 * between replays the batch, which finds the rows already there and changes nothing.
 *
 * Reads are by _id only (one request per id): besides being the cheapest lookup on
 * MongoDB, it is the only query the FerretDB test server answers from an index, so
 * a case's children are found through rm_case_children, which lists their ids. */
#include "readmodel_store.h"

#include <czmq.h>
#include <mongoc/mongoc.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "readmodel_indexes.h"

#define S_SOCKET_TIMEOUT_MS 30000       /* one bulk of a 10,000-event page may take seconds */
#define S_DUPLICATE_KEY     11000
#define S_NS_NOT_FOUND      26

enum {
    S_CASES, S_COMPANIES, S_PERSONS, S_BOS, S_DOCUMENTS,    /* rows: insert, else guarded upsert */
    S_EVENTS, S_ERRORS,                                     /* inserts: a duplicate is already there */
    S_CHILDREN, S_CHECKPOINTS,
    S_LEASES,                                               /* projector_partition = auto */
    S_COLL_COUNT
};
#define S_ROW_COLLS 5

static const char *s_coll_names [S_COLL_COUNT] = {
    [S_CASES] = RM_COLL_CASES, [S_COMPANIES] = RM_COLL_COMPANIES, [S_PERSONS] = RM_COLL_PERSONS,
    [S_BOS] = RM_COLL_BOS, [S_DOCUMENTS] = RM_COLL_DOCUMENTS, [S_EVENTS] = RM_COLL_EVENTS,
    [S_ERRORS] = RM_COLL_ERRORS, [S_CHILDREN] = RM_COLL_CHILDREN, [S_CHECKPOINTS] = RM_COLL_CHECKPOINTS,
    [S_LEASES] = RM_COLL_LEASES,
};

/* Where each kind of child row lives, and its list in rm_case_children. */
static const int s_kind_coll [RM_KIND_COUNT] = {
    [RM_COMPANY] = S_COMPANIES, [RM_PERSON] = S_PERSONS,
    [RM_BENEFICIAL_OWNER] = S_BOS, [RM_DOCUMENT] = S_DOCUMENTS,
};
static const char *s_kind_list [RM_KIND_COUNT] = {
    [RM_COMPANY] = "companies", [RM_PERSON] = "persons",
    [RM_BENEFICIAL_OWNER] = "beneficial_owners", [RM_DOCUMENT] = "documents",
};

/* A queued row write: inserted as _id + set + on_insert, or, when the row exists,
 * upserted with filter {_id, updated_position: {$lt (or $lte): position}}. */
typedef struct {
    char *id;
    int64_t position;
    int or_equal;
    bson_t *set;
    bson_t *on_insert;
} s_write_t;

typedef struct {
    s_write_t *items;
    size_t count, cap;
} s_queue_t;

/* The ids of one case's children queued for rm_case_children. */
typedef struct {
    zlist_t *ids [RM_KIND_COUNT];
} s_kids_t;

/* The child rows put for one case during the batch (the latest of each), which are
 * all the children a case created by this batch has. */
typedef struct {
    rm_kind_t kind;
    char *id, *company_id, *status, *json;
    size_t json_size;
    int64_t seq, updated_position;
} s_kept_t;

typedef struct {
    s_kept_t *items;
    size_t count, cap;
} s_kept_list_t;

typedef struct {
    mongoc_client_t *client;
    char *db_name;
    mongoc_write_concern_t *wc;
    mongoc_collection_t *coll [S_COLL_COUNT];
    s_queue_t rows [S_ROW_COLLS];                   /* row writes queued since the last flush */
    mongoc_bulk_operation_t *inserts [S_COLL_COUNT];/* S_EVENTS, S_ERRORS */
    size_t queued [S_COLL_COUNT];
    zhash_t *kids;                                  /* case id -> s_kids_t, queued */
    zhash_t *kept;                                  /* case id -> s_kept_list_t, this batch */
    int indexed;                                    /* indexes ensured since open or clear */
    int in_tx;
    int failing;                                    /* an outage is being reported */
} s_self_t;

/* Logs a failure once per outage: the projector retries every few hundred ms. */
static void
s_fail (s_self_t *self, const char *what, const bson_error_t *error)
{
    if (!self->failing)
        log_warn (NULL, NULL, "read models (mongodb %s): %s failed: %s", self->db_name, what,
                  error ? error->message : "out of memory");
    self->failing = 1;
}

static void
s_kids_free (void *item)
{
    s_kids_t *k = (s_kids_t *) item;
    if (k) {
        for (int i = 0; i < RM_KIND_COUNT; i++)
            zlist_destroy (&k->ids [i]);
        free (k);
    }
}

static void
s_kept_free (void *item)
{
    s_kept_list_t *l = (s_kept_list_t *) item;
    if (l) {
        for (size_t i = 0; i < l->count; i++) {
            free (l->items [i].id);
            free (l->items [i].company_id);
            free (l->items [i].status);
            free (l->items [i].json);
        }
        free (l->items);
        free (l);
    }
}

/* Forgets the rows kept for the batch (at its end, or when it is abandoned). */
static void
s_kept_drop (s_self_t *self)
{
    zhash_destroy (&self->kept);
}

static void
s_queue_clear (s_queue_t *q)
{
    for (size_t i = 0; i < q->count; i++) {
        free (q->items [i].id);
        bson_destroy (q->items [i].set);
        bson_destroy (q->items [i].on_insert);
    }
    free (q->items);
    memset (q, 0, sizeof *q);
}

static void
s_bulks_drop (s_self_t *self)
{
    for (int i = 0; i < S_ROW_COLLS; i++)
        s_queue_clear (&self->rows [i]);
    for (int i = 0; i < S_COLL_COUNT; i++) {
        mongoc_bulk_operation_destroy (self->inserts [i]);
        self->inserts [i] = NULL;
        self->queued [i] = 0;
    }
    zhash_destroy (&self->kids);
}

static void
s_close (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (!self)
        return;
    s_bulks_drop (self);
    s_kept_drop (self);
    for (int i = 0; i < S_COLL_COUNT; i++)
        mongoc_collection_destroy (self->coll [i]);
    mongoc_write_concern_destroy (self->wc);
    mongoc_client_destroy (self->client);
    free (self->db_name);
    free (self);
}

static void *
s_open (const char *location, config_t *config)
{
    if (!location || !config)
        return NULL;
    if (!readmodel_mongo_valid_database (location)) {
        log_error (NULL, NULL, "read models: \"%.80s\" is not a usable MongoDB database name", location);
        return NULL;
    }
    s_self_t *self = calloc (1, sizeof (s_self_t));
    if (!self)
        return NULL;
    char err [300] = "out of memory";
    self->db_name = strdup (location);
    self->client = readmodel_mongo_client_new (config, S_SOCKET_TIMEOUT_MS, err, sizeof err);
    self->wc = self->client ? readmodel_mongo_write_concern_new (config, err, sizeof err) : NULL;
    if (!self->db_name || !self->client || !self->wc) {
        log_error (NULL, NULL, "read models: %s", err);
        s_close (self);
        return NULL;
    }
    for (int i = 0; i < S_COLL_COUNT; i++) {
        self->coll [i] = mongoc_client_get_collection (self->client, location, s_coll_names [i]);
        if (!self->coll [i]) {
            s_close (self);
            return NULL;
        }
        mongoc_collection_set_write_concern (self->coll [i], self->wc);
    }
    return self;
}

/* ---- small BSON helpers ---------------------------------------------------------- */

static int64_t
s_int (const bson_t *doc, const char *key)
{
    bson_iter_t it;
    if (bson_iter_init_find (&it, doc, key) && BSON_ITER_HOLDS_NUMBER (&it))
        return bson_iter_as_int64 (&it);
    return 0;
}

/* A string field, or NULL when missing or not a string; *len its length. */
static const char *
s_utf8 (const bson_t *doc, const char *key, size_t *len)
{
    bson_iter_t it;
    uint32_t n = 0;
    const char *s = NULL;
    if (bson_iter_init_find (&it, doc, key) && BSON_ITER_HOLDS_UTF8 (&it))
        s = bson_iter_utf8 (&it, &n);
    if (len)
        *len = n;
    return s;
}

static void
s_append_str (bson_t *doc, const char *key, const char *value)
{
    if (value)
        bson_append_utf8 (doc, key, -1, value, -1);
    else
        bson_append_null (doc, key, -1);
}

/* An unordered bulk on collection i with the configured write concern. */
static mongoc_bulk_operation_t *
s_bulk_new (s_self_t *self, int i)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL (&opts, "ordered", false);
    mongoc_write_concern_append (self->wc, &opts);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts (self->coll [i], &opts);
    bson_destroy (&opts);
    return bulk;
}

/* Runs bulk. 0 when every write was applied or met a duplicate key; then, if dups
 * is not NULL, dups[0..*n_dups) are the indexes of those that met one (at most
 * dups_cap of them: the number of ops). -1 on any other failure (logged). */
static int
s_execute (s_self_t *self, int i, mongoc_bulk_operation_t *bulk, size_t *dups, size_t dups_cap, size_t *n_dups)
{
    bson_t reply;
    bson_error_t error;
    int rc = 0;
    if (n_dups)
        *n_dups = 0;
    if (!mongoc_bulk_operation_execute (bulk, &reply, &error)) {
        /* only write errors that are all duplicate keys, and no write-concern error */
        bson_iter_t it, arr;
        rc = error.domain == MONGOC_ERROR_SERVER && error.code == S_DUPLICATE_KEY ? 0 : -1;
        if (rc == 0 && bson_iter_init_find (&it, &reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY (&it)
        &&  bson_iter_recurse (&it, &arr) && bson_iter_next (&arr))
            rc = -1;
        if (rc == 0 && (!bson_iter_init_find (&it, &reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY (&it)
                        || !bson_iter_recurse (&it, &arr)))
            rc = -1;
        while (rc == 0 && bson_iter_next (&arr)) {
            bson_iter_t field;
            int64_t code = -1, index = -1;
            if (BSON_ITER_HOLDS_DOCUMENT (&arr) && bson_iter_recurse (&arr, &field))
                while (bson_iter_next (&field)) {
                    if (strcmp (bson_iter_key (&field), "code") == 0 && BSON_ITER_HOLDS_NUMBER (&field))
                        code = bson_iter_as_int64 (&field);
                    if (strcmp (bson_iter_key (&field), "index") == 0 && BSON_ITER_HOLDS_NUMBER (&field))
                        index = bson_iter_as_int64 (&field);
                }
            if (code != S_DUPLICATE_KEY || index < 0 || (dups && *n_dups >= dups_cap))
                rc = -1;            /* not a duplicate, or a reply that makes no sense */
            else
            if (dups)
                dups [(*n_dups)++] = (size_t) index;
        }
        if (rc) {
            char what [64];
            snprintf (what, sizeof what, "writing %s", s_coll_names [i]);
            s_fail (self, what, &error);
        }
    }
    bson_destroy (&reply);
    return rc;
}

/* ---- writes -------------------------------------------------------------------------- */

/* Sends the queued row writes of collection i: all as inserts first; those whose _id
 * exists then as guarded upserts, where a duplicate key again means "the stored row
 * is newer" (the guard matched nothing and the upsert's insert met the _id). */
static int
s_flush_rows (s_self_t *self, int i)
{
    s_queue_t *q = &self->rows [i];
    if (!q->count)
        return 0;
    size_t *dups = calloc (q->count, sizeof (size_t));
    mongoc_bulk_operation_t *bulk = dups ? s_bulk_new (self, i) : NULL;
    int rc = bulk ? 0 : -1;
    bson_error_t error;
    for (size_t k = 0; k < q->count && rc == 0; k++) {
        bson_t doc = BSON_INITIALIZER;
        BSON_APPEND_UTF8 (&doc, "_id", q->items [k].id);
        if (!bson_concat (&doc, q->items [k].set) || !bson_concat (&doc, q->items [k].on_insert)
        ||  !mongoc_bulk_operation_insert_with_opts (bulk, &doc, NULL, &error))
            rc = -1;
        bson_destroy (&doc);
    }
    size_t n_dups = 0;
    if (rc == 0)
        rc = s_execute (self, i, bulk, dups, q->count, &n_dups);
    mongoc_bulk_operation_destroy (bulk);
    bulk = NULL;
    if (rc == 0 && n_dups) {
        bulk = s_bulk_new (self, i);
        rc = bulk ? 0 : -1;
        for (size_t d = 0; d < n_dups && rc == 0; d++) {
            if (dups [d] >= q->count) {
                rc = -1;
                break;
            }
            s_write_t *w = &q->items [dups [d]];
            bson_t selector = BSON_INITIALIZER, guard, update = BSON_INITIALIZER, opts = BSON_INITIALIZER;
            BSON_APPEND_UTF8 (&selector, "_id", w->id);
            BSON_APPEND_DOCUMENT_BEGIN (&selector, "updated_position", &guard);
            BSON_APPEND_INT64 (&guard, w->or_equal ? "$lte" : "$lt", w->position);
            bson_append_document_end (&selector, &guard);
            BSON_APPEND_DOCUMENT (&update, "$set", w->set);
            BSON_APPEND_DOCUMENT (&update, "$setOnInsert", w->on_insert);
            BSON_APPEND_BOOL (&opts, "upsert", true);
            if (!mongoc_bulk_operation_update_one_with_opts (bulk, &selector, &update, &opts, &error))
                rc = -1;
            bson_destroy (&selector);
            bson_destroy (&update);
            bson_destroy (&opts);
        }
        if (rc == 0)
            rc = s_execute (self, i, bulk, NULL, 0, NULL);
        mongoc_bulk_operation_destroy (bulk);
    }
    if (rc && !self->failing)
        s_fail (self, "queueing a write", NULL);
    free (dups);
    s_queue_clear (q);
    return rc;
}

/* Sends the queued inserts of collection i (audit trail, poison records). */
static int
s_flush_inserts (s_self_t *self, int i)
{
    int rc = 0;
    if (self->inserts [i] && self->queued [i])
        rc = s_execute (self, i, self->inserts [i], NULL, 0, NULL);
    mongoc_bulk_operation_destroy (self->inserts [i]);
    self->inserts [i] = NULL;
    self->queued [i] = 0;
    return rc;
}

/* Adds the queued child ids to rm_case_children, one $addToSet per case. */
static int
s_flush_kids (s_self_t *self)
{
    if (!self->kids || zhash_size (self->kids) == 0)
        return 0;
    mongoc_bulk_operation_t *bulk = s_bulk_new (self, S_CHILDREN);
    int rc = bulk ? 0 : -1;
    bson_error_t error;
    for (s_kids_t *k = (s_kids_t *) zhash_first (self->kids); k && rc == 0; k = (s_kids_t *) zhash_next (self->kids)) {
        bson_t selector = BSON_INITIALIZER, update = BSON_INITIALIZER, add, opts = BSON_INITIALIZER;
        BSON_APPEND_UTF8 (&selector, "_id", zhash_cursor (self->kids));
        BSON_APPEND_DOCUMENT_BEGIN (&update, "$addToSet", &add);
        for (int kind = 0; kind < RM_KIND_COUNT; kind++) {
            if (!k->ids [kind] || zlist_size (k->ids [kind]) == 0)
                continue;
            bson_t each, list;
            BSON_APPEND_DOCUMENT_BEGIN (&add, s_kind_list [kind], &each);
            BSON_APPEND_ARRAY_BEGIN (&each, "$each", &list);
            uint32_t n = 0;
            for (char *id = (char *) zlist_first (k->ids [kind]); id; id = (char *) zlist_next (k->ids [kind])) {
                char key [16];
                const char *keyp;
                bson_uint32_to_string (n++, &keyp, key, sizeof key);
                bson_append_utf8 (&list, keyp, -1, id, -1);
            }
            bson_append_array_end (&each, &list);
            bson_append_document_end (&add, &each);
        }
        bson_append_document_end (&update, &add);
        BSON_APPEND_BOOL (&opts, "upsert", true);
        if (!mongoc_bulk_operation_update_one_with_opts (bulk, &selector, &update, &opts, &error))
            rc = -1;
        bson_destroy (&selector);
        bson_destroy (&update);
        bson_destroy (&opts);
    }
    if (rc == 0)
        rc = s_execute (self, S_CHILDREN, bulk, NULL, 0, NULL);
    mongoc_bulk_operation_destroy (bulk);
    zhash_destroy (&self->kids);
    return rc;
}

/* Everything queued, in an order a crash may cut anywhere: a case's child ids before
 * the child rows (a listed id without its row is skipped when read; a row nobody
 * lists would be lost to its case), the rows, then the cases. */
static int
s_flush_all (s_self_t *self)
{
    int rc = s_flush_kids (self);
    for (int i = S_COMPANIES; i < S_ROW_COLLS && rc == 0; i++)
        rc = s_flush_rows (self, i);
    if (rc == 0)
        rc = s_flush_inserts (self, S_EVENTS);
    if (rc == 0)
        rc = s_flush_inserts (self, S_ERRORS);
    if (rc == 0)
        rc = s_flush_rows (self, S_CASES);
    if (rc)
        s_bulks_drop (self);
    else
        self->failing = 0;
    return rc;
}

/* Queues a row write; takes set and on_insert. */
static int
s_queue_row (s_self_t *self, int i, const char *id, int64_t position, int or_equal, bson_t *set, bson_t *on_insert)
{
    s_queue_t *q = &self->rows [i];
    if (q->count == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        s_write_t *items = realloc (q->items, cap * sizeof (s_write_t));
        if (!items) {
            bson_destroy (set);
            bson_destroy (on_insert);
            return -1;
        }
        q->items = items;
        q->cap = cap;
    }
    s_write_t *w = &q->items [q->count];
    w->id = strdup (id);
    w->position = position;
    w->or_equal = or_equal;
    w->set = set;
    w->on_insert = on_insert;
    if (!w->id) {
        bson_destroy (set);
        bson_destroy (on_insert);
        return -1;
    }
    q->count++;
    return 0;
}

/* Remembers that case_id has the child id (rm_case_children). */
static int
s_queue_kid (s_self_t *self, const char *case_id, rm_kind_t kind, const char *id)
{
    if (!self->kids && !(self->kids = zhash_new ()))
        return -1;
    s_kids_t *k = (s_kids_t *) zhash_lookup (self->kids, case_id);
    if (!k) {
        k = calloc (1, sizeof (s_kids_t));
        if (!k || zhash_insert (self->kids, case_id, k) != 0) {
            free (k);
            return -1;
        }
        zhash_freefn (self->kids, case_id, s_kids_free);
    }
    if (!k->ids [kind]) {
        if (!(k->ids [kind] = zlist_new ()))
            return -1;
        zlist_autofree (k->ids [kind]);
    }
    for (char *known = (char *) zlist_first (k->ids [kind]); known; known = (char *) zlist_next (k->ids [kind]))
        if (strcmp (known, id) == 0)
            return 0;
    return zlist_append (k->ids [kind], (void *) id);
}

/* Keeps a copy of row (put for a case during this batch); the latest of each row wins. */
static int
s_keep (s_self_t *self, const rm_row_t *row)
{
    if (!self->kept && !(self->kept = zhash_new ()))
        return -1;
    s_kept_list_t *l = (s_kept_list_t *) zhash_lookup (self->kept, row->case_id);
    if (!l) {
        l = calloc (1, sizeof (s_kept_list_t));
        if (!l || zhash_insert (self->kept, row->case_id, l) != 0) {
            free (l);
            return -1;
        }
        zhash_freefn (self->kept, row->case_id, s_kept_free);
    }
    s_kept_t *k = NULL;
    for (size_t i = 0; i < l->count && !k; i++)
        if (l->items [i].kind == row->kind && strcmp (l->items [i].id, row->id) == 0)
            k = &l->items [i];
    if (k) {
        if (row->updated_position < k->updated_position)
            return 0;                   /* what the guarded write will keep */
        free (k->company_id);
        free (k->status);
        free (k->json);
        k->company_id = k->status = k->json = NULL;
    }
    else {
        if (l->count == l->cap) {
            size_t cap = l->cap ? l->cap * 2 : 8;
            s_kept_t *items = realloc (l->items, cap * sizeof (s_kept_t));
            if (!items)
                return -1;
            l->items = items;
            l->cap = cap;
        }
        k = &l->items [l->count++];
        memset (k, 0, sizeof *k);
        k->kind = row->kind;
        k->seq = row->seq;              /* the first put's: a stored row keeps its seq */
        if (!(k->id = strdup (row->id)))
            return -1;
    }
    k->updated_position = row->updated_position;
    k->company_id = row->company_id ? strdup (row->company_id) : NULL;
    k->status = row->status ? strdup (row->status) : NULL;
    k->json = malloc (row->json_size + 1);
    if (!k->json || (row->company_id && !k->company_id) || (row->status && !k->status))
        return -1;
    memcpy (k->json, row->json, row->json_size);
    k->json [row->json_size] = 0;
    k->json_size = row->json_size;
    return 0;
}

static int
s_put_row (void *impl, const rm_row_t *row)
{
    s_self_t *self = (s_self_t *) impl;
    if ((unsigned) row->kind >= RM_KIND_COUNT || !row->id || !row->case_id || !row->json)
        return -1;
    bson_t *set = bson_new (), *on_insert = bson_new ();
    if (row->kind == RM_DOCUMENT) {
        /* a requirement keeps the case and the seq it was first seen with */
        BSON_APPEND_UTF8 (on_insert, "case_id", row->case_id);
        BSON_APPEND_UTF8 (set, "status", row->status ? row->status : "");
    }
    else
        BSON_APPEND_UTF8 (set, "case_id", row->case_id);
    if (row->kind == RM_PERSON || row->kind == RM_BENEFICIAL_OWNER)
        s_append_str (set, "company_id", row->company_id);
    BSON_APPEND_INT64 (on_insert, "seq", row->seq);
    BSON_APPEND_INT64 (set, "updated_position", row->updated_position);
    bson_append_utf8 (set, "json", -1, row->json, (int) row->json_size);
    if (s_queue_kid (self, row->case_id, row->kind, row->id) || s_keep (self, row)) {
        bson_destroy (set);
        bson_destroy (on_insert);
        return -1;
    }
    return s_queue_row (self, s_kind_coll [row->kind], row->id, row->updated_position, 0, set, on_insert);
}

static int
s_put_case (void *impl, const rm_case_row_t *row)
{
    s_self_t *self = (s_self_t *) impl;
    if (!row->id || !row->summary_json || !row->full_json)
        return -1;
    bson_t *set = bson_new (), *on_insert = bson_new ();
    BSON_APPEND_UTF8 (set, "client_id", row->client_id ? row->client_id : "");
    BSON_APPEND_UTF8 (set, "traitement_type", row->traitement_type ? row->traitement_type : "");
    BSON_APPEND_UTF8 (set, "status", row->status ? row->status : "");
    BSON_APPEND_INT64 (set, "updated_position", row->updated_position);
    bson_append_utf8 (set, "summary_json", -1, row->summary_json, (int) row->summary_size);
    bson_append_utf8 (set, "full_json", -1, row->full_json, (int) row->full_size);
    BSON_APPEND_INT64 (on_insert, "seq", row->seq);
    /* or equal: a case is rewritten whenever a batch touches it, even by a replayed event */
    return s_queue_row (self, S_CASES, row->id, row->updated_position, 1, set, on_insert);
}

/* Queues an insert into collection i (S_EVENTS, S_ERRORS). */
static int
s_queue_insert (s_self_t *self, int i, const bson_t *doc)
{
    if (!self->inserts [i] && !(self->inserts [i] = s_bulk_new (self, i)))
        return -1;
    bson_error_t error;
    if (!mongoc_bulk_operation_insert_with_opts (self->inserts [i], doc, NULL, &error)) {
        s_fail (self, "queueing an insert", &error);
        return -1;
    }
    self->queued [i]++;
    return 0;
}

static int
s_put_event (void *impl, const rm_event_row_t *row)
{
    s_self_t *self = (s_self_t *) impl;
    /* _id is the (case_id, version) key itself: a replayed insert meets it */
    char *id = bson_strdup_printf ("%s/%lld", row->case_id, (long long) row->version);
    if (!id)
        return -1;
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_UTF8 (&doc, "_id", id);
    BSON_APPEND_INT64 (&doc, "case_seq", row->case_seq);
    BSON_APPEND_INT64 (&doc, "version", row->version);
    BSON_APPEND_UTF8 (&doc, "case_id", row->case_id);
    BSON_APPEND_INT64 (&doc, "position", row->position);
    bson_append_utf8 (&doc, "json", -1, row->json, (int) row->json_size);
    int rc = s_queue_insert (self, S_EVENTS, &doc);
    bson_destroy (&doc);
    bson_free (id);
    return rc;
}

static int
s_put_error (void *impl, int64_t position, const char *event_id, const char *error)
{
    s_self_t *self = (s_self_t *) impl;
    bson_t doc = BSON_INITIALIZER;
    BSON_APPEND_INT64 (&doc, "_id", position);
    BSON_APPEND_UTF8 (&doc, "event_id", event_id);
    BSON_APPEND_UTF8 (&doc, "error", error);
    int rc = s_queue_insert (self, S_ERRORS, &doc);
    bson_destroy (&doc);
    return rc;
}

static int
s_sync (void *impl)
{
    return s_flush_all ((s_self_t *) impl);
}

static int
s_set_checkpoint (void *impl, const char *const *names, size_t count, int64_t position)
{
    s_self_t *self = (s_self_t *) impl;
    if (s_flush_all (self))
        return -1;                      /* rows first: the checkpoint must never claim more */
    s_kept_drop (self);                 /* the batch is over */
    int rc = 0;
    for (size_t i = 0; i < count && rc == 0; i++) {
        bson_t selector = BSON_INITIALIZER, update = BSON_INITIALIZER, set, opts = BSON_INITIALIZER, reply;
        BSON_APPEND_UTF8 (&selector, "_id", names [i]);
        BSON_APPEND_DOCUMENT_BEGIN (&update, "$set", &set);
        BSON_APPEND_INT64 (&set, "position", position);
        bson_append_document_end (&update, &set);
        BSON_APPEND_BOOL (&opts, "upsert", true);
        bson_error_t error;
        if (!mongoc_collection_update_one (self->coll [S_CHECKPOINTS], &selector, &update, &opts, &reply, &error)) {
            s_fail (self, "writing the checkpoint", &error);
            rc = -1;
        }
        bson_destroy (&reply);
        bson_destroy (&selector);
        bson_destroy (&update);
        bson_destroy (&opts);
    }
    return rc;
}

/* ---- life cycle ---------------------------------------------------------------------- */

static int
s_ensure_indexes (s_self_t *self)
{
    if (self->indexed)
        return 0;
    char err [300];
    if (readmodel_indexes_ensure (self->client, self->db_name, err, sizeof err) != 0) {
        if (!self->failing)
            log_warn (NULL, NULL, "read models (mongodb %s): %s", self->db_name, err);
        self->failing = 1;
        return -1;
    }
    self->indexed = 1;
    return 0;
}

/* The named checkpoint, else the least of all (one per partition: few documents). */
static int
s_checkpoint_get (void *impl, const char *name, int64_t *position)
{
    s_self_t *self = (s_self_t *) impl;
    *position = 0;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (self->coll [S_CHECKPOINTS], &filter, &opts, NULL);
    const bson_t *doc;
    int64_t own = -1, least = -1;
    while (cursor && mongoc_cursor_next (cursor, &doc)) {
        bson_iter_t it;
        int64_t at = s_int (doc, "position");
        if (bson_iter_init_find (&it, doc, "_id") && BSON_ITER_HOLDS_UTF8 (&it)
        &&  strcmp (bson_iter_utf8 (&it, NULL), name) == 0)
            own = at;
        if (least < 0 || at < least)
            least = at;
    }
    *position = own >= 0 ? own : least >= 0 ? least : 0;
    bson_error_t error;
    int rc = 0;
    if (!cursor || mongoc_cursor_error (cursor, &error)) {
        s_fail (self, "reading the checkpoint", cursor ? &error : NULL);
        rc = -1;
    }
    else
        self->failing = 0;
    mongoc_cursor_destroy (cursor);
    bson_destroy (&filter);
    bson_destroy (&opts);
    return rc < 0 ? -1 : own >= 0 ? 0 : 1;
}

static int
s_checkpoints (void *impl, rm_checkpoint_fn *fn, void *arg)
{
    s_self_t *self = (s_self_t *) impl;
    bson_t filter = BSON_INITIALIZER;
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (self->coll [S_CHECKPOINTS], &filter, NULL, NULL);
    const bson_t *doc;
    int stopped = 0;
    while (!stopped && cursor && mongoc_cursor_next (cursor, &doc)) {
        bson_iter_t it;
        if (bson_iter_init_find (&it, doc, "_id") && BSON_ITER_HOLDS_UTF8 (&it))
            stopped = fn (arg, bson_iter_utf8 (&it, NULL), s_int (doc, "position")) != 0;
    }
    bson_error_t error;
    int rc = stopped ? -1 : 0;
    if (!cursor || mongoc_cursor_error (cursor, &error)) {
        s_fail (self, "reading the checkpoints", cursor ? &error : NULL);
        rc = -1;
    }
    mongoc_cursor_destroy (cursor);
    bson_destroy (&filter);
    return rc;
}

static int
s_load (void *impl, const char *checkpoint, int64_t *position)
{
    *position = 0;
    if (s_ensure_indexes ((s_self_t *) impl))
        return -1;
    return s_checkpoint_get (impl, checkpoint, position) < 0 ? -1 : 0;
}

static int
s_is_readmodel (const char *location, config_t *config)
{
    if (!config || !readmodel_mongo_valid_database (location))
        return -1;
    char err [300];
    mongoc_client_t *client = readmodel_mongo_client_new (config, 10000, err, sizeof err);
    if (!client)
        return -1;
    mongoc_database_t *db = mongoc_client_get_database (client, location);
    bson_error_t error;
    char **names = db ? mongoc_database_get_collection_names_with_opts (db, NULL, &error) : NULL;
    int ours = names ? 1 : -1;
    for (size_t i = 0; names && names [i]; i++)
        if (!readmodel_is_collection (names [i]) && strncmp (names [i], "system.", 7) != 0)
            ours = 0;
    bson_strfreev (names);
    mongoc_database_destroy (db);
    mongoc_client_destroy (client);
    return ours;
}

static int
s_begin (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (self->in_tx)
        return -1;
    s_bulks_drop (self);
    s_kept_drop (self);
    self->in_tx = 1;
    return 0;
}

static int
s_commit (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (!self->in_tx)
        return -1;
    int rc = s_flush_all (self);
    self->in_tx = 0;
    return rc;
}

static void
s_rollback (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    s_bulks_drop (self);            /* what was sent stays: the replay finds it */
    s_kept_drop (self);
    self->in_tx = 0;
}

static int
s_clear (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    s_bulks_drop (self);
    s_kept_drop (self);
    /* readmodel_collections lists the checkpoint first: from the moment the rows start
     * to go, a crash restarts from zero. */
    for (size_t i = 0; readmodel_collections [i]; i++) {
        mongoc_collection_t *coll = mongoc_client_get_collection (self->client, self->db_name, readmodel_collections [i]);
        bson_error_t error;
        int ok = coll && (mongoc_collection_drop_with_opts (coll, NULL, &error)
                          || error.code == S_NS_NOT_FOUND || strstr (error.message, "ns not found"));
        mongoc_collection_destroy (coll);
        if (!ok) {
            s_fail (self, "dropping the read models", coll ? &error : NULL);
            return -1;
        }
    }
    self->indexed = 0;
    return s_ensure_indexes (self);
}

/* Reports the rows kept for a case created by this batch. */
static int
s_kept_get (s_self_t *self, const char *case_id, rm_row_fn *fn, void *arg)
{
    s_kept_list_t *l = self->kept ? (s_kept_list_t *) zhash_lookup (self->kept, case_id) : NULL;
    for (size_t i = 0; l && i < l->count; i++) {
        s_kept_t *k = &l->items [i];
        rm_row_t row = {
            .kind = k->kind, .id = k->id, .case_id = case_id, .company_id = k->company_id,
            .status = k->status, .seq = k->seq, .updated_position = k->updated_position,
            .json = k->json, .json_size = k->json_size,
        };
        if (fn (arg, &row))
            return -1;
    }
    return 0;
}

/* ---- reads ------------------------------------------------------------------------------ */

typedef int (s_doc_fn) (void *arg, const bson_t *doc);

/* Runs find on collection i with filter and {projection: fields, limit}, calling fn
 * for each document found. 0 ok, -1 failed (logged, or fn said stop). */
static int
s_find (s_self_t *self, int i, const bson_t *filter, const char *const *fields, int64_t limit,
        s_doc_fn *fn, void *arg)
{
    bson_t opts = BSON_INITIALIZER, projection;
    BSON_APPEND_DOCUMENT_BEGIN (&opts, "projection", &projection);
    for (size_t k = 0; fields [k]; k++)
        BSON_APPEND_INT32 (&projection, fields [k], 1);
    bson_append_document_end (&opts, &projection);
    if (limit > 0)
        BSON_APPEND_INT64 (&opts, "limit", limit);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (self->coll [i], filter, &opts, NULL);
    const bson_t *doc;
    int rc = cursor ? 0 : -1;
    while (rc == 0 && mongoc_cursor_next (cursor, &doc))
        rc = fn (arg, doc) ? -1 : 0;
    bson_error_t error;
    if (!cursor || mongoc_cursor_error (cursor, &error)) {
        char what [64];
        snprintf (what, sizeof what, "reading %s", s_coll_names [i]);
        s_fail (self, what, cursor ? &error : NULL);
        rc = -1;
    }
    mongoc_cursor_destroy (cursor);
    bson_destroy (&opts);
    return rc;
}

/* The documents of collection i whose _id is one of ids, in any order. A few ids are
 * looked up one by one, more with one $in: both use the _id index on MongoDB, and
 * the FerretDB test server answers a lone _id from SQLite but scans for $in. */
#define S_IN_MIN 16

static int
s_find_ids (s_self_t *self, int i, const char *const *ids, size_t count, const char *const *fields,
            s_doc_fn *fn, void *arg)
{
    if (count < S_IN_MIN) {
        for (size_t k = 0; k < count; k++) {
            bson_t filter = BSON_INITIALIZER;
            BSON_APPEND_UTF8 (&filter, "_id", ids [k]);
            int rc = s_find (self, i, &filter, fields, 1, fn, arg);
            bson_destroy (&filter);
            if (rc)
                return -1;
        }
        return 0;
    }
    bson_t filter = BSON_INITIALIZER, in, list;
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "_id", &in);
    BSON_APPEND_ARRAY_BEGIN (&in, "$in", &list);
    for (size_t k = 0; k < count; k++) {
        char key [16];
        const char *keyp;
        bson_uint32_to_string ((uint32_t) k, &keyp, key, sizeof key);
        bson_append_utf8 (&list, keyp, -1, ids [k], -1);
    }
    bson_append_array_end (&in, &list);
    bson_append_document_end (&filter, &in);
    int rc = s_find (self, i, &filter, fields, 0, fn, arg);
    bson_destroy (&filter);
    return rc;
}

typedef struct {
    s_self_t *self;
    rm_case_fn *case_fn;
    rm_row_fn *row_fn;
    rm_kind_t kind;
    zhash_t *cases;             /* children: the cases asked for, or NULL */
    int keep;                   /* documents read for the batch are kept */
    void *arg;
} s_read_t;

static int
s_on_case_doc (void *arg, const bson_t *doc)
{
    s_read_t *r = (s_read_t *) arg;
    rm_case_row_t row = {
        .id = s_utf8 (doc, "_id", NULL),
        .seq = s_int (doc, "seq"),
        .updated_position = s_int (doc, "updated_position"),
        .client_id = s_utf8 (doc, "client_id", NULL),
        .traitement_type = s_utf8 (doc, "traitement_type", NULL),
        .status = s_utf8 (doc, "status", NULL),
    };
    row.summary_json = s_utf8 (doc, "summary_json", &row.summary_size);
    return row.id ? r->case_fn (r->arg, &row) : 0;
}

static int
s_on_row_doc (void *arg, const bson_t *doc)
{
    s_read_t *r = (s_read_t *) arg;
    rm_row_t row = {
        .kind = r->kind,
        .id = s_utf8 (doc, "_id", NULL),
        .case_id = s_utf8 (doc, "case_id", NULL),
        .company_id = s_utf8 (doc, "company_id", NULL),
        .status = s_utf8 (doc, "status", NULL),
        .seq = s_int (doc, "seq"),
        .updated_position = s_int (doc, "updated_position"),
    };
    row.json = s_utf8 (doc, "json", &row.json_size);
    if (!row.id)
        return 0;
    /* a listed row that now belongs to another case is that case's (as in SQLite) */
    if (r->cases && (!row.case_id || !zhash_lookup (r->cases, row.case_id)))
        return 0;
    /* A document read for the batch is kept too: one stored by an attempt that crashed
     * is "already applied" for the replay, which then never puts it again. */
    if (r->keep && row.case_id && row.json && s_keep (r->self, &row))
        return -1;
    return r->row_fn (r->arg, &row);
}

static const char *s_row_fields [] = { "case_id", "company_id", "status", "seq", "updated_position", "json", NULL };

static int
s_cases_get (void *impl, const char *const *ids, size_t count, rm_case_fn *fn, void *arg)
{
    static const char *fields [] = { "seq", "updated_position", "summary_json", "client_id",
                                     "traitement_type", "status", NULL };
    s_read_t r = { .self = (s_self_t *) impl, .case_fn = fn, .arg = arg };
    return s_find_ids ((s_self_t *) impl, S_CASES, ids, count, fields, s_on_case_doc, &r);
}

static int
s_documents_get (void *impl, const char *const *ids, size_t count, rm_row_fn *fn, void *arg)
{
    s_read_t r = { .self = (s_self_t *) impl, .row_fn = fn, .kind = RM_DOCUMENT, .keep = 1, .arg = arg };
    return s_find_ids ((s_self_t *) impl, S_DOCUMENTS, ids, count, s_row_fields, s_on_row_doc, &r);
}

/* Collects the child ids rm_case_children lists, per kind, each once (a row that
 * moved to another case is listed by both). */
typedef struct {
    zlist_t *ids [RM_KIND_COUNT];
    zhash_t *seen;              /* "<kind>:<id>" */
} s_listed_t;

static int
s_on_children_doc (void *arg, const bson_t *doc)
{
    s_listed_t *l = (s_listed_t *) arg;
    for (int kind = 0; kind < RM_KIND_COUNT; kind++) {
        bson_iter_t it, list;
        if (!bson_iter_init_find (&it, doc, s_kind_list [kind]) || !BSON_ITER_HOLDS_ARRAY (&it)
        ||  !bson_iter_recurse (&it, &list))
            continue;
        while (bson_iter_next (&list)) {
            if (!BSON_ITER_HOLDS_UTF8 (&list))
                continue;
            const char *id = bson_iter_utf8 (&list, NULL);
            char *key = bson_strdup_printf ("%d:%s", kind, id);
            int fresh_id = key && zhash_insert (l->seen, key, (void *) "") == 0;
            bson_free (key);
            if (fresh_id && zlist_append (l->ids [kind], (void *) id))
                return -1;
        }
    }
    return 0;
}

static int
s_children_get (void *impl, const char *const *case_ids, const int *fresh, size_t count, rm_row_fn *fn, void *arg)
{
    s_self_t *self = (s_self_t *) impl;
    static const char *fields [] = { "companies", "persons", "beneficial_owners", "documents", NULL };
    /* cases created by this batch: what it put and read; the others: read back */
    const char **stored = calloc (count + 1, sizeof (char *));
    zhash_t *asked = zhash_new ();
    s_listed_t listed = { { NULL }, zhash_new () };
    int rc = stored && asked && listed.seen ? 0 : -1;
    size_t n = 0;
    for (size_t k = 0; k < count && rc == 0; k++) {
        if (fresh && fresh [k])
            rc = s_kept_get (self, case_ids [k], fn, arg);
        else
        if (zhash_insert (asked, case_ids [k], (void *) "") == 0)
            stored [n++] = case_ids [k];
    }
    for (int kind = 0; kind < RM_KIND_COUNT && rc == 0; kind++)
        if (!(listed.ids [kind] = zlist_new ()))
            rc = -1;
        else
            zlist_autofree (listed.ids [kind]);
    if (rc == 0 && n)
        rc = s_find_ids (self, S_CHILDREN, stored, n, fields, s_on_children_doc, &listed);
    for (int kind = 0; kind < RM_KIND_COUNT && rc == 0 && n; kind++) {
        size_t m = zlist_size (listed.ids [kind]), j = 0;
        const char **ids = m ? calloc (m, sizeof (char *)) : NULL;
        if (m && !ids) {
            rc = -1;
            break;
        }
        for (char *id = (char *) zlist_first (listed.ids [kind]); id; id = (char *) zlist_next (listed.ids [kind]))
            ids [j++] = id;
        s_read_t r = { .self = self, .row_fn = fn, .kind = (rm_kind_t) kind, .cases = asked, .arg = arg };
        rc = s_find_ids (self, s_kind_coll [kind], ids, m, s_row_fields, s_on_row_doc, &r);
        free (ids);
    }
    for (int kind = 0; kind < RM_KIND_COUNT; kind++)
        zlist_destroy (&listed.ids [kind]);
    zhash_destroy (&listed.seen);
    zhash_destroy (&asked);
    free (stored);
    return rc;
}

/* ---- leases of projector partitions ------------------------------------------- */

/* One conditional write on lease "<index>-of-<count>": filter {_id, plus extra},
 * update $set owner/expires_at (and the partition's numbers), upsert as asked. 0 a
 * document matched or was inserted, 1 none did (a duplicate key on upsert: someone
 * else's unexpired lease), -1 failed. */
static int
s_lease_write (s_self_t *self, int count, int index, const bson_t *extra, const char *owner,
               int64_t expires_at, int upsert)
{
    char id [32];
    snprintf (id, sizeof id, "%d-of-%d", index, count);
    bson_t filter = BSON_INITIALIZER, update = BSON_INITIALIZER, set, opts = BSON_INITIALIZER, reply;
    BSON_APPEND_UTF8 (&filter, "_id", id);
    if (extra)
        bson_concat (&filter, extra);
    BSON_APPEND_DOCUMENT_BEGIN (&update, "$set", &set);
    BSON_APPEND_UTF8 (&set, "owner", owner);
    BSON_APPEND_INT64 (&set, "expires_at", expires_at);
    BSON_APPEND_INT32 (&set, "partition", index);
    BSON_APPEND_INT32 (&set, "partitions", count);
    bson_append_document_end (&update, &set);
    BSON_APPEND_BOOL (&opts, "upsert", upsert);
    bson_error_t error;
    int rc;
    if (mongoc_collection_update_one (self->coll [S_LEASES], &filter, &update, &opts, &reply, &error)) {
        bson_iter_t it;
        rc = s_int (&reply, "matchedCount") > 0 || bson_iter_init_find (&it, &reply, "upsertedId") ? 0 : 1;
        self->failing = 0;
    }
    else
    if (error.code == S_DUPLICATE_KEY)
        rc = 1;                             /* the upsert met a lease the filter refused */
    else {
        s_fail (self, "writing a lease", &error);
        rc = -1;
    }
    bson_destroy (&reply);
    bson_destroy (&filter);
    bson_destroy (&update);
    bson_destroy (&opts);
    return rc;
}

/* Each partition in turn: {_id, $or: [{owner: me}, {expires_at: {$lt: now}}]} upserted;
 * the first that matches (ours, expired) or is inserted (free) is claimed. Unlike the
 * SQLite claim it does not look for one of ours past a free one first: the projector
 * claims only while it holds none, so the difference never shows. */
static int
s_lease_claim (void *impl, int count, const char *owner, int64_t now_ms, int64_t ttl_ms, int *index)
{
    s_self_t *self = (s_self_t *) impl;
    for (int i = 0; i < count; i++) {
        bson_t extra = BSON_INITIALIZER, or, mine, old, lt;
        BSON_APPEND_ARRAY_BEGIN (&extra, "$or", &or);
        BSON_APPEND_DOCUMENT_BEGIN (&or, "0", &mine);
        BSON_APPEND_UTF8 (&mine, "owner", owner);
        bson_append_document_end (&or, &mine);
        BSON_APPEND_DOCUMENT_BEGIN (&or, "1", &old);
        BSON_APPEND_DOCUMENT_BEGIN (&old, "expires_at", &lt);
        BSON_APPEND_INT64 (&lt, "$lt", now_ms);
        bson_append_document_end (&old, &lt);
        bson_append_document_end (&or, &old);
        bson_append_array_end (&extra, &or);
        int rc = s_lease_write (self, count, i, &extra, owner, now_ms + ttl_ms, 1);
        bson_destroy (&extra);
        if (rc <= 0) {
            if (rc == 0)
                *index = i;
            return rc;
        }
    }
    return 1;
}

static int
s_lease_renew (void *impl, int count, int index, const char *owner, int64_t now_ms, int64_t ttl_ms)
{
    bson_t extra = BSON_INITIALIZER;
    BSON_APPEND_UTF8 (&extra, "owner", owner);
    int rc = s_lease_write ((s_self_t *) impl, count, index, &extra, owner, now_ms + ttl_ms, 0);
    bson_destroy (&extra);
    return rc;
}

static int
s_lease_release (void *impl, int count, int index, const char *owner)
{
    bson_t extra = BSON_INITIALIZER;
    BSON_APPEND_UTF8 (&extra, "owner", owner);
    int rc = s_lease_write ((s_self_t *) impl, count, index, &extra, owner, 0, 0);
    bson_destroy (&extra);
    return rc < 0 ? -1 : 0;
}

const readmodel_store_ops_t readmodel_mongo_ops = {
    .name = "mongodb",
    .transactional = 0,
    .open = s_open,
    .close = s_close,
    .load = s_load,
    .checkpoint_get = s_checkpoint_get,
    .checkpoints = s_checkpoints,
    .is_readmodel = s_is_readmodel,
    .begin = s_begin,
    .clear = s_clear,
    .commit = s_commit,
    .rollback = s_rollback,
    .cases_get = s_cases_get,
    .documents_get = s_documents_get,
    .children_get = s_children_get,
    .put_row = s_put_row,
    .put_case = s_put_case,
    .put_event = s_put_event,
    .put_error = s_put_error,
    .sync = s_sync,
    .set_checkpoint = s_set_checkpoint,
    .lease_claim = s_lease_claim,
    .lease_renew = s_lease_renew,
    .lease_release = s_lease_release,
};
