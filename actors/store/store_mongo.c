/* store_mongo — the MongoDB backend of the event log (mongo-c-driver). One
 * document per committed append in `events` (a single-document insert is atomic
 * without transactions), a per-stream index in `streams`, positions assigned here.
 *
 * Layout (database `mongodb_database`):
 *   events  {_id: command_id, stream, first_version, last_version, first_position,
 *            last_position, batch, ts, corr, tp?, fingerprint, result: bin,
 *            events: [{position, version, id, type, data: bin}]}
 *            (tp: the append's W3C traceparent, absent when it had none)
 *   streams  {_id: "<stream>#<first_version>", cmd: command_id, last_version, first_position}
 *   commands {_id: command_id, the events document without its events}
 * `events` is the truth. `streams` and `commands` are indexes derived from it,
 * insert-only: a stream is walked by point lookups on _id ("s#1", then
 * "s#<last+1>", ... until a miss, whose version is the stream's), and a duplicate
 * command is found in small documents. Point lookups on _id are what a MongoDB
 * server does fastest; on the FerretDB test server every query scans its whole
 * collection (and updates misbehave, hence none), so the scanned collections are
 * kept small. Index entries of a batch are written after its events and completed
 * before the next batch starts, so after a crash only the last batch (docs with
 * first_position >= the head doc's `batch`) can lack them: opening the log inserts
 * them again (one already there is a duplicate key, which is fine). The store keeps
 * in memory the stream versions it knows (it is the only writer; forgotten whenever
 * it re-reads the log) and the tail of the log (readers catching up, and streams
 * read back by handlers, are served from it).
 *
 * Why positions stay gapless: the store is the single writer; it keeps the head in
 * memory (recovered from the document with the highest last_position), inserts a
 * batch as one ordered bulk (an insert that fails stops everything after it, so the
 * positions of what was written are contiguous) and re-plans what was not written
 * from the new head. A write whose outcome is unknown (network error, write-concern
 * error) is never guessed: the store re-reads the log, and an insert that then hits
 * its own command id (same `batch` token) is recognised as already written.
 *
 * Unique indexes guard all of this even against a second, misconfigured writer:
 * _id (command id), first_position, last_position, (stream, first_version) — one
 * successor per stream version, i.e. optimistic concurrency — (stream, last_version),
 * and the multikey (stream, events.version), events.id and events.position, which a
 * real MongoDB enforces element by element (so no two documents can even overlap in
 * positions); the FerretDB test server only compares whole arrays, the scalar
 * indexes above still hold there. */
#include "store_backend.h"
#include "health.h"
#include "log.h"

#include <czmq.h>
#include <inttypes.h>
#include <mongoc/mongoc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* MongoDB refuses documents over 16 MiB; leave room for the command's envelope. */
#define S_DOC_MAX           (16 * 1024 * 1024 - 16 * 1024)
#define S_DUPLICATE_KEY     11000
#define S_BACKOFF_FIRST_MS  100
#define S_BACKOFF_MAX_MS    2000
#define S_WARN_EVERY_MS     10000
/* The tail of the log kept in memory: subscribers catching up (after a restart of
 * theirs or of the store) read it without touching the database. */
#define S_CACHE_MAX_EVENTS  20000
#define S_CACHE_MAX_BYTES   (64 * 1024 * 1024)
/* Appends per insert command: bounds how long one command runs on the server (and
 * so how long a dead store's last insert can go on after it). */
#define S_ROUND_MAX         200

/* Index entries still to be written for an appended document: its stream link and
 * its command (everything of the events document but the events). */
typedef struct {
    char stream [EVENT_ID_MAX];
    char command_id [EVENT_ID_MAX];
    char fingerprint [64];
    int64_t first_version, last_version;
    int64_t first_position, last_position, batch;
    char *result;               /* owned */
    size_t result_size;
} s_index_entry_t;

typedef struct {
    mongoc_client_t *client;
    mongoc_collection_t *events;
    mongoc_collection_t *streams;
    mongoc_collection_t *commands;
    mongoc_write_concern_t *write_concern;
    mongoc_read_concern_t *read_concern;
    char *database;
    bool indexes_done;
    bool ready;                 /* indexes made, head known, stream index caught up */
    int64_t head;
    s_index_entry_t *pending;   /* stream-index updates not yet written */
    size_t n_pending, pending_cap;
    zhashx_t *versions;         /* stream -> int64_t * : known current versions */
    store_events_t cache;       /* contiguous confirmed events, positions ascending */
    int64_t retry_max_ms;       /* 0: retry until it works or the store is stopped */
    int64_t warned_ms;          /* rate limit of the outage warning */
} s_mongo_t;

/* Per-call state of one append batch. */
typedef enum { S_ITEM_PENDING, S_ITEM_PLANNED, S_ITEM_DONE } s_item_state_t;

typedef struct {
    s_item_state_t state;
    int64_t first_position;     /* planned */
    int64_t first_version;      /* planned */
    void *stream;               /* s_stream_t * of its stream while planned */
} s_item_t;

typedef struct {
    int64_t version;            /* confirmed: in the log */
    int64_t planned;            /* with this round's planned appends */
    bool busy;                  /* something planned on it this round */
} s_stream_t;

/* ---------------------------------------------------------------- helpers */

static void
s_free_item (void **item_p)
{
    free (*item_p);
    *item_p = NULL;
}

/* Integer of any numeric BSON type at key; 0 when found, -1 when missing. */
static int
s_get_int (const bson_t *doc, const char *key, int64_t *out)
{
    bson_iter_t iter;
    if (!bson_iter_init_find (&iter, doc, key))
        return -1;
    if (!BSON_ITER_HOLDS_INT32 (&iter) && !BSON_ITER_HOLDS_INT64 (&iter) && !BSON_ITER_HOLDS_DOUBLE (&iter))
        return -1;
    *out = bson_iter_as_int64 (&iter);
    return 0;
}

static int
s_iter_int (bson_iter_t *iter, int64_t *out)
{
    if (!BSON_ITER_HOLDS_INT32 (iter) && !BSON_ITER_HOLDS_INT64 (iter) && !BSON_ITER_HOLDS_DOUBLE (iter))
        return -1;
    *out = bson_iter_as_int64 (iter);
    return 0;
}

/* Copies a string field into a fixed buffer (missing or not a string: empty). */
static void
s_iter_copy (bson_iter_t *iter, char *field, size_t size)
{
    uint32_t len = 0;
    const char *text = BSON_ITER_HOLDS_UTF8 (iter) ? bson_iter_utf8 (iter, &len) : "";
    snprintf (field, size, "%.*s", (int) (len < size ? len : size - 1), text);
}

static void
s_get_str (const bson_t *doc, const char *key, char *field, size_t size)
{
    bson_iter_t iter;
    field [0] = 0;
    if (bson_iter_init_find (&iter, doc, key))
        s_iter_copy (&iter, field, size);
}

/* Binary (or string) bytes at iter; data borrowed from the document. */
static int
s_iter_bytes (bson_iter_t *iter, const char **data, size_t *size)
{
    if (BSON_ITER_HOLDS_BINARY (iter)) {
        bson_subtype_t subtype;
        uint32_t len = 0;
        const uint8_t *bytes = NULL;
        bson_iter_binary (iter, &subtype, &len, &bytes);
        *data = bytes ? (const char *) bytes : "";
        *size = len;
        return 0;
    }
    if (BSON_ITER_HOLDS_UTF8 (iter)) {
        uint32_t len = 0;
        *data = bson_iter_utf8 (iter, &len);
        *size = len;
        return 0;
    }
    return -1;
}

static int64_t
s_now_ms (void)
{
    return zclock_mono ();
}

static void
s_set_error (store_outcome_t *outcome, const char *error, const char *detail)
{
    free (outcome->result);
    memset (outcome, 0, sizeof (*outcome));
    outcome->kind = STORE_OUTCOME_ERROR;
    snprintf (outcome->error, sizeof outcome->error, "%.63s", error);
    snprintf (outcome->detail, sizeof outcome->detail, "%.255s", detail);
}

/* One document by _id from collection (point lookup). Returns 1 found (*out owns a
 * copy; bson_destroy it), 0 not found, -1 failed. */
static int
s_find_by_id (s_mongo_t *self, mongoc_collection_t *collection, const char *id,
              const bson_t *projection, bson_t **out)
{
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER;
    BSON_APPEND_UTF8 (&filter, "_id", id);
    BSON_APPEND_INT64 (&opts, "limit", 1);
    if (projection)
        BSON_APPEND_DOCUMENT (&opts, "projection", projection);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (collection, &filter, &opts, NULL);
    const bson_t *doc = NULL;
    int found = 0;
    if (mongoc_cursor_next (cursor, &doc)) {
        *out = bson_copy (doc);
        found = *out ? 1 : -1;
    }
    bson_error_t error;
    if (found == 0 && mongoc_cursor_error (cursor, &error)) {
        log_debug (NULL, NULL, "mongodb: lookup in %s failed: %s", mongoc_collection_get_name (collection),
                   error.message);
        found = -1;
    }
    mongoc_cursor_destroy (cursor);
    bson_destroy (&filter);
    bson_destroy (&opts);
    (void) self;
    return found;
}

/* ------------------------------------------------------------ start-up */

/* createIndexes is idempotent for identical specifications. One index per command:
 * the FerretDB test server fails a repeated multi-index createIndexes, and a real
 * server only pays a few round trips at start-up. */
static int
s_create_indexes (s_mongo_t *self)
{
    if (self->indexes_done)
        return 0;
    static const struct { const char *name; const char *key; } specs [] = {
        { "first_position",       "{\"first_position\": 1}" },
        { "last_position",        "{\"last_position\": 1}" },
        { "stream_first_version", "{\"stream\": 1, \"first_version\": 1}" },
        { "stream_last_version",  "{\"stream\": 1, \"last_version\": 1}" },
        { "stream_event_version", "{\"stream\": 1, \"events.version\": 1}" },
        { "event_id",             "{\"events.id\": 1}" },
        { "event_position",       "{\"events.position\": 1}" },
    };
    bool ok = true;
    for (size_t i = 0; i < sizeof specs / sizeof specs [0] && ok; i++) {
        bson_t cmd = BSON_INITIALIZER, indexes, spec, reply, opts = BSON_INITIALIZER;
        bson_t *keys = bson_new_from_json ((const uint8_t *) specs [i].key, -1, NULL);
        if (!keys) {
            bson_destroy (&cmd);
            bson_destroy (&opts);
            return -1;
        }
        BSON_APPEND_UTF8 (&cmd, "createIndexes", mongoc_collection_get_name (self->events));
        BSON_APPEND_ARRAY_BEGIN (&cmd, "indexes", &indexes);
        BSON_APPEND_DOCUMENT_BEGIN (&indexes, "0", &spec);
        BSON_APPEND_DOCUMENT (&spec, "key", keys);
        BSON_APPEND_UTF8 (&spec, "name", specs [i].name);
        BSON_APPEND_BOOL (&spec, "unique", true);
        bson_append_document_end (&indexes, &spec);
        bson_append_array_end (&cmd, &indexes);
        mongoc_write_concern_append (self->write_concern, &opts);
        bson_error_t error;
        ok = mongoc_collection_write_command_with_opts (self->events, &cmd, &opts, &reply, &error);
        if (!ok)
            log_warn (NULL, NULL, "mongodb: creating index %s of the event log failed: %s",
                      specs [i].name, error.message);
        bson_destroy (&reply);
        bson_destroy (&cmd);
        bson_destroy (&opts);
        bson_destroy (keys);
    }
    self->indexes_done = ok;
    return ok ? 0 : -1;
}

static void
s_pending_clear (s_mongo_t *self)
{
    for (size_t i = 0; i < self->n_pending; i++)
        free (self->pending [i].result);
    self->n_pending = 0;
}

/* Queues the index entries of an appended document. 0 ok, -1 no memory. */
static int
s_pending_add (s_mongo_t *self, const char *stream, const char *command_id, const char *fingerprint,
               const char *result, size_t result_size, int64_t first_version, int64_t last_version,
               int64_t first_position, int64_t last_position, int64_t batch)
{
    char *copy = malloc (result_size + 1);
    if (!copy)
        return -1;
    if (result_size)
        memcpy (copy, result, result_size);
    copy [result_size] = 0;
    if (self->n_pending == self->pending_cap) {
        size_t cap = self->pending_cap ? self->pending_cap * 2 : 64;
        s_index_entry_t *pending = realloc (self->pending, cap * sizeof (s_index_entry_t));
        if (!pending) {
            free (copy);
            return -1;
        }
        self->pending = pending;
        self->pending_cap = cap;
    }
    s_index_entry_t *entry = &self->pending [self->n_pending++];
    snprintf (entry->stream, sizeof entry->stream, "%s", stream);
    snprintf (entry->command_id, sizeof entry->command_id, "%s", command_id);
    snprintf (entry->fingerprint, sizeof entry->fingerprint, "%s", fingerprint ? fingerprint : "");
    entry->first_version = first_version;
    entry->last_version = last_version;
    entry->first_position = first_position;
    entry->last_position = last_position;
    entry->batch = batch;
    entry->result = copy;
    entry->result_size = result_size;
    return 0;
}

/* The _id of a stream link: "<stream>#<first_version>". The digits after the last
 * '#' make it unambiguous whatever the stream name holds. */
static void
s_link_id (char *out, size_t size, const char *stream, int64_t first_version)
{
    snprintf (out, size, "%s#%" PRId64, stream, first_version);
}

/* True when every write error of a bulk reply is a duplicate key. */
static bool
s_only_duplicate_keys (const bson_t *reply)
{
    bson_iter_t iter, errors, entry;
    if (!bson_iter_init_find (&iter, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY (&iter)
    ||  !bson_iter_recurse (&iter, &errors))
        return false;
    bool any = false;
    while (bson_iter_next (&errors)) {
        int64_t code = 0;
        if (!BSON_ITER_HOLDS_DOCUMENT (&errors) || !bson_iter_recurse (&errors, &entry)
        ||  !bson_iter_find (&entry, "code") || s_iter_int (&entry, &code) || code != S_DUPLICATE_KEY)
            return false;
        any = true;
    }
    bson_iter_t wce;
    if (bson_iter_init_find (&wce, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY (&wce)
    &&  bson_iter_recurse (&wce, &wce) && bson_iter_next (&wce))
        return false;
    return any;
}

/* Inserts one index document per pending entry into collection (unordered; one
 * already there is fine). 0 ok, -1 failed. */
static int
s_flush_into (s_mongo_t *self, mongoc_collection_t *collection, bool links)
{
    bson_t opts = BSON_INITIALIZER;
    BSON_APPEND_BOOL (&opts, "ordered", false);
    mongoc_write_concern_append (self->write_concern, &opts);
    mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts (collection, &opts);
    bson_destroy (&opts);
    bson_error_t error;
    bool ok = true;
    for (size_t i = 0; i < self->n_pending && ok; i++) {
        const s_index_entry_t *entry = &self->pending [i];
        bson_t doc = BSON_INITIALIZER;
        if (links) {
            char id [EVENT_ID_MAX + 24];
            s_link_id (id, sizeof id, entry->stream, entry->first_version);
            BSON_APPEND_UTF8 (&doc, "_id", id);
            BSON_APPEND_UTF8 (&doc, "cmd", entry->command_id);
            BSON_APPEND_INT64 (&doc, "last_version", entry->last_version);
            BSON_APPEND_INT64 (&doc, "first_position", entry->first_position);
        }
        else {
            BSON_APPEND_UTF8 (&doc, "_id", entry->command_id);
            BSON_APPEND_UTF8 (&doc, "stream", entry->stream);
            BSON_APPEND_INT64 (&doc, "first_version", entry->first_version);
            BSON_APPEND_INT64 (&doc, "last_version", entry->last_version);
            BSON_APPEND_INT64 (&doc, "first_position", entry->first_position);
            BSON_APPEND_INT64 (&doc, "last_position", entry->last_position);
            BSON_APPEND_INT64 (&doc, "batch", entry->batch);
            BSON_APPEND_UTF8 (&doc, "fingerprint", entry->fingerprint);
            BSON_APPEND_BINARY (&doc, "result", BSON_SUBTYPE_BINARY, (const uint8_t *) entry->result,
                                (uint32_t) entry->result_size);
        }
        ok = mongoc_bulk_operation_insert_with_opts (bulk, &doc, NULL, &error);
        bson_destroy (&doc);
    }
    bson_t reply;
    if (ok)
        ok = mongoc_bulk_operation_execute (bulk, &reply, &error) != 0 || s_only_duplicate_keys (&reply);
    else
        bson_init (&reply);
    if (!ok)
        log_warn (NULL, NULL, "mongodb: %s index update of %zu appends failed: %s",
                  links ? "stream" : "command", self->n_pending, error.message);
    bson_destroy (&reply);
    mongoc_bulk_operation_destroy (bulk);
    return ok ? 0 : -1;
}

/* Writes the pending index entries: stream links and commands. 0 ok, -1 failed
 * (they stay pending; writing them again is harmless). */
static int
s_flush_index (s_mongo_t *self)
{
    if (self->n_pending == 0)
        return 0;
    if (s_flush_into (self, self->streams, true) || s_flush_into (self, self->commands, false))
        return -1;
    s_pending_clear (self);
    return 0;
}

/* The stream links from first_version on, walked by point lookups. Calls visit for
 * each (stopping when it returns non-zero) and sets *version to the stream's
 * current version when the walk reached the end. 0 ok, -1 failed. */
typedef int (s_visit_fn) (void *arg, const char *command_id, int64_t first_version, int64_t last_version,
                          int64_t first_position);

static int
s_walk_stream (s_mongo_t *self, const char *stream, int64_t first_version, s_visit_fn *visit, void *arg,
               int64_t *version)
{
    int64_t next = first_version > 0 ? first_version : 1;
    while (true) {
        char id [EVENT_ID_MAX + 24];
        s_link_id (id, sizeof id, stream, next);
        bson_t *link = NULL;
        int found = s_find_by_id (self, self->streams, id, NULL, &link);
        if (found < 0)
            return -1;
        if (found == 0) {
            if (version)
                *version = next - 1;
            return 0;
        }
        char command_id [EVENT_ID_MAX];
        int64_t last = 0, first_position = 0;
        s_get_str (link, "cmd", command_id, sizeof command_id);
        s_get_int (link, "first_position", &first_position);
        int bad = s_get_int (link, "last_version", &last) || last < next || !command_id [0];
        bson_destroy (link);
        if (bad) {
            log_error (NULL, NULL, "mongodb: unreadable stream link '%.160s'", id);
            return -1;
        }
        if (visit && visit (arg, command_id, next, last, first_position))
            return 0;
        next = last + 1;
    }
}

static void
s_forget_versions (s_mongo_t *self)
{
    if (self->versions)
        zhashx_purge (self->versions);
}

/* Remembers a stream's current version (best effort: memory only). */
static void
s_remember_version (s_mongo_t *self, const char *stream, int64_t version)
{
    if (!self->versions)
        return;
    /* Bounded: when full, start over (a miss only costs a walk). */
    if (zhashx_size (self->versions) >= 200000)
        zhashx_purge (self->versions);
    int64_t *known = (int64_t *) zhashx_lookup (self->versions, stream);
    if (known) {
        *known = version;
        return;
    }
    known = malloc (sizeof (int64_t));
    if (!known)
        return;
    *known = version;
    if (zhashx_insert (self->versions, stream, known))
        free (known);
}

/* Makes the log usable: indexes, the head from the log, the stream index caught up
 * with the last batch. Run at open, after any failure, before the next operation.
 * 0 ok, -1 failed (the server is unreachable or refused). */
static int s_make_ready (s_mongo_t *self);

/* s_make_ready, telling the metrics port's /ready whether the log is usable. */
static int
s_ensure_ready (s_mongo_t *self)
{
    if (self->ready)
        return 0;
    int rc = s_make_ready (self);
    health_set_ready (rc == 0, "the event log (MongoDB) is not reachable");
    return rc;
}

static int
s_make_ready (s_mongo_t *self)
{
    /* Whatever was remembered may be stale now: the log is read afresh. */
    s_forget_versions (self);
    if (s_create_indexes (self))
        return -1;
    bson_t filter = BSON_INITIALIZER, opts = BSON_INITIALIZER, sort, projection;
    BSON_APPEND_DOCUMENT_BEGIN (&opts, "sort", &sort);
    BSON_APPEND_INT32 (&sort, "last_position", -1);
    bson_append_document_end (&opts, &sort);
    BSON_APPEND_DOCUMENT_BEGIN (&opts, "projection", &projection);
    BSON_APPEND_INT32 (&projection, "last_position", 1);
    BSON_APPEND_INT32 (&projection, "batch", 1);
    bson_append_document_end (&opts, &projection);
    BSON_APPEND_INT64 (&opts, "limit", 1);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (self->events, &filter, &opts, NULL);
    const bson_t *doc = NULL;
    int64_t head = 0, batch = 0;
    if (mongoc_cursor_next (cursor, &doc)) {
        if (s_get_int (doc, "last_position", &head) || s_get_int (doc, "batch", &batch))
            head = -1;
    }
    bson_error_t error;
    bool failed = mongoc_cursor_error (cursor, &error);
    mongoc_cursor_destroy (cursor);
    bson_destroy (&filter);
    bson_destroy (&opts);
    if (failed) {
        log_debug (NULL, NULL, "mongodb: reading the log head failed: %s", error.message);
        return -1;
    }
    if (head < 0) {
        log_error (NULL, NULL, "mongodb: the last event log document has no integer last_position/batch");
        return -1;
    }
    /* The last batch's appends may be missing from the stream index: queue them all
     * again (re-applying an update changes nothing). */
    s_pending_clear (self);
    if (head > 0) {
        bson_t range = BSON_INITIALIZER, gte, fields = BSON_INITIALIZER, proj;
        BSON_APPEND_DOCUMENT_BEGIN (&range, "first_position", &gte);
        BSON_APPEND_INT64 (&gte, "$gte", batch);
        bson_append_document_end (&range, &gte);
        BSON_APPEND_DOCUMENT_BEGIN (&fields, "projection", &proj);
        BSON_APPEND_INT32 (&proj, "events", 0);
        bson_append_document_end (&fields, &proj);
        cursor = mongoc_collection_find_with_opts (self->events, &range, &fields, NULL);
        int status = 0;
        while (status == 0 && mongoc_cursor_next (cursor, &doc)) {
            char stream [EVENT_ID_MAX], command_id [EVENT_ID_MAX], fingerprint [64];
            int64_t first_version = 0, last_version = 0, first = 0, last = 0, doc_batch = 0;
            const char *result = "";
            size_t result_size = 0;
            bson_iter_t iter;
            s_get_str (doc, "_id", command_id, sizeof command_id);
            s_get_str (doc, "stream", stream, sizeof stream);
            s_get_str (doc, "fingerprint", fingerprint, sizeof fingerprint);
            if (bson_iter_init_find (&iter, doc, "result"))
                s_iter_bytes (&iter, &result, &result_size);
            if (s_get_int (doc, "first_version", &first_version) || s_get_int (doc, "last_version", &last_version)
            ||  s_get_int (doc, "first_position", &first) || s_get_int (doc, "last_position", &last)
            ||  s_get_int (doc, "batch", &doc_batch) || !stream [0] || !command_id [0]) {
                log_error (NULL, NULL, "mongodb: event log document '%.64s' lacks stream/versions", command_id);
                status = -1;
            }
            else
                status = s_pending_add (self, stream, command_id, fingerprint, result, result_size,
                                        first_version, last_version, first, last, doc_batch);
        }
        if (mongoc_cursor_error (cursor, &error)) {
            log_debug (NULL, NULL, "mongodb: reading the last batch failed: %s", error.message);
            status = -1;
        }
        mongoc_cursor_destroy (cursor);
        bson_destroy (&range);
        bson_destroy (&fields);
        if (status)
            return -1;
    }
    if (s_flush_index (self))
        return -1;
    self->head = head;
    self->ready = true;
    return 0;
}

/* -------------------------------------------------------------- open/close */

static void s_close (void *impl);
static int s_cache_load (s_mongo_t *self, int64_t from_position);

/* Remembers the version of every stream with an event in the cached tail, when
 * that tail reaches the head: a stream's last event in a suffix of the log is its
 * last event at all. Handlers retrying their commands after a store restart hit
 * exactly these streams, and each would otherwise cost a walk of the stream index. */
static void
s_versions_from_cache (s_mongo_t *self)
{
    const store_events_t *cache = &self->cache;
    if (cache->count == 0 || cache->events [cache->count - 1].position != self->head)
        return;
    for (size_t i = 0; i < cache->count; i++)
        s_remember_version (self, cache->events [i].stream, cache->events [i].version);
}

/* A URI option the operator did not set gets the store's default. */
static void
s_uri_default (mongoc_uri_t *uri, const char *option, int32_t value)
{
    if (!mongoc_uri_has_option (uri, option))
        mongoc_uri_set_option_as_int32 (uri, option, value);
}

/* The driver's own messages join the process's JSON log: its errors as warnings
 * (the store decides what is an error), the rest only at debug. */
static void
s_driver_log (mongoc_log_level_t level, const char *domain, const char *message, void *data)
{
    (void) data;
    if (level <= MONGOC_LOG_LEVEL_ERROR)
        log_warn (NULL, NULL, "mongoc %s: %s", domain, message);
    else
    if (level <= MONGOC_LOG_LEVEL_INFO)
        log_debug (NULL, NULL, "mongoc %s: %s", domain, message);
}

static void *
s_open (const char *location, config_t *config)
{
    /* The handler first: mongoc_init itself may warn (e.g. "Falling back to malloc
     * for counters"), and every line on stderr must be a JSON log line. */
    mongoc_log_set_handler (s_driver_log, NULL);
    mongoc_init ();
    s_mongo_t *self = calloc (1, sizeof (s_mongo_t));
    if (!self)
        return NULL;
    bson_error_t error;
    mongoc_uri_t *uri = mongoc_uri_new_with_error (location, &error);
    if (!uri) {
        /* The URI may carry a password: never log it. */
        log_error (NULL, NULL, "mongodb: the configured mongodb_uri is not valid: %s", error.message);
        goto fail;
    }
    const char *database = config ? config_get (config, "mongodb_database", "dossier") : "dossier";
    const char *w = config ? config_get (config, "mongodb_write_concern", "majority") : "majority";
    const char *journal = config ? config_get (config, "mongodb_journal", "true") : "true";
    long wtimeout = config ? config_get_long (config, "mongodb_wtimeout_ms", 10000) : 10000;
    long retry_max = config ? config_get_long (config, "mongodb_retry_max_ms", 0) : 0;
    self->retry_max_ms = retry_max > 0 ? retry_max : 0;
    if (wtimeout < 0)
        wtimeout = 10000;
    /* Fail fast and retry here (with backoff) rather than block inside the driver;
     * the socket timeout must outlast a write concern's wait. */
    s_uri_default (uri, MONGOC_URI_SERVERSELECTIONTIMEOUTMS, 2000);
    /* Keep probing within that time instead of the single-threaded client's 5 s
     * cool-down after a failed connection: the log resumes as soon as the server does. */
    if (!mongoc_uri_has_option (uri, MONGOC_URI_SERVERSELECTIONTRYONCE))
        mongoc_uri_set_option_as_bool (uri, MONGOC_URI_SERVERSELECTIONTRYONCE, false);
    s_uri_default (uri, MONGOC_URI_CONNECTTIMEOUTMS, 2000);
    s_uri_default (uri, MONGOC_URI_SOCKETTIMEOUTMS, (int32_t) (wtimeout + 10000 > INT32_MAX ? INT32_MAX : wtimeout + 10000));
    self->client = mongoc_client_new_from_uri_with_error (uri, &error);
    mongoc_uri_destroy (uri);
    if (!self->client) {
        log_error (NULL, NULL, "mongodb: cannot create a client: %s", error.message);
        goto fail;
    }
    mongoc_client_set_error_api (self->client, MONGOC_ERROR_API_VERSION_2);
    mongoc_client_set_appname (self->client, "dossier-store");
    self->database = strdup (database);
    self->write_concern = mongoc_write_concern_new ();
    self->read_concern = mongoc_read_concern_new ();
    if (!self->database || !self->write_concern || !self->read_concern)
        goto fail;
    /* Durability: acknowledged by a majority and journaled unless configured down. */
    char *end = NULL;
    long n = strtol (w, &end, 10);
    if (strcasecmp (w, "majority") == 0)
        mongoc_write_concern_set_w (self->write_concern, MONGOC_WRITE_CONCERN_W_MAJORITY);
    else
    if (*w && end && *end == 0 && n >= 1 && n <= 50)
        mongoc_write_concern_set_w (self->write_concern, (int32_t) n);
    else {
        log_warn (NULL, NULL, "mongodb_write_concern '%.32s' unknown (majority or 1..50), using majority", w);
        mongoc_write_concern_set_w (self->write_concern, MONGOC_WRITE_CONCERN_W_MAJORITY);
    }
    bool j = !(strcasecmp (journal, "false") == 0 || strcmp (journal, "0") == 0 || strcasecmp (journal, "no") == 0);
    mongoc_write_concern_set_journal (self->write_concern, j);
    mongoc_write_concern_set_wtimeout_int64 (self->write_concern, wtimeout);
    /* Reads that decide what happened to an uncertain write must not see a write
     * that could still be rolled back. */
    mongoc_read_concern_set_level (self->read_concern,
                                   mongoc_write_concern_get_wmajority (self->write_concern)
                                   ? MONGOC_READ_CONCERN_LEVEL_MAJORITY : MONGOC_READ_CONCERN_LEVEL_LOCAL);
    self->versions = zhashx_new ();
    if (!self->versions)
        goto fail;
    zhashx_set_destructor (self->versions, s_free_item);
    self->events = mongoc_client_get_collection (self->client, self->database, "events");
    self->streams = mongoc_client_get_collection (self->client, self->database, "streams");
    self->commands = mongoc_client_get_collection (self->client, self->database, "commands");
    if (!self->events || !self->streams || !self->commands)
        goto fail;
    mongoc_collection_set_write_concern (self->commands, self->write_concern);
    mongoc_collection_set_read_concern (self->commands, self->read_concern);
    mongoc_collection_set_write_concern (self->events, self->write_concern);
    mongoc_collection_set_write_concern (self->streams, self->write_concern);
    mongoc_collection_set_read_concern (self->events, self->read_concern);
    mongoc_collection_set_read_concern (self->streams, self->read_concern);
    /* An unreachable server is not fatal: the store starts, and appends wait and
     * retry until it is back. */
    if (s_ensure_ready (self))
        log_warn (NULL, NULL, "mongodb: database '%.64s' not ready yet; appends will wait for it", self->database);
    else {
        log_info (NULL, NULL, "mongodb: event log in database '%.64s', head %" PRId64, self->database, self->head);
        /* Warm the tail cache with one query: after a restart, readers catching up and
         * handlers re-reading recent streams are then answered from memory. */
        if (self->head > 0
        &&  s_cache_load (self, self->head > S_CACHE_MAX_EVENTS ? self->head - S_CACHE_MAX_EVENTS + 1 : 1) == 0)
            s_versions_from_cache (self);
    }
    return self;
fail:
    s_close (self);
    return NULL;
}

static void
s_close (void *impl)
{
    s_mongo_t *self = (s_mongo_t *) impl;
    if (!self)
        return;
    if (self->n_pending)
        log_warn (NULL, NULL, "mongodb: closing with %zu stream-index updates unwritten; the next start writes them",
                  self->n_pending);
    mongoc_collection_destroy (self->events);
    mongoc_collection_destroy (self->streams);
    mongoc_collection_destroy (self->commands);
    s_pending_clear (self);
    mongoc_write_concern_destroy (self->write_concern);
    mongoc_read_concern_destroy (self->read_concern);
    mongoc_client_destroy (self->client);
    zhashx_destroy (&self->versions);
    store_events_reset (&self->cache);
    free (self->database);
    free (self->pending);
    free (self);
}

static int
s_head (void *impl, int64_t *head)
{
    s_mongo_t *self = (s_mongo_t *) impl;
    if (s_ensure_ready (self))
        return -1;
    *head = self->head;
    return 0;
}

/* ---------------------------------------------------------------- append */

/* The document of one append at the planned positions/versions. Caller owns. */
static bson_t *
s_build_doc (const store_batch_item_t *item, int64_t first_position, int64_t first_version,
             int64_t batch, int64_t now_us)
{
    const store_append_t *req = item->req;
    bson_t *doc = bson_new ();
    if (!doc)
        return NULL;
    int64_t n = (int64_t) req->count;
    BSON_APPEND_UTF8 (doc, "_id", req->command_id);
    BSON_APPEND_UTF8 (doc, "stream", req->stream);
    BSON_APPEND_INT64 (doc, "first_version", first_version);
    BSON_APPEND_INT64 (doc, "last_version", first_version + n - 1);
    BSON_APPEND_INT64 (doc, "first_position", first_position);
    BSON_APPEND_INT64 (doc, "last_position", first_position + n - 1);
    BSON_APPEND_INT64 (doc, "batch", batch);
    BSON_APPEND_INT64 (doc, "ts", now_us);
    BSON_APPEND_UTF8 (doc, "corr", item->correlation_id ? item->correlation_id : "");
    if (item->traceparent && item->traceparent [0])
        BSON_APPEND_UTF8 (doc, "tp", item->traceparent);
    BSON_APPEND_UTF8 (doc, "fingerprint", req->fingerprint);
    BSON_APPEND_BINARY (doc, "result", BSON_SUBTYPE_BINARY,
                        (const uint8_t *) (req->result ? req->result : ""), (uint32_t) req->result_size);
    bson_t events;
    BSON_APPEND_ARRAY_BEGIN (doc, "events", &events);
    for (size_t e = 0; e < req->count; e++) {
        char key [16];
        const char *k = NULL;
        bson_uint32_to_string ((uint32_t) e, &k, key, sizeof key);
        const store_new_event_t *ev = &req->events [e];
        bson_t sub;
        BSON_APPEND_DOCUMENT_BEGIN (&events, k, &sub);
        BSON_APPEND_INT64 (&sub, "position", first_position + (int64_t) e);
        BSON_APPEND_INT64 (&sub, "version", first_version + (int64_t) e);
        BSON_APPEND_UTF8 (&sub, "id", ev->id);
        BSON_APPEND_UTF8 (&sub, "type", ev->type);
        /* Binary, not a string: the payload comes back byte for byte. */
        BSON_APPEND_BINARY (&sub, "data", BSON_SUBTYPE_BINARY,
                            (const uint8_t *) (ev->data ? ev->data : ""), (uint32_t) ev->data_size);
        bson_append_document_end (&events, &sub);
    }
    bson_append_array_end (doc, &events);
    return doc;
}

/* The stored command of a command id: DUPLICATE, or APPENDED when `batch` says
 * this very call wrote it in an attempt whose answer was lost. From the log itself
 * when from_log (what an insert may have written without the store knowing), else
 * from the command index (small documents: cheaper to look up) and the entries
 * not yet written to it. Returns 1 decided, 0 no such command, -1 failed. */
static int
s_decide_stored (s_mongo_t *self, const char *command_id, int64_t batch, store_outcome_t *outcome,
                 bool from_log)
{
    if (!from_log)
        for (size_t i = 0; i < self->n_pending; i++) {
            const s_index_entry_t *entry = &self->pending [i];
            if (strcmp (entry->command_id, command_id) != 0)
                continue;
            if (entry->batch == batch) {
                outcome->kind = STORE_OUTCOME_APPENDED;
                outcome->first_position = entry->first_position;
                outcome->last_position = entry->last_position;
                outcome->version = entry->last_version;
                return 1;
            }
            outcome->result = malloc (entry->result_size + 1);
            if (!outcome->result)
                return -1;
            memcpy (outcome->result, entry->result, entry->result_size + 1);
            outcome->result_size = entry->result_size;
            snprintf (outcome->fingerprint, sizeof outcome->fingerprint, "%s", entry->fingerprint);
            outcome->kind = STORE_OUTCOME_DUPLICATE;
            return 1;
        }
    bson_t *doc = NULL;
    bson_t projection = BSON_INITIALIZER;
    BSON_APPEND_INT32 (&projection, "events", 0);
    int found = s_find_by_id (self, from_log ? self->events : self->commands, command_id, &projection, &doc);
    bson_destroy (&projection);
    if (found <= 0)
        return found;
    int status = 1;
    int64_t doc_batch = -1, first = 0, last = 0, version = 0;
    s_get_int (doc, "batch", &doc_batch);
    if (doc_batch == batch
    &&  s_get_int (doc, "first_position", &first) == 0 && s_get_int (doc, "last_position", &last) == 0
    &&  s_get_int (doc, "last_version", &version) == 0) {
        outcome->kind = STORE_OUTCOME_APPENDED;
        outcome->first_position = first;
        outcome->last_position = last;
        outcome->version = version;
    }
    else {
        bson_iter_t iter;
        const char *result = "";
        size_t size = 0;
        if (bson_iter_init_find (&iter, doc, "result"))
            s_iter_bytes (&iter, &result, &size);
        outcome->result = malloc (size + 1);
        if (!outcome->result)
            status = -1;
        else {
            if (size)
                memcpy (outcome->result, result, size);
            outcome->result [size] = 0;
            outcome->result_size = size;
            s_get_str (doc, "fingerprint", outcome->fingerprint, sizeof outcome->fingerprint);
            outcome->kind = STORE_OUTCOME_DUPLICATE;
        }
    }
    bson_destroy (doc);
    return status;
}

/* The current version of a stream: remembered, or walked from the index. 0 ok, -1 failed. */
static int
s_stream_version (s_mongo_t *self, const char *stream, int64_t *version)
{
    int64_t *known = self->versions ? (int64_t *) zhashx_lookup (self->versions, stream) : NULL;
    if (known) {
        *version = *known;
        return 0;
    }
    if (s_walk_stream (self, stream, 1, NULL, NULL, version))
        return -1;
    s_remember_version (self, stream, *version);
    return 0;
}

/* What one attempt of a batch ended with. */
enum { S_ATTEMPT_DONE = 0, S_ATTEMPT_RETRY = 1 };

typedef struct {
    s_mongo_t *self;
    const store_batch_item_t *items;
    size_t count;
    int64_t now_us;
    int64_t batch;              /* token of this call: head + 1 when it started */
    store_outcome_t *outcomes;
    s_item_t *state;
    zhashx_t *streams;          /* stream -> s_stream_t (owned) */
    zhashx_t *commands;         /* command id -> index + 1 of the first item with it */
    bool uncertain;             /* an earlier attempt's write has an unknown outcome */
} s_call_t;

static s_stream_t *
s_call_stream (s_call_t *call, const char *name)
{
    s_stream_t *stream = (s_stream_t *) zhashx_lookup (call->streams, name);
    if (stream)
        return stream;
    int64_t version = 0;
    if (s_stream_version (call->self, name, &version))
        return NULL;
    stream = calloc (1, sizeof (s_stream_t));
    if (!stream)
        return NULL;
    stream->version = stream->planned = version;
    if (zhashx_insert (call->streams, name, stream)) {
        free (stream);
        return NULL;
    }
    return stream;
}

/* Drops the oldest half of the cache. */
static void
s_cache_trim (s_mongo_t *self)
{
    store_events_t *cache = &self->cache;
    size_t drop = cache->count / 2 ? cache->count / 2 : cache->count;
    for (size_t i = 0; i < drop; i++) {
        cache->bytes -= cache->events [i].data_size + STORE_BACKEND_EVENT_OVERHEAD;
        free ((void *) cache->events [i].data);
    }
    memmove (cache->events, cache->events + drop, (cache->count - drop) * sizeof (event_t));
    cache->count -= drop;
}

/* Adds a confirmed event to the cache; one that does not follow the cached tail
 * starts it afresh (the log never changes, so nothing cached goes stale). */
static void
s_cache_push (s_mongo_t *self, const event_t *ev)
{
    store_events_t *cache = &self->cache;
    if (cache->count && cache->events [cache->count - 1].position + 1 != ev->position)
        store_events_reset (cache);
    if (store_events_push (cache, ev)) {
        store_events_reset (cache);
        return;
    }
    if (cache->count > S_CACHE_MAX_EVENTS || cache->bytes > S_CACHE_MAX_BYTES)
        s_cache_trim (self);
}

/* Caches the events of a confirmed append (data from the request). */
static void
s_cache_append (s_call_t *call, size_t i)
{
    const store_append_t *req = call->items [i].req;
    const store_outcome_t *outcome = &call->outcomes [i];
    int64_t first_version = outcome->version - (int64_t) req->count + 1;
    for (size_t e = 0; e < req->count; e++) {
        event_t ev;
        memset (&ev, 0, sizeof ev);
        ev.position = outcome->first_position + (int64_t) e;
        ev.version = first_version + (int64_t) e;
        ev.timestamp_us = call->now_us;
        snprintf (ev.stream, sizeof ev.stream, "%s", req->stream);
        snprintf (ev.id, sizeof ev.id, "%s", req->events [e].id);
        snprintf (ev.type, sizeof ev.type, "%s", req->events [e].type);
        snprintf (ev.command_id, sizeof ev.command_id, "%s", req->command_id);
        snprintf (ev.correlation_id, sizeof ev.correlation_id, "%s",
                  call->items [i].correlation_id ? call->items [i].correlation_id : "");
        snprintf (ev.traceparent, sizeof ev.traceparent, "%s",
                  call->items [i].traceparent ? call->items [i].traceparent : "");
        ev.data = req->events [e].data ? req->events [e].data : "";
        ev.data_size = req->events [e].data_size;
        s_cache_push (call->self, &ev);
    }
}

/* Confirms planned item i as written at its planned place. */
static int
s_confirm (s_call_t *call, size_t i)
{
    s_item_t *item = &call->state [i];
    const store_append_t *req = call->items [i].req;
    store_outcome_t *outcome = &call->outcomes [i];
    int64_t n = (int64_t) req->count;
    outcome->kind = STORE_OUTCOME_APPENDED;
    outcome->first_position = item->first_position;
    outcome->last_position = item->first_position + n - 1;
    outcome->version = item->first_version + n - 1;
    item->state = S_ITEM_DONE;
    s_stream_t *stream = (s_stream_t *) item->stream;
    if (stream && outcome->version > stream->version)
        stream->version = outcome->version;
    if (outcome->last_position > call->self->head)
        call->self->head = outcome->last_position;
    s_remember_version (call->self, req->stream, outcome->version);
    s_cache_append (call, i);
    return s_pending_add (call->self, req->stream, req->command_id, req->fingerprint, req->result, req->result_size,
                          item->first_version, outcome->version, outcome->first_position, outcome->last_position,
                          call->batch);
}

/* The first write error of a bulk reply: its index and code. 0 found, -1 none. */
static int
s_first_write_error (const bson_t *reply, uint32_t *index, int32_t *code, char *message, size_t size)
{
    bson_iter_t iter, errors, entry;
    if (!bson_iter_init_find (&iter, reply, "writeErrors") || !BSON_ITER_HOLDS_ARRAY (&iter)
    ||  !bson_iter_recurse (&iter, &errors) || !bson_iter_next (&errors) || !BSON_ITER_HOLDS_DOCUMENT (&errors)
    ||  !bson_iter_recurse (&errors, &entry))
        return -1;
    *index = UINT32_MAX;
    *code = 0;
    message [0] = 0;
    while (bson_iter_next (&entry)) {
        int64_t value = 0;
        if (strcmp (bson_iter_key (&entry), "index") == 0 && s_iter_int (&entry, &value) == 0)
            *index = (uint32_t) value;
        else
        if (strcmp (bson_iter_key (&entry), "code") == 0 && s_iter_int (&entry, &value) == 0)
            *code = (int32_t) value;
        else
        if (strcmp (bson_iter_key (&entry), "errmsg") == 0)
            s_iter_copy (&entry, message, size);
    }
    return *index == UINT32_MAX ? -1 : 0;
}

static bool
s_has_write_concern_errors (const bson_t *reply)
{
    bson_iter_t iter;
    return bson_iter_init_find (&iter, reply, "writeConcernErrors") && BSON_ITER_HOLDS_ARRAY (&iter)
        && bson_iter_recurse (&iter, &iter) && bson_iter_next (&iter);
}

/* Plans item i of a round: decides it at once (duplicate, conflict, refusal), adds
 * its document to bulk, or leaves it for the next round. Returns 1 planned, 0 not
 * planned, -1 the server failed (retry the attempt). */
static int
s_plan_item (s_call_t *call, size_t i, int64_t *next_position, mongoc_bulk_operation_t *bulk)
{
    s_mongo_t *self = call->self;
    const store_append_t *req = call->items [i].req;
    store_outcome_t *outcome = &call->outcomes [i];
    s_item_t *item = &call->state [i];

    /* The same command twice in one batch (a client's resend): the later one is a
     * duplicate of the earlier once that is decided. */
    size_t first = (size_t) (uintptr_t) zhashx_lookup (call->commands, req->command_id);
    if (first && first - 1 != i) {
        const store_outcome_t *earlier = &call->outcomes [first - 1];
        if (call->state [first - 1].state != S_ITEM_DONE)
            return 0;
        if (earlier->kind == STORE_OUTCOME_APPENDED || earlier->kind == STORE_OUTCOME_DUPLICATE) {
            const store_append_t *ereq = call->items [first - 1].req;
            const char *result = earlier->kind == STORE_OUTCOME_APPENDED ? ereq->result : earlier->result;
            size_t size = earlier->kind == STORE_OUTCOME_APPENDED ? ereq->result_size : earlier->result_size;
            const char *fingerprint = earlier->kind == STORE_OUTCOME_APPENDED ? ereq->fingerprint : earlier->fingerprint;
            outcome->result = malloc (size + 1);
            if (!outcome->result) {
                s_set_error (outcome, "unavailable", "store out of memory");
                item->state = S_ITEM_DONE;
                return 0;
            }
            if (size && result)
                memcpy (outcome->result, result, size);
            outcome->result [size] = 0;
            outcome->result_size = size;
            snprintf (outcome->fingerprint, sizeof outcome->fingerprint, "%s", fingerprint ? fingerprint : "");
            outcome->kind = STORE_OUTCOME_DUPLICATE;
            item->state = S_ITEM_DONE;
            return 0;
        }
        /* The earlier one wrote nothing: this one is decided on its own. */
        zhashx_update (call->commands, req->command_id, (void *) (uintptr_t) (i + 1));
    }
    else
    if (!first)
        zhashx_insert (call->commands, req->command_id, (void *) (uintptr_t) (i + 1));

    s_stream_t *stream = s_call_stream (call, req->stream);
    if (!stream)
        return -1;
    int64_t version = stream->planned;
    bool conflict = (req->expected_version == 0 && version != 0)
                 || (req->expected_version > 0 && version != req->expected_version);
    if (conflict && stream->busy)
        return 0;               /* decided once what is planned on the stream is known */
    if (conflict) {
        /* A retried command finds its stream moved on: it is a duplicate, not a conflict. */
        int stored = s_decide_stored (self, req->command_id, call->batch, outcome, false);
        if (stored < 0)
            return -1;
        if (stored == 0) {
            outcome->kind = STORE_OUTCOME_CONFLICT;
            outcome->current_version = version;
        }
        item->state = S_ITEM_DONE;
        return 0;
    }
    bson_t *doc = s_build_doc (&call->items [i], *next_position, version + 1, call->batch, call->now_us);
    if (!doc) {
        s_set_error (outcome, "unavailable", "store out of memory");
        item->state = S_ITEM_DONE;
        return 0;
    }
    if (doc->len > S_DOC_MAX) {
        bson_destroy (doc);
        s_set_error (outcome, "invalid", "append over 16 MiB: too large for one MongoDB document");
        item->state = S_ITEM_DONE;
        return 0;
    }
    bson_error_t error;
    bool ok = mongoc_bulk_operation_insert_with_opts (bulk, doc, NULL, &error);
    bson_destroy (doc);
    if (!ok) {
        s_set_error (outcome, "invalid", error.message);
        item->state = S_ITEM_DONE;
        return 0;
    }
    item->state = S_ITEM_PLANNED;
    item->first_position = *next_position;
    item->first_version = version + 1;
    item->stream = stream;
    stream->planned = version + (int64_t) req->count;
    stream->busy = true;
    *next_position += (int64_t) req->count;
    return 1;
}

/* After an ordered insert that the server refused at index failed_at: which of
 * the round's documents landed is looked up, not taken from the error's index (the
 * FerretDB test server was seen to report an index past documents it had not
 * written). Landed ones are confirmed at their stored positions, the refused one is
 * decided, the rest wait for the next round. Returns 0, or -1 when the server
 * failed (retry the attempt). */
static int
s_settle_refused (s_call_t *call, const size_t *planned, size_t n_planned, uint32_t failed_at,
                  int32_t code, const char *message)
{
    s_mongo_t *self = call->self;
    int rc = 0;
    for (size_t k = 0; k < n_planned; k++) {
        size_t i = planned [k];
        const store_append_t *req = call->items [i].req;
        store_outcome_t found;
        memset (&found, 0, sizeof found);
        int stored = rc ? 0 : s_decide_stored (self, req->command_id, call->batch, &found, true);
        if (stored < 0)
            rc = -1;
        call->state [i].state = S_ITEM_PENDING;
        if (stored <= 0)
            continue;
        call->outcomes [i] = found;
        call->state [i].state = S_ITEM_DONE;
        if (found.kind == STORE_OUTCOME_APPENDED) {
            if (found.last_position > self->head)
                self->head = found.last_position;
            s_stream_t *stream = (s_stream_t *) call->state [i].stream;
            if (stream && found.version > stream->version)
                stream->version = found.version;
            s_forget_versions (self);      /* written in an earlier attempt: versions unsure */
            s_cache_append (call, i);
            if (s_pending_add (self, req->stream, req->command_id, req->fingerprint, req->result, req->result_size,
                               found.version - (int64_t) req->count + 1, found.version, found.first_position,
                               found.last_position, call->batch))
                self->ready = false;
        }
    }
    if (rc)
        return -1;
    size_t i = planned [failed_at];
    if (call->state [i].state == S_ITEM_DONE)
        return 0;
    if (code != S_DUPLICATE_KEY) {
        s_set_error (&call->outcomes [i], "invalid", message [0] ? message : "the database refused the append");
        call->state [i].state = S_ITEM_DONE;
        return 0;
    }
    /* Not the command id: a position or stream version taken behind this store's back
     * (a predecessor's last insert still running: re-read the log and go on from its
     * head), or else an event id already used. */
    if (call->uncertain)
        return -1;
    int64_t head = self->head;
    self->ready = false;
    if (s_ensure_ready (self))
        return -1;
    if (self->head != head) {
        log_warn (NULL, NULL, "mongodb: the log head moved under the store (%" PRId64 " -> %" PRId64
                  "): another writer's insert? going on from the new head", head, self->head);
        /* Stream versions may have moved with it: read them again. Nothing planned
         * is left to point at the cache. */
        zhashx_purge (call->streams);
        return 0;
    }
    s_set_error (&call->outcomes [i], "invalid", "an event id of this append is already stored");
    call->state [i].state = S_ITEM_DONE;
    return 0;
}

/* One attempt: rounds of plan + ordered bulk insert until every item is decided.
 * Returns S_ATTEMPT_DONE, or S_ATTEMPT_RETRY when the server failed (what was
 * confirmed stays confirmed; the rest is re-planned after a resync). */
static int
s_attempt (s_call_t *call)
{
    s_mongo_t *self = call->self;
    size_t *planned = calloc (call->count, sizeof (size_t));
    if (!planned)
        return S_ATTEMPT_RETRY;
    int status = S_ATTEMPT_DONE;
    while (true) {
        bson_t opts = BSON_INITIALIZER;
        BSON_APPEND_BOOL (&opts, "ordered", true);
        mongoc_write_concern_append (self->write_concern, &opts);
        mongoc_bulk_operation_t *bulk = mongoc_collection_create_bulk_operation_with_opts (self->events, &opts);
        bson_destroy (&opts);
        size_t n_planned = 0;
        bool waiting = false;
        int64_t next_position = self->head + 1;
        for (size_t i = 0; i < call->count && status == S_ATTEMPT_DONE && n_planned < S_ROUND_MAX; i++) {
            if (call->state [i].state != S_ITEM_PENDING)
                continue;
            int rc = s_plan_item (call, i, &next_position, bulk);
            if (rc < 0)
                status = S_ATTEMPT_RETRY;
            else
            if (rc > 0)
                planned [n_planned++] = i;
            else
            if (call->state [i].state == S_ITEM_PENDING)
                waiting = true;
        }
        if (status != S_ATTEMPT_DONE || n_planned == 0) {
            mongoc_bulk_operation_destroy (bulk);
            for (size_t k = 0; k < n_planned; k++)
                call->state [planned [k]].state = S_ITEM_PENDING;
            if (status == S_ATTEMPT_DONE && waiting)
                log_error (NULL, NULL, "mongodb: append batch made no progress");   /* not reachable */
            break;
        }
        bson_t reply;
        bson_error_t error;
        bool ok = mongoc_bulk_operation_execute (bulk, &reply, &error) != 0;
        mongoc_bulk_operation_destroy (bulk);
        uint32_t failed_at = UINT32_MAX;
        int32_t code = 0;
        char message [200];
        bool write_error = !ok && s_first_write_error (&reply, &failed_at, &code, message, sizeof message) == 0
                        && failed_at < n_planned;
        if (s_has_write_concern_errors (&reply) || (!ok && !write_error)) {
            /* Written or not, nobody knows yet: re-read the log, then decide. */
            log_debug (NULL, NULL, "mongodb: append batch outcome unknown: %s",
                       ok ? "write concern error" : error.message);
            call->uncertain = true;
            bson_destroy (&reply);
            for (size_t k = 0; k < n_planned; k++)
                call->state [planned [k]].state = S_ITEM_PENDING;
            status = S_ATTEMPT_RETRY;
            break;
        }
        bson_destroy (&reply);
        if (!write_error) {
            for (size_t k = 0; k < n_planned; k++)
                if (s_confirm (call, planned [k]))
                    self->ready = false;    /* the stream index entry is lost: rebuild it from the log */
        }
        else
        if (s_settle_refused (call, planned, n_planned, failed_at, code, message))
            status = S_ATTEMPT_RETRY;
        /* Next round: streams are known up to what is confirmed. */
        for (void *s = zhashx_first (call->streams); s; s = zhashx_next (call->streams)) {
            s_stream_t *stream = (s_stream_t *) s;
            stream->planned = stream->version;
            stream->busy = false;
        }
        if (status != S_ATTEMPT_DONE || !self->ready)
            break;              /* resync first; the call loop comes back */
    }
    free (planned);
    if (status == S_ATTEMPT_DONE && !self->ready)
        status = S_ATTEMPT_RETRY;
    return status;
}

/* Sleeps ms in small steps; false when the process is being stopped. */
static bool
s_backoff (int64_t ms)
{
    int64_t until = s_now_ms () + ms;
    while (!zsys_interrupted) {
        health_beat ();         /* waiting for MongoDB is not a stuck loop */
        int64_t left = until - s_now_ms ();
        if (left <= 0)
            return true;
        zclock_sleep ((int) (left < 50 ? left : 50));
    }
    return false;
}

static int
s_append_batch (void *impl, const store_batch_item_t *items, size_t count, int64_t now_us,
                store_outcome_t *outcomes)
{
    s_mongo_t *self = (s_mongo_t *) impl;
    s_call_t call;
    memset (&call, 0, sizeof call);
    call.self = self;
    call.items = items;
    call.count = count;
    call.now_us = now_us;
    call.outcomes = outcomes;
    call.state = calloc (count, sizeof (s_item_t));
    call.commands = zhashx_new ();
    call.streams = zhashx_new ();
    if (!call.state || !call.commands || !call.streams) {
        free (call.state);
        zhashx_destroy (&call.commands);
        zhashx_destroy (&call.streams);
        for (size_t i = 0; i < count; i++)
            if (items [i].req)
                s_set_error (&outcomes [i], "unavailable", "store out of memory");
        return -1;
    }
    zhashx_set_destructor (call.streams, s_free_item);
    for (size_t i = 0; i < count; i++)
        if (!items [i].req)
            call.state [i].state = S_ITEM_DONE;     /* refused by the shared checks */

    int64_t started = s_now_ms (), backoff = S_BACKOFF_FIRST_MS;
    bool gave_up = false;
    int attempts = 0;
    while (true) {
        int status = S_ATTEMPT_RETRY;
        if (s_ensure_ready (self) == 0) {
            /* Stream versions are read again each attempt: a resync may change them. */
            zhashx_purge (call.streams);
            if (attempts == 0)
                call.batch = self->head + 1;
            attempts++;
            status = s_attempt (&call);
            if (status == S_ATTEMPT_DONE && s_flush_index (self))
                status = S_ATTEMPT_RETRY;
            if (status == S_ATTEMPT_DONE)
                break;
        }
        /* Acknowledge nothing more; wait and try again. */
        self->ready = false;
        int64_t now = s_now_ms ();
        if (now - self->warned_ms >= S_WARN_EVERY_MS) {
            log_warn (NULL, NULL, "mongodb: event log unavailable for %" PRId64 " ms; %zu appends waiting",
                      now - started, count);
            self->warned_ms = now;
        }
        if (self->retry_max_ms && now - started >= self->retry_max_ms) {
            gave_up = true;
            break;
        }
        if (!s_backoff (backoff)) {
            gave_up = true;
            break;
        }
        backoff = backoff * 2 > S_BACKOFF_MAX_MS ? S_BACKOFF_MAX_MS : backoff * 2;
    }
    if (attempts > 1 || gave_up)
        log_info (NULL, NULL, "mongodb: append batch of %zu %s after %" PRId64 " ms", count,
                  gave_up ? "given up" : "written", s_now_ms () - started);
    bool any_appended = false;
    for (size_t i = 0; i < count; i++) {
        if (call.state [i].state != S_ITEM_DONE)
            s_set_error (&outcomes [i], "unavailable", "event log unavailable (MongoDB); nothing written");
        if (items [i].req && outcomes [i].kind == STORE_OUTCOME_APPENDED)
            any_appended = true;
    }
    free (call.state);
    zhashx_destroy (&call.commands);
    zhashx_destroy (&call.streams);
    /* Appends already confirmed stay acknowledged even when the rest is given up. */
    return gave_up && !any_appended ? -1 : 0;
}

/* ------------------------------------------------------------------ reads */

/* Pushes the events of one log document into out: those with key ("version" or
 * "position") >= from, until max or the body budget. Sets *full when it stopped
 * early. 0 ok, -1 malformed document or no memory. */
static int
s_unwind (const bson_t *doc, const char *key, int64_t from, size_t max, store_events_t *out, bool *full)
{
    event_t base;
    memset (&base, 0, sizeof base);
    s_get_str (doc, "stream", base.stream, sizeof base.stream);
    s_get_str (doc, "_id", base.command_id, sizeof base.command_id);
    s_get_str (doc, "corr", base.correlation_id, sizeof base.correlation_id);
    s_get_str (doc, "tp", base.traceparent, sizeof base.traceparent);       /* absent: "" */
    s_get_int (doc, "ts", &base.timestamp_us);
    bson_iter_t iter, events;
    if (!bson_iter_init_find (&iter, doc, "events") || !BSON_ITER_HOLDS_ARRAY (&iter)
    ||  !bson_iter_recurse (&iter, &events))
        return -1;
    while (bson_iter_next (&events)) {
        bson_iter_t field;
        if (!BSON_ITER_HOLDS_DOCUMENT (&events) || !bson_iter_recurse (&events, &field))
            return -1;
        event_t ev = base;
        bool has_position = false, has_version = false, has_data = false;
        while (bson_iter_next (&field)) {
            const char *name = bson_iter_key (&field);
            if (strcmp (name, "position") == 0)
                has_position = s_iter_int (&field, &ev.position) == 0;
            else
            if (strcmp (name, "version") == 0)
                has_version = s_iter_int (&field, &ev.version) == 0;
            else
            if (strcmp (name, "id") == 0)
                s_iter_copy (&field, ev.id, sizeof ev.id);
            else
            if (strcmp (name, "type") == 0)
                s_iter_copy (&field, ev.type, sizeof ev.type);
            else
            if (strcmp (name, "data") == 0)
                has_data = s_iter_bytes (&field, &ev.data, &ev.data_size) == 0;
        }
        if (!has_position || !has_version || !has_data)
            return -1;
        if ((key [0] == 'v' ? ev.version : ev.position) < from)
            continue;
        if (out->count >= max
        ||  (out->count > 0 && out->bytes + ev.data_size + STORE_BACKEND_EVENT_OVERHEAD > STORE_BACKEND_BODY_BUDGET)) {
            *full = true;
            return 0;
        }
        if (store_events_push (out, &ev))
            return -1;
    }
    return 0;
}

/* Before a read: the log is usable and the stream index complete. */
static int
s_read_ready (s_mongo_t *self)
{
    if (s_ensure_ready (self))
        return -1;
    if (s_flush_index (self)) {
        self->ready = false;
        return -1;
    }
    return 0;
}

/* Collects a stream's appends, in version order. */
typedef struct {
    char command_id [EVENT_ID_MAX];
    int64_t first_version, last_version, first_position;
} s_append_ref_t;

typedef struct {
    s_append_ref_t *refs;
    size_t count, capacity;
    int64_t from_version;
} s_collect_t;

static int
s_collect (void *arg, const char *command_id, int64_t first_version, int64_t last_version, int64_t first_position)
{
    s_collect_t *c = (s_collect_t *) arg;
    if (last_version < c->from_version)
        return 0;               /* wholly before the range: skip */
    if (c->count == c->capacity) {
        size_t capacity = c->capacity ? c->capacity * 2 : 16;
        s_append_ref_t *refs = realloc (c->refs, capacity * sizeof (s_append_ref_t));
        if (!refs)
            return -1;
        c->refs = refs;
        c->capacity = capacity;
    }
    s_append_ref_t *ref = &c->refs [c->count++];
    snprintf (ref->command_id, sizeof ref->command_id, "%s", command_id);
    ref->first_version = first_version;
    ref->last_version = last_version;
    ref->first_position = first_position;
    /* Enough appends to fill the largest answer: stop walking. */
    return c->count >= STORE_READ_MAX ? 1 : 0;
}

static bool s_cache_holds (s_mongo_t *self, int64_t position);

/* Copies an append's events from the cache when it holds all of them (versions
 * from from_version on). Returns 1 copied, 0 not cached, -1 no memory. */
static int
s_stream_from_cache (s_mongo_t *self, const s_append_ref_t *ref, int64_t from_version, size_t max,
                     store_events_t *out, bool *full)
{
    int64_t last_position = ref->first_position + (ref->last_version - ref->first_version);
    if (ref->first_position < 1 || !s_cache_holds (self, ref->first_position) || !s_cache_holds (self, last_position))
        return 0;
    const store_events_t *cache = &self->cache;
    size_t start = (size_t) (ref->first_position - cache->events [0].position);
    for (size_t i = start; i <= start + (size_t) (last_position - ref->first_position); i++) {
        const event_t *ev = &cache->events [i];
        if (ev->version < from_version)
            continue;
        if (out->count >= max
        ||  (out->count > 0 && out->bytes + ev->data_size + STORE_BACKEND_EVENT_OVERHEAD > STORE_BACKEND_BODY_BUDGET)) {
            *full = true;
            return 1;
        }
        if (store_events_push (out, ev))
            return -1;
    }
    return 1;
}

static int
s_read_stream (void *impl, const char *stream, int64_t from_version, size_t max, store_events_t *out)
{
    s_mongo_t *self = (s_mongo_t *) impl;
    if (s_read_ready (self))
        return -1;
    out->head = self->head;
    s_collect_t collect = { .from_version = from_version };
    int status = s_walk_stream (self, stream, 1, s_collect, &collect, NULL);
    bool full = false;
    for (size_t i = 0; status == 0 && i < collect.count && !full; i++) {
        const s_append_ref_t *ref = &collect.refs [i];
        int cached = s_stream_from_cache (self, ref, from_version, max, out, &full);
        if (cached < 0)
            status = -1;
        if (cached != 0)
            continue;
        bson_t *doc = NULL;
        int got = s_find_by_id (self, self->events, ref->command_id, NULL, &doc);
        if (got < 0)
            status = -1;
        else
        if (got == 0) {
            log_error (NULL, NULL, "mongodb: stream index names command '%.64s', not in the log", ref->command_id);
            status = -1;
        }
        else {
            if (s_unwind (doc, "version", from_version, max, out, &full)) {
                log_error (NULL, NULL, "mongodb: unreadable log document '%.64s'", ref->command_id);
                status = -1;
            }
            bson_destroy (doc);
        }
    }
    free (collect.refs);
    if (status)
        store_events_reset (out);
    return status;
}

/* Answers a read from the cache: the events from from_position on, within max and
 * the body budget. The caller checked that the cache holds from_position. */
static void
s_read_cached (s_mongo_t *self, int64_t from_position, size_t max, store_events_t *out)
{
    const store_events_t *cache = &self->cache;
    size_t start = (size_t) (from_position - cache->events [0].position);
    for (size_t i = start; i < cache->count && out->count < max; i++) {
        const event_t *ev = &cache->events [i];
        if (out->count > 0 && out->bytes + ev->data_size + STORE_BACKEND_EVENT_OVERHEAD > STORE_BACKEND_BODY_BUDGET)
            break;
        if (store_events_push (out, ev))
            break;              /* no memory: a shorter answer, the reader asks again */
    }
}

static bool
s_cache_holds (s_mongo_t *self, int64_t position)
{
    const store_events_t *cache = &self->cache;
    return cache->count > 0 && position >= cache->events [0].position
        && position <= cache->events [cache->count - 1].position;
}

/* Loads the log from from_position on (up to the cache's size) into the cache:
 * one query for many pages of readers. 0 ok, -1 failed. */
static int
s_cache_load (s_mongo_t *self, int64_t from_position)
{
    bson_t filter = BSON_INITIALIZER, gte, opts = BSON_INITIALIZER, sort;
    BSON_APPEND_DOCUMENT_BEGIN (&filter, "last_position", &gte);
    BSON_APPEND_INT64 (&gte, "$gte", from_position);
    bson_append_document_end (&filter, &gte);
    BSON_APPEND_DOCUMENT_BEGIN (&opts, "sort", &sort);
    BSON_APPEND_INT32 (&sort, "last_position", 1);
    bson_append_document_end (&opts, &sort);
    /* Each document holds at least one event. */
    BSON_APPEND_INT64 (&opts, "limit", S_CACHE_MAX_EVENTS);
    mongoc_cursor_t *cursor = mongoc_collection_find_with_opts (self->events, &filter, &opts, NULL);
    store_events_t window;
    store_events_init (&window);
    const bson_t *doc = NULL;
    bool full = false;
    int status = 0;
    int64_t expect = from_position;
    while (!full && status == 0 && mongoc_cursor_next (cursor, &doc)) {
        int64_t first = 0;
        if (s_get_int (doc, "first_position", &first) || first > expect) {
            /* A hole in the positions would make a reader skip events: refuse to answer. */
            log_error (NULL, NULL, "mongodb: no event log document holds position %" PRId64, expect);
            status = -1;
            break;
        }
        if (s_unwind (doc, "position", from_position, S_CACHE_MAX_EVENTS, &window, &full)) {
            log_error (NULL, NULL, "mongodb: unreadable event log document");
            status = -1;
        }
        s_get_int (doc, "last_position", &expect);
        expect++;
        if (window.bytes > S_CACHE_MAX_BYTES)
            full = true;
    }
    bson_error_t error;
    if (status == 0 && mongoc_cursor_error (cursor, &error)) {
        log_debug (NULL, NULL, "mongodb: read_all failed: %s", error.message);
        self->ready = false;
        status = -1;
    }
    mongoc_cursor_destroy (cursor);
    bson_destroy (&filter);
    bson_destroy (&opts);
    if (status == 0 && window.count > 0 && window.events [0].position == from_position) {
        store_events_reset (&self->cache);
        self->cache = window;
        /* Appends confirmed since go on from its end, if it reached the head. */
    }
    else {
        if (status == 0 && window.count > 0) {
            log_error (NULL, NULL, "mongodb: the log starts at %" PRId64 ", not %" PRId64,
                       window.events [0].position, from_position);
            status = -1;
        }
        store_events_reset (&window);
    }
    return status;
}

static int
s_read_all (void *impl, int64_t from_position, size_t max, store_events_t *out)
{
    s_mongo_t *self = (s_mongo_t *) impl;
    if (s_read_ready (self))
        return -1;
    out->head = self->head;
    /* Readers at the head ask often; the answer is known without a query. */
    if (from_position > self->head || max == 0)
        return 0;
    if (!s_cache_holds (self, from_position)) {
        if (s_cache_load (self, from_position))
            return -1;
        if (!s_cache_holds (self, from_position))
            return 0;           /* nothing there (yet): an empty answer */
    }
    s_read_cached (self, from_position, max, out);
    return 0;
}

const store_backend_ops_t store_mongo_ops = {
    .name = "mongodb",
    .open = s_open,
    .close = s_close,
    .append_batch = s_append_batch,
    .read_stream = s_read_stream,
    .read_all = s_read_all,
    .head = s_head,
};
