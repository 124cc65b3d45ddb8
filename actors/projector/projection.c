/* projection — events to read-model rows. Every row keeps its ready-to-send JSON;
 * every time in it comes from the events, never from this process's clock, and each
 * touched case's JSON is rebuilt once per batch from its child rows, so the result
 * depends only on the log, not on how it was cut into batches. */
#include "projection.h"

#include <czmq.h>
#include <jansson.h>
#include <sqlite3.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "readmodel_schema.h"

#define S_CHECKPOINT_NAME "projector"

enum {
    S_CHECKPOINT_GET, S_CHECKPOINT_PUT,
    S_CASE_GET, S_CASE_PUT,
    S_COMPANY_PUT, S_PERSON_PUT, S_BO_PUT,
    S_DOC_GET, S_DOC_PUT,
    S_EVENT_PUT, S_ERROR_PUT,
    S_CASE_COUNTS, S_CASE_PERSONS, S_CASE_COMPANY, S_CASE_BOS, S_CASE_DOCS,
    S_STMT_COUNT
};

static const char *s_sql [S_STMT_COUNT] = {
    [S_CHECKPOINT_GET] = "SELECT position FROM checkpoint WHERE name = '" S_CHECKPOINT_NAME "'",
    [S_CHECKPOINT_PUT] = "INSERT INTO checkpoint (name, position) VALUES ('" S_CHECKPOINT_NAME "', ?1) "
                         "ON CONFLICT (name) DO UPDATE SET position = excluded.position",
    [S_CASE_GET]       = "SELECT seq, updated_position, summary_json FROM cases WHERE id = ?1",
    [S_CASE_PUT]       = "INSERT INTO cases (id, seq, client_id, traitement_type, status, updated_position, "
                         "summary_json, full_json) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) "
                         "ON CONFLICT (id) DO UPDATE SET client_id = excluded.client_id, "
                         "traitement_type = excluded.traitement_type, status = excluded.status, "
                         "updated_position = excluded.updated_position, summary_json = excluded.summary_json, "
                         "full_json = excluded.full_json WHERE excluded.updated_position >= cases.updated_position",
    [S_COMPANY_PUT]    = "INSERT INTO companies (id, case_id, seq, updated_position, json) VALUES (?1, ?2, ?3, ?3, ?4) "
                         "ON CONFLICT (id) DO UPDATE SET case_id = excluded.case_id, "
                         "updated_position = excluded.updated_position, json = excluded.json "
                         "WHERE excluded.updated_position > companies.updated_position",
    [S_PERSON_PUT]     = "INSERT INTO persons (id, case_id, company_id, seq, updated_position, json) "
                         "VALUES (?1, ?2, ?3, ?4, ?4, ?5) "
                         "ON CONFLICT (id) DO UPDATE SET case_id = excluded.case_id, company_id = excluded.company_id, "
                         "updated_position = excluded.updated_position, json = excluded.json "
                         "WHERE excluded.updated_position > persons.updated_position",
    [S_BO_PUT]         = "INSERT INTO beneficial_owners (id, company_id, case_id, seq, updated_position, json) "
                         "VALUES (?1, ?2, ?3, ?4, ?4, ?5) "
                         "ON CONFLICT (id) DO UPDATE SET company_id = excluded.company_id, case_id = excluded.case_id, "
                         "updated_position = excluded.updated_position, json = excluded.json "
                         "WHERE excluded.updated_position > beneficial_owners.updated_position",
    [S_DOC_GET]        = "SELECT seq, updated_position, json, case_id FROM documents WHERE id = ?1",
    [S_DOC_PUT]        = "INSERT INTO documents (id, case_id, seq, status, updated_position, json) "
                         "VALUES (?1, ?2, ?3, ?4, ?5, ?6) "
                         "ON CONFLICT (id) DO UPDATE SET status = excluded.status, "
                         "updated_position = excluded.updated_position, json = excluded.json "
                         "WHERE excluded.updated_position > documents.updated_position",
    [S_EVENT_PUT]      = "INSERT INTO case_events (case_id, version, position, json) VALUES (?1, ?2, ?3, ?4) "
                         "ON CONFLICT (case_id, version) DO NOTHING",
    [S_ERROR_PUT]      = "INSERT INTO projector_errors (position, event_id, error) VALUES (?1, ?2, ?3) "
                         "ON CONFLICT (position) DO NOTHING",
    [S_CASE_COUNTS]    = "SELECT status, count(*) FROM documents WHERE case_id = ?1 GROUP BY status ORDER BY status",
    [S_CASE_PERSONS]   = "SELECT json FROM persons WHERE case_id = ?1 ORDER BY seq",
    [S_CASE_COMPANY]   = "SELECT json FROM companies WHERE case_id = ?1 ORDER BY seq LIMIT 1",
    /* through companies: beneficial_owners is indexed by company, not by case */
    [S_CASE_BOS]       = "SELECT b.json FROM companies c JOIN beneficial_owners b ON b.company_id = c.id "
                         "WHERE c.case_id = ?1 AND b.case_id = ?1 ORDER BY b.seq",
    [S_CASE_DOCS]      = "SELECT json FROM documents WHERE case_id = ?1 ORDER BY seq",
};

/* The statuses every document_counts object lists, in this order, even at zero. */
static const char *s_doc_statuses [] = { "AWAITING_UPLOAD", "UPLOADED", "VERIFIED", "REJECTED" };

/* A case touched by the batch being applied. */
typedef struct {
    int64_t seq;
    int64_t updated_position;
    json_t *summary;
} s_case_t;

/* A document touched by the batch: a requirement and its status changes often
 * come in the same batch, so the row is parsed and written once, at the end. */
typedef struct {
    char *case_id;
    int64_t seq;
    int64_t updated_position;
    json_t *row;
    int dirty;
} s_doc_t;

struct _projection_t {
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt [S_STMT_COUNT];
    int64_t checkpoint;         /* committed */
    int64_t pending;            /* inside the open transaction */
    int in_tx;
    zhash_t *cases;             /* case id -> s_case_t, for the batch being applied */
    zhash_t *docs;              /* document id -> s_doc_t, likewise */
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

static int
s_exec (projection_t *self, const char *sql)
{
    char *err = NULL;
    if (sqlite3_exec (self->db, sql, NULL, NULL, &err) != SQLITE_OK) {
        log_error (NULL, NULL, "projection: %s: %s", self->path, err ? err : sqlite3_errmsg (self->db));
        sqlite3_free (err);
        return -1;
    }
    return 0;
}

/* Steps a write statement to completion and resets it. 0 ok, -1 failed (logged). */
static int
s_step_done (projection_t *self, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step (stmt);
    sqlite3_reset (stmt);
    sqlite3_clear_bindings (stmt);
    if (rc != SQLITE_DONE) {
        log_error (NULL, NULL, "projection: write failed: %s", sqlite3_errmsg (self->db));
        return -1;
    }
    return 0;
}

static void
s_bind_text (sqlite3_stmt *stmt, int index, const char *text)
{
    if (text)
        sqlite3_bind_text (stmt, index, text, -1, SQLITE_STATIC);
    else
        sqlite3_bind_null (stmt, index);
}

static void
s_case_free (void *item)
{
    s_case_t *c = (s_case_t *) item;
    if (c) {
        json_decref (c->summary);
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

/* Drops the batch caches (after a flush or a rollback). */
static void
s_cases_forget (projection_t *self)
{
    zhash_destroy (&self->cases);
    self->cases = zhash_new ();
    zhash_destroy (&self->docs);
    self->docs = zhash_new ();
}

static int
s_prepare (projection_t *self)
{
    for (int i = 0; i < S_STMT_COUNT; i++)
        if (sqlite3_prepare_v3 (self->db, s_sql [i], -1, SQLITE_PREPARE_PERSISTENT, &self->stmt [i], NULL) != SQLITE_OK) {
            log_error (NULL, NULL, "projection: prepare failed: %s", sqlite3_errmsg (self->db));
            return -1;
        }
    return 0;
}

/* Reads the checkpoint row; -1 on a database error. */
static int
s_load_checkpoint (projection_t *self, int64_t *position)
{
    sqlite3_stmt *st = self->stmt [S_CHECKPOINT_GET];
    int rc = sqlite3_step (st);
    *position = rc == SQLITE_ROW ? sqlite3_column_int64 (st, 0) : 0;
    sqlite3_reset (st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

projection_t *
projection_new (const char *path)
{
    if (!path)
        return NULL;
    projection_t *self = calloc (1, sizeof (projection_t));
    if (!self)
        return NULL;
    self->path = strdup (path);
    self->cases = zhash_new ();
    self->docs = zhash_new ();
    if (!self->path || !self->cases || !self->docs)
        goto fail;
    if (sqlite3_open_v2 (path, &self->db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK) {
        log_error (NULL, NULL, "projection: cannot open %s: %s", path,
                   self->db ? sqlite3_errmsg (self->db) : "out of memory");
        goto fail;
    }
    sqlite3_busy_timeout (self->db, 5000);
    /* synchronous=NORMAL in WAL never corrupts, and the checkpoint commits with the
     * rows: a power cut can only lose a tail that is then projected again. */
    if (s_exec (self, "PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL; "
                      "PRAGMA cache_size = -32768; PRAGMA temp_store = MEMORY;")
    ||  s_exec (self, readmodel_schema_sql)
    ||  s_exec (self, readmodel_schema_errors_sql)
    ||  s_prepare (self)
    ||  s_load_checkpoint (self, &self->checkpoint))
        goto fail;
    self->pending = self->checkpoint;
    return self;
fail:
    projection_destroy (&self);
    return NULL;
}

void
projection_destroy (projection_t **self_p)
{
    if (self_p && *self_p) {
        projection_t *self = *self_p;
        if (self->in_tx)
            projection_rollback (self);
        for (int i = 0; i < S_STMT_COUNT; i++)
            sqlite3_finalize (self->stmt [i]);
        if (self->db)
            sqlite3_close (self->db);
        zhash_destroy (&self->cases);
        zhash_destroy (&self->docs);
        free (self->path);
        free (self);
        *self_p = NULL;
    }
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

/* ---- cases ---------------------------------------------------------------- */

/* Finds a case in the batch cache or the database. Returns 0 with *out set (NULL
 * when the case does not exist), -1 on a database error, -2 when its stored
 * summary cannot be read (not written by us: the events are skipped, not retried). */
static int
s_case_get (projection_t *self, const char *case_id, s_case_t **out)
{
    *out = (s_case_t *) zhash_lookup (self->cases, case_id);
    if (*out)
        return 0;
    sqlite3_stmt *st = self->stmt [S_CASE_GET];
    sqlite3_bind_text (st, 1, case_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step (st);
    if (rc == SQLITE_ROW) {
        json_t *summary = json_loads ((const char *) sqlite3_column_text (st, 2), 0, NULL);
        s_case_t *c = calloc (1, sizeof (s_case_t));
        if (!summary || !json_is_object (summary) || !c) {
            json_decref (summary);
            free (c);
            sqlite3_reset (st);
            sqlite3_clear_bindings (st);
            return c ? -2 : -1;
        }
        c->seq = sqlite3_column_int64 (st, 0);
        c->updated_position = sqlite3_column_int64 (st, 1);
        c->summary = summary;
        zhash_insert (self->cases, case_id, c);
        zhash_freefn (self->cases, case_id, s_case_free);
        *out = c;
    }
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    return rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
}

/* Records that ev changed the case: its row is rewritten at the end of the batch. */
static void
s_case_mark (s_case_t *c, const event_t *ev, const char *at)
{
    if (ev->position > c->updated_position)
        c->updated_position = ev->position;
    json_object_set_new (c->summary, "updated_at", json_string (at));
}

/* Appends the json column of every row st returns (bound to case_id), comma separated. */
static int
s_append_rows (projection_t *self, s_buf_t *b, sqlite3_stmt *st, const char *case_id)
{
    sqlite3_bind_text (st, 1, case_id, -1, SQLITE_STATIC);
    int rc, n = 0;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW) {
        if (n++)
            s_buf_add (b, ",", 1);
        s_buf_add (b, (const char *) sqlite3_column_text (st, 0), (size_t) sqlite3_column_bytes (st, 0));
    }
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    if (rc != SQLITE_DONE) {
        log_error (NULL, case_id, "projection: read failed: %s", sqlite3_errmsg (self->db));
        return -1;
    }
    return 0;
}

static int
s_case_counts (projection_t *self, const char *case_id, json_t *summary)
{
    json_t *counts = json_object ();
    for (size_t i = 0; i < sizeof s_doc_statuses / sizeof s_doc_statuses [0]; i++)
        json_object_set_new (counts, s_doc_statuses [i], json_integer (0));
    sqlite3_stmt *st = self->stmt [S_CASE_COUNTS];
    sqlite3_bind_text (st, 1, case_id, -1, SQLITE_STATIC);
    int rc;
    while ((rc = sqlite3_step (st)) == SQLITE_ROW)
        json_object_set_new (counts, (const char *) sqlite3_column_text (st, 0),
                             json_integer (sqlite3_column_int64 (st, 1)));
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    json_object_set_new (summary, "document_counts", counts);
    return rc == SQLITE_DONE ? 0 : -1;
}

/* Writes one touched case: summary_json, then full_json assembled from the
 * ready-made JSON of its child rows (byte concatenation, no re-parsing). */
static int
s_case_write (projection_t *self, const char *case_id, s_case_t *c)
{
    if (s_case_counts (self, case_id, c->summary))
        return -1;
    char *summary = s_dump (c->summary);
    if (!summary)
        return -1;
    s_buf_t full = { 0 };
    size_t len = strlen (summary);
    s_buf_add (&full, summary, len - 1);           /* without the closing brace */
    s_buf_str (&full, ",\"persons\":[");
    int rc = s_append_rows (self, &full, self->stmt [S_CASE_PERSONS], case_id);
    s_buf_str (&full, "],\"company\":");
    size_t before = full.size;
    rc |= s_append_rows (self, &full, self->stmt [S_CASE_COMPANY], case_id);
    if (full.size == before)
        s_buf_str (&full, "null");
    s_buf_str (&full, ",\"beneficial_owners\":[");
    rc |= s_append_rows (self, &full, self->stmt [S_CASE_BOS], case_id);
    s_buf_str (&full, "],\"documents\":[");
    rc |= s_append_rows (self, &full, self->stmt [S_CASE_DOCS], case_id);
    s_buf_str (&full, "]}");
    if (rc == 0 && !full.failed) {
        sqlite3_stmt *st = self->stmt [S_CASE_PUT];
        const char *client_id = s_str (c->summary, "client_id");
        const char *type = s_str (c->summary, "traitement_type");
        const char *status = s_str (c->summary, "status");
        sqlite3_bind_text (st, 1, case_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (st, 2, c->seq);
        sqlite3_bind_text (st, 3, client_id ? client_id : "", -1, SQLITE_STATIC);
        sqlite3_bind_text (st, 4, type ? type : "", -1, SQLITE_STATIC);
        sqlite3_bind_text (st, 5, status ? status : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64 (st, 6, c->updated_position);
        sqlite3_bind_text (st, 7, summary, (int) len, SQLITE_STATIC);
        sqlite3_bind_text (st, 8, full.data, (int) full.size, SQLITE_STATIC);
        rc = s_step_done (self, st);
    }
    else
        rc = -1;
    free (full.data);
    free (summary);
    return rc;
}

/* Rewrites every case the batch touched, once. */
static int
s_cases_flush (projection_t *self)
{
    int rc = 0;
    for (s_case_t *c = (s_case_t *) zhash_first (self->cases); c && rc == 0;
         c = (s_case_t *) zhash_next (self->cases))
        rc = s_case_write (self, zhash_cursor (self->cases), c);
    s_cases_forget (self);
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
    if (c || rc == -2)
        return s_poison (x, "case %s already exists", x->case_id);
    const char *status = s_str (x->data, "status");
    const char *created = s_str (x->data, "created_at");
    c = calloc (1, sizeof (s_case_t));
    if (!c)
        return -1;
    c->seq = c->updated_position = x->ev->position;
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
    zhash_insert (self->cases, x->case_id, c);
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
    const char *at = s_str (x->data, "changed_at");
    json_object_set_new (c->summary, "status", json_string (to));
    s_case_mark (c, x->ev, at ? at : x->at);
    return 0;
}

/* Writes a child row whose statement takes (id, case_id, [company_id,] seq, json). */
static int
s_put_row (projection_t *self, int which, const char *id, const char *case_id, const char *company_id,
           int64_t position, json_t *row)
{
    char *text = s_dump (row);
    if (!text)
        return -1;
    sqlite3_stmt *st = self->stmt [which];
    int i = 1;
    if (which == S_BO_PUT) {
        sqlite3_bind_text (st, i++, id, -1, SQLITE_STATIC);
        s_bind_text (st, i++, company_id);
        sqlite3_bind_text (st, i++, case_id, -1, SQLITE_STATIC);
    }
    else {
        sqlite3_bind_text (st, i++, id, -1, SQLITE_STATIC);
        sqlite3_bind_text (st, i++, case_id, -1, SQLITE_STATIC);
        if (which == S_PERSON_PUT)
            s_bind_text (st, i++, company_id);
    }
    sqlite3_bind_int64 (st, i++, position);
    sqlite3_bind_text (st, i++, text, -1, SQLITE_STATIC);
    int rc = s_step_done (self, st);
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
    rc = s_put_row (self, S_COMPANY_PUT, company_id, x->case_id, NULL, x->ev->position, row);
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
    rc = s_put_row (self, S_PERSON_PUT, person_id, x->case_id, company_id, x->ev->position, row);
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
    rc = s_put_row (self, S_BO_PUT, bo_id, x->case_id, company_id, x->ev->position, row);
    json_decref (row);
    if (rc == 0)
        s_case_mark (c, x->ev, x->at);
    return rc;
}

/* Finds a document in the batch cache or the database. Returns 0 with *out set
 * (NULL when unknown), -1 on a database error, -2 when its row is unreadable. */
static int
s_doc_get (projection_t *self, const char *doc_id, s_doc_t **out)
{
    *out = (s_doc_t *) zhash_lookup (self->docs, doc_id);
    if (*out)
        return 0;
    sqlite3_stmt *st = self->stmt [S_DOC_GET];
    sqlite3_bind_text (st, 1, doc_id, -1, SQLITE_STATIC);
    int rc = sqlite3_step (st);
    int result = rc == SQLITE_ROW || rc == SQLITE_DONE ? 0 : -1;
    if (rc == SQLITE_ROW) {
        s_doc_t *d = calloc (1, sizeof (s_doc_t));
        if (d) {
            d->seq = sqlite3_column_int64 (st, 0);
            d->updated_position = sqlite3_column_int64 (st, 1);
            d->row = json_loads ((const char *) sqlite3_column_text (st, 2), 0, NULL);
            d->case_id = strdup ((const char *) sqlite3_column_text (st, 3));
        }
        if (!d || !d->case_id || !json_is_object (d->row)) {
            result = d && d->case_id ? -2 : -1;
            s_doc_free (d);
        }
        else {
            zhash_insert (self->docs, doc_id, d);
            zhash_freefn (self->docs, doc_id, s_doc_free);
            *out = d;
        }
    }
    sqlite3_reset (st);
    sqlite3_clear_bindings (st);
    return result;
}

/* Writes every document the batch changed (before the cases: their counts and
 * full_json read the documents table). */
static int
s_docs_flush (projection_t *self)
{
    for (s_doc_t *d = (s_doc_t *) zhash_first (self->docs); d; d = (s_doc_t *) zhash_next (self->docs)) {
        if (!d->dirty)
            continue;
        char *text = s_dump (d->row);
        if (!text)
            return -1;
        const char *status = s_str (d->row, "status");
        sqlite3_stmt *st = self->stmt [S_DOC_PUT];
        sqlite3_bind_text (st, 1, zhash_cursor (self->docs), -1, SQLITE_STATIC);
        sqlite3_bind_text (st, 2, d->case_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (st, 3, d->seq);
        sqlite3_bind_text (st, 4, status ? status : "", -1, SQLITE_STATIC);
        sqlite3_bind_int64 (st, 5, d->updated_position);
        sqlite3_bind_text (st, 6, text, -1, SQLITE_STATIC);
        int rc = s_step_done (self, st);
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
    if (d && d->updated_position >= x->ev->position)
        return 0;                              /* already applied */
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
        zhash_insert (self->docs, doc_id, d);
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
    if (d->updated_position >= x->ev->position)
        return 0;                              /* already applied */
    const char *at = s_str (x->data, "changed_at");
    if (!at)
        at = x->at;
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
        sqlite3_stmt *st = self->stmt [S_EVENT_PUT];
        sqlite3_bind_text (st, 1, x->case_id, -1, SQLITE_STATIC);
        sqlite3_bind_int64 (st, 2, ev->version);
        sqlite3_bind_int64 (st, 3, ev->position);
        sqlite3_bind_text (st, 4, row.data, (int) row.size, SQLITE_STATIC);
        rc = s_step_done (self, st);
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

static int
s_apply_event (projection_t *self, const event_t *ev, char *err, size_t err_size)
{
    s_ctx_t x = { .ev = ev, .case_id = ev->stream, .err = err, .err_size = err_size };
    if (!ev->stream [0])
        return s_poison (&x, "event without a stream");
    if (!ev->data || ev->data_size == 0)
        return s_poison (&x, "empty payload");
    json_error_t jerr;
    json_t *data = json_loadb (ev->data, ev->data_size, 0, &jerr);
    if (!data || !json_is_object (data)) {
        json_decref (data);
        return s_poison (&x, "payload is not a JSON object: %s", data ? "not an object" : jerr.text);
    }
    x.data = data;
    s_format_time (ev->timestamp_us, x.at);
    int rc = 0;
    for (size_t i = 0; i < sizeof s_handlers / sizeof s_handlers [0]; i++)
        if (strcmp (ev->type, s_handlers [i].type) == 0) {
            rc = s_handlers [i].fn (self, &x);
            break;
        }
    if (rc == 0)
        rc = s_put_case_event (self, &x);
    json_decref (data);
    return rc;
}

static int
s_record_error (projection_t *self, const event_t *ev, const char *error)
{
    log_error (ev->correlation_id, ev->stream, "projection: event at position %lld (id %s, %s) skipped: %s",
               (long long) ev->position, ev->id, ev->type, error);
    sqlite3_stmt *st = self->stmt [S_ERROR_PUT];
    sqlite3_bind_int64 (st, 1, ev->position);
    sqlite3_bind_text (st, 2, ev->id, -1, SQLITE_STATIC);
    sqlite3_bind_text (st, 3, error, -1, SQLITE_STATIC);
    return s_step_done (self, st);
}

/* ---- transactions ------------------------------------------------------------ */

int
projection_begin (projection_t *self)
{
    if (self->in_tx)
        return -1;
    if (s_exec (self, "BEGIN IMMEDIATE"))
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
    if (s_exec (self, "COMMIT"))
        return -1;
    self->in_tx = 0;
    self->checkpoint = self->pending;
    return 0;
}

void
projection_rollback (projection_t *self)
{
    if (self->in_tx) {
        char *err = NULL;
        sqlite3_exec (self->db, "ROLLBACK", NULL, NULL, &err);
        sqlite3_free (err);
        self->in_tx = 0;
    }
    self->pending = self->checkpoint;
    s_cases_forget (self);
}

int
projection_is_readmodel_file (const char *path)
{
    if (access (path, F_OK) != 0)
        return 1;
    sqlite3 *db = NULL;
    int ours = 0;
    if (sqlite3_open_v2 (path, &db, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK) {
        sqlite3_stmt *st = NULL;
        if (sqlite3_prepare_v2 (db, "SELECT name FROM sqlite_master WHERE type = 'table' "
                                "AND name NOT LIKE 'sqlite_%'", -1, &st, NULL) == SQLITE_OK) {
            static const char *known [] = { "checkpoint", "cases", "companies", "persons", "beneficial_owners",
                                            "documents", "case_events", "projector_errors" };
            int rc;
            ours = 1;
            while (ours && (rc = sqlite3_step (st)) == SQLITE_ROW) {
                const char *name = (const char *) sqlite3_column_text (st, 0);
                ours = 0;
                for (size_t i = 0; i < sizeof known / sizeof known [0] && !ours; i++)
                    ours = name && strcmp (name, known [i]) == 0;
            }
            if (ours && rc != SQLITE_DONE)
                ours = 0;              /* not a database at all, or unreadable */
        }
        sqlite3_finalize (st);
    }
    sqlite3_close (db);
    return ours;
}

int
projection_clear (projection_t *self)
{
    if (!self->in_tx)
        return -1;
    /* Every table, whatever its name: a rebuild starts from nothing. */
    zlist_t *names = zlist_new ();
    zlist_autofree (names);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2 (self->db, "SELECT name FROM sqlite_master WHERE type = 'table' "
                                 "AND name NOT LIKE 'sqlite_%'", -1, &st, NULL);
    while (rc == SQLITE_OK && sqlite3_step (st) == SQLITE_ROW)
        zlist_append (names, (void *) sqlite3_column_text (st, 0));
    sqlite3_finalize (st);
    for (char *name = (char *) zlist_first (names); name && rc == SQLITE_OK; name = (char *) zlist_next (names)) {
        char *sql = sqlite3_mprintf ("DROP TABLE \"%w\"", name);
        rc = sql && s_exec (self, sql) == 0 ? SQLITE_OK : SQLITE_ERROR;
        sqlite3_free (sql);
    }
    zlist_destroy (&names);
    if (rc != SQLITE_OK || s_exec (self, readmodel_schema_sql) || s_exec (self, readmodel_schema_errors_sql))
        return -1;
    self->pending = 0;
    s_cases_forget (self);
    return 0;
}

int
projection_apply_in_tx (projection_t *self, const event_t *events, size_t count)
{
    if (!self->in_tx)
        return -1;
    for (size_t i = 0; i < count; i++) {
        const event_t *ev = &events [i];
        if (ev->position <= self->pending) {
            self->stats.skipped++;
            continue;
        }
        char err [256] = "";
        int rc = s_apply_event (self, ev, err, sizeof err);
        if (rc == -2) {
            if (s_record_error (self, ev, err))
                return -1;
            self->stats.poison++;
        }
        else
        if (rc)
            return -1;
        else
            self->stats.applied++;
        self->pending = ev->position;
    }
    if (s_docs_flush (self) || s_cases_flush (self))
        return -1;
    sqlite3_stmt *st = self->stmt [S_CHECKPOINT_PUT];
    sqlite3_bind_int64 (st, 1, self->pending);
    return s_step_done (self, st);
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
