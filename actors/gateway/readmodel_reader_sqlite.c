/* readmodel_reader_sqlite — keyed lookups on the projector's SQLite read models. The
 * connection is read-only and opened lazily, because the gateway may start before
 * the projector has created the file; statements are prepared once and reused.
 * A snapshot is one read transaction shared by every query of an event-loop turn:
 * one lock round instead of one per query, and "PRAGMA data_version" tells whether
 * the projector committed anything since the last one. */
#include "readmodel_reader_backend.h"
#include "log.h"

#include <czmq.h>
#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* How often an open connection checks that its file is still the one on disk. */
#define S_RECHECK_MS 1000

enum {
    S_CASE_FULL,
    S_CASE_EXISTS,
    S_CASE_EVENTS,
    S_CASE_DOCUMENTS,
    S_COMPANY,
    S_COMPANY_EXISTS,
    S_COMPANY_OWNERS,
    S_PERSON,
    S_DOCUMENT,
    S_DOCUMENT_CASE,
    S_BEGIN,
    S_COMMIT,
    S_DATA_VERSION,
    S_LIST_FIRST,                   /* + filter mask: 1 client_id, 2 traitement_type, 4 status */
    S_COUNT = S_LIST_FIRST + 8
};

static const char *s_sql [S_LIST_FIRST] = {
    [S_CASE_FULL]      = "SELECT full_json FROM cases WHERE id = ?1",
    [S_CASE_EXISTS]    = "SELECT 1 FROM cases WHERE id = ?1",
    [S_CASE_EVENTS]    = "SELECT json FROM case_events WHERE case_seq = (SELECT seq FROM cases WHERE id = ?1) "
                         "ORDER BY version",
    [S_CASE_DOCUMENTS] = "SELECT json FROM documents WHERE case_id = ?1 ORDER BY seq",
    [S_COMPANY]        = "SELECT json FROM companies WHERE id = ?1",
    [S_COMPANY_EXISTS] = "SELECT 1 FROM companies WHERE id = ?1",
    [S_COMPANY_OWNERS] = "SELECT json FROM beneficial_owners WHERE company_id = ?1 ORDER BY seq",
    [S_PERSON]         = "SELECT json FROM persons WHERE id = ?1",
    [S_DOCUMENT]       = "SELECT json FROM documents WHERE id = ?1",
    [S_DOCUMENT_CASE]  = "SELECT case_id FROM documents WHERE id = ?1",
    [S_BEGIN]          = "BEGIN",
    [S_COMMIT]         = "COMMIT",
    [S_DATA_VERSION]   = "PRAGMA data_version",
};

typedef struct {
    char *path;
    sqlite3 *db;
    sqlite3_stmt *stmts [S_COUNT];
    dev_t dev;                      /* identity of the file we opened */
    ino_t ino;
    int64_t checked_at;             /* zclock_mono of the last identity check */
    int failing_logged;             /* log "unavailable" once per outage, not per request */
    int in_snapshot;                /* a read transaction is open (s_snapshot) */
    int64_t data_version;           /* PRAGMA data_version at the last snapshot */
    uint64_t generation;            /* moves on every (re)open and every data change */
} s_self_t;

void *
gw_reader_sqlite_new (const char *path)
{
    s_self_t *self = calloc (1, sizeof (s_self_t));
    if (!self)
        return NULL;
    self->path = strdup (path ? path : "");
    if (!self->path) {
        free (self);
        return NULL;
    }
    return self;
}

static void
s_close (s_self_t *self)
{
    /* Closing ends any read transaction (SQLite rolls it back). */
    self->in_snapshot = 0;
    for (int i = 0; i < S_COUNT; i++) {
        sqlite3_finalize (self->stmts [i]);
        self->stmts [i] = NULL;
    }
    if (self->db)
        sqlite3_close (self->db);
    self->db = NULL;
}

static void
s_destroy (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (self) {
        s_close (self);
        free (self->path);
        free (self);
    }
}

/* Returns the prepared statement for which (resetting it for reuse), or NULL. */
static sqlite3_stmt *
s_stmt (s_self_t *self, int which)
{
    if (!self->stmts [which]) {
        char list_sql [256];
        const char *sql = which < S_LIST_FIRST ? s_sql [which] : NULL;
        if (!sql) {
            int mask = which - S_LIST_FIRST;
            snprintf (list_sql, sizeof list_sql,
                "SELECT seq, summary_json FROM cases WHERE seq > ?1%s%s%s ORDER BY seq LIMIT ?5",
                mask & 1 ? " AND client_id = ?2" : "",
                mask & 2 ? " AND traitement_type = ?3" : "",
                mask & 4 ? " AND status = ?4" : "");
            sql = list_sql;
        }
        if (sqlite3_prepare_v3 (self->db, sql, -1, SQLITE_PREPARE_PERSISTENT,
                                &self->stmts [which], NULL) != SQLITE_OK) {
            log_debug (NULL, NULL, "read models: cannot prepare query: %s", sqlite3_errmsg (self->db));
            sqlite3_finalize (self->stmts [which]);
            self->stmts [which] = NULL;
            return NULL;
        }
    }
    /* Every query binds all of its parameters, so no clear_bindings. */
    sqlite3_reset (self->stmts [which]);
    return self->stmts [which];
}

/* Makes sure an open, current connection exists. 0 ok, -1 unavailable. */
static int
s_ensure_open (s_self_t *self)
{
    struct stat st;
    /* Inside a snapshot the file was checked when it began, a turn ago at most. */
    if (self->in_snapshot)
        return 0;
    if (self->db) {
        int64_t now = zclock_mono ();
        if (now - self->checked_at < S_RECHECK_MS)
            return 0;
        self->checked_at = now;
        /* A rebuild may have replaced the file; keep reading the old one and we
         * would serve a stale, forever-frozen view. */
        if (stat (self->path, &st) == 0 && st.st_dev == self->dev && st.st_ino == self->ino)
            return 0;
        log_info (NULL, NULL, "read models: file changed on disk, reopening");
        s_close (self);
    }
    if (stat (self->path, &st) != 0)
        goto fail;
    /* NOMUTEX: the connection belongs to one thread (one reader per thread), so
     * SQLite's per-call locking is pure cost. */
    if (sqlite3_open_v2 (self->path, &self->db, SQLITE_OPEN_READONLY | SQLITE_OPEN_NOMUTEX, NULL) != SQLITE_OK)
        goto fail;
    sqlite3_busy_timeout (self->db, 100);
    /* Another file, or the same one after a failure: nothing cached stays valid. */
    self->generation++;
    self->data_version = INT64_MIN;
    self->dev = st.st_dev;
    self->ino = st.st_ino;
    self->checked_at = zclock_mono ();
    /* Preparing against every table proves the schema is there; a file the projector
     * has created but not yet initialised counts as not ready. */
    for (int i = 0; i < S_LIST_FIRST; i++)
        if (!s_stmt (self, i))
            goto fail;
    if (self->failing_logged)
        log_info (NULL, NULL, "read models: open");
    self->failing_logged = 0;
    return 0;
fail:
    if (!self->failing_logged)
        log_warn (NULL, NULL, "read models: %s not available yet", self->path);
    self->failing_logged = 1;
    s_close (self);
    return -1;
}

static int
s_ready (void *impl)
{
    return s_ensure_open ((s_self_t *) impl) == 0;
}

static const char *
s_reason (void *impl)
{
    (void) impl;
    return "read models not ready";
}

/* Steps stmt; on an error other than contention, drops the connection so the next
 * request reopens it (the file may have been damaged or replaced). */
static int
s_step (s_self_t *self, sqlite3_stmt *stmt)
{
    int rc = sqlite3_step (stmt);
    if (rc == SQLITE_ROW || rc == SQLITE_DONE)
        return rc;
    log_warn (NULL, NULL, "read models: query failed: %s", sqlite3_errstr (rc));
    if (rc != SQLITE_BUSY && rc != SQLITE_LOCKED)
        s_close (self);
    else
        sqlite3_reset (stmt);
    return rc;
}

/* Prepares which with ?1 = id; NULL if unavailable. */
static sqlite3_stmt *
s_keyed (s_self_t *self, int which, const char *id)
{
    if (s_ensure_open (self))
        return NULL;
    sqlite3_stmt *stmt = s_stmt (self, which);
    if (stmt && sqlite3_bind_text (stmt, 1, id, -1, SQLITE_STATIC) != SQLITE_OK)
        return NULL;
    return stmt;
}

static void
s_append_column (gw_buf_t *out, sqlite3_stmt *stmt, int col)
{
    const unsigned char *text = sqlite3_column_text (stmt, col);
    if (text)
        gw_buf_append (out, text, (size_t) sqlite3_column_bytes (stmt, col));
    else
        gw_buf_append_str (out, "null");
}

static int
s_object (void *impl, gw_rm_object_t which, const char *id, gw_buf_t *out)
{
    s_self_t *self = (s_self_t *) impl;
    static const int stmts [] = {
        [GW_RM_CASE] = S_CASE_FULL, [GW_RM_COMPANY] = S_COMPANY,
        [GW_RM_PERSON] = S_PERSON, [GW_RM_DOCUMENT] = S_DOCUMENT,
    };
    sqlite3_stmt *stmt = s_keyed (self, stmts [which], id);
    if (!stmt)
        return GW_READER_UNAVAILABLE;
    int rc = s_step (self, stmt);
    int result = GW_READER_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        s_append_column (out, stmt, 0);
        result = out->failed ? GW_READER_UNAVAILABLE : GW_READER_OK;
    }
    else
    if (rc != SQLITE_DONE)
        return GW_READER_UNAVAILABLE;
    sqlite3_reset (stmt);
    return result;
}

static int
s_rows (void *impl, gw_rm_list_t which, const char *id, gw_buf_t *out)
{
    s_self_t *self = (s_self_t *) impl;
    static const int stmts [] = {
        [GW_RM_CASE_EVENTS] = S_CASE_EVENTS, [GW_RM_CASE_DOCUMENTS] = S_CASE_DOCUMENTS,
        [GW_RM_COMPANY_OWNERS] = S_COMPANY_OWNERS,
    };
    sqlite3_stmt *stmt = s_keyed (self, stmts [which], id);
    if (!stmt)
        return GW_READER_UNAVAILABLE;
    int rc, first = 1;
    while ((rc = s_step (self, stmt)) == SQLITE_ROW) {
        if (!first)
            gw_buf_append (out, ",", 1);
        first = 0;
        s_append_column (out, stmt, 0);
    }
    if (rc != SQLITE_DONE)
        return GW_READER_UNAVAILABLE;
    sqlite3_reset (stmt);
    return out->failed ? GW_READER_UNAVAILABLE : GW_READER_OK;
}

static int
s_exists (void *impl, gw_rm_object_t which, const char *id)
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *stmt = s_keyed (self, which == GW_RM_COMPANY ? S_COMPANY_EXISTS : S_CASE_EXISTS, id);
    if (!stmt)
        return GW_READER_UNAVAILABLE;
    int rc = s_step (self, stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return GW_READER_UNAVAILABLE;
    sqlite3_reset (stmt);
    return rc == SQLITE_ROW ? GW_READER_OK : GW_READER_NOT_FOUND;
}

static int
s_document_case (void *impl, const char *document_id, char case_id [GW_ID_MAX])
{
    s_self_t *self = (s_self_t *) impl;
    sqlite3_stmt *stmt = s_keyed (self, S_DOCUMENT_CASE, document_id);
    if (!stmt)
        return GW_READER_UNAVAILABLE;
    int rc = s_step (self, stmt);
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return GW_READER_UNAVAILABLE;
    int result = GW_READER_NOT_FOUND;
    if (rc == SQLITE_ROW) {
        const unsigned char *text = sqlite3_column_text (stmt, 0);
        int len = sqlite3_column_bytes (stmt, 0);
        if (text && len > 0 && len < GW_ID_MAX) {
            memcpy (case_id, text, (size_t) len);
            case_id [len] = 0;
            result = GW_READER_OK;
        }
        else
            /* A row we could never route a command for; treat it as a broken model. */
            result = GW_READER_UNAVAILABLE;
    }
    sqlite3_reset (stmt);
    return result;
}

static int
s_cases (void *impl, const gw_cases_query_t *query, int limit, gw_buf_t *out, int64_t *last_seq, int *more)
{
    s_self_t *self = (s_self_t *) impl;
    if (s_ensure_open (self))
        return GW_READER_UNAVAILABLE;
    int mask = (query->client_id [0] ? 1 : 0) | (query->traitement_type [0] ? 2 : 0)
             | (query->status [0] ? 4 : 0);
    sqlite3_stmt *stmt = s_stmt (self, S_LIST_FIRST + mask);
    if (!stmt)
        return GW_READER_UNAVAILABLE;
    sqlite3_bind_int64 (stmt, 1, query->after_seq);
    if (mask & 1)
        sqlite3_bind_text (stmt, 2, query->client_id, -1, SQLITE_STATIC);
    if (mask & 2)
        sqlite3_bind_text (stmt, 3, query->traitement_type, -1, SQLITE_STATIC);
    if (mask & 4)
        sqlite3_bind_text (stmt, 4, query->status, -1, SQLITE_STATIC);
    /* One row more than asked tells whether another page exists. */
    sqlite3_bind_int (stmt, 5, limit + 1);
    int rc, count = 0;
    while ((rc = s_step (self, stmt)) == SQLITE_ROW) {
        if (count == limit) {
            *more = 1;
            break;
        }
        if (count)
            gw_buf_append (out, ",", 1);
        s_append_column (out, stmt, 1);
        *last_seq = sqlite3_column_int64 (stmt, 0);
        count++;
    }
    if (rc != SQLITE_ROW && rc != SQLITE_DONE)
        return GW_READER_UNAVAILABLE;
    sqlite3_reset (stmt);
    return out->failed ? GW_READER_UNAVAILABLE : GW_READER_OK;
}

/* Runs a statement that returns no row (BEGIN, COMMIT). 0 ok, -1 failed. */
static int
s_exec (s_self_t *self, int which)
{
    sqlite3_stmt *stmt = s_stmt (self, which);
    if (!stmt)
        return -1;
    int rc = s_step (self, stmt);
    if (rc != SQLITE_DONE && rc != SQLITE_ROW)
        return -1;
    sqlite3_reset (stmt);
    return 0;
}

static void
s_release (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (!self->in_snapshot)
        return;
    self->in_snapshot = 0;
    /* A read transaction that cannot end would pin the projector's WAL: start over. */
    if (self->db && s_exec (self, S_COMMIT))
        s_close (self);
}

static uint64_t
s_snapshot (void *impl)
{
    s_self_t *self = (s_self_t *) impl;
    if (self->in_snapshot)
        return self->generation;
    if (s_ensure_open (self) || s_exec (self, S_BEGIN))
        return 0;
    self->in_snapshot = 1;
    /* BEGIN is deferred: this first read is what takes the snapshot. */
    sqlite3_stmt *stmt = s_stmt (self, S_DATA_VERSION);
    int rc = stmt ? s_step (self, stmt) : SQLITE_ERROR;
    if (rc != SQLITE_ROW) {
        if (rc == SQLITE_DONE)
            sqlite3_reset (stmt);
        s_release (self);
        return 0;
    }
    int64_t version = sqlite3_column_int64 (stmt, 0);
    sqlite3_reset (stmt);
    if (version != self->data_version) {
        self->data_version = version;
        self->generation++;
    }
    return self->generation;
}

const gw_reader_ops_t gw_reader_sqlite_ops = {
    .name = "sqlite",
    .destroy = s_destroy,
    .ready = s_ready,
    .reason = s_reason,
    .object = s_object,
    .exists = s_exists,
    .document_case = s_document_case,
    .rows = s_rows,
    .cases = s_cases,
    .snapshot = s_snapshot,
    .release = s_release,
};
